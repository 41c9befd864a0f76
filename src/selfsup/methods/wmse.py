"""W-MSE (Ermolov et al. 2021): whiten the batch, then pull the views of an image together.

A backbone and a projector embed every view; the embeddings of each view's batch are
whitened (decorrelated and scaled to unit variance) and the loss is the MSE between the
normalised whitened embeddings of the views of an image (see :mod:`selfsup.loss.wmse_loss`).
No negatives, momentum network or predictor: the whitening alone rules out collapse.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from selfsup.loss.wmse_loss import WMSELoss
from selfsup.methods._base import Method, MethodModel, OptimizerDefaults, TrainProgress, check_views
from selfsup.models.modules.heads import ProjectionHead

#: Views per image of the registered method (the paper's d = 2; it also reports d = 4).
NUM_SAMPLES = 2


class WMSEModel(MethodModel):
    """Backbone, projector (Linear-BN-ReLU-Linear, hidden 16·out_dim: the paper's 1024 for
    64-d embeddings) and :class:`WMSELoss` over all views.

    Each view's whole batch is whitened at once (``w_size=None``), with the covariance shrunk
    by ``eps`` towards the identity: a batch of at most ``out_dim`` images has a singular
    covariance, and short single-GPU runs train on such batches. The paper's batches (1024
    images, 64-d embeddings, sub-batches of 128) need no shrinkage; set ``eps=0`` for them.

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs).
        num_ftrs: Embedding size.
        out_dim: Size of the whitened embeddings.
        eps: Shrinkage ε of the covariance (0.01).
    """

    def __init__(self, backbone: nn.Module, num_ftrs: int, out_dim: int, eps: float = 0.01) -> None:
        super().__init__()
        hidden = 16 * out_dim
        self.backbone = backbone
        self.projection_head = ProjectionHead(
            [
                (num_ftrs, hidden, nn.BatchNorm1d(hidden), nn.ReLU()),
                (hidden, out_dim, None, None),
            ]
        )
        self.criterion = WMSELoss(
            embedding_dim=out_dim, eps=eps, w_size=None, num_samples=NUM_SAMPLES
        )

    def embed(self, views: Sequence[Tensor]) -> Tensor:
        """d view batches, each (B, C, H, W) -> (d·B, out_dim), the views one after another."""
        features = self.backbone(torch.cat(list(views))).flatten(start_dim=1)
        z: Tensor = self.projection_head(features)
        return z

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, NUM_SAMPLES, "wmse")
        loss: Tensor = self.criterion(self.embed(views))
        return loss


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import WMSETransform

    return WMSETransform(num_samples=NUM_SAMPLES, input_size=input_size)


METHOD = Method(
    name="wmse",
    title="W-MSE (Ermolov et al. 2021)",
    build_model=WMSEModel,
    build_transform=_transform,
    # The authors train with Adam and a small L2 penalty.
    optimizer=OptimizerDefaults(
        "adamw",
        lr=1e-3,
        weight_decay=1e-6,
        source="authors: Adam at lr 1e-3 with a small L2 penalty",
    ),
)
