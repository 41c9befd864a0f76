"""MethodEmbedding tells a method where training stands, once per step."""

from __future__ import annotations

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
