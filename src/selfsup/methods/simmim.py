"""SimMIM (Xie et al. 2021): mask patches with a learned token, predict their raw pixels.

"SimMIM (...) a simple framework for masked image modeling": "random masking of the input
image with a moderately large masked patch size (e.g., 32) makes a strong pre-text task";
"predicting raw pixels of RGB values by direct regression performs no worse than the patch
classification approaches"; "the prediction head can be as light as a linear layer"
(https://arxiv.org/abs/2111.09886, abstract). Unlike MAE, the encoder sees every patch: masked
ones are replaced by "a shared learnable mask token vector" (sec. 3.1).

Loss (sec. 3.1, eq. 1): an ℓ1 loss on the masked pixels only,

    L = 1 / Ω(x_M) · ‖y_M − x_M‖_1

where x, y are the input and predicted pixel values, M the masked pixels and Ω(·) their
number.

Masking (sec. 3.1, "Masking strategy"): square mask cells of ``mask_patch_size`` pixels (32 for
16-pixel ViT patches: cells of 2x2 tokens, the default here) are masked at random, 60% of them
(``mask_ratio``). The backbone must be a Vision Transformer; embeddings are its class token
(or mean patch token), of the ViT's width (``model.num_ftrs`` does not apply).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError
from selfsup.methods._base import (
    Method,
    MethodModel,
    OptimizerDefaults,
    TrainProgress,
    check_views,
)
from selfsup.models.modules.masked_vision_transformer import require_vit
from selfsup.models.utils import check_mask_ratio, patchify

__all__ = ["SimMIMModel", "random_cell_mask", "simmim_loss"]


def random_cell_mask(
    batch_size: int,
    grid_size: tuple[int, int],
    cell: int,
    mask_ratio: float,
    device: torch.device | None = None,
) -> Tensor:
    """SimMIM's random masking: (B, rows·cols) bool, True for masked patch tokens.

    The (rows, cols) patch grid is cut into ``cell`` x ``cell`` cells (the last ones smaller
    where ``cell`` does not divide it); each sample masks ``round(mask_ratio · cells)`` random
    cells (at least 1, at most all but one), every token in a masked cell.
    """
    rows, cols = grid_size
    cell_rows, cell_cols = -(-rows // cell), -(-cols // cell)
    cells = cell_rows * cell_cols
    n_mask = min(max(1, round(mask_ratio * cells)), cells - 1) if cells > 1 else 0
    order = torch.rand(batch_size, cells, device=device).argsort(dim=1)
    masked = torch.zeros(batch_size, cells, dtype=torch.bool, device=device)
    masked.scatter_(1, order[:, :n_mask], True)
    grid = masked.view(batch_size, cell_rows, cell_cols)
    grid = grid.repeat_interleave(cell, 1).repeat_interleave(cell, 2)[:, :rows, :cols]
    return grid.reshape(batch_size, rows * cols)


def simmim_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean absolute error over the masked patches' pixels: predictions and targets
    (B, N, p·p·C), mask (B, N) bool -> scalar (eq. 1)."""
    if pred.shape != target.shape or mask.shape != pred.shape[:2]:
        raise DataError(
            f"simmim_loss: pred {tuple(pred.shape)}, target {tuple(target.shape)} and mask "
            f"{tuple(mask.shape)} do not match"
        )
    weights = mask.unsqueeze(-1).to(pred.dtype)
    n_pixels = weights.sum() * pred.shape[-1]
    return ((pred - target).abs() * weights).sum() / n_pixels.clamp(min=1.0)


class SimMIMModel(MethodModel):
    """A ViT encoder on all patches (masked ones as the mask token) and a linear head.

    Args:
        backbone: A Vision Transformer backbone, possibly followed by ``core.build_model``'s
            linear map, which SimMIM drops (it trains no projection).
        num_ftrs: Unused (the embedding is the ViT's width).
        out_dim: Unused (the head predicts pixels).
        mask_ratio: Fraction of the mask cells masked (0.6), in [0, 1).
        mask_patch_size: Side of a mask cell in pixels, a multiple of the ViT's patch size;
            None: twice the patch size (the paper's 32 for 16-pixel patches).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_ftrs: int = 0,
        out_dim: int = 0,
        mask_ratio: float = 0.6,
        mask_patch_size: int | None = None,
    ) -> None:
        super().__init__()
        del num_ftrs, out_dim
        self.backbone, self.encoder = require_vit(backbone, "simmim")
        self.mask_ratio = check_mask_ratio(mask_ratio, "SimMIMModel")
        p = self.encoder.patch_size
        size = 2 * p if mask_patch_size is None else mask_patch_size
        if isinstance(size, bool) or not isinstance(size, int) or size < p or size % p:
            raise ConfigError(
                f"SimMIMModel: mask_patch_size must be a multiple of the ViT's patch size {p}, "
                f"got {mask_patch_size!r}"
            )
        self.mask_cell = size // p
        # "a linear layer": each token predicts the raw pixels of its patch.
        self.prediction_head = nn.Linear(self.encoder.embed_dim, p * p * 3)

    def reconstruct(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(pred, target, mask)``: predicted and true pixels (B, N, p·p·C) of every patch
        of (B, C, H, W) ``images`` and the (B, N) bool mask of the masked ones."""
        encoder = self.encoder
        grid = encoder.grid_size(images)
        mask = random_cell_mask(
            images.shape[0], grid, self.mask_cell, self.mask_ratio, images.device
        )
        tokens = encoder.encode(images, mask=mask)[:, encoder.num_prefix_tokens :]
        pred: Tensor = self.prediction_head(tokens)
        return pred, patchify(images, encoder.patch_size), mask

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        del progress
        check_views(views, 1, "simmim")
        pred, target, mask = self.reconstruct(views[0])
        return simmim_loss(pred, target, mask)


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import SimMIMTransform

    return SimMIMTransform(input_size=input_size)


METHOD = Method(
    name="simmim",
    title="SimMIM (Xie et al. 2021)",
    build_model=SimMIMModel,
    build_transform=_transform,
    # The paper (ViT-B): AdamW, base lr 8e-4 for batch 2048 (1e-4 per 256), weight decay 0.05.
    optimizer=OptimizerDefaults(
        "adamw",
        lr=1e-4,
        weight_decay=0.05,
        source="paper: AdamW, lr 1e-4 per 256 (8e-4 at 2048), weight decay 0.05",
    ),
    needs_vit=True,
)
