"""Tests of selfsup.utils.benchmarking.knn_classifier: kNN evaluation as a LightningModule."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from _ddp import gloo_group, run_workers
from selfsup.errors import ConfigError
from selfsup.utils.benchmarking import KNNClassifier

#: The ``blobs`` fixture of conftest.py.
Blobs = Callable[..., tuple[DataLoader[Any], DataLoader[Any]]]


def _model(seed: int = 0) -> nn.Module:
    """A fixed random projection R^6 -> R^8 with batch norm, which moves in train mode."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8))


def _all(loader: DataLoader[Any]) -> tuple[Tensor, Tensor]:
    xs, ys = zip(*((b[0], b[1]) for b in loader), strict=True)
    return torch.cat(xs), torch.cat(ys)


def reference_topk_accuracy(
    train: list[list[float]],
    train_y: list[int],
    val: list[list[float]],
    val_y: list[int],
    k: int,
    t: float,
    classes: int,
    top: int,
) -> float:
    """InstDisc's weighted kNN written out: cosine similarities, k most similar, vote
    exp(s / t) per class; a sample counts when its class is among the ``top`` best."""

    def cos(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))

    correct = 0
    for query, label in zip(val, val_y, strict=True):
        sims = sorted(((cos(query, v), i) for i, v in enumerate(train)), reverse=True)[:k]
        votes = [0.0] * classes
        for s, i in sims:
            votes[train_y[i]] += math.exp(s / t)
        ranking = sorted(range(classes), key=lambda c: -votes[c])
        correct += label in ranking[:top]
    return correct / len(val)


def test_knn_classifier_matches_a_reference_vote_and_keeps_the_model_frozen(
    blobs: Blobs, make_trainer: Callable[..., pl.Trainer]
) -> None:
    # Overlapping blobs: the accuracy is neither 0 nor 1, so the vote itself is checked.
    train_loader, val_loader = blobs(noise=2.0, seed=1)
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    classifier = KNNClassifier(model, num_classes=3, knn_k=7, knn_t=0.1, topk=(1, 2))
    trainer = make_trainer()
    trainer.fit(classifier, train_loader, val_loader)

    model.eval()
    with torch.no_grad():
        train_x, train_y = _all(train_loader)
        val_x, val_y = _all(val_loader)
        train_f, val_f = model(train_x).tolist(), model(val_x).tolist()
    for top in (1, 2):
        expected = reference_topk_accuracy(
            train_f, train_y.tolist(), val_f, val_y.tolist(), 7, 0.1, 3, top
        )
        got = float(trainer.callback_metrics[f"val_top{top}"])
        assert got == pytest.approx(expected, abs=1e-6)
    assert 0.0 < float(trainer.callback_metrics["val_top1"]) < 1.0
    # Nothing trained and batch-norm statistics untouched: the model stayed in eval mode.
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not model.training
    bank = classifier._train_features_tensor
    assert bank is not None
    assert bank.shape == (8, 60)


def test_knn_classifier_is_above_chance_on_separable_data(
    blobs: Blobs, make_trainer: Callable[..., pl.Trainer]
) -> None:
    train_loader, val_loader = blobs(noise=0.5)
    classifier = KNNClassifier(_model(), num_classes=3, topk=(1,))
    trainer = make_trainer(num_sanity_val_steps=2)  # the sanity check must log nothing
    trainer.fit(classifier, train_loader, val_loader)
    assert float(trainer.callback_metrics["val_top1"]) >= 0.9  # chance: 1/3


def test_knn_classifier_float16_bank(blobs: Blobs, make_trainer: Callable[..., pl.Trainer]) -> None:
    train_loader, val_loader = blobs(noise=0.5)
    classifier = KNNClassifier(
        nn.Identity(), num_classes=3, topk=(1,), feature_dtype=torch.float16, normalize=False
    )
    trainer = make_trainer()
    trainer.fit(classifier, train_loader, val_loader)
    bank = classifier._train_features_tensor
    assert bank is not None
    assert bank.dtype == torch.float16
    assert float(trainer.callback_metrics["val_top1"]) >= 0.9


def test_knn_classifier_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="knn_k"):
        KNNClassifier(nn.Identity(), num_classes=3, knn_k=0, topk=(1,))
    with pytest.raises(ConfigError, match="knn_t"):
        KNNClassifier(nn.Identity(), num_classes=3, knn_t=0.0, topk=(1,))
    with pytest.raises(ConfigError, match="feature_dtype"):
        KNNClassifier(nn.Identity(), num_classes=3, topk=(1,), feature_dtype=torch.int64)
    with pytest.raises(ConfigError, match=r"num_classes=3\], got 5"):
        KNNClassifier(nn.Identity(), num_classes=3)  # the default topk (1, 5)


def test_knn_classifier_rejects_targets_outside_the_classes() -> None:
    classifier = KNNClassifier(nn.Identity(), num_classes=2, topk=(1,))
    batch = (torch.randn(3, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"train batch 4 has targets in \[0, 2\]"):
        classifier.training_step(batch, 4)


def _ddp_data() -> tuple[Tensor, Tensor]:
    """10 train rows: rank 0 holds rows 0-6, rank 1 rows 7-9 (unequal shards)."""
    x = torch.arange(10 * 4, dtype=torch.float32).reshape(10, 4).sin() + 0.1
    return x, torch.arange(10) % 3


def _ddp_worker(argv: list[str]) -> None:
    with gloo_group(argv) as (rank, _, out_dir):
        x, y = _ddp_data()
        start, stop = (0, 7) if rank == 0 else (7, 10)
        classifier = KNNClassifier(nn.Identity(), num_classes=3, knn_k=3, topk=(1,))
        for batch_idx, first in enumerate(range(start, stop, 4)):
            last = min(first + 4, stop)
            classifier.training_step((x[first:last], y[first:last]), batch_idx)
        classifier.on_validation_epoch_start()
        result = {
            "bank": classifier._train_features_tensor,
            "targets": classifier._train_targets_tensor,
        }
        torch.save(result, out_dir / f"rank{rank}.pt")


@pytest.mark.slow
def test_knn_classifier_gathers_the_whole_bank_under_ddp(tmp_path: Path) -> None:
    """Two gloo processes with 7 and 3 train rows: each must vote over all 10, once, in
    rank order."""
    run_workers(Path(__file__), tmp_path, world_size=2, timeout=120.0)
    x, y = _ddp_data()
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        torch.testing.assert_close(result["bank"], F.normalize(x, dim=1).t())
        assert result["targets"].tolist() == y.tolist()


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--worker":
    _ddp_worker(sys.argv)
