"""Masking for masked-image SSL methods (MSN): drop a ViT's patch tokens, or blank image patches.

MSN "randomly drops patch tokens" of the anchor views before the encoder (Assran et al. 2022,
https://arxiv.org/abs/2204.07141, sec. 3): a ViT then processes only the kept tokens (and its
class token), which also makes the anchors cheaper. :class:`MaskedVisionTransformerTorchvision`
does that for torchvision's ``VisionTransformer`` (lightly's class of the same name), with the
position embeddings interpolated to the input's patch grid so that small (focal) views work
too. A convolutional backbone has no tokens to drop: :func:`mask_image_patches` blanks (sets to
zero, the mean colour after normalisation) the same fraction of square image patches instead,
the closest equivalent it can see.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError

if TYPE_CHECKING:
    from torchvision.models import VisionTransformer

__all__ = [
    "MaskedVisionTransformerTorchvision",
    "as_torchvision_vit",
    "mask_image_patches",
    "random_token_mask",
]


def check_mask_ratio(mask_ratio: object, owner: str) -> float:
    """``mask_ratio`` as a float in [0, 1), else a ConfigError naming it."""
    if (
        isinstance(mask_ratio, bool)
        or not isinstance(mask_ratio, int | float)
        or not 0 <= mask_ratio < 1
    ):
        raise ConfigError(f"{owner}: mask_ratio must be a number in [0, 1), got {mask_ratio!r}")
    return float(mask_ratio)


def random_token_mask(
    batch_size: int, num_tokens: int, mask_ratio: float, device: torch.device | None = None
) -> Tensor:
    """(B, n_keep) sorted indices of the tokens to keep, a random subset per sample.

    ``n_keep = num_tokens − round(mask_ratio · num_tokens)``, at least 1.
    """
    n_keep = max(1, num_tokens - round(mask_ratio * num_tokens))
    noise = torch.rand(batch_size, num_tokens, device=device)
    keep: Tensor = noise.argsort(dim=1)[:, :n_keep].sort(dim=1).values
    return keep


def mask_image_patches(images: Tensor, mask_ratio: float, patch_size: int) -> Tensor:
    """(B, C, H, W) images with a random ``mask_ratio`` of their patch grid set to zero.

    The grid has ceil(H / patch_size) x ceil(W / patch_size) cells; each image loses
    ``round(mask_ratio · cells)`` of them. The input is not modified.
    """
    if images.ndim != 4:
        raise DataError(f"mask_image_patches: expected (B, C, H, W) images, got {images.shape}")
    b, _, h, w = images.shape
    gh, gw = math.ceil(h / patch_size), math.ceil(w / patch_size)
    cells = gh * gw
    n_masked = min(cells - 1, round(mask_ratio * cells))
    if n_masked <= 0:
        return images
    order = torch.rand(b, cells, device=images.device).argsort(dim=1)
    keep = torch.ones(b, cells, device=images.device, dtype=images.dtype)
    keep.scatter_(1, order[:, :n_masked], 0.0)
    grid = keep.view(b, 1, gh, gw)
    pixels = grid.repeat_interleave(patch_size, 2).repeat_interleave(patch_size, 3)
    return images * pixels[:, :, :h, :w]


def as_torchvision_vit(backbone: nn.Module) -> VisionTransformer | None:
    """The torchvision ``VisionTransformer`` that ``backbone`` is (or wraps as a selfsup
    ``Backbone``), or None."""
    from torchvision.models import VisionTransformer

    from selfsup.models.backbones import Backbone

    module = backbone.features if isinstance(backbone, Backbone) else backbone
    return module if isinstance(module, VisionTransformer) else None


class MaskedVisionTransformerTorchvision(nn.Module):
    """A torchvision ViT run on a subset of its patch tokens (lightly's class of that name),
    for MSN's masked anchors (Assran et al. 2022, https://arxiv.org/abs/2204.07141).

    Shares the wrapped ViT's weights (no copy). ``forward(images, idx_keep)`` embeds the
    patches, adds the position embeddings (bicubically interpolated when the input's patch
    grid differs from the ViT's), keeps the patch tokens ``idx_keep`` (all when None),
    prepends the class token and returns its final (B, hidden_dim) representation.

    Args:
        vit: A torchvision ``VisionTransformer`` (random weights are fine).
    """

    def __init__(self, vit: VisionTransformer) -> None:
        super().__init__()
        self.vit = vit

    def _position_embedding(self, grid_h: int, grid_w: int) -> Tensor:
        pos: Tensor = self.vit.encoder.pos_embedding  # (1, 1 + n, D)
        cls_pos, patch_pos = pos[:, :1], pos[:, 1:]
        side = math.isqrt(patch_pos.shape[1])
        if (side, side) == (grid_h, grid_w):
            return pos
        grid = patch_pos.reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        return torch.cat([cls_pos, grid.flatten(2).transpose(1, 2)], dim=1)

    def forward(self, images: Tensor, idx_keep: Tensor | None = None) -> Tensor:
        """(B, 3, H, W) images (H, W multiples of the patch size) -> (B, hidden_dim)."""
        p = self.vit.patch_size
        if images.ndim != 4 or images.shape[2] % p or images.shape[3] % p:
            raise DataError(
                f"MaskedVisionTransformerTorchvision: expected (B, 3, H, W) images with H and "
                f"W multiples of the patch size {p}, got shape {tuple(images.shape)}"
            )
        patches = self.vit.conv_proj(images)  # (B, D, h, w)
        grid_h, grid_w = patches.shape[2:]
        tokens = patches.flatten(2).transpose(1, 2)  # (B, h·w, D)
        cls = self.vit.class_token.expand(tokens.shape[0], -1, -1)
        x = torch.cat([cls, tokens], dim=1) + self._position_embedding(grid_h, grid_w)
        if idx_keep is not None:
            index = idx_keep.unsqueeze(-1).expand(-1, -1, x.shape[2])
            x = torch.cat([x[:, :1], x[:, 1:].gather(1, index)], dim=1)
        encoder = self.vit.encoder
        x = encoder.ln(encoder.layers(encoder.dropout(x)))
        out: Tensor = x[:, 0]
        return out
