"""``KNNClassifier``: kNN evaluation of a frozen model as a LightningModule (lightly's API).

The weighted kNN of InstDisc (Wu et al., 2018, Sec. 3.4): a validation sample is classified
by the top-k most similar training features, each voting for its class with weight
exp(similarity / t). The vote itself is :func:`~selfsup.utils.benchmarking.knn.knn_predict`.
"""

from __future__ import annotations

from typing import Any, Self

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError
from selfsup.utils.benchmarking._gather import all_gather_rows
from selfsup.utils.benchmarking.knn import knn_predict
from selfsup.utils.benchmarking.topk import check_topk, mean_topk_accuracy

__all__ = ["KNNClassifier"]


class KNNClassifier(pl.LightningModule):
    """kNN classification of validation images by the features of a frozen model.

    Run it with ``Trainer(max_epochs=1).fit(classifier, train_loader, val_loader)``: the
    training "epoch" only embeds the train set into a feature bank (nothing is optimised:
    ``configure_optimizers`` returns None), then each validation batch is classified with
    :func:`~selfsup.utils.benchmarking.knn.knn_predict` and ``val_top{k}`` (a fraction in
    [0, 1], for each k in ``topk``) is logged. Batches are ``(images, targets, ...)`` like
    those of ``LightlyDataset``. Validation before any training step (Lightning's sanity
    check) logs nothing, as there is no bank yet.

    The model always stays in eval mode (so batch-norm statistics do not move and dropout
    is off) and runs without gradients. Features are collected on the CPU during the epoch
    and moved to the model's device as one (D, N) bank when validation starts; under DDP
    the banks of all processes are gathered, so every process votes over the whole train
    set.

    Args:
        model: Feature extractor: images (B, ...) -> features (B, D) or (B, D, 1, 1).
        num_classes: Number of classes C; targets are integers in [0, C).
        knn_k: Number of neighbours (InstDisc: 200).
        knn_t: Temperature t of the weights exp(similarity / t) (InstDisc: 0.1).
        topk: The k of the logged top-k accuracies; each in [1, C].
        feature_dtype: dtype of the bank and query features; ``torch.float16`` halves the
            bank's memory.
        normalize: L2-normalise features so that the similarity is the cosine (InstDisc);
            False uses raw dot products.

    Raises:
        ConfigError: ``num_classes``, ``knn_k``, ``knn_t`` or ``topk`` out of range,
            or a ``feature_dtype`` that is not a floating-point dtype.

    Examples:
        >>> classifier = KNNClassifier(backbone, num_classes=10)  # doctest: +SKIP
        >>> trainer = pl.Trainer(max_epochs=1, num_sanity_val_steps=0)  # doctest: +SKIP
        >>> trainer.fit(classifier, train_loader, val_loader)  # doctest: +SKIP
        >>> trainer.callback_metrics["val_top1"]  # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        knn_k: int = 200,
        knn_t: float = 0.1,
        topk: tuple[int, ...] = (1, 5),
        feature_dtype: torch.dtype = torch.float32,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.topk = check_topk(topk, num_classes, "KNNClassifier")
        if isinstance(knn_k, bool) or not isinstance(knn_k, int) or knn_k < 1:
            raise ConfigError(f"KNNClassifier: knn_k must be a whole number >= 1, got {knn_k!r}")
        if not knn_t > 0:
            raise ConfigError(f"KNNClassifier: knn_t must be > 0, got {knn_t!r}")
        if not isinstance(feature_dtype, torch.dtype) or not feature_dtype.is_floating_point:
            raise ConfigError(
                f"KNNClassifier: feature_dtype must be a floating-point torch.dtype such as "
                f"torch.float32 or torch.float16, got {feature_dtype!r}"
            )
        # The dtype is stored as text: hyper-parameter files (YAML) cannot hold a dtype.
        self.save_hyperparameters(
            {
                "num_classes": num_classes,
                "knn_k": knn_k,
                "knn_t": knn_t,
                "topk": self.topk,
                "feature_dtype": str(feature_dtype),
                "normalize": normalize,
            }
        )
        self.model = model
        self.num_classes = num_classes
        self.knn_k = knn_k
        self.knn_t = knn_t
        self.feature_dtype = feature_dtype
        self.normalize = normalize
        # This process's features (N_r, D) and targets (N_r,), CPU, in chunks.
        self._train_features: list[Tensor] = []
        self._train_targets: list[Tensor] = []
        # The bank of all processes, (D, N) and (N,), on the model's device.
        self._train_features_tensor: Tensor | None = None
        self._train_targets_tensor: Tensor | None = None
        self.model.eval()
        # Nothing is optimised: manual optimisation makes a training_step without a loss
        # and the missing optimiser the normal case for Lightning instead of warnings.
        self.automatic_optimization = False

    def train(self, mode: bool = True) -> Self:
        """Switch this module's mode, keeping the wrapped model in eval mode.

        Lightning puts the whole module in train mode for the training epoch and after
        each validation; the model must not update batch-norm statistics while it embeds
        the train set.
        """
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, images: Tensor) -> Tensor:
        """Features of ``images``: shape (B, D), L2-normalised if ``normalize``, in
        ``feature_dtype``."""
        features: Tensor = self.model(images)
        features = features.flatten(start_dim=1)
        if self.normalize:
            features = F.normalize(features, dim=1)
        return features.to(self.feature_dtype)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        """Embed a train batch and keep its features and targets for the bank."""
        images, targets = batch[0], torch.as_tensor(batch[1])
        if targets.numel() and not 0 <= int(targets.min()) <= int(targets.max()) < self.num_classes:
            raise ValueError(
                f"KNNClassifier: train batch {batch_idx} has targets in [{int(targets.min())}, "
                f"{int(targets.max())}], outside [0, num_classes={self.num_classes})"
            )
        with torch.no_grad():
            features = self(images)
        self._train_features.append(features.cpu())
        self._train_targets.append(targets.cpu().long())

    def on_train_epoch_start(self) -> None:
        # Each epoch builds a fresh bank: the features of the model as it is now.
        self.reset_storage()

    def reset_storage(self) -> None:
        """Drop the collected features and the bank."""
        self._train_features = []
        self._train_targets = []
        self._train_features_tensor = None
        self._train_targets_tensor = None

    def on_validation_epoch_start(self) -> None:
        if not self._train_features:
            return
        # One chunk from here on, so that a second validation in the same epoch (with
        # val_check_interval) appends to it instead of concatenating everything again.
        features = torch.cat(self._train_features, dim=0)
        targets = torch.cat(self._train_targets, dim=0)
        self._train_features = [features]
        self._train_targets = [targets]
        # Gathered on the device: NCCL only moves device tensors.
        bank = all_gather_rows(features.to(self.device))
        self._train_features_tensor = bank.t().contiguous()  # (D, N)
        self._train_targets_tensor = all_gather_rows(targets.to(self.device))

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Classify a validation batch by its k nearest train features; log ``val_top{k}``."""
        if self._train_features_tensor is None or self._train_targets_tensor is None:
            return
        images, targets = batch[0], torch.as_tensor(batch[1]).to(self.device)
        with torch.no_grad():
            features = self(images)
        predicted_classes = knn_predict(
            feature=features,
            feature_bank=self._train_features_tensor,
            feature_labels=self._train_targets_tensor,
            num_classes=self.num_classes,
            knn_k=self.knn_k,
            knn_t=self.knn_t,
        )
        topk = mean_topk_accuracy(predicted_classes, targets, k=self.topk)
        log_dict = {f"val_top{k}": accuracy for k, accuracy in topk.items()}
        self.log_dict(log_dict, prog_bar=True, sync_dist=True, batch_size=len(targets))

    def configure_optimizers(self) -> None:
        """No optimiser: a kNN classifier has nothing to train."""
        return None
