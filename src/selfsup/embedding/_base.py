"""Lightning wrapper that trains a self-supervised model built from selfsup's parts.

``BaseEmbedding`` owns the training loop (via PyTorch Lightning, which also provides DDP,
mixed precision and checkpointing); subclasses add how to embed. Nothing below
``selfsup.embedding`` imports it: the library parts stay usable in any training loop.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader

from selfsup.embedding._trainer import lightning_trainer_kwargs
from selfsup.errors import DataError
from selfsup.home import timestamped_output_dir
from selfsup.models.batchnorm import batchnorm_layers, recompute_batchnorm_statistics
from selfsup.utils.lightning_noise import lightning_noise_filtered

#: Key under which selfsup stores its own metadata (e.g. the model config) in checkpoints.
CHECKPOINT_METADATA_KEY = "selfsup"

#: Training batches over which the backbone's BatchNorm statistics are recomputed at the end
#: of each epoch, the latest ones trained on (fewer in a first epoch shorter than this):
#: enough for stable averages, a small cost next to an epoch of forward and backward passes.
PRECISE_BN_BATCHES = 16
#: Bytes of training views kept for that recompute (:meth:`BaseEmbedding.on_train_batch_start`):
#: 16 batches of 128 float views at 64 px take 100 MB. Where 16 batches would need more (e.g.
#: 128 px at batch 256), every recompute reads its batches from the loader again instead.
PRECISE_BN_CACHE_BYTES = 256 * 2**20


def first_view(batch: Any) -> torch.Tensor | None:
    """The first view batch (B, C, H, W) of a training batch ``(views, labels, filenames)``,
    or None where there is none or B < 2 (BatchNorm1d over (1, C) has no variance)."""
    views = batch[0] if isinstance(batch, Sequence) and len(batch) > 0 else None
    view = views[0] if isinstance(views, Sequence) and len(views) > 0 else None
    return view if isinstance(view, torch.Tensor) and len(view) >= 2 else None


def split_views(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the two view batches ``(x0, x1)`` of a training batch.

    Accepts the legacy collate output ``((x0, x1), labels, filenames)`` and the output of a
    MultiViewTransform dataset with default collation ``([x0, x1], labels, filenames)``.
    """
    if not isinstance(batch, Sequence) or len(batch) == 0:
        raise DataError(
            "a training batch must be (views, labels, filenames); got "
            f"{type(batch).__name__}. Use a two-view collate function or transform."
        )
    views = batch[0]
    if (
        not isinstance(views, Sequence)
        or len(views) != 2
        or not all(isinstance(v, torch.Tensor) for v in views)
    ):
        count = len(views) if isinstance(views, Sequence) else "a single tensor"
        raise DataError(
            f"SelfSupervisedEmbedding trains two-view models but the batch holds {count} "
            "view(s); use a two-view collate function (e.g. SimCLRCollateFunction) or transform "
            "(e.g. SimCLRTransform), or write your own loop for multi-crop methods"
        )
    return views[0], views[1]


