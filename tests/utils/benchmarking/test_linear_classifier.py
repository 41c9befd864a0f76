"""Tests of selfsup.utils.benchmarking.linear_classifier: linear evaluation of a frozen model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from selfsup.errors import ConfigError
from selfsup.utils.benchmarking import LinearClassifier

#: The ``blobs`` fixture of conftest.py.
Blobs = Callable[..., tuple[DataLoader[Any], DataLoader[Any]]]


def _model(seed: int = 0) -> nn.Module:
    """A random projection R^6 -> R^8 with batch norm, whose statistics move in train mode."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8))


def test_linear_classifier_learns_and_leaves_the_model_untouched(
    blobs: Blobs, make_trainer: Callable[..., pl.Trainer]
) -> None:
    train_loader, val_loader = blobs(noise=0.5)
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # lr per 256 samples: 25.6 × 10 / 256 = 1.0 for batches of 10.
    classifier = LinearClassifier(
        model,
        batch_size_per_device=10,
        feature_dim=8,
        num_classes=3,
        topk=(1, 2),
        lr=25.6,
        freeze_model=True,
    )
    trainer = make_trainer(max_epochs=3)
    untrained = trainer.validate(classifier, val_loader, verbose=False)[0]
    trainer.fit(classifier, train_loader, val_loader)
    metrics = trainer.callback_metrics
    assert float(metrics["val_top1"]) >= 0.9 > untrained["val_top1"]  # chance: 1/3
    assert float(metrics["val_top2"]) >= float(metrics["val_top1"])
    assert float(metrics["val_loss"]) < untrained["val_loss"]
    assert {"train_loss", "train_top1", "train_top2"} <= set(metrics)
    # Weights and batch-norm statistics unchanged: no gradients, eval mode throughout.
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not model.training
    # Only the head is optimised, at the linearly scaled rate.
    (optimizer,) = trainer.optimizers
    params = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert params == {id(p) for p in classifier.classification_head.parameters()}
    assert optimizer.param_groups[0]["initial_lr"] == pytest.approx(1.0)
    assert optimizer.param_groups[0]["momentum"] == 0.9
    # The cosine decays per step to end_value (0.001) of the rate at the last of 18 steps.
    assert optimizer.param_groups[0]["lr"] < 0.01


def test_linear_classifier_defaults_match_lightly() -> None:
    classifier = LinearClassifier(nn.Identity(), batch_size_per_device=32)
    assert classifier.classification_head.in_features == 2048
    assert classifier.classification_head.out_features == 1000
    assert classifier.topk == (1, 5)
    assert classifier.freeze_model is False  # lightly's default: fine-tune
    assert classifier.lr == 0.1
    assert classifier.hparams["batch_size_per_device"] == 32


def test_linear_classifier_names_a_wrong_feature_dim() -> None:
    classifier = LinearClassifier(
        nn.Identity(), batch_size_per_device=4, feature_dim=5, num_classes=3, topk=(1,)
    )
    with pytest.raises(ValueError, match=r"returns 6 features .* pass feature_dim=6"):
        classifier(torch.randn(4, 6))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size_per_device": 0}, "batch_size_per_device must be"),
        ({"feature_dim": 0}, "feature_dim must be"),
        ({"lr": 0.0}, "lr must be"),
        ({"lr": float("nan")}, "lr must be"),
        ({"topk": (1, 4)}, r"num_classes=3\], got 4"),
    ],
)
def test_linear_classifier_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    options: dict[str, Any] = {"batch_size_per_device": 4, "num_classes": 3, "topk": (1,)}
    options.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        LinearClassifier(nn.Identity(), **options)
