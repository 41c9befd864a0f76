"""Vision Transformers that can mask tokens: the encoders of MAE, SimMIM, MSN, I-JEPA, iBOT.

A masked-image-modelling method needs more of a ViT than images -> embedding: it drops tokens
before the encoder ("the encoder only operates on the visible subset of patches", MAE, He et
al. 2021, https://arxiv.org/abs/2111.06377, sec. 3), or replaces them by a learned mask token
(SimMIM, Xie et al. 2021, https://arxiv.org/abs/2111.09886, sec. 3.1), and reads the output
tokens, not just the class token. :class:`MaskedVisionTransformerTorchvision` and
:class:`MaskedVisionTransformerTIMM` (lightly's classes of those names) give a torchvision or a
timm ``VisionTransformer`` one interface for that; both share the wrapped ViT's weights (no
copy), so training the wrapper trains the ViT.

The pipeline of :meth:`MaskedVisionTransformer.encode`::

    images (B, C, H, W) --images_to_tokens--> patch tokens (B, N, D)
      --add_prefix_tokens--> (B, P + N, D)  (class token, then register tokens)
      --idx_mask / mask: masked tokens replaced by mask_token--
      --add_pos_embed--> (B, P + N, D)      (interpolated when the grid differs)
      --idx_keep: only these tokens are kept--> (B, K, D)
      --transformer blocks, final norm--> (B, K or P + N, D)

Indices address the whole sequence, prefix tokens included (index 0 is the class token), as
:func:`selfsup.models.utils.random_token_mask` makes them; :meth:`random_patch_mask` makes
indices that mask patch tokens only and keep every prefix token.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError
from selfsup.models.utils import (
    get_2d_sincos_pos_embed,
    get_at_index,
    mask_at_index,
    mask_bool,
    random_token_mask,
)

if TYPE_CHECKING:
    from torchvision.models import VisionTransformer

__all__ = [
    "MaskedVisionTransformer",
    "MaskedVisionTransformerTIMM",
    "MaskedVisionTransformerTorchvision",
    "ViTPool",
    "backbone_name",
    "require_vit",
    "split_vit",
]

ViTPool = Literal["cls", "mean"]
"""How a ViT's tokens become one embedding: its class token, or the mean of its patch tokens."""

VIT_POOLS: tuple[str, ...] = ("cls", "mean")


