"""SimSiam (Chen & He 2021): a siamese network with a predictor and a stop-gradient.

"L = ½ D(p1, stopgrad(z2)) + ½ D(p2, stopgrad(z1))" (eq. 3), with D the negative cosine
similarity (eq. 1); "the stop-gradient operation plays an essential role in preventing
collapsing" (sec. 4.1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from selfsup.loss import NegativeCosineSimilarity
from selfsup.methods._base import Method, MethodModel, OptimizerDefaults, TrainProgress, check_views
from selfsup.models.modules.heads import SimSiamPredictionHead, SimSiamProjectionHead


class SimSiamModel(MethodModel):
    """Backbone, 3-layer projector of width out_dim, predictor with an out_dim/4 bottleneck
    (2048 and 512 in the paper).

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs).
        num_ftrs: Embedding size.
        out_dim: Projection size.
    """

    def __init__(self, backbone: nn.Module, num_ftrs: int, out_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = SimSiamProjectionHead(num_ftrs, out_dim, out_dim)
        self.prediction_head = SimSiamPredictionHead(out_dim, max(1, out_dim // 4), out_dim)
        self.criterion = NegativeCosineSimilarity()

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, 2, "simsiam")
        z0 = self.projection_head(self.backbone(views[0]).flatten(start_dim=1))
        z1 = self.projection_head(self.backbone(views[1]).flatten(start_dim=1))
        p0, p1 = self.prediction_head(z0), self.prediction_head(z1)
        loss: Tensor = 0.5 * (self.criterion(p0, z1.detach()) + self.criterion(p1, z0.detach()))
        return loss


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import SimSiamTransform

    return SimSiamTransform(input_size=input_size)


METHOD = Method(
    name="simsiam",
    title="SimSiam (Chen & He 2021)",
    build_model=SimSiamModel,
    build_transform=_transform,
    # Paper: lr 0.05 · batch/256, weight decay 1e-4, SGD momentum 0.9.
    optimizer=OptimizerDefaults(
        "sgd",
        lr=0.06,
        weight_decay=1e-4,
        source="paper: SGD, lr 0.05 per 256 (0.06 as lightly's example), weight decay 1e-4",
    ),
)
