"""MAE's decoder: a small Transformer that reconstructs masked patches from visible tokens.

"The MAE decoder is only used during pre-training to perform the image reconstruction task"
(He et al. 2021, https://arxiv.org/abs/2111.06377, sec. 3). Its input is "the full set of
tokens consisting of (i) encoded visible patches, and (ii) mask tokens. Each mask token is a
shared, learned vector that indicates the presence of a missing patch to be predicted. We add
positional embeddings to all tokens in this full set"; "the last layer of the decoder is a
linear projection whose number of output channels equals the number of pixel values in a
patch". The decoder is narrower and shallower than the encoder (512 wide, 8 blocks for
ViT-L).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from selfsup.errors import ConfigError
from selfsup.models.modules._transformer import pre_norm_blocks
from selfsup.models.utils import get_2d_sincos_pos_embed

__all__ = ["MAEDecoder", "MAEDecoderTIMM"]


class MAEDecoder(nn.Module):
    """MAE's decoder (lightly's ``MAEDecoderTIMM``; He et al. 2021,
    https://arxiv.org/abs/2111.06377): embed, decode, predict.

    The blocks are pre-norm Transformer blocks (``x + MSA(LN(x))``, ``x + MLP(LN(x))``, GELU),
    the ViT block that timm's ``Block`` implements, built from ``torch.nn`` so the decoder needs
    no timm. Position embeddings are MAE's fixed 2-D sine-cosine ones, computed for the patch
    grid of each batch (so any input size works), zero for the prefix tokens.

    Args:
        patch_size: p of the encoder's patches.
        in_chans: C, image channels.
        embed_dim: Width of the encoder's tokens.
        decoder_embed_dim: Width of the decoder (a multiple of 4 and of ``decoder_num_heads``).
        decoder_depth: Number of blocks.
        decoder_num_heads: Attention heads per block.
        mlp_ratio: Hidden width of the MLPs relative to ``decoder_embed_dim``.
        num_prefix_tokens: Tokens in front of the patch tokens (class and register tokens).
    """

    def __init__(
        self,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 1024,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        mlp_ratio: float = 4.0,
        num_prefix_tokens: int = 1,
    ) -> None:
        super().__init__()
        if decoder_embed_dim % 4 or decoder_embed_dim % decoder_num_heads:
            raise ConfigError(
                f"MAEDecoder: decoder_embed_dim={decoder_embed_dim} must be a multiple of 4 "
                f"(sine-cosine positions) and of decoder_num_heads={decoder_num_heads}"
            )
        if decoder_depth < 1:
            raise ConfigError(f"MAEDecoder: decoder_depth must be >= 1, got {decoder_depth}")
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.num_prefix_tokens = num_prefix_tokens
        self.decoder_embed_dim = decoder_embed_dim
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_blocks = nn.Sequential(
            *pre_norm_blocks(decoder_embed_dim, decoder_num_heads, decoder_depth, mlp_ratio)
        )
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size**2 * in_chans)
        self._initialize_weights()

    @torch.no_grad()
    def _initialize_weights(self) -> None:
        # MAE: Xavier-uniform linear layers with zero biases, mask token ~ N(0, 0.02²).
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.mask_token, std=0.02)

    def embed(self, tokens: Tensor) -> Tensor:
        """Encoder tokens (B, L, embed_dim) -> decoder tokens (B, L, decoder_embed_dim)."""
        out: Tensor = self.decoder_embed(tokens)
        return out

    def pos_embed(self, grid_size: tuple[int, int], like: Tensor) -> Tensor:
        """(1, P + rows·cols, decoder_embed_dim) fixed positions, dtype and device of ``like``."""
        patches = get_2d_sincos_pos_embed(self.decoder_embed_dim, grid_size)
        prefix = torch.zeros(self.num_prefix_tokens, self.decoder_embed_dim)
        pos = torch.cat([prefix, patches], dim=0).unsqueeze(0)
        return pos.to(dtype=like.dtype, device=like.device)

    def decode(self, tokens: Tensor, grid_size: tuple[int, int] | None = None) -> Tensor:
        """Full decoder sequence (B, P + N, decoder_embed_dim), mask tokens at the masked
        places -> decoded tokens of the same shape. ``grid_size`` (rows, cols) of the N patch
        tokens; None means a square grid."""
        n = tokens.shape[1] - self.num_prefix_tokens
        if grid_size is None:
            side = math.isqrt(n)
            grid_size = (side, side)
        if grid_size[0] * grid_size[1] != n:
            raise ConfigError(
                f"MAEDecoder.decode: grid {grid_size} does not hold the {n} patch tokens of "
                f"a sequence of {tokens.shape[1]} with {self.num_prefix_tokens} prefix tokens"
            )
        x = tokens + self.pos_embed(grid_size, tokens)
        out: Tensor = self.decoder_norm(self.decoder_blocks(x))
        return out

    def predict(self, tokens: Tensor) -> Tensor:
        """Decoded tokens (B, K, decoder_embed_dim) -> pixels (B, K, p·p·C), in the order of
        :func:`selfsup.models.utils.patchify`."""
        out: Tensor = self.decoder_pred(tokens)
        return out

    def forward(self, tokens: Tensor, grid_size: tuple[int, int] | None = None) -> Tensor:
        """Full encoder-width sequence (B, P + N, embed_dim) -> pixels (B, P + N, p·p·C)."""
        return self.predict(self.decode(self.embed(tokens), grid_size))


MAEDecoderTIMM = MAEDecoder
"""lightly's name for the MAE decoder (there built from timm blocks)."""
