"""I-JEPA's predictor: a narrow Vision Transformer from context tokens to target tokens.

"The predictor takes as input the output of the context encoder and, conditioned on positional
tokens (...), predicts the representations of a target block at a specific location"; "we
use a narrow ViT architecture" for it (I-JEPA, Assran et al. 2023,
https://arxiv.org/abs/2301.08243, sec. 3 and appendix A.1: 384 wide, depth 6 (ViT-B) to 12).
For each target block, the context tokens (projected to the predictor's width, plus fixed
sine-cosine position embeddings of their patches) are followed by one learned mask token per
target patch (plus its position embedding); the transformer runs over both and the outputs at
the mask tokens, normalised and projected back to the encoder's width, are the predictions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError
from selfsup.models.modules._transformer import pre_norm_blocks
from selfsup.models.utils import get_2d_sincos_pos_embed

__all__ = ["IJEPAPredictor"]


class IJEPAPredictor(nn.Module):
    """Predict the encoder's representations of target blocks from the context block
    (I-JEPA's predictor, Assran et al. 2023, https://arxiv.org/abs/2301.08243, sec. 3).

    Args:
        embed_dim: Width D of the encoders' tokens (input and output of the predictor).
        predictor_embed_dim: Width of the predictor (384 in the paper; a multiple of 4 and
            of ``num_heads``).
        depth: Transformer blocks (6 for ViT-B in the paper, 12 for ViT-H).
        num_heads: Attention heads.
        mlp_ratio: Width of each block's MLP relative to ``predictor_embed_dim``.

    Examples:
        >>> predictor = IJEPAPredictor(embed_dim=768, predictor_embed_dim=384, depth=6)
        >>> # context: (B, Kc, 768) encoder tokens of the patches in masks_enc (B, Kc)
        >>> pred = predictor(context, masks_enc, masks_pred, grid=(14, 14))
        >>> pred.shape  # (len(masks_pred) * B, Kp, 768)
    """

    def __init__(
        self,
        embed_dim: int,
        predictor_embed_dim: int = 384,
        depth: int = 6,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if predictor_embed_dim % 4 or predictor_embed_dim % num_heads:
            raise ConfigError(
                f"IJEPAPredictor: predictor_embed_dim={predictor_embed_dim} must be a multiple "
                f"of 4 (sine-cosine position embeddings) and of num_heads={num_heads}"
            )
        if depth < 1 or embed_dim < 1 or mlp_ratio <= 0:
            raise ConfigError(
                f"IJEPAPredictor: need embed_dim >= 1, depth >= 1 and mlp_ratio > 0, got "
                f"embed_dim={embed_dim}, depth={depth}, mlp_ratio={mlp_ratio}"
            )
        self.embed_dim = embed_dim
        self.predictor_embed_dim = predictor_embed_dim
        self.predictor_embed = nn.Linear(embed_dim, predictor_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, predictor_embed_dim))
        self.blocks = nn.ModuleList(
            pre_norm_blocks(predictor_embed_dim, num_heads, depth, mlp_ratio)
        )
        self.norm = nn.LayerNorm(predictor_embed_dim)
        self.predictor_proj = nn.Linear(predictor_embed_dim, embed_dim)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(
        self,
        context: Tensor,
        masks_enc: Tensor,
        masks_pred: Sequence[Tensor],
        grid: tuple[int, int],
    ) -> Tensor:
        """Predictions for every target block of every image.

        Args:
            context: (B, Kc, embed_dim) context-encoder tokens of the patches ``masks_enc``.
            masks_enc: (B, Kc) row-major patch indices of the context tokens.
            masks_pred: One (B, Kp) tensor of patch indices per target block.
            grid: (rows, cols) of the patch grid the indices address.

        Returns:
            (len(masks_pred) · B, Kp, embed_dim): the blocks in the order of ``masks_pred``,
            each for images 0..B-1 (``torch.cat`` of the per-block targets matches it).
        """
        batch_size = context.shape[0]
        if context.ndim != 3 or masks_enc.shape != context.shape[:2]:
            raise DataError(
                f"IJEPAPredictor: context must be (B, Kc, D) with masks_enc (B, Kc), got "
                f"{tuple(context.shape)} and {tuple(masks_enc.shape)}"
            )
        if not masks_pred:
            raise DataError("IJEPAPredictor: masks_pred is empty; give one (B, Kp) per block")
        n_patches = grid[0] * grid[1]
        masks = (masks_enc, *masks_pred)
        # Every mask's bounds in one device-to-host copy: this runs at every training step.
        bounds = torch.stack([torch.stack([m.min(), m.max()]) for m in masks]).tolist()
        for m, (low, high) in zip(masks, bounds, strict=True):
            if m.shape[0] != batch_size or high >= n_patches or low < 0:
                raise DataError(
                    f"IJEPAPredictor: patch indices of shape {tuple(m.shape)} must address "
                    f"the {grid[0]}x{grid[1]} grid for {batch_size} images"
                )
        pos = get_2d_sincos_pos_embed(self.predictor_embed_dim, grid).to(context)  # (N, P)
        x = self.predictor_embed(context) + pos[masks_enc]  # (B, Kc, P)
        n_blocks = len(masks_pred)
        targets = torch.cat(list(masks_pred))  # (n_blocks · B, Kp)
        queries = self.mask_token.to(context.dtype) + pos[targets]
        x = torch.cat([x.repeat(n_blocks, 1, 1), queries], dim=1)
        for block in self.blocks:
            x = block(x)
        out: Tensor = self.predictor_proj(self.norm(x[:, -targets.shape[1] :]))
        return out
