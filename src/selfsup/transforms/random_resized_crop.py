"""Random resized crop with separately sampled parameters (torchvision's algorithm)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

from selfsup.errors import ConfigError
from selfsup.transforms._checks import check_range, check_size
from selfsup.transforms.base import ImageSize, ImageT, RandomTransform, same_type

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
_ATTEMPTS = 10


@dataclass(frozen=True)
class CropParams:
    """Crop window in input pixels: rows ``top:top+height``, columns ``left:left+width``."""

    top: int
    left: int
    height: int
    width: int


def sample_crop(
    size: ImageSize,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None = None,
) -> CropParams:
    """Sample a crop covering a random fraction ``scale`` of the area with aspect ``ratio``.

    Same algorithm as torchvision's ``RandomResizedCrop.get_params``: up to 10 proposals with
    area fraction ~ U(scale) and log aspect ratio ~ U(log ratio); the first that fits is used,
    otherwise the largest central crop whose aspect ratio lies in ``ratio``. The random numbers
    for all 10 proposals are drawn at once, so every call consumes the same amount of the
    generator's stream.
    """
    height, width = size
    area = float(height * width)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    draws = torch.rand((_ATTEMPTS, 4), generator=generator, dtype=torch.float64).tolist()
    for u_area, u_ratio, u_top, u_left in draws:
        target_area = area * (scale[0] + (scale[1] - scale[0]) * u_area)
        aspect = math.exp(log_lo + (log_hi - log_lo) * u_ratio)
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = min(int(u_top * (height - h + 1)), height - h)
            left = min(int(u_left * (width - w + 1)), width - w)
            return CropParams(top=top, left=left, height=h, width=w)
    return sample_crop_fallback(size, ratio)


def sample_crop_fallback(size: ImageSize, ratio: tuple[float, float]) -> CropParams:
    """The central crop :func:`sample_crop` returns when none of its proposals fits."""
    height, width = size
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        w, h = width, height
    return CropParams(top=(height - h) // 2, left=(width - w) // 2, height=h, width=w)


def crop_boxes(params: Sequence[CropParams]) -> torch.Tensor:
    """Stack per-image crops into boxes ``(n, 4)`` int64: ``top, left, height, width``."""
    return torch.tensor(
        [[p.top, p.left, p.height, p.width] for p in params], dtype=torch.int64
    ).reshape(-1, 4)


def sample_crop_batch(
    n: int,
    size: ImageSize | torch.Tensor,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """:func:`sample_crop` for ``n`` images at once: boxes ``(n, 4)`` as :func:`crop_boxes`.

    ``size`` is one ``(height, width)`` for all, or int ``(n, 2)``: each image's own size (a
    batch resized from images of different sizes draws its crops in the original pixels).
    Draws the same ``(n, 10, 4)`` float64 uniforms that ``n`` calls of :func:`sample_crop` draw,
    in the same order, and picks the first proposal that fits per row (or the central
    fallback), so with the same generator state it returns exactly the same crops.
    """
    if isinstance(size, torch.Tensor):
        if size.shape != (n, 2) or size.is_floating_point() or bool((size < 1).any()):
            raise ConfigError(
                f"size: expected one positive (height, width) per image, int ({n}, 2), got "
                f"{size.dtype} {tuple(size.shape)}"
            )
        sizes = size.to("cpu", torch.float64)
    else:
        sizes = torch.tensor([size], dtype=torch.float64).expand(n, 2)
    height, width = sizes[:, 0:1], sizes[:, 1:2]  # (n, 1)
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    draws = torch.rand((n, _ATTEMPTS, 4), generator=generator, dtype=torch.float64)
    u_area, u_ratio, u_top, u_left = draws.unbind(-1)
    target_area = area * (scale[0] + (scale[1] - scale[0]) * u_area)
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u_ratio)
    # torch.round and Python's round both round half to even.
    w = torch.round(torch.sqrt(target_area * aspect))
    h = torch.round(torch.sqrt(target_area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.int64).argmax(dim=1, keepdim=True)
    w_sel = w.gather(1, first).squeeze(1)
    h_sel = h.gather(1, first).squeeze(1)
    height, width = height.squeeze(1), width.squeeze(1)
    top = torch.minimum(
        torch.floor(u_top.gather(1, first).squeeze(1) * (height - h_sel + 1)), height - h_sel
    )
    left = torch.minimum(
        torch.floor(u_left.gather(1, first).squeeze(1) * (width - w_sel + 1)), width - w_sel
    )
    boxes = torch.stack([top, left, h_sel, w_sel], dim=1).to(torch.int64)
    no_fit = ~fits.any(dim=1)
    for index in no_fit.nonzero().squeeze(1).tolist():  # rare: tiny or very elongated images
        fallback = sample_crop_fallback((int(height[index]), int(width[index])), ratio)
        boxes[index] = torch.tensor(
            [fallback.top, fallback.left, fallback.height, fallback.width], dtype=torch.int64
        )
    return boxes


class RandomResizedCrop(RandomTransform[CropParams]):
    """Crop a random part of the image and resize it to ``size``.

    Args:
        size: Output size, an int for a square or ``(height, width)``.
        scale: ``(min, max)`` fraction of the input area the crop covers, in (0, 1].
        ratio: ``(min, max)`` aspect ratio (width / height) of the crop before resizing.
        interpolation: ``"bilinear"`` (SimCLR, MoCo), ``"bicubic"`` (DINO) or ``"nearest"``.

    Output: same type as the input; ``size`` pixels; tensors keep dtype, device and leading
    dimensions ``(..., C, size_h, size_w)``.
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
        interpolation: str = "bilinear",
    ) -> None:
        self.size = check_size("size", size)
        self.scale = check_range("scale", scale, 0.0, 1.0, low_inclusive=False)
        self.ratio = check_range("ratio", ratio, 0.0, math.inf, low_inclusive=False)
        if interpolation not in _INTERPOLATIONS:
            raise ConfigError(
                f"interpolation={interpolation!r}: expected one of {', '.join(_INTERPOLATIONS)}"
            )
        self.interpolation = interpolation

    def get_params(self, size: ImageSize, generator: torch.Generator | None = None) -> CropParams:
        """Sample the crop window for an input of ``size = (height, width)``."""
        return sample_crop(size, self.scale, self.ratio, generator)

    def sample_batch(
        self, n: int, size: ImageSize, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Crop boxes ``(n, 4)`` int64 (``top, left, height, width``) for ``n`` inputs."""
        return sample_crop_batch(n, size, self.scale, self.ratio, generator)

    def apply(self, img: ImageT, params: CropParams) -> ImageT:
        """Crop ``params``' window and resize it to ``self.size`` (antialiased for tensors)."""
        out = TF.resized_crop(
            img,
            params.top,
            params.left,
            params.height,
            params.width,
            list(self.size),
            interpolation=InterpolationMode(self.interpolation),
            antialias=True,
        )
        return same_type(out, img)

    def output_size(self, size: ImageSize, params: CropParams) -> ImageSize:
        return self.size
