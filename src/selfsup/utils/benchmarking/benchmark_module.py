"""``BenchmarkModule``: a LightningModule base class that monitors kNN accuracy every epoch.

The loop of lightly's benchmarks: after each training epoch the backbone embeds a labelled
train split into a feature bank and the validation split is classified with the weighted
kNN of :func:`~selfsup.utils.benchmarking.knn.knn_predict`.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from selfsup.utils.benchmarking._gather import all_gather_rows
from selfsup.utils.benchmarking.knn import knn_predict
from selfsup.utils.dist import rank, world_size

__all__ = ["BenchmarkModule"]


class BenchmarkModule(pl.LightningModule):
    """A LightningModule that reports the kNN accuracy of ``self.backbone`` every epoch.

    Subclass it, set ``self.backbone`` (images (B, ...) -> features (B, D) or (B, D, 1, 1))
    and write ``training_step`` and ``configure_optimizers`` as usual. Pass the validation
    dataloader to ``trainer.fit(model, train_loader, val_loader)``; both dataloaders yield
    ``(images, targets, filenames)`` batches like ``LightlyDataset``.

    At the start of each validation epoch the backbone embeds ``dataloader_kNN`` into an
    L2-normalised feature bank (D, N); each validation step classifies its batch with
    :func:`knn_predict`; the epoch end logs ``kNN_accuracy`` (in percent, as lightly does)
    and updates ``max_accuracy`` (a fraction in [0, 1]).

    Under DDP each process embeds every ``world_size``-th batch of ``dataloader_kNN`` (or
    its own shard, when the loader already has a ``DistributedSampler``) and the bank is
    all-gathered, so every process votes over the whole bank exactly once; correct counts
    of the validation shards are summed over processes.

    Args:
        dataloader_kNN: labelled data forming the kNN memory (usually the train split
            without augmentation).
        num_classes: number of classes of the labels.
        knn_k: number of neighbours.
        knn_t: temperature of the neighbour weights.
    """

    def __init__(
        self,
        dataloader_kNN: DataLoader[Any],  # noqa: N803 - lightly's argument name
        num_classes: int,
        knn_k: int = 200,
        knn_t: float = 0.1,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.backbone: nn.Module = nn.Module()
        self.max_accuracy = 0.0
        self.dataloader_kNN = dataloader_kNN
        self.num_classes = num_classes
        self.knn_k = knn_k
        self.knn_t = knn_t
        self._train_features: Tensor | None = None
        self._train_targets: Tensor | None = None
        self._val_correct = 0
        self._val_total = 0

    def _embed(self, images: Tensor) -> Tensor:
        """Backbone features, flattened to (B, D) and L2-normalised."""
        feature = self.backbone(images)
        return F.normalize(feature.flatten(start_dim=1), dim=1)

    def on_validation_epoch_start(self) -> None:
        rank_, world = rank(), world_size()
        already_sharded = isinstance(self.dataloader_kNN.sampler, DistributedSampler)
        features: list[Tensor] = []
        targets: list[Tensor] = []
        with torch.no_grad():
            for index, batch in enumerate(self.dataloader_kNN):
                if world > 1 and not already_sharded and index % world != rank_:
                    continue
                images, target = batch[0], batch[1]
                features.append(self._embed(images.to(self.device)))
                targets.append(torch.as_tensor(target).to(self.device))
        if features:
            local_features = torch.cat(features, dim=0)
            local_targets = torch.cat(targets, dim=0)
        else:
            # A rank with no batch still takes part in the all-gather; it needs D for that.
            dim = self._feature_dim()
            local_features = torch.zeros(0, dim, device=self.device)
            local_targets = torch.zeros(0, dtype=torch.long, device=self.device)
        bank = all_gather_rows(local_features)
        if bank.shape[0] == 0:
            raise ValueError("dataloader_kNN yielded no samples; the kNN bank would be empty")
        self._train_features = bank.t().contiguous()
        self._train_targets = all_gather_rows(local_targets.long())
        self._val_correct = 0
        self._val_total = 0

    def _feature_dim(self) -> int:
        """Feature dimension D of the backbone, found by embedding one kNN batch."""
        batch = next(iter(self.dataloader_kNN))
        with torch.no_grad():
            return int(self._embed(batch[0][:1].to(self.device)).shape[1])

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        if self._train_features is None or self._train_targets is None:
            return
        images, targets = batch[0], torch.as_tensor(batch[1]).to(self.device)
        with torch.no_grad():
            feature = self._embed(images)
        predicted = knn_predict(
            feature,
            self._train_features,
            self._train_targets,
            self.num_classes,
            self.knn_k,
            self.knn_t,
        )
        self._val_correct += int((predicted[:, 0] == targets).sum())
        self._val_total += int(targets.shape[0])

    def on_validation_epoch_end(self) -> None:
        counts = torch.tensor([self._val_correct, self._val_total], device=self.device)
        world = world_size()
        if world > 1:
            torch_dist.all_reduce(counts, op=torch_dist.ReduceOp.SUM)
        correct, total = (int(c) for c in counts.tolist())
        # Lightning's sanity check validates a couple of batches before training; their
        # accuracy is not an epoch's and must not become the maximum.
        sanity_check = self._trainer is not None and self.trainer.sanity_checking
        if total > 0 and not sanity_check:
            accuracy = correct / total
            self.max_accuracy = max(self.max_accuracy, accuracy)
            # The value is already the same on every rank, so no sync_dist reduction.
            self.log("kNN_accuracy", accuracy * 100.0, prog_bar=True)
        self._val_correct = 0
        self._val_total = 0
