"""SelfSupervisedEmbedding trains two-view models, checkpoints them and embeds datasets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from selfsup.data import LightlyDataset, SimCLRCollateFunction
from selfsup.data.uint8 import Uint8Dataset
from selfsup.embedding import CHECKPOINT_METADATA_KEY, SelfSupervisedEmbedding
from selfsup.embedding import embedding as embedding_module
from selfsup.embedding._base import split_views
from selfsup.embedding.embedding import autocast_dtype, model_input
from selfsup.errors import ConfigError, DataError
from selfsup.loss import NTXentLoss
from selfsup.models import ResNetGenerator, SimCLR


def _model() -> SimCLR:
    resnet = ResNetGenerator("resnet-9", width=0.125)
    backbone = nn.Sequential(*list(resnet.children())[:-1])
    return SimCLR(backbone, num_ftrs=resnet.num_features, out_dim=16)


@pytest.mark.slow
def test_train_checkpoint_and_embed(make_image_folder: Callable[..., Path], tmp_path: Path) -> None:
    torch.manual_seed(0)
    root = make_image_folder(n_classes=2, n_per_class=8, size=(32, 32))
    dataset = LightlyDataset(input_dir=str(root))
    collate = SimCLRCollateFunction(input_size=32, gaussian_blur=0.0)
    loader = DataLoader(dataset, batch_size=8, shuffle=True, collate_fn=collate, drop_last=True)
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    embedding = SelfSupervisedEmbedding(
        model, NTXentLoss(), torch.optim.SGD(model.parameters(), lr=0.1), loader
    )
    embedding.checkpoint_metadata = {"note": "kept"}
    ckpt = embedding.train_embedding(
        gpus=0, max_epochs=2, checkpoint_dir=tmp_path / "ckpt", enable_progress_bar=False
    )
    assert Path(ckpt).is_file()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    stored = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert stored[CHECKPOINT_METADATA_KEY] == {"note": "kept"}
    assert any(k.startswith("model.backbone.") for k in stored["state_dict"])

    eval_loader = DataLoader(
        LightlyDataset(input_dir=str(root)),
        batch_size=5,
    )
    emb, labels, names = embedding.embed(eval_loader, progress=False)
    assert emb.shape == (16, 64)  # resnet-9 at width 0.125 ends with 512 * 0.125 channels
    assert labels.tolist() == [0] * 8 + [1] * 8
    assert names[0] == "class_0/img_0_0.png"
    assert model.training, "embed must restore the training mode"


def test_embed_pil_dataset_of_mixed_sizes_is_a_clear_error(tmp_path: Path) -> None:
    Image.new("RGB", (20, 20)).save(tmp_path / "a.png")
    Image.new("RGB", (30, 20)).save(tmp_path / "b.png")
    loader = DataLoader(LightlyDataset(input_dir=str(tmp_path)), batch_size=2)
    model = _model()
    embedding = SelfSupervisedEmbedding(
        model, NTXentLoss(), torch.optim.SGD(model.parameters(), lr=0.1), loader
    )
    with pytest.raises(DataError, match="different sizes"):
        embedding.embed(loader, progress=False)


def test_split_views_accepts_both_batch_forms_and_rejects_others() -> None:
    x0, x1 = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    assert split_views(((x0, x1), torch.zeros(2), ["a", "b"]))[1] is x1
    assert split_views(([x0, x1], torch.zeros(2), ["a", "b"]))[0] is x0
    with pytest.raises(DataError, match="holds 3 view"):
        split_views(([x0, x1, x1], torch.zeros(2), ["a", "b"]))
    with pytest.raises(DataError, match="single tensor"):
        split_views((x0, torch.zeros(2), ["a", "b"]))


def test_embed_returns_dataset_order_whatever_the_shuffle(
    make_image_folder: Callable[..., Path],
) -> None:
    # lightly sorts the rows by the dataset's file names: a shuffled loader must give the
    # same rows in the same order on every call.
    import torchvision.transforms as T

    root = make_image_folder(n_classes=2, n_per_class=5, size=(16, 16))
    dataset = LightlyDataset(input_dir=str(root), transform=T.ToTensor())
    model = _model().eval()
    plain = DataLoader(dataset, batch_size=3)
    embedding = SelfSupervisedEmbedding(
        model, NTXentLoss(), torch.optim.SGD(model.parameters(), lr=0.1), plain
    )
    emb0, labels0, names0 = embedding.embed(plain, progress=False)
    assert names0 == dataset.get_filenames()
    for seed in (1, 2):
        shuffled = DataLoader(
            dataset, batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(seed)
        )
        emb, labels, names = embedding.embed(shuffled, progress=False)
        assert names == names0
        assert labels.tolist() == labels0.tolist()
        torch.testing.assert_close(torch.from_numpy(emb), torch.from_numpy(emb0))


def test_embed_keeps_a_subset_samplers_rows_in_dataset_order(
    make_image_folder: Callable[..., Path],
) -> None:
    import torchvision.transforms as T
    from torch.utils.data import SubsetRandomSampler

    root = make_image_folder(n_classes=1, n_per_class=6, size=(16, 16))
    dataset = LightlyDataset(input_dir=str(root), transform=T.ToTensor())
    model = _model().eval()
    loader = DataLoader(dataset, batch_size=2, sampler=SubsetRandomSampler([5, 1, 3]))
    embedding = SelfSupervisedEmbedding(
        model, NTXentLoss(), torch.optim.SGD(model.parameters(), lr=0.1), loader
    )
    _, _, names = embedding.embed(loader, progress=False)
    everything = dataset.get_filenames()
    assert names == [everything[1], everything[3], everything[5]]


def _embed_path(
    root: Path, decode: str, side: int, **loader_keys: Any
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Embed ``root`` with a fixed tiny model through core.build_embed_loader's ``decode`` path."""
    from selfsup.config.lightly_config import LoaderConfig
    from selfsup.core import build_embed_loader

    torch.manual_seed(0)
    model = _model().eval()
    cfg = LoaderConfig(batch_size=4, num_workers=0, **loader_keys)
    loader = build_embed_loader(str(root), cfg, side, decode=decode)  # type: ignore[arg-type]
    embedding = SelfSupervisedEmbedding(
        model, NTXentLoss(), torch.optim.SGD(model.parameters(), lr=0.1), loader
    )
    return embedding.embed(loader, progress=False, precision="32")


