"""iBOT (Zhou et al. 2022): DINO's self-distillation of the class token plus masked image
modelling with an online tokenizer, on a Vision Transformer.

"We perform self-distillation on masked patch tokens and take the teacher network as the
online tokenizer, along with self-distillation on the class token to acquire visual
semantics" (iBOT, https://arxiv.org/abs/2111.07832, abstract). The student sees the global
views with blockwise-masked patches (replaced by the ViT's mask token) and the local views
unmasked; the teacher, an exponential moving average of the student, sees the unmasked global
views. The loss is DINO's cross-entropy on the class tokens (:class:`selfsup.loss.DINOLoss`,
every global teacher view against every other student view) plus iBOT's on the masked patch
tokens of the same global view (:class:`selfsup.loss.IBOTPatchLoss`), with one head shared by
class and patch tokens, as the paper does.

DINOv2 (:mod:`selfsup.methods.dinov2`) is this model with a separate patch head and the KoLeo
regulariser; both live here as :class:`IBOTModel`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError
from selfsup.loss import DINOLoss, IBOTPatchLoss, KoLeoLoss
from selfsup.loss.dino_loss import teacher_temperature
from selfsup.methods._base import (
    Method,
    MomentumEncoderModel,
    OptimizerDefaults,
    TrainProgress,
    check_views,
    local_crop_size,
)
from selfsup.models.modules.heads import DINOv2ProjectionHead
from selfsup.models.modules.masked_vision_transformer import require_vit
from selfsup.models.utils import deactivate_requires_grad, random_block_mask

__all__ = ["METHOD", "IBOTHeads", "IBOTModel"]

#: Global views come first in the transform's output; only they are masked and seen by the
#: teacher.
N_GLOBAL_VIEWS = 2


class IBOTHeads(nn.Module):
    """The class-token head and the patch-token head (the same module when shared).

    Args:
        dino_head: Class tokens (N, D) -> (N, K) logits.
        ibot_head: Patch tokens (M, D) -> (M, K') logits, or None to share ``dino_head``.
    """

    def __init__(self, dino_head: DINOv2ProjectionHead, ibot_head: DINOv2ProjectionHead | None):
        super().__init__()
        self.dino_head = dino_head
        self.ibot_head = dino_head if ibot_head is None else ibot_head

    def cancel_last_layer_gradients(self, epoch: int) -> None:
        """Drop the last layers' gradients during the frozen epochs (see DINO's head)."""
        self.dino_head.cancel_last_layer_gradients(epoch)
        self.ibot_head.cancel_last_layer_gradients(epoch)


def _fit_to_patches(x: Tensor, patch_size: int) -> Tensor:
    """A view resized (bicubic) so that its sides are multiples of the patch size, at least
    one patch: multi-crop's local views (96 px for a 224 px input) need not be."""
    h, w = x.shape[2:]
    new_h = max(patch_size, round(h / patch_size) * patch_size)
    new_w = max(patch_size, round(w / patch_size) * patch_size)
    if (new_h, new_w) == (h, w):
        return x
    return F.interpolate(x, size=(new_h, new_w), mode="bicubic", align_corners=False)