class MaskedVisionTransformer(nn.Module):
    """The interface both wrappers share (see the module docstring for the pipeline): a ViT
    (Dosovitskiy et al. 2020, https://arxiv.org/abs/2010.11929) whose tokens can be dropped
    (MAE, https://arxiv.org/abs/2111.06377) or replaced by a mask token (SimMIM,
    https://arxiv.org/abs/2111.09886).

    Subclasses set ``patch_size``, ``embed_dim``, ``num_prefix_tokens``, ``num_patches`` (of
    the ViT's own image size) and ``mask_token`` and implement the four steps.
    """

    patch_size: int
    embed_dim: int
    num_prefix_tokens: int
    num_patches: int
    mask_token: nn.Parameter

    def images_to_tokens(self, images: Tensor) -> Tensor:
        """(B, C, H, W) images -> (B, N, D) patch tokens, row-major over the patch grid."""
        raise NotImplementedError

    def add_prefix_tokens(self, tokens: Tensor) -> Tensor:
        """(B, N, D) -> (B, P + N, D) with the class token and register tokens in front."""
        raise NotImplementedError

    def add_pos_embed(self, tokens: Tensor, grid_size: tuple[int, int] | None = None) -> Tensor:
        """Add position embeddings to (B, P + N, D) tokens (prefix tokens included).

        ``grid_size`` is the (rows, cols) patch grid; None means a square grid.
        """
        raise NotImplementedError

    def transform(self, tokens: Tensor) -> Tensor:
        """The transformer blocks and the final norm: (B, L, D) -> (B, L, D)."""
        raise NotImplementedError

    def pool(self, tokens: Tensor) -> Tensor:
        """Encoded (B, L, D) tokens, prefix tokens first -> one (B, D) embedding."""
        raise NotImplementedError

    @property
    def sequence_length(self) -> int:
        """P + N, the tokens of an image of the ViT's own size (prefix tokens included)."""
        return self.num_prefix_tokens + self.num_patches

    def grid_size(self, images: Tensor) -> tuple[int, int]:
        """(rows, cols) of the patch grid of (B, C, H, W) ``images``; a DataError unless H
        and W are multiples of the patch size."""
        p = self.patch_size
        if images.ndim != 4 or images.shape[2] % p or images.shape[3] % p:
            raise DataError(
                f"{type(self).__name__}: expected (B, C, H, W) images with H and W multiples "
                f"of the patch size {p}, got shape {tuple(images.shape)}"
            )
        return images.shape[2] // p, images.shape[3] // p

    def random_patch_mask(
        self, batch_size: int, num_patches: int, mask_ratio: float, device: torch.device
    ) -> tuple[Tensor, Tensor]:
        """``(idx_keep, idx_mask)`` over the whole sequence that mask ``mask_ratio`` of the
        ``num_patches`` patch tokens and keep every prefix token (class and registers).

        Shapes (B, P + N - M) and (B, M), sorted per row, so the prefix tokens stay first.
        """
        keep, masked = random_token_mask((batch_size, num_patches + 1), mask_ratio, False, device)
        # random_token_mask protects index 0 only; shift patch indices past all P prefix tokens.
        shift = self.num_prefix_tokens - 1
        prefix = torch.arange(self.num_prefix_tokens, device=keep.device).expand(batch_size, -1)
        return torch.cat([prefix, keep[:, 1:] + shift], dim=1), masked + shift

    def encode(
        self,
        images: Tensor,
        idx_mask: Tensor | None = None,
        idx_keep: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """Encoded tokens of (B, C, H, W) images, prefix tokens first.

        Args:
            images: (B, C, H, W), H and W multiples of the patch size.
            idx_mask: (B, M) indices into the sequence whose tokens become the mask token.
            idx_keep: (B, K) indices into the sequence of the tokens to keep; the others are
                removed before the transformer, so they cannot influence the output.
            mask: Bool (B, P + N) or (B, N) (patch tokens only): True tokens become the mask
                token. Exclusive with ``idx_mask``.

        Returns:
            (B, K, D) with ``idx_keep``, else (B, P + N, D).
        """
        if idx_mask is not None and mask is not None:
            raise ConfigError(f"{type(self).__name__}.encode: give idx_mask or mask, not both")
        grid = self.grid_size(images)
        tokens = self.add_prefix_tokens(self.images_to_tokens(images))
        if idx_mask is not None:
            tokens = mask_at_index(tokens, idx_mask, self.mask_token)
        elif mask is not None:
            if mask.ndim == 2 and mask.shape[1] == grid[0] * grid[1] != tokens.shape[1]:
                prefix = mask.new_zeros(mask.shape[0], self.num_prefix_tokens)
                mask = torch.cat([prefix, mask], dim=1)
            tokens = mask_bool(tokens, mask.bool(), self.mask_token)
        tokens = self.add_pos_embed(tokens, grid)
        if idx_keep is not None:
            tokens = get_at_index(tokens, idx_keep)
        return self.transform(tokens)

    def forward(
        self,
        images: Tensor,
        idx_mask: Tensor | None = None,
        idx_keep: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """(B, C, H, W) images -> (B, D) embeddings (pooled :meth:`encode` tokens).

        With ``idx_keep`` the prefix tokens must be kept and come first (as
        :meth:`random_patch_mask` and :func:`~selfsup.models.utils.random_token_mask` make them).
        """
        return self.pool(self.encode(images, idx_mask=idx_mask, idx_keep=idx_keep, mask=mask))


def _check_pool(pool: object, owner: str) -> str:
    if pool not in VIT_POOLS:
        raise ConfigError(f"{owner}: pool must be one of {', '.join(VIT_POOLS)}, got {pool!r}")
    return str(pool)


def _interpolate_grid(pos: Tensor, old: tuple[int, int], new: tuple[int, int]) -> Tensor:
    """(1, old_h·old_w, D) patch position embeddings -> (1, new_h·new_w, D), bicubic."""
    if old == new:
        return pos
    grid = pos.reshape(1, old[0], old[1], -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=new, mode="bicubic", align_corners=False)
    return grid.flatten(2).transpose(1, 2)


class MaskedVisionTransformerTorchvision(MaskedVisionTransformer):
    """A torchvision ``VisionTransformer`` with token masking (lightly's class of that name;
    ViT: https://arxiv.org/abs/2010.11929).

    Position embeddings are bicubically interpolated when the input's patch grid differs from
    the ViT's (small views, MSN's focal crops).

    Args:
        vit: A torchvision ``VisionTransformer`` (its ``heads`` are not used).
        initialize_weights: Re-initialise the ViT as MAE does: fixed 2-D sine-cosine values
            for the position embeddings (when the width is a multiple of 4; they stay
            trainable), Xavier-uniform linear layers and patch projection with zero biases,
            class and mask tokens ~ N(0, 0.02²). False keeps the ViT's weights (e.g. a
            checkpoint, or a model whose momentum copy was already taken).
        pool: The embedding :meth:`forward` returns: ``cls`` (class token) or ``mean`` (mean
            of the patch tokens).
    """

    def __init__(
        self, vit: VisionTransformer, initialize_weights: bool = True, pool: ViTPool = "cls"
    ) -> None:
        super().__init__()
        self.vit = vit
        self.patch_size = int(vit.patch_size)
        self.embed_dim = int(vit.hidden_dim)
        self.num_prefix_tokens = 1
        self.num_patches = int(vit.encoder.pos_embedding.shape[1]) - 1
        self.pool_type = _check_pool(pool, "MaskedVisionTransformerTorchvision")
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dim))
        if initialize_weights:
            self._initialize_weights()

    @torch.no_grad()
    def _initialize_weights(self) -> None:
        vit = self.vit
        pos = vit.encoder.pos_embedding
        side = math.isqrt(self.num_patches)
        if self.embed_dim % 4 == 0 and side * side == self.num_patches:
            pos.copy_(get_2d_sincos_pos_embed(self.embed_dim, side, cls_token=True).unsqueeze(0))
        # MAE: "initialize patch_embed like nn.Linear (instead of nn.Conv2d)".
        w = vit.conv_proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        if vit.conv_proj.bias is not None:
            nn.init.zeros_(vit.conv_proj.bias)
        for module in vit.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(vit.class_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)

    def images_to_tokens(self, images: Tensor) -> Tensor:
        self.grid_size(images)
        patches: Tensor = self.vit.conv_proj(images)  # (B, D, h, w)
        return patches.flatten(2).transpose(1, 2)

    def add_prefix_tokens(self, tokens: Tensor) -> Tensor:
        cls = self.vit.class_token.expand(tokens.shape[0], -1, -1)
        return torch.cat([cls, tokens], dim=1)

    def add_pos_embed(self, tokens: Tensor, grid_size: tuple[int, int] | None = None) -> Tensor:
        pos: Tensor = self.vit.encoder.pos_embedding  # (1, 1 + n, D)
        side = math.isqrt(self.num_patches)
        if grid_size is None:
            n = tokens.shape[1] - 1
            grid_size = (math.isqrt(n), math.isqrt(n))
        patch_pos = _interpolate_grid(pos[:, 1:], (side, side), grid_size)
        return tokens + torch.cat([pos[:, :1], patch_pos], dim=1)

    def transform(self, tokens: Tensor) -> Tensor:
        encoder = self.vit.encoder
        out: Tensor = encoder.ln(encoder.layers(encoder.dropout(tokens)))
        return out

    def pool(self, tokens: Tensor) -> Tensor:
        if self.pool_type == "mean":
            return tokens[:, self.num_prefix_tokens :].mean(dim=1)
        return tokens[:, 0]


