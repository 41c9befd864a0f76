"""Train any registered method: the Lightning loop around a :class:`MethodModel`.

The loop knows nothing of a method beyond :meth:`MethodModel.training_loss` and
:meth:`MethodModel.before_optimizer_step`; it tells the model where training stands
(:class:`TrainProgress`) so momentum and temperature schedules follow the run's length.
Embedding is inherited from :class:`SelfSupervisedEmbedding` and uses ``model.backbone``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from selfsup.embedding.embedding import SelfSupervisedEmbedding
from selfsup.errors import DataError
from selfsup.methods._base import MethodModel, TrainProgress


def batch_views(batch: Any) -> list[torch.Tensor]:
    """The list of view batches of a training batch ``(views, labels, filenames)``.

    ``views`` is what a method's transform made, collated: a list of (B, C, H, W) tensors
    (views of one position share a size; DINO's global and local views differ).
    """
    views = batch[0] if isinstance(batch, Sequence) and len(batch) > 0 else None
    if not isinstance(views, Sequence) or not all(isinstance(v, torch.Tensor) for v in views):
        raise DataError(
            "a training batch must be (views, labels, filenames) with views a list of image "
            f"batches; got {type(views).__name__}. Give the dataset the method's transform."
        )
    return list(views)


class MethodEmbedding(SelfSupervisedEmbedding):
    """Trains ``model`` (a registered method's model) with ``optimizer`` on ``dataloader``.

    Args:
        model: The method's model; ``model.backbone`` is what embeds afterwards.
        optimizer: Optimiser over the model's trainable parameters.
        dataloader: Yields ``(views, labels, filenames)`` with the method's views.
        scheduler: Optional learning-rate scheduler stepped once per epoch.
    """

    model: MethodModel

    def __init__(
        self,
        model: MethodModel,
        optimizer: torch.optim.Optimizer,
        dataloader: DataLoader[Any],
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    ) -> None:
        super().__init__(model, torch.nn.Identity(), optimizer, dataloader, scheduler)
        self._total_steps = 1
        self._max_epochs = 1
        self._step_progress = TrainProgress()

    def on_train_start(self) -> None:
        # The run's length is fixed once training starts; Lightning re-derives
        # estimated_stepping_batches on every access, so it is read once here.
        trainer = self.trainer
        total = trainer.estimated_stepping_batches
        self._total_steps = max(1, int(total)) if total != float("inf") else 0
        self._max_epochs = (
            trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
        )

    def progress(self) -> TrainProgress:
        """Where training stands now (epoch and step of the Lightning trainer)."""
        if self._trainer is None:
            return TrainProgress()
        return TrainProgress(
            epoch=self.current_epoch,
            max_epochs=self._max_epochs,
            step=self.global_step,
            # 0 for a run of no set length (max_epochs=-1): schedules hold their start.
            total_steps=self._total_steps,
        )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        views = batch_views(batch)
        # Kept for before_optimizer_step, which belongs to the same step.
        self._step_progress = self.progress()
        loss = self.model.training_loss(views, self._step_progress)
        self._log_loss(loss, batch_size=len(views[0]))
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.model.before_optimizer_step(self._step_progress)
