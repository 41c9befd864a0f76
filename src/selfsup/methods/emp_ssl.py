"""EMP-SSL (Tong et al. 2023): many patches per image, coding rate and invariance, one epoch.

"we introduce a simplistic form of self-supervised learning method called
Extreme-Multi-Patch Self-Supervised-Learning (EMP-SSL) that does not rely on many heuristic
techniques for SSL such as weight sharing between the branches, feature-wise normalization,
output quantization, and stop gradient" (abstract): every patch of an image goes through one
network; the loss keeps each patch's batch of embeddings spread (total coding rate) and pulls
every patch towards the mean embedding of its image (cosine invariance).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from selfsup.loss import EMPSSLLoss
from selfsup.methods._base import Method, MethodModel, OptimizerDefaults, TrainProgress, check_views
from selfsup.models.modules import ProjectionHead

#: Patches per image of the registered method. The authors' default is 100; 20 (their
#: smallest setting) keeps a step at 20 forward passes per image for ``selfsup train``.
NUM_PATCHES = 20


def emp_ssl_projection_head(num_ftrs: int, hidden_dim: int, out_dim: int) -> ProjectionHead:
    """The authors' projector: two Linear-BN-ReLU layers of width ``hidden_dim``, then a
    Linear to ``out_dim`` (512 -> 4096 -> 4096 -> 1024 for ResNet-18)."""
    return ProjectionHead(
        [
            (num_ftrs, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU()),
            (hidden_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU()),
            (hidden_dim, out_dim, None, None),
        ]
    )


class EMPSSLModel(MethodModel):
    """Backbone, the authors' projector (hidden width 4·out_dim) and :class:`EMPSSLLoss`.

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs).
        num_ftrs: Embedding size.
        out_dim: Projection size (1024 in the paper).
        tcr_eps: ε of the total coding rate (0.2).
        inv_coef: Weight of the invariance term (200).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_ftrs: int,
        out_dim: int,
        tcr_eps: float = 0.2,
        inv_coef: float = 200.0,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = emp_ssl_projection_head(num_ftrs, 4 * out_dim, out_dim)
        self.criterion = EMPSSLLoss(tcr_eps=tcr_eps, inv_coef=inv_coef)

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, None, "empssl")
        # All patches in one forward pass, as the authors do: batch norm sees every patch.
        x = torch.cat(list(views))
        z = self.projection_head(self.backbone(x).flatten(start_dim=1))
        loss: Tensor = self.criterion(z.chunk(len(views)))
        return loss


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import EMPSSLTransform

    return EMPSSLTransform(num_patches=NUM_PATCHES, input_size=input_size)


METHOD = Method(
    name="empssl",
    title="EMP-SSL (Tong et al. 2023)",
    build_model=EMPSSLModel,
    build_transform=_transform,
    # The authors: LARS around SGD (lr 0.3, nesterov, weight decay 1e-4) at batch 100 with
    # 100 patches; plain SGD with momentum at lightly's lr suits small runs.
    optimizer=OptimizerDefaults(
        "sgd",
        lr=0.06,
        weight_decay=1e-4,
        source="authors' weight decay 1e-4; lr of lightly's examples (authors: LARS, lr 0.3)",
    ),
)
