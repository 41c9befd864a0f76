"""I-JEPA (Assran et al. 2023): predict the representations of target blocks of an image from
a context block of the same image, in representation space, on a Vision Transformer.

"from a single context block, predict the representations of various target blocks in the
same image" (I-JEPA, https://arxiv.org/abs/2301.08243, abstract). One view per image; each
batch draws its blocks with :func:`selfsup.data.collate.sample_ijepa_masks` (4 targets of
scale 0.15-0.2 and aspect 0.75-1.5, one context block of scale 0.85-1.0 minus the targets).
The context encoder (``backbone``) sees only the context patches; the target encoder, an
exponential moving average of it (momentum 0.996 -> 1), sees the whole image, and its
layer-normalised output tokens at the target blocks are the targets. A narrow predictor
(:class:`selfsup.models.modules.ijepa.IJEPAPredictor`) maps the context tokens plus
positional mask tokens to those targets; the loss is "the average L2 distance between the
predicted patch-level representations ŝ_y(i) and the target patch-level representation
s_y(i)" (eq. 1), or the smooth L1 of the authors' code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.data.collate import sample_ijepa_masks
from selfsup.errors import ConfigError
from selfsup.methods._base import (
    Method,
    MethodModel,
    OptimizerDefaults,
    TrainProgress,
    check_views,
    momentum_copy,
)
from selfsup.models.modules.ijepa import IJEPAPredictor
from selfsup.models.modules.masked_vision_transformer import require_vit
from selfsup.models.utils import deactivate_requires_grad, get_at_index, update_momentum

__all__ = ["METHOD", "IJEPAModel"]


class IJEPAModel(MethodModel):
    """Context encoder (``backbone``), its momentum target encoder and the predictor.

    Args:
        backbone: A Vision Transformer, possibly followed by a projection, which is dropped
            (see :func:`~selfsup.models.modules.masked_vision_transformer.require_vit`); its
            pooled tokens are the embeddings after training.
        num_ftrs: Unused: the predictor works at the ViT's token width.
        out_dim: Width of the predictor (a multiple of 4 and of its 4 heads; the paper: 384);
            I-JEPA has no projection head.
        predictor_depth: Transformer blocks of the predictor (the paper: 6 to 12).
        loss: ``l2`` (mean squared error, eq. 1) or ``smooth_l1`` (the authors' code).
        enc_mask_scale, pred_mask_scale, aspect_ratio, n_pred, min_keep: The block sampling
            of :func:`selfsup.data.collate.sample_ijepa_masks`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_ftrs: int,
        out_dim: int,
        predictor_depth: int = 2,
        loss: Literal["l2", "smooth_l1"] = "l2",
        enc_mask_scale: tuple[float, float] = (0.85, 1.0),
        pred_mask_scale: tuple[float, float] = (0.15, 0.2),
        aspect_ratio: tuple[float, float] = (0.75, 1.5),
        n_pred: int = 4,
        min_keep: int = 4,
    ) -> None:
        super().__init__()
        if loss not in ("l2", "smooth_l1"):
            raise ConfigError(f"ijepa: loss must be 'l2' or 'smooth_l1', got {loss!r}")
        # A projection after the ViT (as selfsup.core builds models) is dropped: I-JEPA
        # predicts and embeds the ViT's own tokens.
        self.backbone, self.encoder = require_vit(backbone, "ijepa")
        # The context encoder drops the other patches and never uses the ViT's mask token
        # (the predictor has its own): frozen, so that DDP does not wait for its gradient.
        self.encoder.mask_token.requires_grad_(False)
        del num_ftrs
        self.target_backbone = momentum_copy(self.backbone)
        target_encoder = require_vit(self.target_backbone, "ijepa")[1]
        deactivate_requires_grad(target_encoder)
        self.target_encoder = target_encoder
        width = max(4, out_dim // 4 * 4)
        self.predictor = IJEPAPredictor(
            self.encoder.embed_dim, predictor_embed_dim=width, depth=predictor_depth, num_heads=4
        )
        self.loss = loss
        self.mask_settings: dict[str, Any] = {
            "enc_mask_scale": enc_mask_scale,
            "pred_mask_scale": pred_mask_scale,
            "aspect_ratio": aspect_ratio,
            "n_pred": n_pred,
            "min_keep": min_keep,
        }

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, 1, "ijepa")
        x = views[0]
        update_momentum(self.backbone, self.target_backbone, progress.cosine(0.996, 1.0))
        encoder, target_encoder = self.encoder, self.target_encoder
        grid = encoder.grid_size(x)
        masks_enc, masks_pred = sample_ijepa_masks(x.shape[0], grid, **self.mask_settings)
        context_patches = masks_enc[0].to(x.device)
        masks_pred = [m.to(x.device) for m in masks_pred]
        n_prefix = encoder.num_prefix_tokens

        with torch.no_grad():
            tokens = target_encoder.encode(x)[:, n_prefix:]  # (B, N, D)
            # The authors normalise the target tokens over their features before picking the
            # blocks, which keeps the targets on one scale as the encoder drifts.
            tokens = F.layer_norm(tokens, tokens.shape[-1:])
            targets = torch.cat([get_at_index(tokens, m) for m in masks_pred])

        # Only the context patches (and the prefix tokens, first) enter the context encoder.
        prefix = torch.arange(n_prefix, device=x.device).expand(x.shape[0], -1)
        keep = torch.cat([prefix, context_patches + n_prefix], dim=1)
        context = encoder.encode(x, idx_keep=keep)[:, n_prefix:]
        predictions = self.predictor(context, context_patches, masks_pred, grid)
        if self.loss == "smooth_l1":
            return F.smooth_l1_loss(predictions, targets)
        return F.mse_loss(predictions, targets)


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import IJEPATransform, MultiViewTransform

    # The view transform returns one tensor; the trainer's collate wants a list of views.
    return MultiViewTransform([IJEPATransform(input_size=input_size)])


METHOD = Method(
    name="ijepa",
    title="I-JEPA (Assran et al. 2023)",
    build_model=IJEPAModel,
    build_transform=_transform,
    # The paper: AdamW, lr warmed up from 1e-4 to 1e-3 over 15 epochs, weight decay 0.04 ->
    # 0.4. Without a warm-up (the trainer's default) 1e-3 collapsed a fresh vit-tiny-p4's
    # embeddings within 4 steps (std·sqrt(D) 0.18 -> 0.04); 1.5e-4 kept them (0.12). One-off
    # hand runs for commit 8b43af6 (contract tests' model, std_of_l2_normalized); no script.
    optimizer=OptimizerDefaults(
        "adamw",
        lr=1.5e-4,
        weight_decay=0.04,
        source=(
            "measured: the paper's 1e-3 collapsed a fresh vit-tiny-p4 in 4 steps without warm-up;"
            " 1.5e-4 kept it (paper's weight decay 0.04)"
        ),
    ),
    needs_vit=True,
)
