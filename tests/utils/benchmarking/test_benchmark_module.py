"""Tests of selfsup.utils.benchmarking.benchmark_module: kNN accuracy monitored every epoch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from _ddp import run_workers
from selfsup.utils.benchmarking import BenchmarkModule


def _toy_loaders(flip: list[int] | None = None) -> tuple[DataLoader[Any], DataLoader[Any]]:
    """Three well separated clusters in 4-D; (x, label, index) batches like LightlyDataset.

    The validation labels at the indices in ``flip`` are made wrong.
    """
    gen = torch.Generator().manual_seed(0)
    centers = torch.eye(4)[:3] * 5

    def split(n_per_class: int) -> TensorDataset:
        y = torch.arange(3).repeat_interleave(n_per_class)
        x = centers[y] + 0.3 * torch.randn(len(y), 4, generator=gen)
        return TensorDataset(x, y, torch.arange(len(y)))

    train = split(10)
    val = split(4)
    if flip:
        x, y, idx = val.tensors
        y = y.clone()
        y[flip] = (y[flip] + 1) % 3
        val = TensorDataset(x, y, idx)
    return DataLoader(train, batch_size=7), DataLoader(val, batch_size=5)


class ToyModel(BenchmarkModule):
    def __init__(self, dataloader: DataLoader[Any]) -> None:
        super().__init__(dataloader, num_classes=3, knn_k=5, knn_t=0.1)
        self.backbone = nn.Linear(4, 4, bias=False)
        with torch.no_grad():
            self.backbone.weight.copy_(torch.eye(4))

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        # A loss that leaves the backbone as is (lr 0): the test is about the kNN monitor.
        out: Tensor = self.backbone(batch[0]).sum() * 0.0
        return out

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _fit(flip: list[int] | None) -> tuple[ToyModel, pl.Trainer]:
    train_loader, val_loader = _toy_loaders(flip)
    model = ToyModel(train_loader)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, train_loader, val_loader)
    return model, trainer


def test_benchmark_module_reaches_full_accuracy_on_separable_data() -> None:
    model, trainer = _fit(flip=None)
    assert model.max_accuracy == 1.0
    assert float(trainer.callback_metrics["kNN_accuracy"]) == pytest.approx(100.0)
    assert model._train_features is not None
    assert model._train_features.shape == (4, 30)  # (D, N): the whole train split, once


def test_benchmark_module_counts_wrong_predictions() -> None:
    model, trainer = _fit(flip=list(range(0, 12, 2)))  # every other label wrong
    assert float(trainer.callback_metrics["kNN_accuracy"]) == pytest.approx(50.0)
    assert model.max_accuracy == pytest.approx(0.5)


def test_sanity_check_does_not_set_max_accuracy() -> None:
    # The sanity check sees the first 2 batches (10 samples, all right); the epoch sees all
    # 12, of which the last 2 are wrong.
    model, trainer = _fit(flip=[10, 11])
    assert float(trainer.callback_metrics["kNN_accuracy"]) == pytest.approx(100 * 10 / 12)
    assert model.max_accuracy == pytest.approx(10 / 12)


_DDP_WORKER = """
import json, sys
import torch
from _ddp import gloo_group
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from selfsup.utils.benchmarking import BenchmarkModule

with gloo_group(sys.argv) as (rank, _, out_dir):
    x = torch.arange(30 * 4, dtype=torch.float32).reshape(30, 4) + 1.0
    y = torch.arange(30) % 3
    loader = DataLoader(TensorDataset(x, y, torch.arange(30)), batch_size=7)  # 5 batches
    model = BenchmarkModule(loader, num_classes=3)
    model.backbone = nn.Identity()
    model.on_validation_epoch_start()
    bank = model._train_features.t()
    with open(out_dir / f"out{rank}.json", "w") as f:
        json.dump({"bank": bank.tolist(), "targets": model._train_targets.tolist()}, f)
"""


@pytest.mark.slow
def test_benchmark_module_bank_is_gathered_once_under_ddp(tmp_path: Path) -> None:
    """Two gloo processes: rank 0 embeds batches 0, 2, 4 (7 + 7 + 2 rows), rank 1 batches 1
    and 3 (14 rows); the all-gather with unequal sizes must give both the 30 rows once."""
    script = tmp_path / "worker.py"
    script.write_text(_DDP_WORKER)
    run_workers(script, tmp_path, world_size=2, timeout=120.0)
    outs = [tmp_path / f"out{r}.json" for r in range(2)]
    x = torch.arange(30 * 4, dtype=torch.float32).reshape(30, 4) + 1.0
    expected = F.normalize(x, dim=1)
    for out in outs:
        result = json.loads(out.read_text())
        bank = torch.tensor(result["bank"])
        assert bank.shape == (30, 4)
        # Rank order: rank 0's rows (batches 0, 2, 4) first, then rank 1's (batches 1, 3).
        order = [*range(0, 7), *range(14, 21), *range(28, 30), *range(7, 14), *range(21, 28)]
        torch.testing.assert_close(bank, expected[order])
        assert result["targets"] == [i % 3 for i in order]
