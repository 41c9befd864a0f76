"""Barlow Twins (Zbontar et al. 2021): make the views' cross-correlation the identity.

"The objective function (...) tries to equate the cross-correlation matrix computed from
twin embeddings to the identity matrix" (sec. 2), with BYOL's augmentations (sec. 3).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from selfsup.loss import BarlowTwinsLoss
from selfsup.methods._base import Method, MethodModel, OptimizerDefaults, TrainProgress, check_views
from selfsup.methods.byol import byol_views
from selfsup.models.modules.heads import BarlowTwinsProjectionHead


class BarlowTwinsModel(MethodModel):
    """Backbone and a 3-layer projector of width out_dim (8192 in the paper).

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs).
        num_ftrs: Embedding size.
        out_dim: Width of every projector layer.
        lambda_param: λ of the redundancy-reduction term (5e-3).
    """

    def __init__(
        self, backbone: nn.Module, num_ftrs: int, out_dim: int, lambda_param: float = 5e-3
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = BarlowTwinsProjectionHead(num_ftrs, out_dim, out_dim)
        self.criterion = BarlowTwinsLoss(lambda_param=lambda_param, gather_distributed=True)

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, 2, "barlowtwins")
        z0 = self.projection_head(self.backbone(views[0]).flatten(start_dim=1))
        z1 = self.projection_head(self.backbone(views[1]).flatten(start_dim=1))
        loss: Tensor = self.criterion(z0, z1)
        return loss


METHOD = Method(
    name="barlowtwins",
    title="Barlow Twins (Zbontar et al. 2021)",
    build_model=BarlowTwinsModel,
    # "We follow the image augmentation pipeline of BYOL" (Barlow Twins, sec. 3).
    build_transform=byol_views,
    # Paper: LARS, lr 0.2 (weights) · batch/256, weight decay 1.5e-6; SGD suits small runs.
    optimizer=OptimizerDefaults(
        "sgd",
        lr=0.06,
        weight_decay=1.5e-6,
        source="paper's weight decay; lr of lightly's example (paper: LARS, lr 0.2 per 256)",
    ),
)
