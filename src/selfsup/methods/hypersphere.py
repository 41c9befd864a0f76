"""Alignment and uniformity on the hypersphere (Wang and Isola 2020), in SimCLR's setup.

"directly optimizing for these two metrics leads to representations with comparable or
better performance at downstream tasks than contrastive learning" (abstract): SimCLR's
views, backbone and projection head, trained with L_align + λ L_uniform instead of NT-Xent
(see :mod:`selfsup.loss.hypersphere_loss`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from selfsup.loss.hypersphere_loss import HypersphereLoss
from selfsup.methods._base import Method, MethodModel, OptimizerDefaults, TrainProgress, check_views
from selfsup.models.simclr import SimCLR


class HypersphereModel(SimCLR, MethodModel):
    """:class:`selfsup.models.SimCLR` (backbone and a projection head of hidden width
    ``num_ftrs``) trained with :class:`selfsup.loss.HypersphereLoss`.

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs).
        num_ftrs: Embedding size.
        out_dim: Projection size.
        t: t of the uniformity (1).
        lam: λ, weight of the uniformity (1).
        alpha: α of the alignment (2).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_ftrs: int,
        out_dim: int,
        t: float = 1.0,
        lam: float = 1.0,
        alpha: float = 2.0,
    ) -> None:
        super().__init__(backbone, num_ftrs=num_ftrs, out_dim=out_dim)
        self.criterion = HypersphereLoss(t=t, lam=lam, alpha=alpha)

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, 2, "hypersphere")
        out0, out1 = self(views[0], views[1])
        loss: Tensor = self.criterion(out0, out1)
        return loss


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import SimCLRTransform

    return SimCLRTransform(input_size=input_size)


METHOD = Method(
    name="hypersphere",
    title="Alignment and uniformity on the hypersphere (Wang and Isola 2020)",
    build_model=HypersphereModel,
    build_transform=_transform,
    # SGD at lr 0.06 suits small batches; a small weight decay, since the loss sees only
    # directions (the embeddings are normalised; see the DCL method's note).
    optimizer=OptimizerDefaults(
        "sgd",
        lr=0.06,
        weight_decay=1e-6,
        source="lr of lightly's example; weight decay 1e-6 as DCL's",
    ),
)
