"""``OnlineLinearClassifier``: a linear probe trained alongside self-supervised training.

A cheap running estimate of linear-evaluation accuracy: the head sees the detached features
of each SSL batch, so its loss trains the head only and never changes the backbone.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from selfsup.errors import ConfigError
from selfsup.utils.benchmarking.topk import check_topk, logits_topk_accuracy

__all__ = ["OnlineLinearClassifier"]


class OnlineLinearClassifier(nn.Module):
    """A linear head on detached features, for use inside an SSL LightningModule.

    Call :meth:`training_step` with the backbone features of the training batch and add the
    returned loss to the SSL loss (the features are detached, so the sum's gradient for the
    backbone is the SSL loss's alone); log the returned dict with ``self.log_dict``. Its
    keys are ``train_online_cls_loss`` and ``train_online_cls_top{k}``
    (``val_online_cls_...`` from :meth:`validation_step`), accuracies as fractions in [0, 1].

    Args:
        feature_dim: D, the number of features per sample.
        num_classes: C; targets are integers in [0, C).
        topk: The k of the top-k accuracies; each in [1, C].

    Raises:
        ConfigError: ``feature_dim``, ``num_classes`` or ``topk`` out of range.

    Examples:
        >>> # in an SSL LightningModule's training_step:
        >>> features = self.backbone(images).flatten(start_dim=1)  # doctest: +SKIP
        >>> cls_loss, cls_log = self.online_classifier.training_step(  # doctest: +SKIP
        ...     (features, targets), batch_idx)
        >>> self.log_dict(cls_log, sync_dist=True, batch_size=len(targets))  # doctest: +SKIP
        >>> return ssl_loss + cls_loss  # doctest: +SKIP
    """

    def __init__(
        self,
        feature_dim: int = 2048,
        num_classes: int = 1000,
        topk: tuple[int, ...] = (1, 5),
    ) -> None:
        super().__init__()
        self.topk = check_topk(topk, num_classes, "OnlineLinearClassifier")
        if isinstance(feature_dim, bool) or not isinstance(feature_dim, int) or feature_dim < 1:
            raise ConfigError(
                f"OnlineLinearClassifier: feature_dim must be a whole number >= 1, got "
                f"{feature_dim!r}"
            )
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.classification_head = nn.Linear(feature_dim, num_classes)
        self.criterion = nn.CrossEntropyLoss()

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, C) of features (B, D) or (B, D, 1, 1), detached from their graph."""
        logits: Tensor = self.classification_head(x.detach().flatten(start_dim=1))
        return logits

    def shared_step(self, batch: Any, batch_idx: int) -> tuple[Tensor, dict[int, Tensor]]:
        """Cross-entropy loss (scalar) and top-k accuracies of ``(features, targets)``."""
        features, targets = batch[0], batch[1]
        logits = self(features)
        targets = torch.as_tensor(targets).to(logits.device)
        loss: Tensor = self.criterion(logits, targets)
        return loss, logits_topk_accuracy(logits, targets, self.topk)

    def training_step(self, batch: Any, batch_idx: int) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss to add to the SSL loss, and ``train_online_cls_{loss,top<k>}`` to log."""
        return self._step("train", batch, batch_idx)

    def validation_step(self, batch: Any, batch_idx: int) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss and ``val_online_cls_{loss,top<k>}`` of a validation batch."""
        return self._step("val", batch, batch_idx)

    def _step(self, stage: str, batch: Any, batch_idx: int) -> tuple[Tensor, dict[str, Tensor]]:
        loss, topk = self.shared_step(batch, batch_idx)
        log_dict = {f"{stage}_online_cls_loss": loss.detach()}
        log_dict.update({f"{stage}_online_cls_top{k}": acc for k, acc in topk.items()})
        return loss, log_dict
