"""TiCo (Zhu et al. 2022): invariance and covariance contrast, with a momentum encoder.

An online network (backbone, projector) embeds one view and a momentum network, its
exponential moving average as in BYOL and MoCo, embeds the other; the loss pulls the two
embeddings together and pushes the online embeddings away from a running covariance of past
batches (see :mod:`selfsup.loss.tico_loss`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from selfsup.loss.tico_loss import TiCoLoss
from selfsup.methods._base import (
    Method,
    MomentumEncoderModel,
    OptimizerDefaults,
    TrainProgress,
    check_views,
)
from selfsup.methods.byol import byol_views
from selfsup.models.modules.heads import TiCoProjectionHead


class TiCoModel(MomentumEncoderModel):
    """Online backbone and projector; their momentum copies; :class:`TiCoLoss`.

    Widths keep the paper's ratio: a hidden layer of 16·out_dim (4096 for out_dim 256). The
    momentum rises from 0.99 to 1 by a cosine over training, as for BYOL here. The loss takes
    the online embedding of the first view and the momentum embedding of the second (one
    direction, as lightly's TiCo example), so the running covariance moves once per step.

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs).
        num_ftrs: Embedding size.
        out_dim: Projection size.
        beta: β of the running covariance (0.9).
        rho: ρ, weight of the covariance contrast (20).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_ftrs: int,
        out_dim: int,
        beta: float = 0.9,
        rho: float = 20.0,
    ) -> None:
        super().__init__(backbone, TiCoProjectionHead(num_ftrs, 16 * out_dim, out_dim))
        self.criterion = TiCoLoss(beta=beta, rho=rho, gather_distributed=True)

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, 2, "tico")
        self.update_momentum_encoder(progress.cosine(0.99, 1.0))
        # The running covariance moves only on training steps, not on evaluations.
        train = torch.is_grad_enabled()
        loss: Tensor = self.criterion(
            self.project(views[0]),
            self.project_momentum(views[1]),
            update_covariance_matrix=train,
        )
        return loss


METHOD = Method(
    name="tico",
    title="TiCo (Zhu et al. 2022)",
    build_model=TiCoModel,
    build_transform=byol_views,  # BYOL's two asymmetric views, TiCo's augmentations
    # Paper: LARS at large batches. SGD at lr 0.06 suits small ones; a small weight decay,
    # since the loss only sees directions (see the DCL method's note).
    optimizer=OptimizerDefaults(
        "sgd",
        lr=0.06,
        weight_decay=1e-6,
        source=(
            "lr of lightly's example; weight decay 1e-6 as DCL's (measured: 5e-4 turns a scale-"
            "blind loss unstable)"
        ),
    ),
)
