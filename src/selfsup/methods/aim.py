"""AIM (El-Nouby et al. 2024): autoregressive image models, a ViT that predicts the next
patch's pixels from the patches before it.

"We pre-train (...) with an autoregressive objective: (...) min_θ 1/K Σ_{k=1}^{K}
||x̂_k(θ) − x_k||²₂" over the patches in raster order, "where x̂_k(θ) is the prediction of the
k-th patch from the patches before it" and the targets are "normalized pixel values" of each
patch (AIM, https://arxiv.org/abs/2401.08541, sec. 3, eq. 2). With prefix attention a prefix
length S ∈ [1, K − 1] is drawn for each image; its first S patches attend bidirectionally
and the loss covers only the patches after the prefix. The backbone runs prefix-causally
through :class:`~selfsup.models.modules.masked_causal_vision_transformer.
MaskedCausalVisionTransformer`, and an MLP head
(:class:`~selfsup.models.modules.masked_causal_vision_transformer.AIMPredictionHead`) maps
the output of patch k to the pixels of patch k + 1. Embeddings after training are the ViT's
ordinary (bidirectional) pooled tokens, the downstream use prefix attention prepares for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from selfsup.methods._base import (
    Method,
    MethodModel,
    OptimizerDefaults,
    TrainProgress,
    check_views,
)
from selfsup.models.modules.masked_causal_vision_transformer import (
    AIMPredictionHead,
    MaskedCausalVisionTransformer,
)
from selfsup.models.modules.masked_vision_transformer import require_vit
from selfsup.models.utils import patchify

__all__ = ["METHOD", "AIMModel", "normalized_pixel_targets"]


def normalized_pixel_targets(images: Tensor, patch_size: int, eps: float = 1e-6) -> Tensor:
    """(B, C, H, W) images -> (B, N, p·p·C) patches, each normalised to zero mean and unit
    variance over its own pixels (MAE's and AIM's normalised-pixel targets)."""
    patches = patchify(images, patch_size)
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True, unbiased=False)
    return (patches - mean) / torch.sqrt(var + eps)


def aim_loss(predictions: Tensor, targets: Tensor, prefix_length: Tensor) -> Tensor:
    """Eq. 2 over the patches after each image's prefix.

    Args:
        predictions: (B, N, P) head outputs of the N patch tokens; token k predicts patch
            k + 1, so the last token predicts nothing.
        targets: (B, N, P) normalised pixels of the N patches.
        prefix_length: (B,) prefix patches S_b in [1, N − 1]; patches S_b .. N − 1 count.

    Returns:
        Mean over the counted patches of their mean squared pixel error.
    """
    n = targets.shape[1]
    error = (predictions[:, :-1] - targets[:, 1:]).square().mean(dim=-1)  # (B, N - 1)
    target_index = torch.arange(1, n, device=targets.device)
    counted = target_index[None, :] >= prefix_length[:, None]
    return error[counted].mean()


class AIMModel(MethodModel):
    """A ViT run prefix-causally, and the pixel prediction head.

    Args:
        backbone: A torchvision Vision Transformer, possibly followed by a projection, which is
            dropped (see :func:`~selfsup.models.modules.masked_vision_transformer.require_vit`).
        num_ftrs: Unused: the head reads the ViT's own tokens.
        out_dim: Width of the head's residual blocks (the paper: 2048).
        head_blocks: Residual blocks of the head (the paper: 12; 2 by default, for small
            models).
    """

    def __init__(
        self, backbone: nn.Module, num_ftrs: int, out_dim: int, head_blocks: int = 2
    ) -> None:
        super().__init__()
        del num_ftrs
        self.backbone, masked = require_vit(backbone, "aim")
        # AIM masks nothing: the ViT's mask token is frozen, so that DDP does not wait for its
        # gradient.
        masked.mask_token.requires_grad_(False)
        self.causal_vit = MaskedCausalVisionTransformer(masked)
        self.patch_size = masked.patch_size
        pixels = self.patch_size * self.patch_size * 3
        self.head = AIMPredictionHead(masked.embed_dim, pixels, out_dim, head_blocks)

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        del progress
        check_views(views, 1, "aim")
        x = views[0]
        vit = self.causal_vit.vit
        rows, cols = vit.grid_size(x)
        n = rows * cols
        # S ~ U{1, ..., N − 1} per image (a single-patch image has nothing to predict).
        prefix = torch.randint(1, max(n, 2), (x.shape[0],), device=x.device).clamp(max=n - 1)
        tokens = self.causal_vit.encode(x, prefix)[:, vit.num_prefix_tokens :]
        predictions = self.head(tokens)
        return aim_loss(predictions, normalized_pixel_targets(x, self.patch_size), prefix)


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import AIMTransform, MultiViewTransform

    # The view transform returns one tensor; the trainer's collate wants a list of views.
    return MultiViewTransform([AIMTransform(input_size=input_size)])


METHOD = Method(
    name="aim",
    title="AIM (El-Nouby et al. 2024)",
    build_model=AIMModel,
    build_transform=_transform,
    # The paper: AdamW (β2 0.95), lr 1e-3 after a warm-up, cosine decay, weight decay 0.05.
    # Without a warm-up (the trainer's default) 1e-3 collapsed a fresh vit-tiny-p4's
    # embeddings within 4 steps (std·sqrt(D) 0.18 -> 0.04); 1.5e-4 kept them (0.13). One-off
    # hand runs for commit 8b43af6 (contract tests' model, std_of_l2_normalized); no script.
    optimizer=OptimizerDefaults(
        "adamw",
        lr=1.5e-4,
        weight_decay=0.05,
        source=(
            "measured: the paper's 1e-3 collapsed a fresh vit-tiny-p4 in 4 steps without warm-up;"
            " 1.5e-4 kept it (paper's weight decay 0.05)"
        ),
    ),
    needs_vit=True,
)
