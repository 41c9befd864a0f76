"""Pure helpers for self-supervised models: momentum encoders, batch shuffling, schedules,
and the token and patch masking of masked image modelling (MAE, SimMIM, MSN, I-JEPA, iBOT).

These are the building blocks a training loop composes; none keeps state of its own.

Token conventions (those of lightly): a ViT's token sequence is (B, N, D); index tensors
(B, K) select K tokens per sample along dim 1. :func:`random_token_mask` treats index 0 as the
class token and keeps it unless asked otherwise, so its indices address the sequence *with*
the class token, as :class:`selfsup.models.modules.MaskedVisionTransformerTorchvision`
expects them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase

from selfsup.errors import ConfigError, DataError

__all__ = [
    "NORM_LAYERS",
    "activate_requires_grad",
    "batch_shuffle",
    "batch_unshuffle",
    "check_mask_ratio",
    "cosine_schedule",
    "deactivate_requires_grad",
    "expand_index_like",
    "get_2d_sincos_pos_embed",
    "get_at_index",
    "get_weight_decay_parameters",
    "mask_at_index",
    "mask_bool",
    "mask_image_patches",
    "normalize_weight",
    "patchify",
    "prepend_class_token",
    "random_block_mask",
    "random_token_mask",
    "repeat_token",
    "set_at_index",
    "unpatchify",
    "update_momentum",
]

NORM_LAYERS: tuple[type[nn.Module], ...] = (
    _NormBase,  # BatchNorm*d, SyncBatchNorm, InstanceNorm*d
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.CrossMapLRN2d,
)
"""Layer types whose parameters :func:`get_weight_decay_parameters` exempts from decay."""


def deactivate_requires_grad(model: nn.Module) -> None:
    """Set ``requires_grad = False`` on every parameter of ``model``, in place.

    Used for momentum (EMA) encoders, which are updated by :func:`update_momentum` and never
    by the optimizer; frozen parameters get no ``.grad`` and cost no backward memory.
    """
    for param in model.parameters():
        param.requires_grad = False


def activate_requires_grad(model: nn.Module) -> None:
    """Set ``requires_grad = True`` on every parameter of ``model``, in place.

    Undoes :func:`deactivate_requires_grad`, e.g. to fine-tune a frozen backbone.
    """
    for param in model.parameters():
        param.requires_grad = True


@torch.no_grad()
def update_momentum(model: nn.Module, model_ema: nn.Module, m: float) -> None:
    """Exponential moving average of ``model``'s parameters into ``model_ema``, in place.

    MoCo: "θ_k ← m θ_k + (1 − m) θ_q" (He et al., 2019, eq. 2), i.e. for every pair of
    parameters ``ema = m * ema + (1 - m) * param``. ``m = 0`` copies ``model`` into
    ``model_ema``; ``m = 1`` leaves it unchanged. Parameters are paired in registration
    order, so both modules must have the same architecture. The update is in place, so an
    optimizer or a distributed wrapper holding the EMA tensors keeps seeing the new values.
    Buffers (e.g. BatchNorm running statistics) are not touched.

    Args:
        model: The module being trained (query encoder, student).
        model_ema: Its momentum copy (key encoder, teacher).
        m: Momentum in [0, 1].
    """
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"momentum m must be in [0, 1], got {m}")
    ema_params = list(model_ema.parameters())
    params = list(model.parameters())
    if len(ema_params) != len(params):
        raise ValueError(
            f"model_ema has {len(ema_params)} parameters but model has {len(params)}; "
            "update_momentum needs two modules of the same architecture"
        )
    for i, (ema, param) in enumerate(zip(ema_params, params, strict=True)):
        if ema.shape != param.shape:
            raise ValueError(
                f"parameter {i} has shape {tuple(ema.shape)} in model_ema but "
                f"{tuple(param.shape)} in model; the architectures differ"
            )
        ema.mul_(m).add_(param.detach(), alpha=1.0 - m)


@torch.no_grad()
def batch_shuffle(batch: Tensor) -> tuple[Tensor, Tensor]:
    """Randomly permute a batch along dim 0 (single-process half of MoCo's shuffling BN).

    Args:
        batch: Tensor of shape (B, ...).

    Returns:
        ``(shuffled, shuffle_idx)``: ``shuffled = batch[shuffle_idx]`` and the permutation
        ``shuffle_idx`` of shape (B,), which :func:`batch_unshuffle` inverts. The input is
        not modified.
    """
    shuffle_idx = torch.randperm(batch.shape[0], device=batch.device)
    return batch[shuffle_idx], shuffle_idx


@torch.no_grad()
def batch_unshuffle(batch: Tensor, shuffle_idx: Tensor) -> Tensor:
    """Undo :func:`batch_shuffle`: returns ``x`` with ``x[shuffle_idx] == batch``.

    Args:
        batch: Tensor of shape (B, ...), e.g. encoder outputs of the shuffled batch.
        shuffle_idx: The permutation of shape (B,) returned by :func:`batch_shuffle`.

    Returns:
        Tensor of shape (B, ...) in the original order.
    """
    if shuffle_idx.shape != (batch.shape[0],):
        raise ValueError(
            f"shuffle_idx must have shape ({batch.shape[0]},) to unshuffle a batch of "
            f"{batch.shape[0]}, got {tuple(shuffle_idx.shape)}"
        )
    return batch[torch.argsort(shuffle_idx)]


def cosine_schedule(
    step: int,
    max_steps: int,
    start_value: float,
    end_value: float,
    period: int | None = None,
) -> float:
    """Cosine interpolation from ``start_value`` (step 0) to ``end_value`` (last step).

    ``value = end - (end - start) * (cos(pi * step / (max_steps - 1)) + 1) / 2``, e.g. the
    momentum of BYOL/DINO's teacher rising from 0.996 to 1. With ``period`` the value
    oscillates instead: ``end - (end - start) * (cos(2 * pi * step / period) + 1) / 2``.
    Steps at or beyond ``max_steps - 1`` return ``end_value`` (PyTorch Lightning calls the
    schedule once more after the last step); a warning is issued past ``max_steps``.

    Args:
        step: Current step, >= 0.
        max_steps: Total number of steps, >= 1.
        start_value: Value at step 0.
        end_value: Value at step ``max_steps - 1``.
        period: Optional period in steps for a cyclic schedule.

    Returns:
        The scheduled value.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    if period is not None:
        if period <= 0:
            raise ValueError(f"period must be >= 1, got {period}")
        return (
            end_value - (end_value - start_value) * (math.cos(2 * math.pi * step / period) + 1) / 2
        )
    if step > max_steps:
        warnings.warn(
            f"cosine_schedule: step {step} exceeds max_steps {max_steps}; returning end_value",
            stacklevel=2,
        )
    if max_steps == 1 or step >= max_steps - 1:
        return end_value
    return (
        end_value - (end_value - start_value) * (math.cos(math.pi * step / (max_steps - 1)) + 1) / 2
    )


@torch.no_grad()
def normalize_weight(weight: Tensor, dim: int = 1, keepdim: bool = True) -> None:
    """Scale ``weight`` in place to unit L2 norm along ``dim`` (e.g. SwAV prototypes).

    For a Linear weight of shape (out, in) and ``dim=1`` every output unit's weight vector
    gets norm 1.
    """
    weight.div_(torch.linalg.vector_norm(weight, dim=dim, keepdim=keepdim))


def get_weight_decay_parameters(
    modules: Iterable[nn.Module],
    decay_norm: bool = False,
    decay_bias: bool = False,
    norm_layers: tuple[type[nn.Module], ...] = NORM_LAYERS,
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Split parameters into those that get weight decay and those that do not.

    Weight decay on normalisation scales/shifts and on biases only shrinks them towards
    zero without regularising the function much, so SSL recipes (SimCLR's LARS, DINO,
    MAE) exclude them. Each parameter appears exactly once, even if a module is passed
    twice or shared.

    Args:
        modules: Modules whose parameters (recursively) are split.
        decay_norm: If True, parameters of ``norm_layers`` get weight decay too.
        decay_bias: If True, parameters named ``*bias`` outside norm layers get decay too.
        norm_layers: Layer types treated as normalisation layers.

    Returns:
        ``(params, params_no_weight_decay)``, e.g. for
        ``SGD([{"params": params}, {"params": params_no_weight_decay, "weight_decay": 0.0}])``.
    """
    params: list[nn.Parameter] = []
    params_no_weight_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in modules:
        for mod in module.modules():
            is_norm = isinstance(mod, norm_layers)
            for name, param in mod.named_parameters(recurse=False):
                if id(param) in seen:
                    continue
                seen.add(id(param))
                no_decay = not decay_norm if is_norm else (not decay_bias and name.endswith("bias"))
                (params_no_weight_decay if no_decay else params).append(param)
    return params, params_no_weight_decay


# --- masking for masked image modelling -------------------------------------------------


def check_mask_ratio(mask_ratio: object, owner: str) -> float:
    """``mask_ratio`` as a float in [0, 1), else a ConfigError naming ``owner`` and the value.

    1 is refused: a sample with every token masked leaves the encoder nothing to see.
    """
    if (
        isinstance(mask_ratio, bool)
        or not isinstance(mask_ratio, int | float)
        or not 0 <= mask_ratio < 1
    ):
        raise ConfigError(f"{owner}: mask_ratio must be a number in [0, 1), got {mask_ratio!r}")
    return float(mask_ratio)


def _check_patch_size(patch_size: int, owner: str) -> None:
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
        raise ConfigError(f"{owner}: patch_size must be an integer >= 1, got {patch_size!r}")


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """Cut images into flattened, non-overlapping square patches (MAE's pixel targets).

    Args:
        images: (B, C, H, W) with H and W multiples of ``patch_size``.
        patch_size: p, the side of a patch.

    Returns:
        (B, N, p·p·C) with N = (H/p)·(W/p), patches in row-major grid order and each patch's
        pixels in (row, column, channel) order, as MAE flattens them.
    """
    _check_patch_size(patch_size, "patchify")
    if images.ndim != 4 or images.shape[2] % patch_size or images.shape[3] % patch_size:
        raise DataError(
            f"patchify: expected (B, C, H, W) images with H and W multiples of the patch size "
            f"{patch_size}, got shape {tuple(images.shape)}"
        )
    b, c, h, w = images.shape
    gh, gw = h // patch_size, w // patch_size
    x = images.reshape(b, c, gh, patch_size, gw, patch_size)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (B, gh, gw, p, p, C)
    return x.reshape(b, gh * gw, patch_size * patch_size * c)


def unpatchify(
    patches: Tensor,
    patch_size: int,
    channels: int = 3,
    grid_size: tuple[int, int] | None = None,
) -> Tensor:
    """Inverse of :func:`patchify`: (B, N, p·p·C) patches -> (B, C, H, W) images.

    Args:
        patches: (B, N, p·p·C) as :func:`patchify` returns them.
        patch_size: p.
        channels: C.
        grid_size: (H/p, W/p); None means a square grid (N must be a square).
    """
    _check_patch_size(patch_size, "unpatchify")
    if patches.ndim != 3 or patches.shape[2] != patch_size * patch_size * channels:
        raise DataError(
            f"unpatchify: expected (B, N, {patch_size * patch_size * channels}) patches for "
            f"patch_size={patch_size} and channels={channels}, got {tuple(patches.shape)}"
        )
    b, n, _ = patches.shape
    if grid_size is None:
        side = math.isqrt(n)
        if side * side != n:
            raise DataError(
                f"unpatchify: {n} patches do not form a square grid; pass grid_size=(rows, cols)"
            )
        grid_size = (side, side)
    gh, gw = grid_size
    if gh * gw != n:
        raise DataError(f"unpatchify: grid_size {grid_size} does not hold {n} patches")
    x = patches.reshape(b, gh, gw, patch_size, patch_size, channels)
    x = x.permute(0, 5, 1, 3, 2, 4)  # (B, C, gh, p, gw, p)
    return x.reshape(b, channels, gh * patch_size, gw * patch_size)


def random_token_mask(
    size: tuple[int, int],
    mask_ratio: float = 0.6,
    mask_class_token: bool = False,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """A random split of every sample's tokens into kept and masked ones (MAE, MSN).

    Index 0 is the class token; it is always kept unless ``mask_class_token``. Of the other
    M tokens (M = N - 1, or N with ``mask_class_token``) ``round(mask_ratio · M)`` are masked,
    at most M - 1 so that every sample keeps one token it can be masked on. Each sample draws
    its own uniformly random subset.

    Args:
        size: (B, N), the batch size and the sequence length including the class token.
        mask_ratio: Fraction of the maskable tokens to mask, in [0, 1).
        mask_class_token: If True the class token may be masked like any other token.
        device: Device of the returned indices.

    Returns:
        ``(idx_keep, idx_mask)`` of shapes (B, K) and (B, N - K), each sorted ascending per
        row; together they hold every index of 0..N-1 exactly once per row. Unless
        ``mask_class_token``, ``idx_keep[:, 0] == 0`` (the class token comes first).
    """
    batch_size, length = size
    ratio = check_mask_ratio(mask_ratio, "random_token_mask")
    first = 0 if mask_class_token else 1
    if batch_size < 0 or length <= first:
        raise ConfigError(
            f"random_token_mask: size must be (batch_size >= 0, sequence_length > {first}), "
            f"got {tuple(size)}"
        )
    maskable = length - first
    n_mask = min(round(ratio * maskable), maskable - 1)
    noise = torch.rand(batch_size, maskable, device=device)
    order = noise.argsort(dim=1) + first
    idx_mask = order[:, :n_mask].sort(dim=1).values
    idx_keep = order[:, n_mask:].sort(dim=1).values
    if first:
        cls = torch.zeros(batch_size, 1, dtype=idx_keep.dtype, device=idx_keep.device)
        idx_keep = torch.cat([cls, idx_keep], dim=1)
    return idx_keep, idx_mask


def random_block_mask(
    size: tuple[int, int, int],
    batch_mask_ratio: float = 0.5,
    min_image_mask_ratio: float = 0.1,
    max_image_mask_ratio: float = 0.5,
    min_num_masks_per_block: int = 4,
    max_num_masks_per_block: int | None = None,
    min_block_aspect_ratio: float = 0.3,
    max_block_aspect_ratio: float | None = None,
    max_attempts_per_block: int = 10,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Blockwise masks of a batch's patch grids (BEiT's masking, as iBOT and DINOv2 use it).

    BEiT (Bao et al. 2021, https://arxiv.org/abs/2106.08254, Algorithm 1) masks rectangles
    rather than scattered patches: "randomly choose a block of s ∈ [16, 0.4N − |M|] patches
    with aspect ratio r ∈ [0.3, 1/r_min]" until enough patches are masked. Following
    DINOv2, only the first ``round(batch_mask_ratio · B)`` images of a random order are masked;
    their target ratios are spread evenly over [min, max] image mask ratio (image i of n masked
    ones draws its ratio uniformly from the i-th of n equal sub-intervals).

    Args:
        size: (B, H, W), the batch size and the patch grid.
        batch_mask_ratio: Fraction of the images that get a mask, in [0, 1].
        min_image_mask_ratio: Lowest fraction of a masked image's patches to mask.
        max_image_mask_ratio: Highest such fraction.
        min_num_masks_per_block: Smallest block, in patches.
        max_num_masks_per_block: Largest block, in patches (None: no limit but the target).
        min_block_aspect_ratio: Smallest height/width ratio of a block.
        max_block_aspect_ratio: Largest ratio (None: 1 / min_block_aspect_ratio).
        max_attempts_per_block: Draws tried per block before giving up on growing the mask
            (a block that fits nowhere new is redrawn, as BEiT does).
        generator: Random generator, for reproducible masks.
        device: Device of the returned mask.

    Returns:
        Bool tensor (B, H, W), True where a patch is masked. A masked image has at most
        ``round(max_image_mask_ratio · H · W)`` masked patches.
    """
    b, h, w = size
    if not 0 <= batch_mask_ratio <= 1:
        raise ConfigError(
            f"random_block_mask: batch_mask_ratio must be in [0, 1], got {batch_mask_ratio}"
        )
    if not 0 <= min_image_mask_ratio <= max_image_mask_ratio <= 1:
        raise ConfigError(
            "random_block_mask: need 0 <= min_image_mask_ratio <= max_image_mask_ratio <= 1, got "
            f"{min_image_mask_ratio} and {max_image_mask_ratio}"
        )
    if min_block_aspect_ratio <= 0:
        raise ConfigError(
            f"random_block_mask: min_block_aspect_ratio must be > 0, got {min_block_aspect_ratio}"
        )
    max_aspect = max_block_aspect_ratio or 1.0 / min_block_aspect_ratio
    log_aspect = (math.log(min_block_aspect_ratio), math.log(max_aspect))
    n_masked_images = round(batch_mask_ratio * b)
    bounds = torch.linspace(min_image_mask_ratio, max_image_mask_ratio, n_masked_images + 1)
    masks = torch.zeros(b, h, w, dtype=torch.bool)

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    def randint(high: int) -> int:  # in [0, high)
        return int(torch.randint(high, (), generator=generator))

    for i in range(n_masked_images):
        target = round(uniform(float(bounds[i]), float(bounds[i + 1])) * h * w)
        mask = masks[i]
        count = 0
        while count < target:
            budget = target - count
            largest = (
                budget if max_num_masks_per_block is None else min(budget, max_num_masks_per_block)
            )
            added = 0
            for _ in range(max_attempts_per_block):
                if largest < min_num_masks_per_block:
                    break
                area = uniform(min_num_masks_per_block, largest)
                aspect = math.exp(uniform(*log_aspect))
                bh = round(math.sqrt(area * aspect))
                bw = round(math.sqrt(area / aspect))
                if not (1 <= bh < h and 1 <= bw < w):
                    continue
                top, left = randint(h - bh + 1), randint(w - bw + 1)
                block = mask[top : top + bh, left : left + bw]
                new = int((~block).sum())
                # Like BEiT: a block that would overshoot the budget is redrawn.
                if 0 < new <= budget:
                    block.fill_(True)
                    added = new
                    break
            if added == 0:
                break
            count += added
    order = torch.randperm(b, generator=generator)
    return masks[order].to(device)


def expand_index_like(index: Tensor, tokens: Tensor) -> Tensor:
    """(B, K) index -> (B, K, D) index for ``gather``/``scatter`` on (B, N, D) ``tokens``."""
    return index.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])


def _check_index(tokens: Tensor, index: Tensor, owner: str) -> None:
    if tokens.ndim != 3 or index.ndim != 2 or index.shape[0] != tokens.shape[0]:
        raise DataError(
            f"{owner}: expected tokens (B, N, D) and index (B, K) of one batch size, got "
            f"{tuple(tokens.shape)} and {tuple(index.shape)}"
        )


def get_at_index(tokens: Tensor, index: Tensor) -> Tensor:
    """``out[b, k] = tokens[b, index[b, k]]``: (B, N, D), (B, K) -> (B, K, D)."""
    _check_index(tokens, index, "get_at_index")
    return torch.gather(tokens, 1, expand_index_like(index, tokens))


def set_at_index(tokens: Tensor, index: Tensor, value: Tensor) -> Tensor:
    """A copy of ``tokens`` (B, N, D) with ``out[b, index[b, k]] = value[b, k]``.

    ``value`` is (B, K, D); the input is not modified (gradients flow to both).
    """
    _check_index(tokens, index, "set_at_index")
    if value.shape != (*index.shape, tokens.shape[2]):
        raise DataError(
            f"set_at_index: value must have shape {(*index.shape, tokens.shape[2])}, got "
            f"{tuple(value.shape)}"
        )
    return torch.scatter(tokens, 1, expand_index_like(index, tokens), value)


def repeat_token(token: Tensor, size: tuple[int, int]) -> Tensor:
    """A (1, 1, D) token repeated to (B, N, D) (e.g. the mask token for every masked slot)."""
    batch_size, length = size
    return token.repeat(batch_size, length, 1)


def mask_at_index(tokens: Tensor, index: Tensor, mask_token: Tensor) -> Tensor:
    """A copy of ``tokens`` (B, N, D) with the tokens at ``index`` (B, K) replaced by the
    (1, 1, D) ``mask_token`` (SimMIM's input, MAE's decoder input)."""
    return set_at_index(tokens, index, repeat_token(mask_token, (index.shape[0], index.shape[1])))


def mask_bool(tokens: Tensor, mask: Tensor, mask_token: Tensor) -> Tensor:
    """A copy of ``tokens`` (B, N, D) with the tokens where ``mask`` (B, N, bool) is True
    replaced by the (1, 1, D) ``mask_token``."""
    if mask.shape != tokens.shape[:2]:
        raise DataError(
            f"mask_bool: mask must have shape {tuple(tokens.shape[:2])}, got {tuple(mask.shape)}"
        )
    return torch.where(mask.unsqueeze(-1), mask_token.to(tokens.dtype), tokens)


def prepend_class_token(tokens: Tensor, class_token: Tensor) -> Tensor:
    """(B, N, D) tokens with the (1, 1, D) ``class_token`` in front: (B, N + 1, D)."""
    return torch.cat([class_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)


def _sincos_1d(embed_dim: int, positions: Tensor) -> Tensor:
    """(P,) positions -> (P, embed_dim): sin of the first half of the frequencies, cos next.

    "PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))"
    (Vaswani et al. 2017, sec. 3.5), with the sines and cosines grouped as MAE does.
    """
    omega = torch.arange(embed_dim // 2, dtype=torch.float64) / (embed_dim / 2.0)
    omega = 1.0 / 10000**omega
    angles = positions.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def get_2d_sincos_pos_embed(
    embed_dim: int, grid_size: int | tuple[int, int], cls_token: bool = False
) -> Tensor:
    """Fixed 2-D sine-cosine position embeddings of a patch grid (MAE, I-JEPA).

    Half of the channels encode the patch's row, the other half its column, each with the
    1-D sine-cosine embedding of the Transformer.

    Args:
        embed_dim: D, a multiple of 4.
        grid_size: Rows and columns of the patch grid (an int for a square grid).
        cls_token: If True a zero row is prepended for the class token.

    Returns:
        float32 tensor (rows · cols (+ 1), D), rows in row-major grid order.
    """
    if embed_dim % 4:
        raise ConfigError(
            f"get_2d_sincos_pos_embed: embed_dim must be a multiple of 4, got {embed_dim}"
        )
    rows, cols = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    row_pos = torch.arange(rows).repeat_interleave(cols)
    col_pos = torch.arange(cols).repeat(rows)
    emb = torch.cat(
        [_sincos_1d(embed_dim // 2, row_pos), _sincos_1d(embed_dim // 2, col_pos)], dim=1
    )
    if cls_token:
        emb = torch.cat([torch.zeros(1, embed_dim, dtype=emb.dtype), emb], dim=0)
    return emb.float()


def mask_image_patches(images: Tensor, mask_ratio: float, patch_size: int) -> Tensor:
    """(B, C, H, W) images with a random ``mask_ratio`` of their patch grid set to zero.

    For a backbone without tokens (a CNN in MSN) this is the closest equivalent to dropping
    tokens: zero is the mean colour after normalisation. The grid has ceil(H / patch_size) x
    ceil(W / patch_size) cells; each image loses ``round(mask_ratio · cells)`` of them (at
    most all but one). The input is not modified.
    """
    if images.ndim != 4:
        raise DataError(f"mask_image_patches: expected (B, C, H, W) images, got {images.shape}")
    b, _, h, w = images.shape
    gh, gw = math.ceil(h / patch_size), math.ceil(w / patch_size)
    cells = gh * gw
    n_masked = min(cells - 1, round(mask_ratio * cells))
    if n_masked <= 0:
        return images
    order = torch.rand(b, cells, device=images.device).argsort(dim=1)
    keep = torch.ones(b, cells, device=images.device, dtype=images.dtype)
    keep.scatter_(1, order[:, :n_masked], 0.0)
    grid = keep.view(b, 1, gh, gw)
    pixels = grid.repeat_interleave(patch_size, 2).repeat_interleave(patch_size, 3)
    return images * pixels[:, :, :h, :w]
