"""Batched, on-device forms of the augmentation steps: per-sample parameters, one batch.

Every function here takes a batch ``images`` shaped ``(B, C, H, W)`` (uint8 in [0, 255] or
floating point in [0, 1]) on any device, plus the per-sample parameters that the step's
``sample_batch(n, size, generator)`` draws (or that ``from_params``/:func:`crop_boxes` stack from
per-image ``get_params`` draws), and returns a new tensor of the same dtype and device; the
input is never modified. Parameters may live on the CPU (where the data loader draws them):
they are moved to the images' device here.

They reproduce the per-image steps of :mod:`selfsup.transforms` (torchvision's functional ops on
tensors) for the same parameters:

* exactly: flips, 90-degree rotations, grayscale, solarisation, normalisation;
* up to float rounding (about 1e-6 on float inputs, at most 1 of 255 on uint8 inputs, where
  torchvision rounds or truncates an intermediate that differs in its last bits): Gaussian blur,
  colour jitter, and resized crops of float batches;
* resized crops of uint8 batches on the CPU resample in uint8 fixed point, as
  ``torchvision.transforms.v2`` and PIL do (exactly v2's result; the per-image step of
  ``torchvision.transforms.functional`` takes a float round trip and is often 1 of 255 apart,
  more after bicubic overshoot, which v2 and PIL clamp between the two passes);
* arbitrary-angle rotation: nearest-neighbour sampling of the same rotated grid; a pixel whose
  source lies exactly half-way between two pixels may pick the other neighbour.

Why not per-image calls in a loop: a loop launches ``B`` small kernels per step (slow on a GPU)
and keeps the decoded images on the CPU. Here each step is a few batched tensor operations. On
a CPU with one torch thread the batch is cut into chunks of about 4 MB (:func:`rows_per_chunk`:
6 images at 224 px, a batch of 341 at 32 px): a pass over a whole 224-px batch is memory-bound
and its temporaries are fresh allocations, which cost more than the pass itself.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from selfsup.errors import ConfigError, DataError
from selfsup.transforms.color import BRIGHTNESS, CONTRAST, HUE, SATURATION, ColorJitterBatch
from selfsup.transforms.gaussian_blur import GaussianBlurBatch
from selfsup.transforms.random_resized_crop import crop_boxes
from selfsup.transforms.rotation import RotationBatch

__all__ = [
    "color_jitter",
    "crop_boxes",
    "gaussian_blur",
    "grayscale",
    "hflip",
    "normalize",
    "resized_crop",
    "rotate",
    "rotate90",
    "rows_per_chunk",
    "solarize",
    "take_rows",
    "to_float",
    "vflip",
]

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


def _check_batch(name: str, images: torch.Tensor, n: int | None = None) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise DataError(f"{name}: expected images shaped (B, C, H, W), got {shape}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise DataError(
            f"{name}: expected a uint8 or floating point batch, got a {images.dtype} tensor"
        )
    if n is not None and images.shape[0] != n:
        raise DataError(
            f"{name}: the batch has {images.shape[0]} images but the parameters are for {n}; "
            "draw parameters with n = batch size"
        )


def _mask(name: str, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``mask`` (B,) bool on the images' device, shaped (B, 1, 1, 1) to broadcast."""
    if mask.dtype != torch.bool or mask.ndim != 1:
        raise DataError(f"{name}: expected a bool mask (B,), got {mask.dtype} {tuple(mask.shape)}")
    _check_batch(name, images, int(mask.shape[0]))
    return mask.to(images.device).view(-1, 1, 1, 1)


