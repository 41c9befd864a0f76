"""SMoG (Pang et al. 2022): synchronous momentum grouping, contrast against groups.

SMoG contrasts instances with groups rather than with other instances, and updates the group
features by momentum in the same step as the network (hence "synchronous"): the momentum
(target) projection of one view picks the group, the online prediction of the other view is
classified into it by a softmax over its cosine similarities to all groups (τ = 0.1), and the
groups move towards the mean online projection of their members in the same step (β = 0.99).
Both views play both roles (the loss is symmetrised, where lightly's example swaps the views
every other batch).

The paper also re-initialises the groups by k-means over recent features, together with the
momentum encoder, every 300 iterations (Table 7b); this model does not: the groups start as
random unit vectors and only follow the momentum update.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.loss._pair import check_positive
from selfsup.methods._base import (
    Method,
    MethodModel,
    OptimizerDefaults,
    TrainProgress,
    check_views,
    momentum_copy,
)
from selfsup.models.modules import SMoGPredictionHead, SMoGProjectionHead, SMoGPrototypes
from selfsup.models.utils import update_momentum

#: Momentum of the target encoder and of the groups (lightly's example; the paper's β).
MOMENTUM = 0.99
GROUP_MOMENTUM = 0.99


class SMoGModel(MethodModel):
    """Online backbone, projector and predictor; momentum copies; K = 4·out_dim groups.

    Hidden widths are 16·out_dim (2048 for out_dim 128, as lightly's example); the paper uses
    3000 groups on ImageNet, lightly's example 300 on CIFAR-10.

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs).
        num_ftrs: Embedding size.
        out_dim: Projection, prediction and group size.
        temperature: τ of the group softmax (0.1).
    """

    def __init__(
        self, backbone: nn.Module, num_ftrs: int, out_dim: int, temperature: float = 0.1
    ) -> None:
        super().__init__()
        hidden = 16 * out_dim
        self.backbone = backbone
        self.projection_head = SMoGProjectionHead(num_ftrs, hidden, out_dim)
        self.prediction_head = SMoGPredictionHead(out_dim, hidden, out_dim)
        self.backbone_momentum = momentum_copy(backbone)
        self.projection_head_momentum = momentum_copy(self.projection_head)
        groups = F.normalize(torch.randn(4 * out_dim, out_dim), dim=1)
        self.smog = SMoGPrototypes(groups, beta=GROUP_MOMENTUM)
        self.temperature = check_positive(temperature, "temperature", "SMoGModel")
        self.criterion = nn.CrossEntropyLoss()

    @torch.no_grad()
    def _target(self, x: Tensor) -> Tensor:
        z: Tensor = self.projection_head_momentum(self.backbone_momentum(x).flatten(start_dim=1))
        return z

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, 2, "smog")
        update_momentum(self.backbone, self.backbone_momentum, MOMENTUM)
        update_momentum(self.projection_head, self.projection_head_momentum, MOMENTUM)
        z = [self.projection_head(self.backbone(v).flatten(start_dim=1)) for v in views]
        p = [self.prediction_head(zi) for zi in z]
        # Groups of the targets are picked before the groups move, as in the paper.
        assignments = [self.smog.assign_groups(self._target(v)) for v in views]
        groups = self.smog.get_updated_group_features(torch.cat(z))
        logits = [self.smog(pi, groups, self.temperature) for pi in p]
        loss: Tensor = 0.5 * (
            self.criterion(logits[0], assignments[1]) + self.criterion(logits[1], assignments[0])
        )
        if torch.is_grad_enabled():
            self.smog.set_group_features(groups)
        return loss


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import SMoGTransform

    # Two crops of SMoG's large-crop augmentations.
    return SMoGTransform(
        crop_sizes=(input_size,),
        crop_counts=(2,),
        crop_min_scales=(0.2,),
        crop_max_scales=(1.0,),
        gaussian_blur_probs=(0.5,),
        gaussian_blur_kernel_sizes=(None,),
        solarize_probs=(0.0,),
    )


METHOD = Method(
    name="smog",
    title="SMoG (Pang et al. 2022)",
    build_model=SMoGModel,
    build_transform=_transform,
    # The paper: LARS at batch 4096; lightly's example: SGD at lr 0.06.
    optimizer=OptimizerDefaults("sgd", lr=0.06, weight_decay=1e-6),
    criterion_keys=("temperature",),
)
