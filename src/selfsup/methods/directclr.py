"""DirectCLR (Jing et al. 2022): SimCLR's loss on a sub-vector of the representation.

Jing, Vincent, LeCun and Tian 2022, "Understanding Dimensional Collapse in Contrastive
Self-supervised Learning" (https://arxiv.org/abs/2110.09348, sec. 6): a projector keeps the
representation from collapsing dimensions; DirectCLR drops the projector and applies the
InfoNCE loss directly to the first d0 dimensions of the backbone's representation,
z = r[:d0] (d0 = 360 of ResNet-50's 2048 in the paper). The rest of the representation
gets its gradient only through the backbone's shared layers.

The loss is SimCLR's NT-Xent (:class:`selfsup.loss.NTXentLoss`) on the sub-vectors; there is
no separate loss class (lightly has none either).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from selfsup.errors import ConfigError
from selfsup.loss import NTXentLoss
from selfsup.methods._base import Method, MethodModel, OptimizerDefaults, TrainProgress, check_views

#: d0 / representation size of the paper: 360 of ResNet-50's 2048 dimensions.
PAPER_RATIO = 360 / 2048


def subvector_dim(num_ftrs: int, d0: int | None = None) -> int:
    """d0 for a representation of ``num_ftrs`` dimensions: ``d0`` if given, else the paper's
    ratio (at least 1); a ConfigError unless 1 <= d0 <= num_ftrs."""
    dim = max(1, round(num_ftrs * PAPER_RATIO)) if d0 is None else d0
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= num_ftrs:
        raise ConfigError(
            f"directclr: d0={d0!r} must be an integer in [1, num_ftrs={num_ftrs}] (the "
            "dimensions of the representation the loss sees), or None for the paper's "
            "360/2048 of them"
        )
    return dim


class DirectCLRModel(MethodModel):
    """A backbone and no projector; NT-Xent on the first d0 dimensions of its output.

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs).
        num_ftrs: Embedding size.
        out_dim: Unused (no projector); kept for the method interface.
        temperature: τ of NT-Xent (0.1).
        d0: Dimensions the loss sees; None: the paper's ratio, 360/2048 of ``num_ftrs``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_ftrs: int,
        out_dim: int,
        temperature: float = 0.1,
        d0: int | None = None,
    ) -> None:
        super().__init__()
        del out_dim  # no projection head: the representation itself is contrasted
        self.backbone = backbone
        self.d0 = subvector_dim(num_ftrs, d0)
        self.criterion = NTXentLoss(temperature=temperature, gather_distributed=True)

    def subvector(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> z = r[:, :d0] (B, d0), r the backbone's representation."""
        r: Tensor = self.backbone(x).flatten(start_dim=1)
        return r[:, : self.d0]

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, 2, "directclr")
        loss: Tensor = self.criterion(self.subvector(views[0]), self.subvector(views[1]))
        return loss


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import SimCLRTransform

    return SimCLRTransform(input_size=input_size)


METHOD = Method(
    name="directclr",
    title="DirectCLR (Jing et al. 2022)",
    build_model=DirectCLRModel,
    build_transform=_transform,
    # Paper: SimCLR's recipe (LARS, large batches). SGD at lr 0.06 suits small batches; a
    # small weight decay, as for DCL (the loss sees only directions).
    optimizer=OptimizerDefaults(
        "sgd",
        lr=0.06,
        weight_decay=1e-6,
        source="lr of lightly's example; weight decay 1e-6 as DCL's (paper: SimCLR's LARS recipe)",
    ),
)
