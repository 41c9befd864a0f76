"""Pre-norm transformer blocks for the narrow decoders and predictors of MAE and I-JEPA."""

from __future__ import annotations

from torch import nn


def pre_norm_blocks(
    dim: int, num_heads: int, depth: int, mlp_ratio: float
) -> list[nn.TransformerEncoderLayer]:
    """``depth`` ViT blocks of width ``dim`` on ``(B, L, dim)`` tokens: layer norm before
    attention and before the GELU MLP (hidden ``dim * mlp_ratio``), no dropout, as in the ViT
    blocks of MAE's decoder and I-JEPA's predictor."""
    return [
        nn.TransformerEncoderLayer(
            dim,
            num_heads,
            dim_feedforward=int(dim * mlp_ratio),
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        for _ in range(depth)
    ]
