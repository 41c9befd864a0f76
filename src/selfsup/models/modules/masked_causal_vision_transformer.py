"""A Vision Transformer with prefix-causal attention over its patches, and AIM's pixel head.

AIM (El-Nouby et al. 2024, https://arxiv.org/abs/2401.08541, sec. 3) pre-trains a ViT
autoregressively: patch k predicts the pixels of patch k + 1 in raster order, so a patch may
only attend to itself and the patches before it. With *prefix attention* "a prefix length
S ∈ [1, K − 1] is uniformly sampled; the first S patches attend bidirectionally among
themselves" and the loss is computed only on the patches after the prefix, which eases the
switch to bidirectional attention for downstream use. :class:`MaskedCausalVisionTransformer`
runs a torchvision ViT's own layers with that attention mask (lightly's class of this name
builds a timm model instead); the prefix tokens (class token) are part of every prefix.
:class:`AIMPredictionHead` is the MLP that maps each token to the pixels of the next patch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError
from selfsup.models.modules.masked_vision_transformer import (
    MaskedVisionTransformer,
    MaskedVisionTransformerTorchvision,
)

if TYPE_CHECKING:
    from torchvision.models.vision_transformer import EncoderBlock

__all__ = ["AIMPredictionHead", "MaskedCausalVisionTransformer", "prefix_causal_mask"]


def prefix_causal_mask(prefix_length: Tensor, sequence_length: int) -> Tensor:
    """Which keys each query may *not* see, per sample: (B, L, L) bool, True = blocked.

    Query i sees key j if j <= i (causal) or both are inside the sample's prefix
    (j < prefix_length[b], bidirectional); so every query sees the whole prefix.

    Args:
        prefix_length: (B,) tokens of each sample's prefix, in [1, sequence_length].
        sequence_length: L.
    """
    positions = torch.arange(sequence_length, device=prefix_length.device)
    causal = positions[None, :] <= positions[:, None]  # (L, L) [i, j]: j <= i
    in_prefix = positions[None, None, :] < prefix_length[:, None, None]  # (B, 1, L) keys
    return ~(causal[None] | in_prefix)


class MaskedCausalVisionTransformer(nn.Module):
    """A torchvision ViT (through its :class:`MaskedVisionTransformerTorchvision`) whose
    attention is prefix-causal over the token sequence, as AIM trains it (El-Nouby et al.
    2024, https://arxiv.org/abs/2401.08541, sec. 3).

    Shares the ViT's weights. :meth:`encode` returns all tokens (B, P + N, D), prefix tokens
    (the class token) first, as the wrapped ViT's ``encode`` does but with the mask of
    :func:`prefix_causal_mask`.

    Args:
        vit: The masked torchvision ViT (e.g. from
            :func:`~selfsup.models.modules.masked_vision_transformer.require_vit`).
    """

    def __init__(self, vit: MaskedVisionTransformer) -> None:
        super().__init__()
        if not isinstance(vit, MaskedVisionTransformerTorchvision):
            raise ConfigError(
                "MaskedCausalVisionTransformer runs the layers of a torchvision "
                f"VisionTransformer; got {type(vit).__name__} (use a torchvision ViT, e.g. "
                "model.name=vit-tiny-p4, vit-s16 or torchvision/vit_b_16)"
            )
        self.vit = vit

    def encode(self, images: Tensor, prefix_length: Tensor) -> Tensor:
        """Encoded tokens (B, P + N, D) of (B, C, H, W) images.

        Args:
            images: H and W multiples of the patch size.
            prefix_length: (B,) number of *patches* in each sample's bidirectional prefix, in
                [0, N]; the P prefix tokens are added to it.
        """
        vit = self.vit
        grid = vit.grid_size(images)
        n_patches = grid[0] * grid[1]
        if prefix_length.shape != (images.shape[0],) or not bool(
            ((prefix_length >= 0) & (prefix_length <= n_patches)).all()
        ):
            raise DataError(
                f"MaskedCausalVisionTransformer: prefix_length must be ({images.shape[0]},) "
                f"patch counts in [0, {n_patches}], got {prefix_length.tolist()}"
            )
        tokens = vit.add_pos_embed(vit.add_prefix_tokens(vit.images_to_tokens(images)), grid)
        blocked = prefix_causal_mask(prefix_length + vit.num_prefix_tokens, tokens.shape[1])
        encoder = vit.vit.encoder
        x = encoder.dropout(tokens)
        for layer in encoder.layers:
            x = _block_with_mask(layer, x, blocked)
        out: Tensor = encoder.ln(x)
        return out


def _block_with_mask(block: EncoderBlock, x: Tensor, blocked: Tensor) -> Tensor:
    """torchvision's ``EncoderBlock.forward`` with an attention mask: (B, L, D) -> (B, L, D).

    ``blocked`` (B, L, L) is repeated per head, as ``nn.MultiheadAttention`` takes a
    (B · heads, L, L) mask.
    """
    attention: nn.MultiheadAttention = block.self_attention
    mask = blocked.repeat_interleave(attention.num_heads, dim=0)
    h = block.ln_1(x)
    h, _ = attention(h, h, h, attn_mask=mask, need_weights=False)
    x = x + block.dropout(h)
    out: Tensor = x + block.mlp(block.ln_2(x))
    return out


class AIMPredictionHead(nn.Module):
    """AIM's pixel head: each token's feature -> the (normalised) pixels of the next patch.

    "The prediction head is an MLP (...) with 12 blocks" (AIM, El-Nouby et al. 2024,
    https://arxiv.org/abs/2401.08541, sec. 3 and appendix: each a
    residual block of LayerNorm, Linear, GELU, Linear), applied to each token independently
    so that it cannot mix information between patches. Here ``num_blocks`` residual blocks
    of width ``hidden_dim`` (MLP 4 x wider) between an input and an output projection.

    Args:
        input_dim: Token width of the ViT.
        output_dim: Pixels per patch, p · p · C.
        hidden_dim: Width of the residual blocks (the paper: 2048).
        num_blocks: Residual MLP blocks (the paper: 12).
    """

    def __init__(
        self, input_dim: int, output_dim: int, hidden_dim: int = 2048, num_blocks: int = 12
    ) -> None:
        super().__init__()
        if min(input_dim, output_dim, hidden_dim) < 1 or num_blocks < 0:
            raise ConfigError(
                f"AIMPredictionHead: dimensions must be >= 1 and num_blocks >= 0, got "
                f"input_dim={input_dim}, output_dim={output_dim}, hidden_dim={hidden_dim}, "
                f"num_blocks={num_blocks}"
            )
        self.input_proj = nn.Linear(input_dim, hidden_dim)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(hidden_dim),
                nn.Linear(hidden_dim, 4 * hidden_dim),
                nn.GELU(),
                nn.Linear(4 * hidden_dim, hidden_dim),
            )
            for _ in range(num_blocks)
        )
        self.norm = nn.LayerNorm(hidden_dim)
        self.output_proj = nn.Linear(hidden_dim, output_dim)

    def forward(self, x: Tensor) -> Tensor:
        """(..., input_dim) tokens -> (..., output_dim) pixel predictions."""
        h = self.input_proj(x)
        for block in self.blocks:
            h = h + block(h)
        out: Tensor = self.output_proj(self.norm(h))
        return out
