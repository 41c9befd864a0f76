"""MethodEmbedding tells a method where training stands, once per step."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from selfsup.embedding import MethodEmbedding
from selfsup.methods import MethodModel, TrainProgress


class _Spy(MethodModel):
    """A linear 'method' recording the progress each hook receives."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(4, 2)
        self.seen: list[tuple[str, TrainProgress]] = []

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        self.seen.append(("loss", progress))
        return (self.backbone(views[0]) - self.backbone(views[1])).pow(2).mean()

    def before_optimizer_step(self, progress: TrainProgress) -> None:
        self.seen.append(("step", progress))


def test_progress_counts_steps_of_the_whole_run(tmp_path: Path) -> None:
    x = torch.randn(8, 4)
    # Batches of (views, labels, names) as a method's transform and default collate give.
    dataset = TensorDataset(x, x + 0.1, torch.zeros(8))
    loader = DataLoader(
        [([a, b], int(t), str(i)) for i, (a, b, t) in enumerate(dataset)], batch_size=4
    )
    model = _Spy()
    embedding = MethodEmbedding(model, torch.optim.SGD(model.parameters(), lr=0.1), loader)
    embedding.train_embedding(
        gpus=0, max_epochs=2, checkpoint_dir=tmp_path, enable_progress_bar=False
    )
    losses = [p for kind, p in model.seen if kind == "loss"]
    steps = [p for kind, p in model.seen if kind == "step"]
    assert [(p.epoch, p.step) for p in losses] == [(0, 0), (0, 1), (1, 2), (1, 3)]
    assert {(p.max_epochs, p.total_steps) for p in losses} == {(2, 4)}
    # The optimiser hook of a step sees that step's progress.
    assert steps == losses


