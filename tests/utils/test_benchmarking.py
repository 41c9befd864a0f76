"""Tests of selfsup.utils.benchmarking: weighted kNN and the kNN-monitoring LightningModule."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from selfsup.utils.benchmarking import BenchmarkModule, knn_accuracy, knn_predict, knn_scores


def reference_scores(
    queries: np.ndarray, bank: np.ndarray, labels: np.ndarray, c: int, k: int, t: float
) -> np.ndarray:
    """InstDisc's weighted kNN, one query at a time: w_c = sum over top-k of exp(s_i / t)."""
    out = np.zeros((len(queries), c))
    for q, query in enumerate(queries):
        sims = [
            float(query @ bank[i]) / (np.linalg.norm(query) * np.linalg.norm(bank[i]))
            for i in range(len(bank))
        ]
        order = sorted(range(len(bank)), key=lambda i: -sims[i])[:k]
        for i in order:
            out[q, labels[i]] += math.exp(sims[i] / t)
    return out


def _random_problem(
    seed: int, n: int = 40, m: int = 9, d: int = 5, c: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, d)), rng.normal(size=(n, d)), rng.integers(0, c, size=n)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 50), t=st.sampled_from([0.05, 0.1, 1.0]))
def test_knn_predict_matches_brute_force(seed: int, k: int, t: float) -> None:
    queries, bank, labels = _random_problem(seed)
    expected = reference_scores(queries, bank, labels, 4, k, t)
    q = F.normalize(torch.from_numpy(queries), dim=1)
    b = F.normalize(torch.from_numpy(bank), dim=1).t()
    y = torch.from_numpy(labels)
    scores = knn_scores(q, b, y, 4, k, t).numpy()
    # knn_scores divides each row by exp(s_max / t); compare the per-row distributions.
    np.testing.assert_allclose(
        scores / scores.sum(1, keepdims=True), expected / expected.sum(1, keepdims=True), rtol=1e-9
    )
    predicted = knn_predict(q, b, y, 4, k, t).numpy()
    assert predicted.shape == (9, 4)
    assert sorted(predicted[0].tolist()) == [0, 1, 2, 3]
    np.testing.assert_array_equal(predicted[:, 0], expected.argmax(1))
    ordered = np.take_along_axis(expected, predicted, axis=1)
    assert np.all(np.diff(ordered, axis=1) <= 1e-12 * expected.max())


def test_knn_predict_small_temperature_does_not_overflow() -> None:
    queries, bank, labels = _random_problem(3)
    q = F.normalize(torch.from_numpy(queries).float(), dim=1)
    b = F.normalize(torch.from_numpy(bank).float(), dim=1).t()
    scores = knn_scores(q, b, torch.from_numpy(labels), 4, 10, 0.005)
    assert torch.isfinite(scores).all()
    # With t -> 0 the nearest neighbour dominates: prediction = 1-NN label.
    nearest = (q @ b).argmax(dim=1)
    assert torch.equal(scores.argmax(dim=1), torch.from_numpy(labels)[nearest])


def test_knn_k_larger_than_bank_uses_whole_bank() -> None:
    queries, bank, labels = _random_problem(4, n=6)
    q = F.normalize(torch.from_numpy(queries), dim=1)
    b = F.normalize(torch.from_numpy(bank), dim=1).t()
    got = knn_scores(q, b, torch.from_numpy(labels), 4, 200, 0.1).numpy()
    expected = reference_scores(queries, bank, labels, 4, 6, 0.1)
    np.testing.assert_allclose(
        got / got.sum(1, keepdims=True), expected / expected.sum(1, keepdims=True), rtol=1e-9
    )


