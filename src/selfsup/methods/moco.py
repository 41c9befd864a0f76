"""MoCo v2 (Chen et al. 2020, after He et al. 2020): a momentum key encoder and a queue.

"θ_k ← m θ_k + (1 − m) θ_q" (He et al., eq. 2); the queries are the online encoder's
projections of view 1, the keys the momentum encoder's of view 2, and the negatives a FIFO
queue of past keys (InfoNCE, eq. 1). MoCo v2 adds SimCLR's MLP head and blur augmentation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from selfsup.loss import NTXentLoss
from selfsup.methods._base import (
    Method,
    MethodModel,
    OptimizerDefaults,
    TrainProgress,
    check_views,
)
from selfsup.models.moco import MoCo


class MoCoModel(MoCo, MethodModel):
    """:class:`selfsup.models.MoCo` (query encoder, its momentum copy) with its queue and
    InfoNCE loss; checkpoints of either load into the other.

    The momentum rises from 0.996 to 1 by a cosine over training (the paper's constant 0.999
    was tuned for 200+ epochs; the schedule works for short runs too, as in BYOL).

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs).
        num_ftrs: Embedding size.
        out_dim: Projection size (the keys stored in the queue).
        temperature: τ of InfoNCE (MoCo v2: 0.2).
        memory_bank_size: Keys kept in the queue (MoCo: 65536; 4096 suits small datasets).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_ftrs: int,
        out_dim: int,
        temperature: float = 0.2,
        memory_bank_size: int = 4096,
    ) -> None:
        super().__init__(backbone, num_ftrs=num_ftrs, out_dim=out_dim)
        self.criterion = NTXentLoss(
            temperature=temperature,
            memory_bank_size=(memory_bank_size, out_dim),
            gather_distributed=True,
        )

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, 2, "moco")
        self.m = progress.cosine(0.996, 1.0)  # MoCo.forward moves the key encoder first
        query, key = self(views[0], views[1])
        loss: Tensor = self.criterion(query, key)
        return loss


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import MoCoV2Transform

    return MoCoV2Transform(input_size=input_size)


METHOD = Method(
    name="moco",
    title="MoCo v2 (Chen et al. 2020; He et al. 2020)",
    build_model=MoCoModel,
    build_transform=_transform,
    optimizer=OptimizerDefaults(
        "sgd",
        lr=0.06,
        weight_decay=5e-4,
        source="lightly's MoCo example at batch 256 (paper: lr 0.03 per 256, weight decay 1e-4)",
    ),
)
