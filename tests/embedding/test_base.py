"""BaseEmbedding (lightly's SelfSupervisedEmbedding loop): checkpoints hold BatchNorm statistics
of the weights they are saved with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

import selfsup.embedding._base as base
from selfsup.embedding import SelfSupervisedEmbedding


class _TwoView(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU())

    def forward(self, x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
        return self.backbone(x0), self.backbone(x1)


def _mse(y0: Tensor, y1: Tensor) -> Tensor:
    return (y0 - y1).pow(2).mean()


class _Loss(nn.Module):
    def forward(self, y0: Tensor, y1: Tensor) -> Tensor:
        return _mse(y0, y1)


class _Counted(Dataset[Any]):
    """Two-view samples that count how often they are read."""

    def __init__(self, x: Tensor) -> None:
        self.x = x
        self.reads = 0

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[list[Tensor], int, str]:
        self.reads += 1
        return [self.x[i], self.x[i] + 0.1], 0, str(i)


@pytest.mark.parametrize("precision", ["32", "bf16-mixed"])
@pytest.mark.parametrize("kept", [True, False], ids=["kept views", "loader read again"])
def test_the_saved_statistics_are_those_of_the_final_weights(
    kept: bool, precision: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Within the byte budget the epoch's own first views recompute the statistics; beyond
    # it (a budget of 0 bytes) the loader is read again. Either way they are exact, in the
    # training's arithmetic: under bf16-mixed, of the bf16 activations training normalised.
    if not kept:
        monkeypatch.setattr(base, "PRECISE_BN_CACHE_BYTES", 0)
    torch.manual_seed(0)
    data = _Counted(torch.randn(12, 4) * 5 + 3)
    loader: DataLoader[tuple[list[Tensor], int, str]] = DataLoader(data, batch_size=4)
    model = _TwoView()
    embedding = SelfSupervisedEmbedding(
        model, _Loss(), torch.optim.SGD(model.parameters(), lr=1.0), loader
    )
    checkpoint = embedding.train_embedding(
        gpus=0,
        max_epochs=1,
        checkpoint_dir=tmp_path,
        enable_progress_bar=False,
        precision=precision,
    )
    assert data.reads == (12 if kept else 24)
    assert len(embedding._recent_views) == 0  # not held after training
    bn = model.backbone[1]
    assert isinstance(bn, nn.BatchNorm1d)
    bf16 = precision == "bf16-mixed"
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        hidden = [model.backbone[0](batch[0][0]).float() for batch in loader]
    mean = torch.stack([h.mean(0) for h in hidden]).mean(0)
    var = torch.stack([h.var(0) for h in hidden]).mean(0)
    saved = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert torch.allclose(saved["model.backbone.1.running_mean"], mean, atol=1e-5)
    assert torch.allclose(saved["model.backbone.1.running_var"], var, rtol=1e-4)


def test_the_latest_first_views_are_kept_within_the_batch_and_byte_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = _TwoView()
    loader: DataLoader[Any] = DataLoader([])
    embedding = SelfSupervisedEmbedding(model, _Loss(), torch.optim.SGD(model.parameters()), loader)
    views = [torch.full((4, 4), float(i)) for i in range(base.PRECISE_BN_BATCHES + 3)]
    for i, v in enumerate(views):
        embedding.on_train_batch_start(([v, v + 1], [0] * 4, ["f"] * 4), i)
    embedding.on_train_batch_start(([torch.zeros(1, 4), torch.zeros(1, 4)], [0], ["f"]), 99)
    # the last 16 batches of B >= 2 (a batch of 1 has no variance), oldest first
    kept = list(embedding._first_views())
    assert len(kept) == 16
    assert all(a is b for a, b in zip(kept, views[3:], strict=True))
    # a batch whose 16 copies would pass the budget empties the store for the run
    monkeypatch.setattr(base, "PRECISE_BN_CACHE_BYTES", 16 * 4 * 4 * 4 * 2 - 1)
    big = torch.zeros(8, 4)
    embedding.on_train_batch_start(([big, big], [0] * 8, ["f"] * 8), 100)
    embedding.on_train_batch_start(([views[0], views[0]], [0] * 4, ["f"] * 4), 101)
    assert len(embedding._recent_views) == 0
    # a new fit starts afresh (within the budget again)
    monkeypatch.setattr(base, "PRECISE_BN_CACHE_BYTES", 2**20)
    embedding.on_fit_start()
    embedding.on_train_batch_start(([big, big], [0] * 8, ["f"] * 8), 0)
    assert len(embedding._recent_views) == 1
    assert embedding._recent_views[0] is big
