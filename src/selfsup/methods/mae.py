"""MAE (He et al. 2021): mask most patches, encode the rest, reconstruct the masked pixels.

"We mask random patches of the input image and reconstruct the missing pixels" with "an
asymmetric encoder-decoder architecture, with an encoder that operates only on the visible
subset of patches (without mask tokens), along with a lightweight decoder that reconstructs
the original image from the latent representation and mask tokens"; "masking a high proportion
of the input image, e.g., 75%, yields a nontrivial and meaningful self-supervisory task"
(https://arxiv.org/abs/2111.06377, abstract).

Loss (sec. 3, "Reconstruction target"): the mean squared error between the decoder's
prediction x̂ and the pixels x of each masked patch, "only on masked patches, similar to
BERT":

    L = 1 / (B·|M|) · Σ_b Σ_{i ∈ M_b} (1 / (p²·C)) · ‖x̂_{b,i} − x_{b,i}‖²

"We also study a variant whose reconstruction target is the normalized pixel values of each
masked patch. Specifically, we compute the mean and standard deviation of all pixels in a
patch and use them to normalize this patch": x_i ← (x_i − mean(x_i)) / sqrt(var(x_i) + 1e-6)
(``norm_pix_loss``, the default here, as it "improves representation quality").

The backbone must be a Vision Transformer (``model.name=vit-tiny-p4`` for small images on a
CPU, ``vit-s16``, ``vit-b16``, ``torchvision/vit_*``, ``timm/vit_*``). MAE trains no projection:
embeddings are the ViT's class token (or mean patch token, ``pool='mean'`` of the registered
ViTs), of the ViT's width; ``model.num_ftrs`` and ``model.out_dim`` do not apply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from selfsup.errors import DataError
from selfsup.methods._base import (
    Method,
    MethodModel,
    OptimizerDefaults,
    TrainProgress,
    check_views,
)
from selfsup.models.modules.masked_autoencoder import MAEDecoder
from selfsup.models.modules.masked_vision_transformer import require_vit
from selfsup.models.utils import (
    check_mask_ratio,
    get_at_index,
    patchify,
    repeat_token,
    set_at_index,
)

__all__ = ["MAEModel", "mae_loss", "normalize_patches"]


def normalize_patches(patches: Tensor, eps: float = 1e-6) -> Tensor:
    """Each patch (last dim) minus its mean, over sqrt(its unbiased variance + eps), as MAE's
    ``norm_pix_loss``: (..., p·p·C) -> same shape."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + eps).sqrt()


def mae_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over the masked patches: (B, M, p·p·C) predictions and targets ->
    scalar, every patch and every pixel value weighted equally."""
    if pred.shape != target.shape:
        raise DataError(f"mae_loss: pred {tuple(pred.shape)} and target {tuple(target.shape)}")
    return (pred - target).pow(2).mean()


def decoder_size(embed_dim: int) -> tuple[int, int, int]:
    """(width, depth, heads) of the decoder for an encoder ``embed_dim`` wide: the paper's
    512 x 8 blocks x 16 heads for encoders of 512 or wider, else the encoder's width (rounded
    down to a multiple of 4) with 2 blocks, heads of 32 channels (at least 1)."""
    if embed_dim >= 512:
        return 512, 8, 16
    width = max(4, embed_dim // 4 * 4)
    heads = max(1, width // 32)
    while width % heads:
        heads -= 1
    return width, 2, heads


class MAEModel(MethodModel):
    """A ViT encoder on the visible patches and MAE's decoder.

    Args:
        backbone: A Vision Transformer backbone (see the module docstring), possibly followed
            by ``core.build_model``'s linear map, which MAE drops (it trains no projection).
        num_ftrs: Unused (the embedding is the ViT's width); kept for the registry signature.
        out_dim: Unused (MAE has no projection head).
        mask_ratio: Fraction of the patches masked (0.75), in [0, 1).
        norm_pix_loss: Reconstruct per-patch normalised pixels (True) or the pixels.
        decoder_dim, decoder_depth, decoder_heads: Decoder size; None: :func:`decoder_size`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_ftrs: int = 0,
        out_dim: int = 0,
        mask_ratio: float = 0.75,
        norm_pix_loss: bool = True,
        decoder_dim: int | None = None,
        decoder_depth: int | None = None,
        decoder_heads: int | None = None,
    ) -> None:
        super().__init__()
        del num_ftrs, out_dim
        self.backbone, self.encoder = require_vit(backbone, "mae")
        # MAE drops masked tokens and never uses the encoder's mask token (the decoder has
        # its own): frozen, so that DDP does not wait for its gradient.
        self.encoder.mask_token.requires_grad_(False)
        self.mask_ratio = check_mask_ratio(mask_ratio, "MAEModel")
        self.norm_pix_loss = norm_pix_loss
        width, depth, heads = decoder_size(self.encoder.embed_dim)
        self.decoder = MAEDecoder(
            patch_size=self.encoder.patch_size,
            embed_dim=self.encoder.embed_dim,
            decoder_embed_dim=decoder_dim or width,
            decoder_depth=decoder_depth or depth,
            decoder_num_heads=decoder_heads or heads,
            num_prefix_tokens=self.encoder.num_prefix_tokens,
        )

    def reconstruct(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Mask, encode, decode one batch (B, C, H, W).

        Returns:
            ``(pred, target, idx_mask)``: predicted pixels (B, M, p·p·C) of the masked
            patches, their targets (normalised if ``norm_pix_loss``), and the masked patches'
            indices (B, M) into the patch grid (row-major, without prefix tokens).
        """
        encoder, decoder = self.encoder, self.decoder
        rows, cols = encoder.grid_size(images)
        b, prefix = images.shape[0], encoder.num_prefix_tokens
        idx_keep, idx_mask = encoder.random_patch_mask(
            b, rows * cols, self.mask_ratio, images.device
        )
        visible = decoder.embed(encoder.encode(images, idx_keep=idx_keep))
        # The full sequence: mask tokens everywhere, the encoded visible tokens in their slots.
        full = repeat_token(decoder.mask_token, (b, prefix + rows * cols)).to(visible.dtype)
        full = set_at_index(full, idx_keep, visible)
        decoded = decoder.decode(full, (rows, cols))
        pred = decoder.predict(get_at_index(decoded, idx_mask))
        patch_idx = idx_mask - prefix
        target = get_at_index(patchify(images, encoder.patch_size), patch_idx)
        if self.norm_pix_loss:
            target = normalize_patches(target)
        return pred, target, patch_idx

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        del progress
        check_views(views, 1, "mae")
        pred, target, _ = self.reconstruct(views[0])
        return mae_loss(pred, target)


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import MAETransform

    return MAETransform(input_size=input_size)


METHOD = Method(
    name="mae",
    title="MAE (He et al. 2021)",
    build_model=MAEModel,
    build_transform=_transform,
    # The paper: AdamW (β2 0.95; here torch's 0.999), base lr 1.5e-4 · batch / 256, weight
    # decay 0.05.
    optimizer=OptimizerDefaults(
        "adamw",
        lr=1.5e-4,
        weight_decay=0.05,
        source="paper: AdamW, base lr 1.5e-4 per 256, weight decay 0.05",
    ),
    needs_vit=True,
)