class MaskedVisionTransformerTIMM(MaskedVisionTransformer):
    """A timm ``VisionTransformer`` with token masking (lightly's class of that name; register
    tokens: Darcet et al. 2023, https://arxiv.org/abs/2309.16588).

    Prefix tokens are the class token (if the model has one) and the register tokens
    (``reg_tokens``, e.g. ``vit_small_patch16_224.reg4``), in timm's order. Position
    embeddings are those of the model (with or without class entry, ``no_embed_class``),
    resampled by timm when the patch grid differs. :meth:`forward` pools with the model's own
    head (``global_pool``: ``token``, ``avg``, ``map``; ``fc_norm``), so an unmasked forward is
    ``vit.forward_head(vit.forward_features(x), pre_logits=True)``.

    Args:
        vit: A ``timm.models.vision_transformer.VisionTransformer``.
    """

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer as TimmViT

        if not isinstance(vit, TimmViT):
            raise ConfigError(
                "MaskedVisionTransformerTIMM needs a timm VisionTransformer, got "
                f"{type(vit).__name__}"
            )
        self.vit = vit
        patch = vit.patch_embed.patch_size
        if patch[0] != patch[1]:
            raise ConfigError(f"MaskedVisionTransformerTIMM: patches must be square, got {patch}")
        self.patch_size = int(patch[0])
        self.embed_dim = int(vit.embed_dim)
        self.num_prefix_tokens = int(vit.num_prefix_tokens)
        self.num_patches = int(vit.patch_embed.num_patches)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dim))
        nn.init.normal_(self.mask_token, std=0.02)

    def images_to_tokens(self, images: Tensor) -> Tensor:
        self.grid_size(images)
        tokens: Tensor = self.vit.patch_embed(images)
        # dynamic_img_size models return (B, h, w, D).
        return tokens.flatten(1, 2) if tokens.ndim == 4 else tokens

    def add_prefix_tokens(self, tokens: Tensor) -> Tensor:
        prefix = [
            t.expand(tokens.shape[0], -1, -1)
            for t in (self.vit.cls_token, self.vit.reg_token)
            if t is not None
        ]
        return torch.cat([*prefix, tokens], dim=1) if prefix else tokens

    def add_pos_embed(self, tokens: Tensor, grid_size: tuple[int, int] | None = None) -> Tensor:
        vit = self.vit
        pos: Tensor | None = vit.pos_embed
        if pos is None:
            out: Tensor = vit.pos_drop(tokens)
            return out
        n_prefix = self.num_prefix_tokens
        if grid_size is None:
            side = math.isqrt(tokens.shape[1] - n_prefix)
            grid_size = (side, side)
        old = tuple(int(s) for s in vit.patch_embed.grid_size)
        pos_prefix = 0 if vit.no_embed_class else n_prefix
        if grid_size != old:
            from timm.layers.pos_embed import resample_abs_pos_embed

            pos = resample_abs_pos_embed(
                pos, new_size=list(grid_size), old_size=list(old), num_prefix_tokens=pos_prefix
            )
        if vit.no_embed_class:
            # No position for prefix tokens (DeiT III, big_vision): add to patch tokens only.
            zeros = pos.new_zeros(1, n_prefix, pos.shape[2])
            pos = torch.cat([zeros, pos], dim=1)
        out = vit.pos_drop(tokens + pos)
        return out

    def transform(self, tokens: Tensor) -> Tensor:
        vit = self.vit
        out: Tensor = vit.norm(vit.blocks(vit.norm_pre(vit.patch_drop(tokens))))
        return out

    def pool(self, tokens: Tensor) -> Tensor:
        out: Tensor = self.vit.forward_head(tokens, pre_logits=True)
        return out


