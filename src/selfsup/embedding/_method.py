"""Train any registered method: the Lightning loop around a :class:`MethodModel`.

The loop knows nothing of a method beyond :meth:`MethodModel.training_loss` and
:meth:`MethodModel.before_optimizer_step`; it tells the model where training stands
(:class:`TrainProgress`) so momentum and temperature schedules follow the run's length.
Embedding is inherited from :class:`SelfSupervisedEmbedding` and uses ``model.backbone``.

Augmentation on the device (the default of :func:`selfsup.core.build_train_loader`): when the
loader's ``collate_fn`` is a :class:`~selfsup.transforms.device_views.SourceCollate`, its
batches are uint8 sources, and :meth:`MethodEmbedding.on_after_batch_transfer` (Lightning
calls it on the training device, after the copy) turns them into the method's views with the
collate's :class:`~selfsup.transforms.device_views.DeviceViews`.

Memory layout: by default the model's weights and every image view are channels-last
(NHWC strides, same shapes). Convolutions then run in the layout oneDNN and cuDNN's tensor
cores prefer: a ResNet-18 training step at 28-32 px was 1.1-1.3x faster on the 2-core CPU
in three probes (benchmarks/README.md); the embed step has used the same layout since
issue 16.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from selfsup.embedding.embedding import SelfSupervisedEmbedding
from selfsup.errors import DataError
from selfsup.methods._base import MethodModel, TrainProgress
from selfsup.transforms.device_views import DeviceViews, SourceCollate, is_source_batch


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


def laid_out(views: list[torch.Tensor], channels_last: bool) -> list[torch.Tensor]:
    """``views`` with each (B, C, H, W) batch channels-last, or contiguous NCHW when
    ``channels_last`` is False (other ranks as they are); a view already in that layout is
    not copied (the batched views are channels-last already, the per-image ones NCHW)."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return [v.contiguous(memory_format=layout) if v.dim() == 4 else v for v in views]


def loader_device_views(loader: DataLoader[Any]) -> DeviceViews | None:
    """The :class:`DeviceViews` a loader's source batches need, or None for a loader that
    yields views (its dataset or collate function augments per image)."""
    collate = getattr(loader, "collate_fn", None)
    return collate.views if isinstance(collate, SourceCollate) else None


def train_views(
    batch: Any,
    device_views: DeviceViews | None,
    device: torch.device | str,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """The view batches of a training ``batch`` on ``device``: a source batch is moved there
    and augmented by ``device_views``; a batch of views is moved as it is."""
    if is_source_batch(batch):
        if device_views is None:
            raise DataError(
                "the loader yields uint8 source batches but no DeviceViews was given to "
                "make their views; use the loader of selfsup.core.build_train_loader"
            )
        return device_views(batch[0].to(device, non_blocking=True), batch[1], generator)
    return [v.to(device) for v in batch_views(batch)]


class MethodEmbedding(SelfSupervisedEmbedding):
    """Trains ``model`` (a registered method's model) with ``optimizer`` on ``dataloader``.

    Args:
        model: The method's model; ``model.backbone`` is what embeds afterwards.
        optimizer: Optimiser over the model's trainable parameters.
        dataloader: Yields ``(views, labels, filenames)`` with the method's views, or uint8
            source batches through a :class:`SourceCollate` (views made on the device).
        scheduler: Optional learning-rate scheduler stepped once per epoch.
    """

    model: MethodModel

    def __init__(
        self,
        model: MethodModel,
        optimizer: torch.optim.Optimizer,
        dataloader: DataLoader[Any],
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        channels_last: bool = True,
    ) -> None:
        if channels_last:
            # In place, before Lightning moves or wraps the model (.to(device) keeps the
            # layout; DDP builds its gradient buckets from these strides). The parameters
            # stay the same objects, so ``optimizer`` still holds them.
            model.to(memory_format=torch.channels_last)
        super().__init__(model, torch.nn.Identity(), optimizer, dataloader, scheduler)
        #: The layout of the views the model sees, on both paths (module docstring).
        self.channels_last = channels_last
        self._total_steps = 1
        self._max_epochs = 1
        self._step_progress = TrainProgress()
        #: Makes the views of source batches on the device; None when the loader augments.
        self.device_views = loader_device_views(dataloader)
        self._augment_generator: torch.Generator | None = None

    def on_train_start(self) -> None:
        # The run's length is fixed once training starts; Lightning re-derives
        # estimated_stepping_batches on every access, so it is read once here.
        trainer = self.trainer
        total = trainer.estimated_stepping_batches
        self._total_steps = max(1, int(total)) if total != float("inf") else 0
        self._max_epochs = (
            trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Source batches (already on the training device) -> ``(views, labels, filenames)``.

        Parameters come from a CPU generator seeded once from torch's global one (which
        ``seed_everything`` seeds) plus the process rank, so runs repeat and DDP processes
        draw different augmentations.
        """
        if not is_source_batch(batch):
            return laid_out(batch_views(batch), self.channels_last), *batch[1:]
        if self._augment_generator is None:
            seed = int(torch.randint(0, 2**62, (1,))) + 1_000_003 * self.global_rank
            self._augment_generator = torch.Generator().manual_seed(seed)
        views = train_views(batch, self.device_views, batch[0].device, self._augment_generator)
        return laid_out(views, self.channels_last), batch[2], batch[3]

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
