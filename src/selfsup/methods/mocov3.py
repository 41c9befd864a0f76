"""MoCo v3 (Chen, Xie and He 2021), ResNet variant: a momentum encoder, no queue.

Two crops of every image are encoded by a query encoder f_q (backbone, projection head and
an extra prediction head) and a key encoder f_k (backbone and projection head, no predictor)
that follows f_q by moving average (sec. 3), and f_q is trained with the symmetrised
contrastive loss of Algorithm 1, ``ctr(q1, k2) + ctr(q2, k1)`` (see
:mod:`selfsup.loss.mocov3_loss`).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from selfsup.loss.mocov3_loss import MoCoV3Loss
from selfsup.methods._base import (
    Method,
    MomentumEncoderModel,
    OptimizerDefaults,
    TrainProgress,
    check_views,
)
from selfsup.methods.byol import byol_views
from selfsup.models.modules.heads import MoCoV3PredictionHead, MoCoV3ProjectionHead


class MoCoV3Model(MomentumEncoderModel):
    """Query encoder (backbone, projector, predictor); momentum key encoder (backbone,
    projector); the symmetrised contrastive loss.

    Widths keep the paper's ratio: hidden layers of 16·out_dim (4096 for out_dim 256). The
    momentum rises from 0.99 to 1 by a cosine over training (the paper's m = 0.99, raised to 1
    by a cosine schedule as in BYOL).

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs).
        num_ftrs: Embedding size.
        out_dim: Projection and prediction size.
        temperature: τ of the contrastive loss (0.2).
    """

    def __init__(
        self, backbone: nn.Module, num_ftrs: int, out_dim: int, temperature: float = 0.2
    ) -> None:
        hidden = 16 * out_dim
        super().__init__(backbone, MoCoV3ProjectionHead(num_ftrs, hidden, out_dim))
        self.prediction_head = MoCoV3PredictionHead(out_dim, hidden, out_dim)
        self.criterion = MoCoV3Loss(temperature=temperature, gather_distributed=True)

    def query(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> queries q (B, out_dim) of the online encoder f_q."""
        q: Tensor = self.prediction_head(self.project(x))
        return q

    def key(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> keys k (B, out_dim) of the momentum encoder f_k."""
        return self.project_momentum(x)

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, 2, "mocov3")
        self.update_momentum_encoder(progress.cosine(0.99, 1.0))
        q1, q2 = self.query(views[0]), self.query(views[1])
        k1, k2 = self.key(views[0]), self.key(views[1])
        loss: Tensor = self.criterion(q1, k2) + self.criterion(q2, k1)
        return loss


METHOD = Method(
    name="mocov3",
    title="MoCo v3 (Chen, Xie and He 2021)",
    build_model=MoCoV3Model,
    # BYOL's two asymmetric views: "Our augmentation follows BYOL" (MoCo v3, appendix A).
    build_transform=byol_views,
    # Paper (ResNet-50): LARS, weight decay 1.5e-6 at batch 4096. SGD at lr 0.06 suits the
    # small batches of single-GPU runs; the weight decay is the paper's.
    optimizer=OptimizerDefaults(
        "sgd",
        lr=0.06,
        weight_decay=1.5e-6,
        source=(
            "paper's weight decay; lr of lightly's examples for small batches (paper: LARS at "
            "batch 4096)"
        ),
    ),
)