def test_uint8_path_embeds_close_to_the_pil_path_in_dataset_order(
    make_image_folder: Callable[..., Path],
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=3, size=(40, 30), ext="jpg")
    Image.new("RGB", (50, 20), (200, 30, 90)).save(root / "class_1" / "odd.png")

    fast, fast_labels, fast_names = _embed_path(root, "uint8", 24)
    slow, slow_labels, slow_names = _embed_path(root, "pil", 24)

    assert fast_names == slow_names == LightlyDataset(str(root)).get_filenames()
    assert fast_labels.tolist() == slow_labels.tolist()
    assert fast.dtype == np.float32
    # Both resize with antialiased bilinear, in different code (PIL vs torchvision, which
    # differ by at most one grey level); what is left is rounding: measured 0.2 % of the
    # spread of the embeddings and 0.3 % of a row's norm; the test allows 1 %.
    spread = float(np.abs(slow - slow.mean(axis=0)).max())
    assert float(np.abs(fast - slow).max()) <= 0.01 * spread
    row_error = np.linalg.norm(fast - slow, axis=1) / np.linalg.norm(slow, axis=1)
    assert float(row_error.max()) <= 0.01


def test_uint8_batches_are_normalised_on_the_device_like_float_ones() -> None:
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    mean, std = (0.2, 0.4, 0.6), (0.5, 0.25, 0.1)

    got = model_input(images, torch.device("cpu"), (mean, std))

    expected = (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(
        std
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(got, expected)
    floats = torch.rand(2, 3, 8, 8)
    assert torch.equal(model_input(floats, torch.device("cpu"), (mean, std)), floats)


@pytest.mark.parametrize("native_bf16", [True, False])
def test_precision_key(monkeypatch: pytest.MonkeyPatch, native_bf16: bool) -> None:
    monkeypatch.setattr(embedding_module, "cpu_has_native_bf16", lambda: native_bf16)
    cpu = torch.device("cpu")
    # auto: bf16 only where the CPU has bf16 instructions (elsewhere it is emulated, slower).
    assert autocast_dtype("auto", cpu) is (torch.bfloat16 if native_bf16 else None)
    assert autocast_dtype(32, cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype(16, cpu) is torch.float16
    with pytest.raises(ConfigError, match=r"embedding\.precision='64'.*auto, 32, bf16, 16"):
        autocast_dtype("64", cpu)


def test_bf16_embeddings_are_float32_and_close(make_image_folder: Callable[..., Path]) -> None:
    root = make_image_folder(n_classes=1, n_per_class=3, size=(16, 16))
    torch.manual_seed(0)
    model = _model().eval()
    loader = DataLoader(Uint8Dataset(LightlyDataset(str(root)), 16), batch_size=2)
    embedding = SelfSupervisedEmbedding(
        model, NTXentLoss(), torch.optim.SGD(model.parameters(), lr=0.1), loader
    )

    full, _, _ = embedding.embed(loader, progress=False, precision="32")
    half, _, _ = embedding.embed(loader, progress=False, precision="bf16")

    assert half.dtype == np.float32
    spread = float(np.abs(full).max())
    assert float(np.abs(half - full).max()) <= 0.1 * spread


def test_embed_through_the_cache_gives_the_same_rows_and_publishes_it(
    make_image_folder: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=2, size=(20, 20))
    cache_dir = tmp_path / "cache"

    plain = _embed_path(root, "uint8", 16)
    first = _embed_path(root, "uint8", 16, cache_dir=str(cache_dir))
    second = _embed_path(root, "uint8", 16, cache_dir=str(cache_dir))

    for run in (first, second):
        np.testing.assert_array_equal(run[0], plain[0])
        assert run[2] == plain[2]
    assert [p.name.endswith("-s16") for p in cache_dir.iterdir()] == [True]


def test_embed_runs_channels_last_and_restores_the_layout(
    make_image_folder: Callable[..., Path],
) -> None:
    root = make_image_folder(n_classes=1, n_per_class=2, size=(16, 16))
    torch.manual_seed(0)
    model = _model().eval()
    loader = DataLoader(Uint8Dataset(LightlyDataset(str(root)), 16), batch_size=2)
    embedding = SelfSupervisedEmbedding(
        model, NTXentLoss(), torch.optim.SGD(model.parameters(), lr=0.1), loader
    )
    with torch.no_grad():
        images = torch.stack([Uint8Dataset(LightlyDataset(str(root)), 16)[i][0] for i in (0, 1)])
        direct = model.backbone(model_input(images, torch.device("cpu"))).flatten(1)

    emb, _, _ = embedding.embed(loader, progress=False, precision="32")

    np.testing.assert_allclose(emb, direct.numpy(), rtol=1e-4, atol=1e-5)
    convs = [p for p in model.parameters() if p.dim() == 4]
    assert all(p.is_contiguous() for p in convs)
