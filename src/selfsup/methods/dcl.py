"""DCL and DCLW (Yeh et al. 2022): SimCLR with the decoupled contrastive loss.

The DCL loss is NT-Xent with the positive pair removed from the denominator (eq. 6),

    L_DC,i^(k) = -⟨z_i^(1), z_i^(2)⟩ / τ + log Σ_{l∈{1,2}, j≠i} exp(⟨z_i^(k), z_j^(l)⟩ / τ)

and DCLW weights the positive term by w_vMF (eq. 7; see :mod:`selfsup.loss.dcl_loss`). The
rest is SimCLR's: its augmentations, backbone and projection head; τ = 0.1 as in the paper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from torch import Tensor, nn

from selfsup.loss import DCLLoss, DCLWLoss
from selfsup.methods._base import Method, MethodModel, OptimizerDefaults, TrainProgress, check_views
from selfsup.models.simclr import SimCLR


class DCLModel(SimCLR, MethodModel):
    """:class:`selfsup.models.SimCLR` (backbone and projection head of hidden width
    ``num_ftrs``) trained with :class:`selfsup.loss.DCLLoss`, gathered across processes.

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs).
        num_ftrs: Embedding size.
        out_dim: Projection size.
        temperature: τ of eq. 6 (0.1 in the paper).
    """

    method_name = "dcl"

    def __init__(
        self, backbone: nn.Module, num_ftrs: int, out_dim: int, temperature: float = 0.1
    ) -> None:
        super().__init__(backbone, num_ftrs=num_ftrs, out_dim=out_dim)
        self.criterion = self._criterion(temperature)

    def _criterion(self, temperature: float) -> DCLLoss:
        return DCLLoss(temperature=temperature, gather_distributed=True)

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, 2, self.method_name)
        out0, out1 = self(views[0], views[1])
        loss: Tensor = self.criterion(out0, out1)
        return loss


class DCLWModel(DCLModel):
    """:class:`DCLModel` with :class:`selfsup.loss.DCLWLoss` (σ = 0.5, the paper's)."""

    method_name = "dclw"

    def _criterion(self, temperature: float) -> DCLLoss:
        return DCLWLoss(temperature=temperature, sigma=0.5, gather_distributed=True)


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import SimCLRTransform

    return SimCLRTransform(input_size=input_size)


METHOD = Method(
    name="dcl",
    title="DCL (Yeh et al. 2022)",
    build_model=DCLModel,
    build_transform=_transform,
    # Paper: SimCLR's recipe (LARS, weight decay 1e-6). SGD at lr 0.06 suits small batches;
    # the weight decay stays SimCLR's: with 5e-4 the weights shrink under a loss blind to
    # their scale, the steps grow and training turns unstable within a few dozen steps.
    optimizer=OptimizerDefaults(
        "sgd",
        lr=0.06,
        weight_decay=1e-6,
        source=(
            "measured: weight decay 5e-4 turned training unstable within a few dozen steps; "
            "SimCLR's 1e-6 and lightly's lr 0.06"
        ),
    ),
)

METHOD_W = replace(METHOD, name="dclw", title="DCLW (Yeh et al. 2022)", build_model=DCLWModel)
