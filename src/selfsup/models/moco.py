"""MoCo: a query encoder and its momentum (EMA) copy as key encoder (legacy lightly model).

K. He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", 2019,
https://arxiv.org/abs/1911.05722, with the MoCo v2 MLP head. Train it with
``NTXentLoss(memory_bank_size=4096)``: the memory bank plays the role of MoCo's queue of keys.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from selfsup.models.modules.heads import MoCoProjectionHead
from selfsup.models.simclr import ModelOutput
from selfsup.models.utils import (
    batch_shuffle,
    batch_unshuffle,
    deactivate_requires_grad,
    update_momentum,
)

__all__ = ["MoCo"]


class MoCo(nn.Module):
    """Query encoder (backbone + :class:`MoCoProjectionHead`) and its momentum copy.

    "θ_k ← m θ_k + (1 − m) θ_q. Here m ∈ [0, 1) is a momentum coefficient. Only the
    parameters θ_q are updated by back-propagation." (MoCo, eq. 2)

    Every forward call first moves the momentum encoder (``backbone_momentum``,
    ``projection_head_momentum``) one EMA step towards the query encoder, then embeds
    ``x0`` with the query encoder and ``x1`` with the momentum encoder, without gradients.
    The momentum modules are deep copies made at construction, with ``requires_grad``
    False, so the optimizer never changes them.

    With ``batch_shuffle=True`` the keys ``x1`` are permuted before the momentum encoder and
    the outputs permuted back (MoCo's "shuffling BN", so that BatchNorm statistics cannot
    leak which query matches which key). On a single device a plain BatchNorm sees the same
    batch either way; the shuffle takes effect with a backbone using
    :class:`selfsup.models.resnet.SplitBatchNorm` (``ResNetGenerator(..., num_splits=8)``).

    Args:
        backbone: Maps images (B, 3, H, W) to ``num_ftrs`` features per image, e.g. (B,
            num_ftrs) or (B, num_ftrs, 1, 1); they are flattened from dim 1.
        num_ftrs: Size of the backbone's flattened output.
        out_dim: Size of the projection.
        m: Momentum of the key encoder, in [0, 1].
        batch_shuffle: Shuffle the keys' batch for the momentum encoder.

    Examples:
        >>> model = MoCo(backbone, num_ftrs=512)
        >>> criterion = NTXentLoss(memory_bank_size=4096)
        >>> y0, y1 = model(x0, x1)
        >>> loss = criterion(y0, y1)
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_ftrs: int = 32,
        out_dim: int = 128,
        m: float = 0.999,
        batch_shuffle: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= m <= 1.0:
            raise ValueError(f"MoCo momentum m must be in [0, 1], got {m}")
        self.num_ftrs = num_ftrs
        self.out_dim = out_dim
        self.m = m
        self.batch_shuffle = batch_shuffle
        self.backbone = backbone
        self.projection_head = MoCoProjectionHead(num_ftrs, num_ftrs, out_dim)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    @property
    def momentum_backbone(self) -> nn.Module:
        """Alias of ``backbone_momentum`` (lightly's name in the legacy models)."""
        return self.backbone_momentum

    @property
    def momentum_projection_head(self) -> nn.Module:
        """Alias of ``projection_head_momentum`` (lightly's name in the legacy models)."""
        return self.projection_head_momentum

    def momentum_update(self, m: float | None = None) -> None:
        """One EMA step of the momentum encoder towards the query encoder (default ``self.m``)."""
        momentum = self.m if m is None else m
        update_momentum(self.backbone, self.backbone_momentum, momentum)
        update_momentum(self.projection_head, self.projection_head_momentum, momentum)

    def _features(self, module: nn.Module, x: Tensor) -> Tensor:
        features: Tensor = module(x).flatten(start_dim=1)
        if features.shape[1] != self.num_ftrs:
            raise ValueError(
                f"the backbone returns {features.shape[1]} features per image but MoCo was "
                f"built with num_ftrs={self.num_ftrs}; pass num_ftrs={features.shape[1]}"
            )
        return features

    def forward(
        self, x0: Tensor, x1: Tensor | None = None, return_features: bool = False
    ) -> ModelOutput:
        """Momentum update, then queries from ``x0`` and keys from ``x1``.

        Args:
            x0: Query views, (B, 3, H, W).
            x1: Optional key views, (B, 3, H, W), embedded by the momentum encoder.
            return_features: Also return the backbone features (B, num_ftrs).

        Returns:
            ``out0`` (B, out_dim) if ``x1`` is None, else ``(out0, out1)``; ``out1`` carries
            no gradient. With ``return_features`` every ``out`` becomes ``(out, features)``.
        """
        self.momentum_update()
        f0 = self._features(self.backbone, x0)
        out0: Tensor = self.projection_head(f0)
        if x1 is None:
            return (out0, f0) if return_features else out0
        with torch.no_grad():
            shuffle_idx: Tensor | None = None
            if self.batch_shuffle:
                x1, shuffle_idx = batch_shuffle(x1)
            f1 = self._features(self.backbone_momentum, x1)
            out1: Tensor = self.projection_head_momentum(f1)
            if shuffle_idx is not None:
                f1 = batch_unshuffle(f1, shuffle_idx)
                out1 = batch_unshuffle(out1, shuffle_idx)
        if return_features:
            return (out0, f0), (out1.detach(), f1.detach())
        return out0, out1.detach()
