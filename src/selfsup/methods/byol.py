"""BYOL (Grill et al. 2020): an online network predicts a momentum target network.

"The online network is defined by a set of weights θ and is comprised of three stages: an
encoder f_θ, a projector g_θ and a predictor q_θ (...) The target network has the same
architecture as the online network, but uses a different set of weights ξ (...) ξ ← τξ +
(1 − τ)θ" (sec. 3.1), trained with the normalised MSE between the online prediction of one
view and the target projection of the other, symmetrised (eq. 2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from selfsup.loss import NegativeCosineSimilarity
from selfsup.methods._base import (
    Method,
    MomentumEncoderModel,
    OptimizerDefaults,
    TrainProgress,
    check_views,
)
from selfsup.models.modules.heads import BYOLPredictionHead, BYOLProjectionHead


class BYOLModel(MomentumEncoderModel):
    """Online backbone, projector and predictor; momentum copies of backbone and projector.

    Widths keep the paper's ratio: hidden layers of 16·out_dim (4096 for out_dim 256). The
    target's momentum rises from 0.99 to 1 by a cosine over training (paper: from 0.996 over
    1000 epochs; a lower start suits short runs).

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs).
        num_ftrs: Embedding size.
        out_dim: Projection and prediction size.
    """

    def __init__(self, backbone: nn.Module, num_ftrs: int, out_dim: int) -> None:
        hidden = 16 * out_dim
        super().__init__(backbone, BYOLProjectionHead(num_ftrs, hidden, out_dim))
        self.prediction_head = BYOLPredictionHead(out_dim, hidden, out_dim)
        self.criterion = NegativeCosineSimilarity()

    def _online(self, x: Tensor) -> Tensor:
        p: Tensor = self.prediction_head(self.project(x))
        return p

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, 2, "byol")
        self.update_momentum_encoder(progress.cosine(0.99, 1.0))
        p0, p1 = self._online(views[0]), self._online(views[1])
        z0, z1 = self.project_momentum(views[0]), self.project_momentum(views[1])
        loss: Tensor = 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))
        return loss


def byol_views(input_size: int) -> Callable[[Any], list[Tensor]]:
    """BYOL's two asymmetric views (Table 6), at ``input_size`` pixels."""
    from selfsup.transforms import BYOLTransform, BYOLView1Transform, BYOLView2Transform

    return BYOLTransform(
        view_1_transform=BYOLView1Transform(input_size=input_size),
        view_2_transform=BYOLView2Transform(input_size=input_size),
    )


METHOD = Method(
    name="byol",
    title="BYOL (Grill et al. 2020)",
    build_model=BYOLModel,
    build_transform=byol_views,
    optimizer=OptimizerDefaults(
        "sgd",
        lr=0.06,
        weight_decay=5e-4,
        source=(
            "lightly's BYOL example at batch 256 (paper: LARS, lr 0.2 per 256, weight decay 1.5e-6)"
        ),
    ),
)
