"""``LinearClassifier``: linear evaluation (or fine-tuning) of a model as a LightningModule.

The settings follow lightly's, after the linear evaluation of SimCLR (Chen et al., 2020):
SGD with momentum at the learning rate 0.1 × batch size / 256 (the linear scaling rule of
Goyal et al., 2017), decayed with a cosine, no weight decay. With ``freeze_model=False`` the
model is trained together with the head (fine-tuning).
"""

from __future__ import annotations

import math
from typing import Any, Self

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.types import OptimizerLRSchedulerConfig
from torch import Tensor, nn
from torch.optim import SGD

from selfsup.errors import ConfigError
from selfsup.utils.benchmarking.topk import check_topk, logits_topk_accuracy
from selfsup.utils.scheduler import CosineWarmupScheduler

__all__ = ["LinearClassifier"]


class LinearClassifier(pl.LightningModule):
    """A linear head on the features of ``model``, trained with cross-entropy.

    Batches are ``(images, targets, ...)``. ``training_step`` logs ``train_loss`` and
    ``train_top{k}``, ``validation_step`` logs ``val_loss`` and ``val_top{k}`` (fractions in
    [0, 1]) for each k in ``topk``.

    With ``freeze_model=True`` (linear evaluation) the model runs without gradients and
    stays in eval mode, so neither its weights nor its batch-norm statistics change, and
    only the head is optimised. With ``freeze_model=False`` (fine-tuning) head and model
    are optimised together.

    The optimiser is SGD with momentum 0.9, no weight decay and learning rate
    ``lr × batch_size_per_device × world_size / 256`` (the linear scaling rule), decayed per
    step with a cosine over the whole run (``trainer.estimated_stepping_batches``).

    Args:
        model: Feature extractor: images (B, ...) -> features (B, feature_dim) or
            (B, feature_dim, 1, 1).
        batch_size_per_device: Batch size of each process, for the learning-rate scaling.
        feature_dim: D, the number of features ``model`` returns.
        num_classes: C; targets are integers in [0, C).
        topk: The k of the logged top-k accuracies; each in [1, C].
        freeze_model: True for linear evaluation, False (lightly's default) to fine-tune
            the model too; linear evaluation passes ``freeze_model=True``.
        lr: Learning rate per 256 samples (0.1, SimCLR's linear evaluation).

    Raises:
        ConfigError: A size, ``topk`` or ``lr`` out of range.

    Examples:
        >>> classifier = LinearClassifier(backbone, batch_size_per_device=256,  # doctest: +SKIP
        ...                               feature_dim=512, num_classes=10)
        >>> pl.Trainer(max_epochs=90).fit(classifier, train_loader, val_loader)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        batch_size_per_device: int,
        feature_dim: int = 2048,
        num_classes: int = 1000,
        topk: tuple[int, ...] = (1, 5),
        freeze_model: bool = False,
        *,
        lr: float = 0.1,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.topk = check_topk(topk, num_classes, name)
        for key, value in (
            ("batch_size_per_device", batch_size_per_device),
            ("feature_dim", feature_dim),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: {key} must be a whole number >= 1, got {value!r}")
        if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
            raise ConfigError(f"{name}: lr must be a finite number > 0, got {lr!r}")
        self.save_hyperparameters(ignore="model")
        self.model = model
        self.batch_size_per_device = batch_size_per_device
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.freeze_model = freeze_model
        self.lr = float(lr)
        self.classification_head = nn.Linear(feature_dim, num_classes)
        self.criterion = nn.CrossEntropyLoss()
        if freeze_model:
            self.model.eval()

    def train(self, mode: bool = True) -> Self:
        """Switch this module's mode; a frozen model stays in eval mode.

        Lightning puts the whole module in train mode for training and after each
        validation; a frozen model must not update its batch-norm statistics.
        """
        super().train(mode)
        if self.freeze_model:
            self.model.eval()
        return self

    def forward(self, images: Tensor) -> Tensor:
        """Class logits of shape (B, C)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_model):
            features: Tensor = self.model(images)
        features = features.flatten(start_dim=1)
        if features.shape[1] != self.feature_dim:
            raise ValueError(
                f"{type(self).__name__}: the model returns {features.shape[1]} features per "
                f"sample but feature_dim={self.feature_dim}; pass feature_dim="
                f"{features.shape[1]}"
            )
        logits: Tensor = self.classification_head(features)
        return logits

    def shared_step(self, batch: Any, batch_idx: int) -> tuple[Tensor, dict[int, Tensor]]:
        """Cross-entropy loss (scalar) and top-k accuracies of a batch."""
        images, targets = batch[0], torch.as_tensor(batch[1]).to(self.device)
        logits = self(images)
        loss: Tensor = self.criterion(logits, targets)
        return loss, logits_topk_accuracy(logits, targets, self.topk)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Loss of a train batch; logs ``train_loss`` and ``train_top{k}``."""
        return self._step("train", batch, batch_idx)

    def validation_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Loss of a validation batch; logs ``val_loss`` and ``val_top{k}``."""
        return self._step("val", batch, batch_idx)

    def _step(self, stage: str, batch: Any, batch_idx: int) -> Tensor:
        loss, topk = self.shared_step(batch, batch_idx)
        batch_size = len(batch[1])
        self.log(f"{stage}_loss", loss, prog_bar=True, sync_dist=True, batch_size=batch_size)
        # Validation accuracies go to the progress bar, train ones (noisy per batch) do not.
        self.log_dict(
            {f"{stage}_top{k}": accuracy for k, accuracy in topk.items()},
            prog_bar=stage == "val",
            sync_dist=True,
            batch_size=batch_size,
        )
        return loss

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        """SGD (momentum 0.9) at the linearly scaled rate, with a per-step cosine decay."""
        parameters = list(self.classification_head.parameters())
        if not self.freeze_model:
            parameters += list(self.model.parameters())
        optimizer = SGD(
            parameters,
            lr=self.lr * self.batch_size_per_device * self.trainer.world_size / 256,
            momentum=0.9,
            weight_decay=0.0,
        )
        total_steps = self.trainer.estimated_stepping_batches
        if not math.isfinite(total_steps):
            raise ConfigError(
                f"{type(self).__name__}: the cosine schedule needs a finite run; set "
                "max_epochs or max_steps of the Trainer"
            )
        scheduler = CosineWarmupScheduler(
            optimizer, warmup_epochs=0, max_epochs=max(1, int(total_steps))
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
