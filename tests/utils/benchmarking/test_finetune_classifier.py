"""Tests of selfsup.utils.benchmarking.finetune_classifier: head and model trained together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from selfsup.utils.benchmarking import FinetuneClassifier

#: The ``blobs`` fixture of conftest.py.
Blobs = Callable[..., tuple[DataLoader[Any], DataLoader[Any]]]


def test_finetune_classifier_learns_and_trains_the_model(
    blobs: Blobs, make_trainer: Callable[..., pl.Trainer]
) -> None:
    train_loader, val_loader = blobs(noise=0.5)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8))
    before = [p.detach().clone() for p in model.parameters()]
    # 51.2 × 10 / 256 = 2.0: the rate per 256 samples, scaled to batches of 10.
    classifier = FinetuneClassifier(
        model, batch_size_per_device=10, feature_dim=8, num_classes=3, topk=(1,), lr=51.2
    )
    assert classifier.freeze_model is False
    trainer = make_trainer(max_epochs=3)
    untrained = trainer.validate(classifier, val_loader, verbose=False)[0]
    trainer.fit(classifier, train_loader, val_loader)
    assert float(trainer.callback_metrics["val_top1"]) >= 0.9 > untrained["val_top1"]
    # The model was optimised with the head, at the scaled rate.
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    (optimizer,) = trainer.optimizers
    params = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert {id(p) for p in model.parameters()} <= params
    assert optimizer.param_groups[0]["initial_lr"] == pytest.approx(2.0)


def test_finetune_classifier_defaults_match_lightly() -> None:
    classifier = FinetuneClassifier(nn.Identity(), batch_size_per_device=256)
    assert classifier.lr == 0.05
    assert classifier.feature_dim == 2048
    assert classifier.num_classes == 1000
    assert classifier.topk == (1, 5)
    assert classifier.freeze_model is False
