"""Tests of selfsup.utils.benchmarking.online_linear_classifier: a probe inside SSL training."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from selfsup.errors import ConfigError
from selfsup.utils.benchmarking import OnlineLinearClassifier

#: The ``blobs`` fixture of conftest.py.
Blobs = Callable[..., tuple[DataLoader[Any], DataLoader[Any]]]


class ToySSL(pl.LightningModule):
    """A stand-in SSL model: its own loss is zero, so anything the backbone learns would
    come from the online classifier's loss, which must not reach it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Linear(6, 8)
        self.online_classifier = OnlineLinearClassifier(feature_dim=8, num_classes=3, topk=(1, 2))

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        features = self.backbone(batch[0])
        ssl_loss = 0.0 * features.sum()
        cls_loss, cls_log = self.online_classifier.training_step((features, batch[1]), batch_idx)
        self.log_dict(cls_log, batch_size=len(batch[1]))
        loss: Tensor = ssl_loss + cls_loss
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        features = self.backbone(batch[0])
        _, cls_log = self.online_classifier.validation_step((features, batch[1]), batch_idx)
        self.log_dict(cls_log, batch_size=len(batch[1]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.5)


def test_online_classifier_learns_without_training_the_backbone(
    blobs: Blobs, make_trainer: Callable[..., pl.Trainer]
) -> None:
    train_loader, val_loader = blobs(noise=0.5)
    model = ToySSL()
    backbone_before = [p.detach().clone() for p in model.backbone.parameters()]
    trainer = make_trainer(max_epochs=3)
    untrained = trainer.validate(model, val_loader, verbose=False)[0]
    trainer.fit(model, train_loader, val_loader)
    metrics = trainer.callback_metrics
    assert float(metrics["val_online_cls_top1"]) >= 0.9 > untrained["val_online_cls_top1"]
    assert float(metrics["val_online_cls_loss"]) < untrained["val_online_cls_loss"]
    assert {"train_online_cls_loss", "train_online_cls_top1", "train_online_cls_top2"} <= set(
        metrics
    )
    for before, after in zip(backbone_before, model.backbone.parameters(), strict=True):
        assert torch.equal(before, after)


def test_online_classifier_step_returns_loss_and_log_dict_and_detaches() -> None:
    classifier = OnlineLinearClassifier(feature_dim=4, num_classes=3, topk=(1, 3))
    features = torch.randn(5, 4, 1, 1, requires_grad=True)  # (B, D, 1, 1) like a pooled CNN
    targets = torch.tensor([0, 1, 2, 0, 1])
    loss, log = classifier.training_step((features, targets), 0)
    assert set(log) == {"train_online_cls_loss", "train_online_cls_top1", "train_online_cls_top3"}
    assert float(log["train_online_cls_top3"]) == 1.0  # 3 of 3 classes
    expected = nn.functional.cross_entropy(
        classifier.classification_head(features.detach().flatten(1)), targets
    )
    torch.testing.assert_close(loss, expected)
    torch.autograd.backward(loss)
    assert features.grad is None
    assert classifier.classification_head.weight.grad is not None
    _, val_log = classifier.validation_step((features, targets), 0)
    assert set(val_log) == {"val_online_cls_loss", "val_online_cls_top1", "val_online_cls_top3"}


def test_online_classifier_defaults_and_errors() -> None:
    classifier = OnlineLinearClassifier()
    assert classifier.classification_head.in_features == 2048
    assert classifier.classification_head.out_features == 1000
    assert classifier.topk == (1, 5)
    with pytest.raises(ConfigError, match="feature_dim must be"):
        OnlineLinearClassifier(feature_dim=0)
    with pytest.raises(ConfigError, match=r"num_classes=2\], got 5"):
        OnlineLinearClassifier(feature_dim=4, num_classes=2)
