"""MSN (Assran et al. 2022) and PMSN (Lee et al. 2024): masked anchors match unmasked targets.

"MSN (...) matches the representation of an image view containing randomly masked patches
to the representation of the original unmasked image" (Assran et al. 2022,
https://arxiv.org/abs/2204.07141, abstract). The first view of the transform is the target:
it goes unmasked through the momentum encoder (backbone and projection head, an exponential
moving average of the online ones with momentum 0.996 -> 1, cosine). All other views (one more
random view and the focal views) are the anchors: their patches are masked and they go through
the online encoder. The loss (:class:`selfsup.loss.MSNLoss`) makes every anchor predict the
sharpened assignment of its image's target to K learnable prototypes, with a mean-entropy
regulariser; PMSN (https://arxiv.org/abs/2404.03263) regularises towards a power-law prior
instead (:class:`selfsup.loss.PMSNLoss`).

Masking: a ViT backbone (a registered ``vit-*`` backbone, a torchvision or timm
``VisionTransformer``, or a ``Backbone`` wrapping one; see
:func:`selfsup.models.modules.masked_vision_transformer.split_vit`) drops ``mask_ratio`` of
its patch tokens, as the paper; any other backbone gets the same fraction of its image patches
blanked (:func:`selfsup.models.utils.mask_image_patches`), since a convolutional network has no
tokens to drop.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from selfsup.loss.msn_loss import MSNLoss, PMSNLoss
from selfsup.methods._base import (
    Method,
    MomentumEncoderModel,
    OptimizerDefaults,
    TrainProgress,
    check_views,
    local_crop_size,
)
from selfsup.models.modules.heads import MSNProjectionHead
from selfsup.models.modules.masked_vision_transformer import (
    MaskedVisionTransformer,
    split_vit,
)
from selfsup.models.utils import check_mask_ratio, mask_image_patches

#: Patch side for blanking the images of a non-ViT backbone, at most a quarter of the view.
IMAGE_PATCH_SIZE = 16


class MSNModel(MomentumEncoderModel):
    """Online backbone and projection head, their momentum copies, and K prototypes.

    Head sizes scale with out_dim: hidden 16·out_dim and K = 8·out_dim prototypes (2048 and
    1024 for out_dim 128; the paper's ViTs: hidden 2048, output 256, K = 1024).

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs); a ViT has its tokens
            masked, any other backbone its image patches.
        num_ftrs: Embedding size.
        out_dim: Projection and prototype size.
        temperature: τ of the prototype softmax (0.1).
        mask_ratio: Fraction of the anchors' patches masked (0.15, lightly's example; the
            paper 0.3 for ViT-S/16), in [0, 1).
        regularization_weight: λ of the regulariser (1.0).
        pmsn: Regularise towards PMSN's power-law prior instead of MSN's uniform one.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_ftrs: int,
        out_dim: int,
        temperature: float = 0.1,
        mask_ratio: float = 0.15,
        regularization_weight: float = 1.0,
        pmsn: bool = False,
    ) -> None:
        super().__init__(backbone, MSNProjectionHead(num_ftrs, 16 * out_dim, out_dim))
        self.prototypes = nn.Linear(out_dim, 8 * out_dim, bias=False)
        self.mask_ratio = check_mask_ratio(mask_ratio, "MSNModel")
        split = split_vit(backbone)
        self.masked_vit: MaskedVisionTransformer | None = None
        # Modules after the ViT (build_model's Linear to num_ftrs) apply to the masked anchors.
        self.vit_tail: nn.Module = nn.Identity()
        if split is not None:
            _, self.masked_vit, self.vit_tail = split
            # MSN drops tokens and never uses the ViT's mask token: frozen, so that DDP does
            # not wait for its gradient.
            self.masked_vit.mask_token.requires_grad_(False)
        loss_type = PMSNLoss if pmsn else MSNLoss
        self.criterion: MSNLoss = loss_type(
            temperature=temperature,
            regularization_weight=regularization_weight,
            gather_distributed=True,
        )
        self.name = "pmsn" if pmsn else "msn"

    def _fit_to_patches(self, x: Tensor) -> Tensor:
        """A ViT needs sides that are multiples of its patch size: crop the rest off."""
        if self.masked_vit is None:
            return x
        p = self.masked_vit.patch_size
        h, w = max(p, x.shape[2] // p * p), max(p, x.shape[3] // p * p)
        return x[:, :, :h, :w]

    def _anchor(self, x: Tensor) -> Tensor:
        """Online projection of a masked view (B, C, H, W) -> (B, out_dim)."""
        x = self._fit_to_patches(x)
        if self.masked_vit is not None:
            rows, cols = self.masked_vit.grid_size(x)
            keep, _ = self.masked_vit.random_patch_mask(
                x.shape[0], rows * cols, self.mask_ratio, x.device
            )
            features = self.vit_tail(self.masked_vit(x, idx_keep=keep))
        else:
            patch = max(1, min(IMAGE_PATCH_SIZE, min(x.shape[2:]) // 4))
            features = self.backbone(mask_image_patches(x, self.mask_ratio, patch))
        out: Tensor = self.projection_head(features.flatten(start_dim=1))
        return out

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, None, self.name)
        self.update_momentum_encoder(progress.cosine(0.996, 1.0))
        targets = self.project_momentum(self._fit_to_patches(views[0]))
        anchors = torch.cat([self._anchor(v) for v in views[1:]])
        loss: Tensor = self.criterion(anchors, targets, self.prototypes.weight)
        return loss


#: MSN's model with PMSN's power-law prior; a partial keeps MSNModel's signature, whose
#: keyword defaults are the criterion.* defaults (Method.arg_defaults).
_build_pmsn = functools.partial(MSNModel, pmsn=True)


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import MSNTransform

    # The paper's 224 / 96 ratio for the focal views; 2 random and 10 focal views.
    return MSNTransform(random_size=input_size, focal_size=local_crop_size(input_size))


#: The paper: AdamW, lr 0.001 (ViT-S/16), weight decay 0.04 -> 0.4; lightly's example 1.5e-4.
_OPTIMIZER = OptimizerDefaults(
    "adamw",
    lr=1e-3,
    weight_decay=0.04,
    source="paper: AdamW, lr 1e-3 (ViT-S/16), weight decay 0.04 (-> 0.4)",
)
METHOD = Method(
    name="msn",
    title="MSN (Assran et al. 2022)",
    build_model=MSNModel,
    build_transform=_transform,
    optimizer=_OPTIMIZER,
)

METHOD_P = Method(
    name="pmsn",
    title="PMSN (Lee et al. 2024)",
    build_model=_build_pmsn,
    build_transform=_transform,
    optimizer=_OPTIMIZER,
)