def rows_per_chunk(images: torch.Tensor) -> int:
    """How many images of ``images`` one step processes at a time: the whole batch on a GPU
    (one kernel per operation) and on a CPU with more than one torch thread, on one CPU
    thread as many as fit in :data:`CHUNK_BYTES` of float32.

    Why chunks on the CPU: an elementwise pass over a whole 224-px batch (64 images: 38 MB of
    float32) is memory-bound and every temporary is a fresh allocation that the kernel must
    map and zero; over a few images the temporaries stay in the cache and the allocator
    reuses them. Together with the row selection and the hue and blur rewrites this took the
    224-px SimCLR view from 0.81x to 1.73x the per-image PIL rate (benchmarks/README.md,
    batched_transforms.py); the chunks' own share was not timed apart. Smaller chunks
    (1 MB: 85 images at 32 px) made the 32-px view ~15 % slower from per-call overheads.
    Why not with several threads: every operation then splits its pixels between the threads
    and waits for all of them; over a chunk's small tensors that wait dominated (with 2
    threads on a busy 2-core machine the 224-px view ran 5x slower than in one chunk)."""
    if images.device.type != "cpu" or torch.get_num_threads() > 1:
        return max(1, int(images.shape[0]))
    per_image = max(1, math.prod(images.shape[1:]) * 4)
    return max(1, CHUNK_BYTES // per_image)


#: Working-set size of one chunk of a CPU step (see :func:`rows_per_chunk`), in bytes.
CHUNK_BYTES = 4 << 20


def take_rows(params: Any, rows: slice) -> Any:
    """The batch parameters of one step (a bool mask or boxes ``(n, ...)``, or a ``*Batch``
    dataclass of such tensors and ``None``) for the images ``rows`` of the batch only: what a
    chunk of the batch is processed with."""
    if isinstance(params, torch.Tensor):
        return params[rows]
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        fields = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
        return dataclasses.replace(
            params,
            **{name: take_rows(v, rows) for name, v in fields.items() if v is not None},
        )
    raise DataError(
        f"take_rows: expected a tensor or a dataclass of tensors, got {type(params).__name__}"
    )


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, C, H, W)`` -> float32 in [0, 1] (divided by 255); float input -> a copy."""
    _check_batch("to_float", images)
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    return images.clone()


def _apply_rows(
    images: torch.Tensor, mask: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """A copy of ``images`` with the rows where ``mask`` (bool ``(B,)``) replaced by ``fn`` of
    them, in chunks of :func:`rows_per_chunk` rows; ``fn`` maps ``(k, C, H, W)`` to the same
    shape. On the CPU only the selected rows are computed (``torch.where`` would compute
    every row and then select, two more passes over the batch); on a GPU ``torch.where`` is
    kept, because listing the selected rows (``nonzero``) waits for the device on every
    call, which costs more than the extra pass. ``fn`` must treat each row on its own."""
    if images.device.type != "cpu":
        return torch.where(mask.to(images.device).view(-1, 1, 1, 1), fn(images), images)
    out = images.clone()
    index = mask.to("cpu").nonzero().squeeze(1)
    rows = rows_per_chunk(images)
    for start in range(0, len(index), rows):
        on_device = index[start : start + rows].to(images.device)
        out.index_copy_(0, on_device, fn(images.index_select(0, on_device)))
    return out


def hflip(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror left-right the images where ``mask`` (bool ``(B,)``) is set; exact."""
    _mask("hflip", images, mask)
    return _apply_rows(images, mask, lambda x: x.flip(-1))