def test_knn_predict_rejects_bad_shapes() -> None:
    q = torch.randn(3, 5)
    with pytest.raises(ValueError, match=r"\(D, N\)"):
        knn_predict(q, torch.randn(7, 5), torch.zeros(7, dtype=torch.long), 2)
    with pytest.raises(ValueError, match=r"feature_labels"):
        knn_predict(q, torch.randn(5, 7), torch.zeros(6, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="knn_k"):
        knn_predict(q, torch.randn(5, 7), torch.zeros(7, dtype=torch.long), 2, knn_k=0)
    with pytest.raises(ValueError, match="knn_t"):
        knn_predict(q, torch.randn(5, 7), torch.zeros(7, dtype=torch.long), 2, knn_t=0.0)


def test_knn_predict_does_not_mutate_inputs_and_keeps_device() -> None:
    q = F.normalize(torch.randn(4, 3), dim=1)
    b = F.normalize(torch.randn(10, 3), dim=1).t().contiguous()
    y = torch.arange(10) % 3
    copies = (q.clone(), b.clone(), y.clone())
    out = knn_predict(q, b, y, 3, 5)
    assert out.device == q.device
    assert out.dtype == torch.long
    for before, after in zip(copies, (q, b, y), strict=True):
        assert torch.equal(before, after)


# --------------------------------------------------------------------------------------
# knn_accuracy
# --------------------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch_size=st.integers(1, 12), k=st.integers(1, 30))
def test_knn_accuracy_matches_brute_force_for_any_batch_size(
    seed: int, batch_size: int, k: int
) -> None:
    queries, bank, labels = _random_problem(seed, n=30, m=11, c=3)
    test_labels = np.random.default_rng(seed + 1).integers(0, 3, size=11)
    expected_pred = reference_scores(queries, bank, labels, 3, k, 0.1).argmax(1)
    expected = float(np.mean(expected_pred == test_labels))
    got = knn_accuracy(bank, labels, queries, test_labels, k=k, t=0.1, batch_size=batch_size)
    assert got == pytest.approx(expected)


def test_knn_accuracy_is_scale_invariant_and_accepts_tensors() -> None:
    queries, bank, labels = _random_problem(7)
    test_labels = np.arange(9) % 4
    a = knn_accuracy(bank, labels, queries, test_labels, k=5)
    b = knn_accuracy(
        torch.from_numpy(bank * 17.0).float(),
        torch.from_numpy(labels),
        torch.from_numpy(queries * 0.01).float(),
        torch.from_numpy(test_labels),
        k=5,
    )
    assert a == b


def test_knn_accuracy_separable_and_adversarial() -> None:
    centers = np.eye(3) * 10
    rng = np.random.default_rng(0)
    train_y = np.repeat(np.arange(3), 20)
    train_x = centers[train_y] + rng.normal(size=(60, 3))
    test_y = np.repeat(np.arange(3), 5)
    test_x = centers[test_y] + rng.normal(size=(15, 3))
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=10) == 1.0
    assert knn_accuracy(train_x, train_y, test_x, (test_y + 1) % 3, k=10) == 0.0


def test_knn_accuracy_validates_inputs() -> None:
    x = np.zeros((4, 2))
    y = np.zeros(4, dtype=int)
    with pytest.raises(ValueError, match="one D"):
        knn_accuracy(x, y, np.zeros((2, 3)), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="one entry per row"):
        knn_accuracy(x, y[:3], x, y)
    with pytest.raises(ValueError, match="empty"):
        knn_accuracy(x, y, np.zeros((0, 2)), np.zeros(0, dtype=int))
    with pytest.raises(ValueError, match=">= 0"):
        knn_accuracy(x, y - 1, x, y)


# --------------------------------------------------------------------------------------
# BenchmarkModule
# --------------------------------------------------------------------------------------


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
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from selfsup.utils.benchmarking import BenchmarkModule

rank, world, store, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
torch.set_num_threads(1)
dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=world)
x = torch.arange(30 * 4, dtype=torch.float32).reshape(30, 4) + 1.0
y = torch.arange(30) % 3
loader = DataLoader(TensorDataset(x, y, torch.arange(30)), batch_size=7)  # 5 batches
model = BenchmarkModule(loader, num_classes=3)
model.backbone = nn.Identity()
model.on_validation_epoch_start()
bank = model._train_features.t()
with open(out, "w") as f:
    json.dump({"bank": bank.tolist(), "targets": model._train_targets.tolist()}, f)
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_benchmark_module_bank_is_gathered_once_under_ddp(tmp_path: Path) -> None:
    """Two gloo processes: rank 0 embeds batches 0, 2, 4 (7 + 7 + 2 rows), rank 1 batches 1
    and 3 (14 rows); the all-gather with unequal sizes must give both the 30 rows once."""
    script = tmp_path / "worker.py"
    script.write_text(_DDP_WORKER)
    store = tmp_path / "store"
    outs = [tmp_path / f"out{r}.json" for r in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(r), "2", str(store), str(outs[r])],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for r in range(2)
    ]
    for proc in procs:
        output, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, output.decode(errors="replace")
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