@pytest.mark.parametrize("old_checkpoint", [False, True])
def test_a_folder_warning_only_for_earlier_checkpoints(
    old_checkpoint: bool, tmp_path: Path
) -> None:
    """A run's own config/ and logs/ in the checkpoint folder are not worth Lightning's
    "exists and is not empty" warning; a checkpoint left by an earlier run is."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("{}\n")
    if old_checkpoint:
        (tmp_path / "old.ckpt").write_bytes(b"")
    x = torch.randn(4, 4)
    loader = DataLoader([([a, a + 0.1], 0, str(i)) for i, a in enumerate(x)], batch_size=4)
    model = _Spy()
    embedding = MethodEmbedding(model, torch.optim.SGD(model.parameters(), lr=0.1), loader)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        embedding.train_embedding(
            gpus=0, max_epochs=1, checkpoint_dir=tmp_path, enable_progress_bar=False
        )
    folder_warnings = [w for w in caught if "exists and is not empty" in str(w.message)]
    assert len(folder_warnings) == int(old_checkpoint)


@pytest.mark.slow
def test_a_two_step_epoch_at_lr_1_embeds_at_the_scale_training_saw(
    make_image_folder: Callable[..., Path],
) -> None:
    """Issue 11: a checkpoint of one 2-step epoch at lightly's lr 1.0 gave embeddings of 1e11.
    The BatchNorm running averages (81 % their initial values after 2 steps) did not describe
    the weights, whose scale-invariant convolutions SGD had grown several-fold; eval mode
    then amplified every layer. With the statistics recomputed at the epoch's end the
    embeddings keep the scale of a train-mode forward pass."""
    import pytorch_lightning as pl

    from selfsup.config import CollateConfig, LoaderConfig, ModelConfig
    from selfsup.core import build_embed_loader, build_model, build_train_loader
    from selfsup.methods import get_method

    images = make_image_folder(n_classes=2, n_per_class=16, size=(32, 32))
    pl.seed_everything(0, verbose=False)
    model = build_model(ModelConfig(name="resnet-18", width=0.125), "simclr")
    loader = build_train_loader(
        str(images), LoaderConfig(num_workers=0), CollateConfig(input_size=32), method="simclr"
    )
    assert len(loader) == 2
    optimizer = get_method("simclr").optimizer.build(model)  # lightly's SGD at lr 1.0
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(MethodEmbedding(model, optimizer, loader))
    embed_loader = build_embed_loader(str(images), LoaderConfig(num_workers=0), 32)
    x = next(iter(embed_loader))[0]
    with torch.no_grad():
        model.backbone.train()
        train_scale = model.backbone(x).abs().max()
        model.backbone.eval()
        eval_scale = model.backbone(x).abs().max()
    assert torch.isfinite(eval_scale)
    assert eval_scale < 10 * train_scale, (float(eval_scale), float(train_scale))


def _fit(loader: DataLoader[object], model: MethodModel) -> MethodEmbedding:
    import pytorch_lightning as pl

    embedding = MethodEmbedding(model, torch.optim.SGD(model.parameters(), lr=0.01), loader)
    pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(embedding)
    return embedding


@pytest.mark.slow
@pytest.mark.parametrize("kept", [True, False], ids=["views kept", "loader read again"])
@pytest.mark.parametrize("augment", ["device", "workers"])
def test_training_augments_on_the_device_by_default(
    augment: str,
    kept: bool,
    make_image_folder: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The default loader yields uint8 sources and the hook makes the views (the per-image
    view transform is never called); loader.augment=workers keeps the per-image path. Beyond
    the byte budget for kept views, the BatchNorm recompute reads the loader again, and its
    batches take the training batches' way to views."""
    import selfsup.embedding._base as base

    if not kept:
        monkeypatch.setattr(base, "PRECISE_BN_CACHE_BYTES", 0)
    from selfsup.config import CollateConfig, LoaderConfig, ModelConfig
    from selfsup.core import build_model, build_train_loader
    from selfsup.embedding._method import loader_device_views
    from selfsup.transforms.batched_view import BatchedMultiViewTransform
    from selfsup.transforms.view_transform import ViewTransform

    calls = {"per_image": 0, "batched": 0}
    per_image_apply = ViewTransform.apply
    batched_call = BatchedMultiViewTransform.__call__

    def counted_apply(self: ViewTransform, *args: object, **kwargs: object) -> Tensor:
        calls["per_image"] += 1
        return per_image_apply(self, *args, **kwargs)  # type: ignore[arg-type]

    def counted_call(self: BatchedMultiViewTransform, *args: object, **kwargs: object) -> object:
        calls["batched"] += 1
        return batched_call(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ViewTransform, "apply", counted_apply)
    monkeypatch.setattr(BatchedMultiViewTransform, "__call__", counted_call)
    images = make_image_folder(n_classes=2, n_per_class=4, size=(40, 30))
    loader = build_train_loader(
        str(images),
        LoaderConfig.model_validate({"num_workers": 0, "batch_size": 4, "augment": augment}),
        CollateConfig(input_size=16),
        method="byol",
    )
    model = build_model(ModelConfig(name="resnet-9", width=0.125, num_ftrs=8, out_dim=4), "byol")
    seen: list[tuple[int, ...]] = []
    loss = model.training_loss

    def recording_loss(views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        seen.extend(tuple(v.shape) for v in views)
        assert all(v.dtype == torch.float32 for v in views)
        # Both paths hand the model channels-last views (the layout its weights have).
        assert all(v.is_contiguous(memory_format=torch.channels_last) for v in views)
        assert not any(v.is_contiguous() for v in views)
        return loss(views, progress)

    monkeypatch.setattr(model, "training_loss", recording_loss)
    embedding = _fit(loader, model)
    assert seen == [(4, 3, 16, 16)] * 4  # 2 steps, 2 views each
    convs = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    # The views are made for the 2 training steps; the BatchNorm statistics are recomputed
    # at the epoch's end from the first views of those steps, or, beyond the byte budget,
    # from 2 more batches read and augmented again.
    made = 2 if kept else 4
    if augment == "device":
        assert embedding.device_views is not None
        assert embedding.device_views is loader_device_views(loader)
        assert embedding.device_views.source_size == 32
        assert calls == {"per_image": 0, "batched": made}
    else:
        assert embedding.device_views is None
        assert calls == {"per_image": made * 4 * 2, "batched": 0}


def test_channels_last_false_keeps_the_model_and_views_as_they_are() -> None:
    conv = nn.Conv2d(3, 4, 3)
    model = _Spy()
    model.backbone = nn.Sequential(conv, nn.Flatten())
    loader = DataLoader(TensorDataset(torch.zeros(2, 3, 8, 8)), batch_size=2)
    views = [torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8)]
    kept = MethodEmbedding(model, torch.optim.SGD(model.parameters()), loader, channels_last=False)
    assert kept.on_after_batch_transfer((views, [0, 0], ["a", "b"]), 0) == (
        views,
        [0, 0],
        ["a", "b"],
    )
    assert conv.weight.is_contiguous()
    made = MethodEmbedding(model, torch.optim.SGD(model.parameters()), loader)
    out = made.on_after_batch_transfer((views, [0, 0], ["a", "b"]), 0)
    assert all(v.is_contiguous(memory_format=torch.channels_last) for v in out[0])
    assert out[1:] == ([0, 0], ["a", "b"])
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("channels_last", [False, True])
def test_views_made_on_the_device_take_the_embedding_s_layout(channels_last: bool) -> None:
    """The batched views are channels-last by themselves; channels_last=False still hands
    the model NCHW views, as on the per-image path."""
    from selfsup.transforms import SimCLRTransform
    from selfsup.transforms.device_views import SourceCollate, device_views_for

    device_views, _ = device_views_for(SimCLRTransform(input_size=8))
    assert device_views is not None
    loader = DataLoader(TensorDataset(torch.zeros(2)), collate_fn=SourceCollate(device_views))
    model = _Spy()
    embedding = MethodEmbedding(
        model, torch.optim.SGD(model.parameters()), loader, channels_last=channels_last
    )
    source = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    views, labels, names = embedding.on_after_batch_transfer(
        (source, torch.full((2, 2), 16), [0, 0], ["a", "b"]), 0
    )
    assert [tuple(v.shape) for v in views] == [(2, 3, 8, 8)] * 2
    assert all(v.is_contiguous(memory_format=torch.channels_last) for v in views) == (channels_last)
    assert all(v.is_contiguous() for v in views) != channels_last
    assert (labels, names) == ([0, 0], ["a", "b"])


def test_a_source_batch_without_device_views_is_refused() -> None:
    from selfsup.embedding._method import train_views
    from selfsup.errors import DataError

    batch = (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.tensor([[8, 8]] * 2), [0, 0], "")
    with pytest.raises(DataError, match="no DeviceViews"):
        train_views(batch, None, "cpu")