def vflip(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror top-bottom the images where ``mask`` (bool ``(B,)``) is set; exact."""
    _mask("vflip", images, mask)
    return _apply_rows(images, mask, lambda x: x.flip(-2))


def rotate90(images: torch.Tensor, mask: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Rotate counter-clockwise by ``k * 90`` degrees where ``mask`` is set; exact.

    An odd ``k`` swaps height and width, so a batch can only mix rotated and unrotated images
    when they are square; a non-square batch needs all or none rotated.
    """
    m = _mask("rotate90", images, mask)
    k %= 4
    if k == 0 or not bool(mask.any()):
        return images.clone()
    rotated = torch.rot90(images, k, dims=(-2, -1))
    if rotated.shape == images.shape:
        return torch.where(m, rotated, images)
    if bool(mask.all()):
        return rotated
    raise DataError(
        f"rotate90: a {images.shape[-2]}x{images.shape[-1]} batch cannot mix images rotated by "
        f"{k * 90} degrees (which become {images.shape[-1]}x{images.shape[-2]}) with unrotated "
        "ones; rotate after a square crop or use square images"
    )


def _filter(kind: str) -> tuple[float, Callable[[torch.Tensor], torch.Tensor]]:
    """Half-width and kernel of torchvision's antialiased interpolation filters."""
    if kind == "bilinear":
        return 1.0, lambda x: torch.clamp(1.0 - x.abs(), min=0.0)

    def cubic(x: torch.Tensor) -> torch.Tensor:
        # Keys' cubic with a = -0.5, the antialiased bicubic kernel (PIL's, torchvision's).
        a = -0.5
        x = x.abs()
        near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
        far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
        return torch.where(x < 1.0, near, torch.where(x < 2.0, far, torch.zeros_like(x)))

    return 2.0, cubic


def _resample_matrix(
    start: torch.Tensor,
    length: torch.Tensor,
    out_size: int,
    full: int,
    kind: str,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Per-sample weights ``(B, out_size, full)`` float64 mapping one image axis to the output,
    built on ``device`` (on a GPU: a batch of 256 crops of 448 px to 224 px is two 200 MB
    matrices, which should not be built on the CPU and copied).

    Output pixel ``i`` of sample ``b`` is ``sum_j W[b, i, j] x[j]``; the weights are zero
    outside the crop ``[start, start + length)``. They follow PyTorch's antialiased resampling
    (``interpolate(..., antialias=True)``, the algorithm of PIL's resize): with
    ``scale = length / out_size``, output pixel ``i`` is centred at ``scale * (i + 0.5)`` in
    crop coordinates, and the filter is stretched by ``scale`` when downsampling so that every
    input pixel contributes. ``nearest`` picks crop pixel ``floor(i * scale)``.
    """
    length_f = length.to(device, torch.float64).view(-1, 1, 1)
    scale = length_f / out_size
    i = torch.arange(out_size, dtype=torch.float64, device=device).view(1, -1, 1)
    j = torch.arange(full, dtype=torch.float64, device=device).view(1, 1, -1)
    j = j - start.to(device, torch.float64).view(-1, 1, 1)
    if kind == "nearest":
        src = torch.minimum(torch.floor(i * scale), length_f - 1)
        return (j == src).to(torch.float64)
    half, kernel = _filter(kind)
    support = torch.where(scale >= 1.0, half * scale, torch.full_like(scale, half))
    inv_scale = torch.where(scale >= 1.0, 1.0 / scale, torch.ones_like(scale))
    center = scale * (i + 0.5)
    low = torch.clamp(torch.trunc(center - support + 0.5), min=0.0)
    high = torch.minimum(torch.trunc(center + support + 0.5), length_f)
    inside = (j >= low) & (j < high)
    weights = torch.where(inside, kernel((j - center + 0.5) * inv_scale), torch.zeros_like(j))
    total = weights.sum(dim=-1, keepdim=True)
    return weights / torch.where(total == 0, torch.ones_like(total), total)


def resized_crop(
    images: torch.Tensor,
    boxes: torch.Tensor,
    size: Sequence[int],
    interpolation: str = "bilinear",
) -> torch.Tensor:
    """Crop every image to its box and resize it to ``size = (height, width)``.

    Args:
        images: ``(B, C, H, W)`` uint8 or float.
        boxes: int ``(B, 4)``: ``top, left, height, width`` in input pixels (what
            ``RandomResizedCrop.sample_batch`` or :func:`crop_boxes` returns); every box must
            lie inside the image.
        size: Output ``(height, width)``.
        interpolation: ``"bilinear"`` or ``"bicubic"`` (antialiased, as the per-image step's
            ``resized_crop(..., antialias=True)``) or ``"nearest"``.

    Returns ``(B, C, height, width)``, same dtype (uint8 results rounded and clamped) and device.

    On the CPU every crop is one call of PyTorch's resampling kernel (``F.interpolate`` with
    ``antialias=True``, what the per-image step calls), on a channels-last copy for uint8, whose
    fixed-point kernel is several times faster than float. Elsewhere (a GPU) each output is two
    batched matrix products, ``W_y[b] @ x[b] @ W_x[b]^T``, with the per-sample resampling weights
    of :func:`_resample_matrix`: one kernel for the batch instead of ``B`` small ones. At 224 px
    the dense matrices cost ~20x the per-crop kernel on a CPU core, which is why both exist.
    """
    if interpolation not in _INTERPOLATIONS:
        raise ConfigError(
            f"interpolation={interpolation!r}: expected one of {', '.join(_INTERPOLATIONS)}"
        )
    if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.is_floating_point():
        raise DataError(
            f"resized_crop: expected int boxes (B, 4) = top, left, height, width, got "
            f"{boxes.dtype} {tuple(boxes.shape)}"
        )
    _check_batch("resized_crop", images, int(boxes.shape[0]))
    out_h, out_w = int(size[0]), int(size[1])
    height, width = int(images.shape[-2]), int(images.shape[-1])
    boxes = boxes.to("cpu", torch.int64)
    top, left, box_h, box_w = boxes.unbind(1)
    bad = (top < 0) | (left < 0) | (box_h < 1) | (box_w < 1)
    bad |= (top + box_h > height) | (left + box_w > width)
    if bool(bad.any()):
        index = int(bad.nonzero()[0, 0])
        raise DataError(
            f"resized_crop: box {boxes[index].tolist()} of image {index} is not inside the "
            f"{height}x{width} image; boxes are top, left, height, width in pixels"
        )
    if images.device.type == "cpu":
        return _resized_crop_each(images, boxes, (out_h, out_w), interpolation)
    compute = images.dtype if images.is_floating_point() else torch.float32
    w_y = _resample_matrix(top, box_h, out_h, height, interpolation, images.device)
    w_x = _resample_matrix(left, box_w, out_w, width, interpolation, images.device)
    w_y = w_y.to(images.device, compute).unsqueeze(1)  # (B, 1, out_h, H)
    w_x = w_x.to(images.device, compute).transpose(1, 2).unsqueeze(1)  # (B, 1, W, out_w)
    x = images.to(compute)
    out = torch.matmul(w_y, torch.matmul(x, w_x))
    if images.dtype == torch.uint8:
        return out.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _resized_crop_each(
    images: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int], interpolation: str
) -> torch.Tensor:
    """:func:`resized_crop` as one ``F.interpolate`` per crop (checked boxes, CPU images)."""
    if images.dtype == torch.uint8:
        # PyTorch's fast uint8 antialiased kernels (the ones v2 uses) need channels-last.
        images = images.contiguous(memory_format=torch.channels_last)
    elif not images.is_floating_point():
        raise DataError(f"resized_crop: expected uint8 or float images, got {images.dtype}")
    antialias = interpolation != "nearest"
    crops = [
        F.interpolate(
            images[i : i + 1, :, top : top + h, left : left + w],
            size=size,
            mode=interpolation,
            antialias=antialias,
            align_corners=None if interpolation == "nearest" else False,
        )
        for i, (top, left, h, w) in enumerate(boxes.tolist())
    ]
    # Float bicubic overshoot stays unclamped, as in the per-image float step.
    return torch.cat(crops).contiguous()


def rotate(images: torch.Tensor, params: RotationBatch) -> torch.Tensor:
    """Rotate counter-clockwise by ``params.angle`` degrees where ``params.applied`` is set.

    As torchvision's ``rotate(img, angle)``: about the image centre, output size kept,
    nearest-neighbour sampling, pixels from outside the image are 0. Output pixel ``(x, y)``
    (coordinates relative to the centre, y down) takes input pixel
    ``(cos t x + sin t y, -sin t x + cos t y)`` with ``t = -angle`` in radians.
    """
    _mask("rotate", images, params.applied)
    if not bool(params.applied.any()):
        return images.clone()
    index = params.applied.nonzero().squeeze(1)
    sub = images.index_select(0, index.to(images.device))
    compute = images.dtype if images.is_floating_point() else torch.float32
    height, width = int(images.shape[-2]), int(images.shape[-1])
    theta = torch.deg2rad(-params.angle[index].to(torch.float64))
    cos, sin = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
    xs = torch.arange(width, dtype=torch.float64).view(1, 1, -1) - (width - 1) / 2.0
    ys = torch.arange(height, dtype=torch.float64).view(1, -1, 1) - (height - 1) / 2.0
    src_x = cos * xs + sin * ys
    src_y = -sin * xs + cos * ys
    # grid_sample with align_corners=False maps -1 and 1 to the outer pixel edges.
    grid = torch.stack([src_x / (width / 2.0), src_y / (height / 2.0)], dim=-1)
    rotated = F.grid_sample(
        sub.to(compute),
        grid.to(images.device, compute),
        mode="nearest",
        padding_mode="zeros",
        align_corners=False,
    ).to(images.dtype)
    return images.index_copy(0, index.to(images.device), rotated)


def _gray(images: torch.Tensor) -> torch.Tensor:
    """Luma ``0.2989 R + 0.587 G + 0.114 B`` ``(B, 1, H, W)`` in the input dtype (torchvision's).

    uint8 luma is truncated, not rounded, as torchvision's ``rgb_to_grayscale`` does.
    """
    r, g, b = images.unbind(dim=-3)
    return (0.2989 * r + 0.587 * g + 0.114 * b).to(images.dtype).unsqueeze(-3)


def grayscale(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Replace every channel by the luma where ``mask`` is set (channel count kept); exact.

    Single-channel images are returned unchanged (a copy).
    """
    _mask("grayscale", images, mask)
    if images.shape[-3] == 1:
        return images.clone()
    _check_rgb("grayscale", images)
    return _apply_rows(images, mask, lambda x: _gray(x).expand_as(x))


def _check_rgb(name: str, images: torch.Tensor) -> None:
    if images.shape[-3] != 3:
        raise DataError(f"{name}: expected 1 or 3 channels, got {images.shape[-3]}")


def _blend(x: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """``ratio * x + (1 - ratio) * other`` clamped to the valid range, in ``x``'s dtype.

    ``ratio`` is float64 ``(n,)``; the two weights are rounded to the compute dtype the way
    torchvision's scalar arithmetic rounds them, and uint8 results are truncated as there.
    """
    compute = x.dtype if x.is_floating_point() else torch.float32
    r = ratio.view(-1, 1, 1, 1)
    a, b = r.to(x.device, compute), (1.0 - r).to(x.device, compute)
    bound = 1.0 if x.is_floating_point() else 255.0
    # torchvision's arithmetic (a fused multiply-add rounds differently, which truncation to
    # uint8 turns into whole levels), with the sum and clamp done in place.
    out = a * x.to(compute)
    out += b * other.to(compute)
    return out.clamp_(0, bound).to(x.dtype)


def _hue_turns(
    flat: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Largest and smallest channel ``M``, ``m``, ``6 C`` (chroma ``C = M - m``) and the hue in
    turns of ``flat`` ``(n, 3, P)``.

    Returns four ``(n, 1, P)`` float32 tensors. The hue is the hexcone's in turns (1 = the
    whole wheel), not reduced modulo 1: ``(g - b) / 6C`` where red is largest,
    ``(2 + (b - r) / C) / 6`` where green is, ``(4 + (r - g) / C) / 6`` where blue is.

    Which channel is largest is found with two exclusive 0/1 indicators (``sign(x).clamp(0)``,
    1 where ``x > 0``) instead of ``max``'s indices, a gather or ``where``, which on the CPU
    are 10-40x slower per pixel than these elementwise passes. Ties need no rule: where two
    channels share the maximum, the two formulas give the same hue (modulo 1 turn; exactly,
    e.g. ``(M - m) / C = 1`` and ``2 + (m - M) / C = 1`` for red = green), so torchvision's
    red-first order is matched. Pixels with ``C = 0`` get some hue; their rotation is ``M``.
    """
    r, g, b = flat[:, 0:1], flat[:, 1:2], flat[:, 2:3]
    g_minus_b = g - b
    green = torch.sign(g_minus_b).clamp_(min=0.0)  # 1 where g > b: green beats blue
    high, low = torch.maximum(g, b), torch.minimum(g, b)
    red = torch.sign(r - high).clamp_(min=0.0)  # 1 where red is the largest (strictly)
    maxc, minc = torch.maximum(r, high), torch.minimum(r, low)
    chroma6 = (maxc - minc).mul_(6.0)
    # Green or blue largest: numerators b - r = low - r and r - g = r - low, offsets 2 and 4.
    low_minus_r = low - r
    numerator = torch.lerp(-low_minus_r, low_minus_r, green)
    numerator = torch.lerp(numerator, g_minus_b, red)  # lerp is exact at weights 0 and 1
    offset = torch.rsub(green, 4.0 / 6.0, alpha=2.0 / 6.0).mul_(1.0 - red)
    # C = 0 only where all channels are equal, so the numerator is 0 there too; any positive
    # divisor then gives some hue without a select over the pixels.
    divisor = chroma6.clamp_min(torch.finfo(torch.float32).tiny)
    return maxc, minc, chroma6, torch.addcdiv(offset, numerator, divisor)


def _adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by ``shift`` (float64 ``(n,)``, fraction of the wheel) in float32.

    torchvision converts RGB to HSV (hexcone), adds the shift to the hue and converts back.
    Only the hue changes, so the round trip is done directly from the largest and smallest
    channel ``M``/``m``, chroma ``C = M - m`` and the hue ``h`` in turns (:func:`_hue_turns`):
    the hexcone's inverse puts channel ``n`` at ``m + C a_n``, where ``a_n`` is a periodic
    trapezoid of the rotated hue, ``a_n = clamp(6 d_n - 1, 0, 1)`` with ``d_n`` the distance
    from ``h + shift + o_n`` to the nearest integer and ``o = (1/2, 1/6, -1/6)`` for R, G, B
    (``V - V S max(0, min(k, 4 - k, 1))`` of torchvision's sectors, rewritten without a modulo
    or a select). With ``clamp(6 d - 1, 0, 1) = 6 clamp(d, 1/6, 1/3) - 1`` each channel costs
    six vectorised passes: add, round, subtract, abs, clamp and one multiply-add. Equal to
    torchvision up to float rounding (a few 1e-7).

    Values outside [0, 1] (after a bicubic overshoot) follow torchvision: a channel that takes
    ``V`` (``a_n = 1``) keeps it unclamped, the others are clamped to [0, 1].
    """
    rgb = x.to(torch.float32)
    if x.dtype == torch.uint8:
        rgb = rgb.div_(255.0)
    n = int(rgb.shape[0])
    flat = rgb.reshape(n, 3, -1)
    maxc, minc, chroma6, turns = _hue_turns(flat)
    offsets = torch.tensor([0.5, 1.0 / 6.0, -1.0 / 6.0], dtype=torch.float64).view(1, 3, 1)
    offsets = (offsets + shift.to("cpu", torch.float64).view(-1, 1, 1)).to(x.device, torch.float32)
    d = turns + offsets  # (n, 3, P)
    d -= torch.round(d)
    d.abs_().clamp_(1.0 / 6.0, 1.0 / 3.0)
    # m + C (6 d - 1) = (M - 2 C) + 6 C d: the lowest value of a channel is m, the highest M.
    out = torch.addcmul(torch.sub(maxc, chroma6, alpha=1.0 / 3.0), chroma6, d)
    if x.is_floating_point():
        low, high = float(minc.amin()), float(maxc.amax())
        if low < 0.0 or high > 1.0:
            out = torch.where(d < 1.0 / 3.0, out.clamp(0.0, 1.0), out)
    out = out.view_as(x)
    if x.dtype == torch.uint8:
        # torchvision's convert_image_dtype: multiply by 256 - 1e-3, then truncate.
        return out.mul_(255.0 + 1.0 - 1e-3).to(torch.uint8)
    return out.to(x.dtype)


def _adjust(op: int, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """One colour adjustment of torchvision's ``ColorJitter`` with per-sample factors."""
    rgb = x.shape[-3] == 3
    if op == BRIGHTNESS:
        # The blend with black: ratio * x + (1 - ratio) * 0 is ratio * x, exactly.
        compute = x.dtype if x.is_floating_point() else torch.float32
        ratio = factor.view(-1, 1, 1, 1).to(x.device, compute)
        bound = 1.0 if x.is_floating_point() else 255.0
        return (x.to(compute) * ratio).clamp_(0, bound).to(x.dtype)
    if op == CONTRAST:
        if x.is_floating_point() and rgb:
            # The mean luma is the luma of the channel means (one pass instead of six); the
            # sums differ from torchvision's in the last bits. uint8 truncates the luma per
            # pixel first, so it keeps torchvision's arithmetic below.
            weights = torch.tensor([0.2989, 0.587, 0.114], dtype=x.dtype, device=x.device)
            means = x.mean(dim=(-2, -1))  # (n, 3)
            mean = (means * weights).sum(dim=1).view(-1, 1, 1, 1)
            return _blend(x, mean, factor)
        compute = x.dtype if x.is_floating_point() else torch.float32
        gray = _gray(x) if rgb else x
        mean = gray.to(compute).mean(dim=(-3, -2, -1), keepdim=True)
        return _blend(x, mean, factor)
    if not rgb:
        # Saturation and hue leave single-channel images alone (as PIL and torchvision do).
        return x
    if op == SATURATION:
        return _blend(x, _gray(x), factor)
    return _adjust_hue(x, factor)


def _jitter(
    x: torch.Tensor, order: torch.Tensor, factors: dict[int, torch.Tensor | None]
) -> torch.Tensor:
    """Jitter every image of ``x`` ``(k, C, H, W)`` in its own ``order`` (int64 ``(k, 4)``,
    CPU) with its ``factors`` (float64 ``(k,)`` on the CPU, or ``None`` to skip an adjustment).

    For every position of the order and every adjustment, the images doing that adjustment
    there are processed together (gathered, adjusted, scattered back), so the cost is four
    adjustments per image, not sixteen. ``x`` may be overwritten (callers pass a copy).
    """
    k = int(x.shape[0])
    # The selections in Python: on a chunk of one image, tensor comparisons and counts for
    # the 16 (position, adjustment) pairs cost about as much as a brightness step.
    orders = order.tolist()
    for position in range(4):
        for op, factor in factors.items():
            if factor is None:
                continue
            rows = [i for i, one in enumerate(orders) if one[position] == op]
            if not rows:
                continue
            if len(rows) == k:  # every image does this adjustment here: no gather/scatter
                x = _adjust(op, x, factor)
                continue
            index = torch.tensor(rows, dtype=torch.int64)
            on_device = index.to(x.device)
            adjusted = _adjust(op, x.index_select(0, on_device), factor[index])
            x.index_copy_(0, on_device, adjusted)
    return x


def color_jitter(images: torch.Tensor, params: ColorJitterBatch) -> torch.Tensor:
    """torchvision's ``ColorJitter`` with per-sample factors and per-sample order.

    Where ``params.applied`` is set, the four adjustments run in each image's
    ``params.order`` (brightness ``x f``, contrast and saturation blends towards the mean luma
    and the luma, hue rotation in HSV), skipping those whose factor is ``None``; the other
    images are copied unchanged. The jittered images are processed in chunks
    (:func:`rows_per_chunk`: the whole batch on a GPU, about 4 MB at a time on the CPU).
    """
    n = int(params.applied.shape[0])
    _check_batch("color_jitter", images, n)
    if images.shape[-3] not in (1, 3):
        _check_rgb("color_jitter", images)
    factors = {
        op: None if factor is None else factor.to("cpu", torch.float64)
        for op, factor in (
            (BRIGHTNESS, params.brightness),
            (CONTRAST, params.contrast),
            (SATURATION, params.saturation),
            (HUE, params.hue),
        )
    }
    order = params.order.to("cpu")
    applied = params.applied.to("cpu")
    active = applied.nonzero().squeeze(1)
    if len(active) == 0:
        return images.clone()
    out = torch.empty_like(images, memory_format=torch.contiguous_format)
    idle = (~applied).nonzero().squeeze(1)
    if len(idle) > 0:
        idle_device = idle.to(images.device)
        out.index_copy_(0, idle_device, images.index_select(0, idle_device))
    rows = rows_per_chunk(images)
    for start in range(0, len(active), rows):
        index = active[start : start + rows]
        on_device = index.to(images.device)
        chunk_factors = {op: None if f is None else f[index] for op, f in factors.items()}
        jittered = _jitter(images.index_select(0, on_device), order[index], chunk_factors)
        out.index_copy_(0, on_device, jittered)
    return out


def _gaussian_kernels(sigma: torch.Tensor, sizes: torch.Tensor, width: int) -> torch.Tensor:
    """Normalised 1-D Gaussians ``(n, width)`` float64, sample ``i`` of odd size ``sizes[i]``.

    Each kernel is centred in the common odd ``width`` and zero beyond its own half-size, so
    one convolution of width ``width`` gives each image its own window.
    """
    x = torch.arange(width, dtype=torch.float64).view(1, -1) - (width - 1) / 2.0
    half = ((sizes.to(torch.float64) - 1) / 2.0).view(-1, 1)
    weights = torch.exp(-0.5 * (x / sigma.to(torch.float64).view(-1, 1)) ** 2)
    weights = torch.where(x.abs() <= half, weights, torch.zeros_like(weights))
    return weights / weights.sum(dim=1, keepdim=True)


def _blur_rows(images: torch.Tensor, sigma: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Blur every image of ``images`` ``(k, C, H, W)`` with its ``sigma`` and odd window
    ``sizes`` (``(k,)`` each, CPU): the same dtype, uint8 results rounded.

    Each 1-D pass is a sum of shifted copies weighted by per-image taps (one multiply-add
    per tap over the chunk) rather than a grouped convolution: PyTorch's depthwise
    convolution on the CPU costs several times more per image, and on a GPU the taps are a
    few batched kernels either way.
    """
    width = int(sizes.max())
    compute = images.dtype if images.is_floating_point() else torch.float32
    count, _, height, width_px = images.shape
    kernels = _gaussian_kernels(sigma, sizes, width).to(images.device, compute)
    taps = kernels.view(count, width, 1, 1, 1).unbind(1)  # one (k, 1, 1, 1) weight per tap
    pad = width // 2
    padded = F.pad(images.to(compute), [pad, pad, pad, pad], mode="reflect")
    rows = padded[:, :, 0:height] * taps[0]
    for shift in range(1, width):
        rows.addcmul_(padded[:, :, shift : shift + height], taps[shift])
    blurred = rows[..., 0:width_px] * taps[0]
    for shift in range(1, width):
        blurred.addcmul_(rows[..., shift : shift + width_px], taps[shift])
    if images.dtype == torch.uint8:
        blurred = blurred.round_().clamp_(0, 255)
    return blurred.to(images.dtype)


def gaussian_blur(images: torch.Tensor, params: GaussianBlurBatch) -> torch.Tensor:
    """Blur the images where ``params.applied`` with their own sigma and odd window.

    Same result as torchvision's ``gaussian_blur`` (reflection padding, normalised Gaussian of
    ``kernel_size`` taps), computed as two depthwise 1-D convolutions (rows, then columns) over
    the blurred images only; uint8 results are rounded. The images are blurred in chunks
    (:func:`rows_per_chunk`): on the CPU a few at a time, grouped by window size, each chunk
    with a window as wide as its largest (zero taps beyond each image's own); on a GPU all
    at once.
    """
    _mask("gaussian_blur", images, params.applied)
    if not bool(params.applied.any()):
        return images.clone()
    index = params.applied.to("cpu").nonzero().squeeze(1)
    sizes = params.kernel_size.to("cpu")[index]
    if bool((sizes % 2 == 0).any()) or bool((sizes < 1).any()):
        raise DataError(f"gaussian_blur: kernel sizes must be odd and >= 1, got {sizes.tolist()}")
    width = int(sizes.max())
    height_px, width_px = int(images.shape[-2]), int(images.shape[-1])
    if width // 2 >= min(height_px, width_px):
        raise DataError(
            f"gaussian_blur: a {width}-pixel window needs reflection padding of {width // 2}, "
            f"more than the {height_px}x{width_px} images allow (at most "
            f"{2 * min(height_px, width_px) - 1} pixels)"
        )
    # Chunks of similar windows: each chunk's convolution is as wide as its largest window.
    by_size = torch.argsort(sizes, stable=True)
    index, sizes = index[by_size], sizes[by_size]
    sigma = params.sigma.to("cpu")[index]
    out = images.clone()
    rows = rows_per_chunk(images)
    for start in range(0, len(index), rows):
        chunk = slice(start, start + rows)
        on_device = index[chunk].to(images.device)
        blurred = _blur_rows(images.index_select(0, on_device), sigma[chunk], sizes[chunk])
        out.index_copy_(0, on_device, blurred)
    return out


def solarize(images: torch.Tensor, mask: torch.Tensor, threshold: float = 128.0) -> torch.Tensor:
    """Invert pixels ``>= threshold`` (0..255 scale, also for float) where ``mask``; exact.

    uint8: ``255 - x``; float in [0, 1]: ``1 - x`` with the threshold divided by 255.
    """
    m = _mask("solarize", images, mask)
    if images.dtype == torch.uint8:
        return torch.where(m & (images >= threshold), 255 - images, images)
    return torch.where(m & (images >= threshold / 255.0), 1.0 - images, images)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel of a float batch ``(B, C, H, W)``; exact.

    Same arithmetic as torchvision's ``normalize`` (mean and std in the images' dtype).
    """
    _check_batch("normalize", images)
    if not images.is_floating_point():
        raise DataError(
            f"normalize: expected a float batch in [0, 1], got {images.dtype}; "
            "convert it with to_float first"
        )
    if len(mean) != images.shape[1] or len(std) != images.shape[1]:
        raise DataError(
            f"normalize: {len(mean)} means and {len(std)} stds for {images.shape[1]} channels; "
            "give one value per channel"
        )
    if any(s <= 0 or not math.isfinite(s) for s in std):
        raise ConfigError(f"normalize: std={list(std)!r}: expected finite values > 0")
    m = torch.as_tensor(list(mean), dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    s = torch.as_tensor(list(std), dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - m).div_(s)