def _as_masked(module: nn.Module) -> MaskedVisionTransformer | None:
    from torchvision.models import VisionTransformer

    from selfsup.models.backbones import Backbone

    if isinstance(module, Backbone):
        module = module.features
    if isinstance(module, MaskedVisionTransformer):
        return module
    if isinstance(module, VisionTransformer):
        return MaskedVisionTransformerTorchvision(module, initialize_weights=False)
    if "timm" in sys.modules:  # a timm model exists only if timm was imported
        from timm.models.vision_transformer import VisionTransformer as TimmViT

        if isinstance(module, TimmViT):
            return MaskedVisionTransformerTIMM(module)
    return None


def split_vit(backbone: nn.Module) -> tuple[nn.Module, MaskedVisionTransformer, nn.Module] | None:
    """``(vit, masked, tail)`` of a backbone that is a ViT, or None if it is not one.

    ``vit`` maps images to the ViT's pooled (B, D) embedding, ``masked`` is its
    :class:`MaskedVisionTransformer` (sharing its weights) and ``tail`` the modules after it
    (``nn.Identity`` if none), so that ``backbone(x) == tail(vit(x))``. A backbone is a ViT
    if it is a :class:`MaskedVisionTransformer`, a torchvision or timm ``VisionTransformer``,
    a selfsup ``Backbone`` wrapping one (the registered ``vit-*`` backbones wrap a
    :class:`MaskedVisionTransformerTorchvision`), or an ``nn.Sequential`` starting with one
    of these: ``selfsup.core.build_model`` gives methods ``Sequential(backbone, Linear to
    model.num_ftrs)``. A bare ViT is wrapped without re-initialising its weights; that new
    wrapper must be kept as a submodule so its mask token trains.
    """
    head: nn.Module = backbone
    tail: nn.Module = nn.Identity()
    if isinstance(backbone, nn.Sequential) and len(backbone) > 0:
        head = backbone[0]
        tail = backbone[1:] if len(backbone) > 1 else nn.Identity()
    masked = _as_masked(head)
    if masked is None and head is not backbone:
        head, tail, masked = backbone, nn.Identity(), _as_masked(backbone)
    if masked is None:
        return None
    return head, masked, tail


