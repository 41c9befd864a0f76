"""MMCR (Yerxa et al. 2023): maximum manifold capacity of the centroids of many views.

Every image gives k views; an online network (backbone, projector) and its momentum copy
embed all of them, and the loss maximises the nuclear norm of the matrix of the images'
centroids (see :mod:`selfsup.loss.mmcr_loss`), with lightly's setup of a momentum network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from selfsup.loss.mmcr_loss import MMCRLoss
from selfsup.methods._base import (
    Method,
    MomentumEncoderModel,
    OptimizerDefaults,
    TrainProgress,
    check_views,
)
from selfsup.models.modules.heads import MMCRProjectionHead

#: Views per image of the registered method (lightly's MMCRTransform default).
NUM_VIEWS = 8


class MMCRModel(MomentumEncoderModel):
    """Online backbone and projector; their momentum copies; :class:`MMCRLoss`.

    Widths keep the paper's ratio: hidden layers of 16·out_dim (8192 for out_dim 512). The
    momentum rises from 0.99 to 1 by a cosine over training, as for BYOL here.

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs).
        num_ftrs: Embedding size.
        out_dim: Projection size.
        lmda: λ, weight of the local nuclear norms (5e-3).
    """

    def __init__(
        self, backbone: nn.Module, num_ftrs: int, out_dim: int, lmda: float = 5e-3
    ) -> None:
        super().__init__(backbone, MMCRProjectionHead(num_ftrs, 16 * out_dim, out_dim))
        self.criterion = MMCRLoss(lmda=lmda)

    def online(self, views: Sequence[Tensor]) -> Tensor:
        """k view batches, each (B, C, H, W) -> online embeddings (B, k, out_dim)."""
        return _per_image(self.project(torch.cat(list(views))), len(views))

    def momentum(self, views: Sequence[Tensor]) -> Tensor:
        """k view batches, each (B, C, H, W) -> momentum embeddings (B, k, out_dim)."""
        return _per_image(self.project_momentum(torch.cat(list(views))), len(views))

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, None, "mmcr")
        self.update_momentum_encoder(progress.cosine(0.99, 1.0))
        loss: Tensor = self.criterion(self.online(views), self.momentum(views))
        return loss


def _per_image(z: Tensor, k: int) -> Tensor:
    """(k·B, D) embeddings, view-major (the views concatenated) -> (B, k, D)."""
    return z.reshape(k, -1, z.shape[-1]).transpose(0, 1)


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import MMCRTransform

    return MMCRTransform(k=NUM_VIEWS, input_size=input_size)


METHOD = Method(
    name="mmcr",
    title="MMCR (Yerxa et al. 2023)",
    build_model=MMCRModel,
    build_transform=_transform,
    # Paper: LARS at batch 2048. SGD at lr 0.06 suits small batches; a small weight decay,
    # since the loss sees only directions (the embeddings are normalised).
    optimizer=OptimizerDefaults(
        "sgd",
        lr=0.06,
        weight_decay=1e-6,
        source="lr of lightly's example; weight decay 1e-6 as DCL's (paper: LARS at batch 2048)",
    ),
)