class IBOTModel(MomentumEncoderModel):
    """Student ViT and heads, their momentum teacher, and the DINO, iBOT and KoLeo losses.

    Head sizes scale with ``out_dim`` as the bottleneck, as :class:`DINOModel` does: hidden
    8·out_dim and K = 16·out_dim prototypes for the class and the patch head (the papers'
    ViTs: 256-d bottleneck, 2048 hidden, K = 8192 (iBOT) or 65536 (DINOv2)). The last layers
    are frozen in the first epoch. The teacher temperature warms up from 0.04 to 0.07 over
    the first 30 epochs for both losses, as in both papers.

    Args:
        backbone: A Vision Transformer, possibly followed by a projection, which is dropped
            (see :func:`~selfsup.models.modules.masked_vision_transformer.require_vit`);
            embeddings are the ViT's pooled tokens (the class token by default).
        num_ftrs: Unused: the heads take the ViT's token width.
        out_dim: Bottleneck size of the heads.
        separate_heads: One head for patch tokens and another for class tokens (DINOv2),
            instead of one shared head (iBOT).
        koleo_weight: Weight of the KoLeo regulariser on the student's global class tokens
            (DINOv2: 0.1; iBOT: 0).
        mask_probability: Fraction of the global views that get a mask (0.5).
        min_mask_ratio, max_mask_ratio: Range of the fraction of a masked view's patches that
            are masked ((0.1, 0.5)), in blocks (BEiT's blockwise masking).
        method: Registry name, for error messages.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_ftrs: int,
        out_dim: int,
        separate_heads: bool = False,
        koleo_weight: float = 0.0,
        mask_probability: float = 0.5,
        min_mask_ratio: float = 0.1,
        max_mask_ratio: float = 0.5,
        method: str = "ibot",
    ) -> None:
        # A ViT followed by a projection to model.num_ftrs (as selfsup.core builds models)
        # loses the projection: the heads read the ViT's own tokens, of its own width.
        vit, student_vit = require_vit(backbone, method)
        del num_ftrs
        width = student_vit.embed_dim
        if not (0.0 <= mask_probability <= 1.0 and 0.0 <= min_mask_ratio <= max_mask_ratio < 1.0):
            raise ConfigError(
                f"{method}: need 0 <= mask_probability <= 1 and 0 <= min_mask_ratio <= "
                f"max_mask_ratio < 1, got mask_probability={mask_probability!r}, "
                f"min_mask_ratio={min_mask_ratio!r}, max_mask_ratio={max_mask_ratio!r}"
            )
        if koleo_weight < 0:
            raise ConfigError(f"{method}: koleo_weight must be >= 0, got {koleo_weight!r}")
        prototypes = 16 * out_dim

        def head() -> DINOv2ProjectionHead:
            return DINOv2ProjectionHead(
                width, 8 * out_dim, out_dim, prototypes, freeze_last_layer=1
            )

        super().__init__(vit, IBOTHeads(head(), head() if separate_heads else None))
        self.name = method
        # A bare ViT gets a wrapper whose mask token must be a (trained) submodule; a masked
        # ViT inside a Backbone is the backbone's own module, registered twice, trained once.
        self.student_vit = student_vit
        teacher_vit = require_vit(self.backbone_momentum, method)[1]
        deactivate_requires_grad(teacher_vit)
        self.teacher_vit = teacher_vit
        self.koleo_weight = koleo_weight
        self.mask_probability = mask_probability
        self.mask_ratio = (min_mask_ratio, max_mask_ratio)
        self.dino_criterion = DINOLoss(
            output_dim=prototypes, warmup_teacher_temp=0.04, teacher_temp=0.07
        )
        self.ibot_criterion = IBOTPatchLoss(output_dim=prototypes)
        self.koleo_criterion = KoLeoLoss()

    def _local_class_logits(self, views: Sequence[Tensor]) -> list[Tensor]:
        """Class logits (B, K) of each unmasked (local) view (B, C, H, W); views of one size
        go through the ViT as one batch, as in the papers' code."""
        heads: IBOTHeads = self.projection_head  # type: ignore[assignment]
        vit = self.student_vit
        out: list[Tensor] = []
        start = 0
        while start < len(views):
            end = start
            while end < len(views) and views[end].shape == views[start].shape:
                end += 1
            x = _fit_to_patches(torch.cat(list(views[start:end])), vit.patch_size)
            out += list(heads.dino_head(vit.pool(vit.encode(x))).chunk(end - start))
            start = end
        return out

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, None, self.name)
        self.update_momentum_encoder(progress.cosine(0.996, 1.0))
        student, teacher = self.student_vit, self.teacher_vit
        heads: IBOTHeads = self.projection_head  # type: ignore[assignment]
        teacher_heads: IBOTHeads = self.projection_head_momentum  # type: ignore[assignment]
        global_views = _fit_to_patches(torch.cat(list(views[:N_GLOBAL_VIEWS])), student.patch_size)
        rows, cols = student.grid_size(global_views)
        block_mask = random_block_mask(
            (global_views.shape[0], rows, cols),
            batch_mask_ratio=self.mask_probability,
            min_image_mask_ratio=self.mask_ratio[0],
            max_image_mask_ratio=self.mask_ratio[1],
            device=global_views.device,
        )
        mask = block_mask.flatten(start_dim=1)  # (2B, N) over the patch tokens

        with torch.no_grad():
            t_tokens = teacher.encode(global_views)
            teacher_cls = teacher_heads.dino_head(teacher.pool(t_tokens))
            teacher_patches = teacher_heads.ibot_head(
                t_tokens[:, teacher.num_prefix_tokens :][mask]
            )
        s_tokens = student.encode(global_views, mask=mask)
        s_pooled = student.pool(s_tokens)
        student_patches = heads.ibot_head(s_tokens[:, student.num_prefix_tokens :][mask])
        student_cls = list(heads.dino_head(s_pooled).chunk(N_GLOBAL_VIEWS))
        student_cls += self._local_class_logits(views[N_GLOBAL_VIEWS:])

        criterion = self.dino_criterion
        temp = teacher_temperature(
            progress.epoch,
            criterion.warmup_teacher_temp,
            criterion.teacher_temp,
            criterion.warmup_teacher_temp_epochs,
        )
        dino: Tensor = criterion(
            list(teacher_cls.chunk(N_GLOBAL_VIEWS)), student_cls, teacher_temp=temp
        )
        ibot: Tensor = self.ibot_criterion(
            teacher_patches, student_patches, block_mask, teacher_temp=temp
        )
        loss = dino + ibot
        if self.koleo_weight > 0:
            for cls_tokens in s_pooled.chunk(N_GLOBAL_VIEWS):
                loss = loss + self.koleo_weight * self.koleo_criterion(cls_tokens)
        return loss

    def before_optimizer_step(self, progress: TrainProgress) -> None:
        heads: IBOTHeads = self.projection_head  # type: ignore[assignment]
        heads.cancel_last_layer_gradients(progress.epoch)


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import DINOTransform

    # iBOT trains on DINO's multi-crop (2 global views, 10 local views in the paper).
    return DINOTransform(global_crop_size=input_size, local_crop_size=local_crop_size(input_size))


#: The papers: AdamW, lr 5e-4 · batch/256 after a 10-epoch warm-up, weight decay 0.04 -> 0.4
#: (DINO's recipe). Without a warm-up (the trainer's default) 5e-4 shrank the spread of a
#: fresh vit-tiny-p4's embeddings 2.3x in 4 steps (std·sqrt(D) 0.18 -> 0.08); 1.5e-4 (MAE's
#: base rate) kept it (0.15). (One-off hand runs for commit 8b43af6 on the contract tests'
#: model, tests/methods/_contract.py std_of_l2_normalized; no script reruns them.)
OPTIMIZER = OptimizerDefaults(
    "adamw",
    lr=1.5e-4,
    weight_decay=0.04,
    source=(
        "measured: 5e-4 (DINO's) shrank a fresh vit-tiny-p4's embeddings 2.3x in 4 steps without "
        "warm-up; 1.5e-4 (MAE's) kept them"
    ),
)

METHOD = Method(
    name="ibot",
    title="iBOT (Zhou et al. 2022)",
    # One head shared by class and patch tokens, no KoLeo.
    build_model=functools.partial(IBOTModel, method="ibot"),
    build_transform=_transform,
    optimizer=OPTIMIZER,
    needs_vit=True,
)