def backbone_name(backbone: nn.Module) -> str:
    """The registry name of ``backbone`` (``model.name``) for messages, else its type."""
    from selfsup.models.backbones import Backbone

    head = backbone[0] if isinstance(backbone, nn.Sequential) and len(backbone) else backbone
    if isinstance(head, Backbone) and head.name:
        return head.name
    return type(head.features if isinstance(head, Backbone) else head).__name__


def require_vit(backbone: nn.Module, method: str) -> tuple[nn.Module, MaskedVisionTransformer]:
    """``(vit, masked)`` of :func:`split_vit` for a method that needs a ViT, dropping any
    ``tail`` (a masked-image-modelling method trains no projection to ``model.num_ftrs``, so
    its embeddings are the ViT's own D-dim class token or mean token); else a ConfigError
    naming ``model.name`` and the ViT backbones accepted."""
    split = split_vit(backbone)
    if split is None:
        from selfsup.models.backbones import vit_backbone_names

        raise ConfigError(
            f"method {method!r} needs a Vision Transformer backbone (it masks patch tokens), "
            f"but model.name={backbone_name(backbone)!r} is not one; accepted: "
            f"{', '.join(vit_backbone_names())} (vit-tiny-p4 for 28-64 px images on a CPU), "
            "or a torchvision or timm ViT (e.g. model.name=torchvision/vit_b_16 or "
            "timm/vit_small_patch16_224)"
        )
    return split[0], split[1]
