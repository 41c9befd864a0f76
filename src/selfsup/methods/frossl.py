"""FroSSL (Skean et al. 2023): Frobenius norms of the covariances against collapse, MSE for
invariance.

"we present the objective function FroSSL which is both sample- and dimension-contrastive up
to embedding normalization. FroSSL works by minimizing covariance Frobenius norms for avoiding
collapse and minimizing mean-squared error for augmentation invariance" (abstract). No
negatives, predictor or momentum encoder: one network embeds every view, and the loss of
:class:`selfsup.loss.FroSSLLoss` does the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from selfsup.loss import FroSSLLoss
from selfsup.methods._base import Method, MethodModel, OptimizerDefaults, TrainProgress, check_views
from selfsup.models.modules import VICRegProjectionHead


class FroSSLModel(MethodModel):
    """Backbone and a 2-layer projector (hidden width 2·out_dim: the authors' 2048 -> 1024).

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs).
        num_ftrs: Embedding size.
        out_dim: Projection size (1024 in the paper).
        invariance_weight: Weight of the invariance (MSE) term (1).
    """

    def __init__(
        self, backbone: nn.Module, num_ftrs: int, out_dim: int, invariance_weight: float = 1.0
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = VICRegProjectionHead(num_ftrs, 2 * out_dim, out_dim, num_layers=2)
        self.criterion = FroSSLLoss(invariance_weight=invariance_weight)

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, 2, "frossl")
        z = [self.projection_head(self.backbone(v).flatten(start_dim=1)) for v in views]
        loss: Tensor = self.criterion(z)
        return loss


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import VICRegTransform

    # VICReg's symmetric augmentations, as the authors' ImageNet-100 runs and lightly's example.
    return VICRegTransform(input_size=input_size)


METHOD = Method(
    name="frossl",
    title="FroSSL (Skean et al. 2023)",
    build_model=FroSSLModel,
    build_transform=_transform,
    # The authors: LARS, lr 0.3 at batch 256, weight decay 1e-4; SGD with momentum at
    # lightly's example lr suits small runs.
    optimizer=OptimizerDefaults(
        "sgd",
        lr=0.06,
        weight_decay=1e-4,
        source=(
            "authors' weight decay 1e-4; lr of lightly's examples (authors: LARS, lr 0.3 per 256)"
        ),
    ),
)