class BaseEmbedding(pl.LightningModule):
    """Train ``model`` with ``criterion`` on the two-view batches of ``dataloader``.

    Args:
        model: maps ``(x0, x1)`` of shape (B, C, H, W) each to ``(y0, y1)`` of shape (B, D).
        criterion: maps ``(y0, y1)`` to a scalar loss.
        optimizer: optimizer over ``model``'s parameters.
        dataloader: yields ``((x0, x1), labels, filenames)`` batches.
        scheduler: optional learning-rate scheduler stepped once per epoch.
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: nn.Module,
        optimizer: torch.optim.Optimizer,
        dataloader: DataLoader[Any],
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.criterion = criterion
        self.optimizer = optimizer
        self.dataloader = dataloader
        self.scheduler = scheduler
        self.checkpoint: str | None = None
        self.checkpoint_callback: ModelCheckpoint | None = None
        #: Stored in every checkpoint under CHECKPOINT_METADATA_KEY (e.g. the model config),
        #: so a checkpoint alone is enough to rebuild the model that wrote it.
        self.checkpoint_metadata: dict[str, Any] = {}
        #: The first views of the latest training batches, on the device, for the BatchNorm
        #: recompute at the end of each epoch; empty once they exceed the byte budget.
        self._recent_views: deque[torch.Tensor] = deque(maxlen=PRECISE_BN_BATCHES)
        self._recent_views_too_large = False

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> Any:
        return self.model(x0, x1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x0, x1 = split_views(batch)
        y0, y1 = self.model(x0, x1)
        loss: torch.Tensor = self.criterion(y0, y1)
        self._log_loss(loss, batch_size=len(x0))
        return loss

    def _log_loss(self, loss: torch.Tensor, batch_size: int) -> None:
        """Log the step's loss as the epoch mean ``loss`` the checkpoint callback monitors."""
        # sync_dist: under DDP every rank's checkpoint callback then sees the same mean loss
        # and picks the same best epoch (a no-op in one process).
        self.log(
            "loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=batch_size,
            sync_dist=True,
        )

    def configure_optimizers(self) -> Any:
        if self.scheduler is None:
            return self.optimizer
        return {"optimizer": self.optimizer, "lr_scheduler": self.scheduler}

    def train_dataloader(self) -> DataLoader[Any]:
        return self.dataloader

    def on_train_epoch_end(self) -> None:
        """Recompute ``model.backbone``'s BatchNorm statistics for its current weights.

        The running averages lag the weights (after 2 steps they are still 81 % their
        initial values), and eval-mode embedding with such statistics blows up through the
        layers (1e11 after one 2-step epoch at lr 1.0; see :mod:`selfsup.models.batchnorm`).
        Lightning calls this hook before the checkpoint callbacks, so every checkpoint holds
        statistics of its own weights. Models without a ``backbone`` are left as they are.

        The passes run in the training step's arithmetic (the precision plugin's context:
        bf16 autocast under ``bf16-mixed``), so the statistics are those of the activations
        training normalised, and the pass costs what a forward pass of training costs: in
        float32 beside bf16 training it took 9.9 of a 55-s ``selfsup train`` (2,000 PNGs,
        ResNet-18, batch 128, one epoch of 15 steps; 2-core CPU with AVX-512 BF16).
        """
        backbone = getattr(self.model, "backbone", None)
        if not isinstance(backbone, nn.Module) or not batchnorm_layers(backbone):
            return
        with self.trainer.precision_plugin.train_step_context():
            recompute_batchnorm_statistics(backbone, self._first_views())

    def on_fit_start(self) -> None:
        # A new fit keeps no views of an earlier one (perhaps of other data, or cut short).
        self._forget_recent_views()

    def on_fit_end(self) -> None:
        # The views are only needed during training: up to 256 MiB, not held any longer.
        self._forget_recent_views()

    def _forget_recent_views(self) -> None:
        self._recent_views.clear()
        self._recent_views_too_large = False

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Keep the batch's first view (already on the device) for the epoch's BatchNorm
        recompute, within :data:`PRECISE_BN_CACHE_BYTES`.

        Reading the recompute's batches from the loader again started a new pass of the
        loader and decoded and augmented 16 batches anew: 8.9 of the recompute's 12.9 s, a
        quarter of a 20-epoch ``selfsup train`` of 500 small images. The views the epoch
        has just trained on are as good a sample of the data, and cost nothing to get.
        """
        if self._recent_views_too_large:
            return
        view = first_view(batch)
        if view is None:
            return
        if view.element_size() * view.nelement() * PRECISE_BN_BATCHES > PRECISE_BN_CACHE_BYTES:
            self._recent_views_too_large = True
            self._recent_views.clear()
            return
        self._recent_views.append(view)

    def _first_views(self) -> Iterator[torch.Tensor]:
        """The first view of the latest :data:`PRECISE_BN_BATCHES` training batches with
        B >= 2 (kept by :meth:`on_train_batch_start`), or, where they did not fit the byte
        budget, of up to that many batches read from the training loader again."""
        if self._recent_views:
            yield from list(self._recent_views)
            return
        yield from self._loader_first_views()

    def _loader_first_views(self) -> Iterator[torch.Tensor]:
        """The first view of up to :data:`PRECISE_BN_BATCHES` batches of a new pass of the
        training loader with B >= 2, on the model's device.

        Each batch takes a training batch's way to the model (moved to the device, then
        :meth:`on_after_batch_transfer`, where a subclass may make its views), so subclasses
        need not read the loader their own way.
        """
        loader = self.trainer.train_dataloader
        if loader is None:
            return
        for batch in islice(loader, PRECISE_BN_BATCHES):
            moved = self.transfer_batch_to_device(batch, self.device, 0)
            view = first_view(self.on_after_batch_transfer(moved, 0))
            if view is not None:
                yield view

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_METADATA_KEY] = dict(self.checkpoint_metadata)

    def train_embedding(
        self,
        gpus: int | None = None,
        max_epochs: int = 1,
        min_epochs: int = 1,
        checkpoint_dir: str | Path | None = None,
        save_last: bool = True,
        save_top_k: int = 1,
        distributed_backend: str | None = None,
        precision: int | str | None = "auto",
        **trainer_kwargs: Any,
    ) -> str:
        """Train for ``max_epochs`` and return the path of the best checkpoint (lowest loss).

        Args:
            gpus: GPUs to use; with none available training runs on the CPU with a warning.
                More than one GPU uses Lightning's DDP.
            max_epochs: epochs to train.
            min_epochs: epochs to train at least.
            checkpoint_dir: folder of checkpoints and the CSV training log; default
                ``./selfsup_checkpoints/<timestamp>``.
            save_last: also keep ``last.ckpt``.
            save_top_k: number of best checkpoints kept.
            distributed_backend: legacy name of Lightning's ``strategy``.
            precision: 16, 32, 64, a Lightning precision string, or ``"auto"`` (the
                default): bf16 mixed precision where the GPU or CPU computes bf16 natively,
                else 32 (:func:`~selfsup.embedding._trainer.auto_training_precision`).
            **trainer_kwargs: any other ``pytorch_lightning.Trainer`` argument.
        """
        if checkpoint_dir is None:
            checkpoint_dir = timestamped_output_dir("selfsup_checkpoints")
        checkpoint_dir = Path(checkpoint_dir)
        self.checkpoint_callback = ModelCheckpoint(
            dirpath=checkpoint_dir,
            filename="selfsup_epoch_{epoch}",
            auto_insert_metric_name=False,
            monitor="loss",
            mode="min",
            save_last=save_last,
            save_top_k=save_top_k,
        )
        kwargs = lightning_trainer_kwargs(
            gpus=gpus,
            distributed_backend=distributed_backend,
            precision=precision,
            **trainer_kwargs,
        )
        kwargs.setdefault("logger", CSVLogger(save_dir=str(checkpoint_dir), name="logs"))
        callbacks = list(kwargs.pop("callbacks", []))
        with lightning_noise_filtered(), warnings.catch_warnings():
            trainer = pl.Trainer(
                max_epochs=max_epochs,
                min_epochs=min_epochs,
                callbacks=[*callbacks, self.checkpoint_callback],
                **kwargs,
            )
            if not any(checkpoint_dir.glob("*.ckpt")):
                # Lightning warns about any non-empty folder, which a run's own config/ and
                # CSV log (logs/) always make; only earlier checkpoints are worth a warning.
                warnings.filterwarnings(
                    "ignore", message=r"Checkpoint directory .* exists and is not empty"
                )
            trainer.fit(self)
        best = self.checkpoint_callback.best_model_path or self.checkpoint_callback.last_model_path
        if not best:
            raise RuntimeError(
                f"training finished without writing a checkpoint to {str(checkpoint_dir)!r}; "
                "was the dataloader empty?"
            )
        self.checkpoint = str(Path(best).resolve())
        return self.checkpoint
