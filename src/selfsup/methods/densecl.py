"""DenseCL (Wang et al. 2021): MoCo v2 with a second, dense contrastive task on feature maps.

DenseCL adds to MoCo v2 (a momentum key encoder, a queue of keys, InfoNCE on the pooled
features) a dense projection head on the backbone's feature map before pooling: each query
location is contrasted with the key location whose backbone feature is most similar, against
a queue of dense keys (:class:`selfsup.loss.DenseCLLoss`). The feature map comes from
:func:`selfsup.models.feature_map.embedding_and_feature_map`, in the same forward pass as the
embedding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from selfsup.loss import DenseCLLoss
from selfsup.methods._base import (
    Method,
    MomentumEncoderModel,
    OptimizerDefaults,
    TrainProgress,
    check_views,
    momentum_copy,
)
from selfsup.models.feature_map import embedding_and_feature_map, feature_map_channels
from selfsup.models.modules import DenseCLProjectionHead
from selfsup.models.utils import update_momentum


class DenseCLModel(MomentumEncoderModel):
    """Query backbone, global and dense heads; their momentum copies; DenseCLLoss.

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs), with a feature map before
            its pooling (see :mod:`selfsup.models.feature_map`).
        num_ftrs: Embedding size.
        out_dim: Size of the global and dense projections (128 in the paper).
        temperature: τ of both InfoNCE terms (0.2).
        memory_bank_size: Keys per queue (the paper: 65536; 4096 suits small datasets).
        lambda_: λ, weight of the dense loss against the global one (0.5).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_ftrs: int,
        out_dim: int,
        temperature: float = 0.2,
        memory_bank_size: int = 4096,
        lambda_: float = 0.5,
    ) -> None:
        channels = feature_map_channels(backbone)
        super().__init__(backbone, DenseCLProjectionHead(num_ftrs, num_ftrs, out_dim))
        self.dense_projection_head = DenseCLProjectionHead(channels, channels, out_dim)
        self.dense_projection_head_momentum = momentum_copy(self.dense_projection_head)
        self.criterion = DenseCLLoss(
            temperature=temperature,
            memory_bank_size=(memory_bank_size, out_dim),
            lambda_=lambda_,
        )

    @staticmethod
    def _encode(
        backbone: nn.Module, head: nn.Module, dense_head: nn.Module, x: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Global (B, D), dense (B, h·w, D) projections and backbone features (B, h·w, C)."""
        embedding, fmap = embedding_and_feature_map(backbone, x)
        features = fmap.flatten(start_dim=2).transpose(1, 2)
        return head(embedding), dense_head(features), features

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, 2, "densecl")
        m = progress.cosine(0.996, 1.0)
        self.update_momentum_encoder(m)
        update_momentum(self.dense_projection_head, self.dense_projection_head_momentum, m)
        q_global, q_dense, q_features = self._encode(
            self.backbone, self.projection_head, self.dense_projection_head, views[0]
        )
        with torch.no_grad():
            k_global, k_dense, k_features = self._encode(
                self.backbone_momentum,
                self.projection_head_momentum,
                self.dense_projection_head_momentum,
                views[1],
            )
        loss: Tensor = self.criterion(q_global, k_global, q_dense, k_dense, q_features, k_features)
        return loss


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import DenseCLTransform

    return DenseCLTransform(input_size=input_size)


METHOD = Method(
    name="densecl",
    title="DenseCL (Wang et al. 2021)",
    build_model=DenseCLModel,
    build_transform=_transform,
    # The paper: SGD, lr 0.3 at batch 256, weight decay 1e-4 (MoCo v2's); 0.06 for small runs
    # as lightly's example.
    optimizer=OptimizerDefaults(
        "sgd",
        lr=0.06,
        weight_decay=1e-4,
        source="paper's weight decay (MoCo v2's); lr of lightly's example (paper: 0.3 per 256)",
    ),
)
