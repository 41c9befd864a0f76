"""SwAV multi-crop augmentations: two high-resolution crops and several small ones.

"We propose a multi-crop strategy where we use two standard resolution crops and sample V
additional low resolution crops that cover only small parts of the image" (SwAV, Caron et
al. 2020, https://arxiv.org/abs/2006.09882, sec. 3.2); on ImageNet "2 × 224 + 6 × 96", with
crops covering (0.14, 1) and (0.05, 0.14) of the image area. Every crop then gets SimCLR's
augmentations: horizontal flip (p=0.5), colour jitter (0.8s, 0.8s, 0.8s, 0.2s with s = 1,
p=0.8), grayscale (p=0.2) and Gaussian blur (p=0.5), as in the authors' code and lightly.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfsup.errors import ConfigError
from selfsup.transforms._checks import (
    NormalizeArg,
    check_positive_int,
    check_probability,
    check_real,
    check_size,
)
from selfsup.transforms._steps import color_jitter_step, gaussian_blur_step
from selfsup.transforms.color import RandomGrayscale
from selfsup.transforms.flip import RandomHorizontalFlip, RandomVerticalFlip
from selfsup.transforms.multi_view_transform import MultiViewTransform
from selfsup.transforms.random_resized_crop import RandomResizedCrop
from selfsup.transforms.rotation import random_rotation_transform
from selfsup.transforms.utils import IMAGENET_NORMALIZE
from selfsup.transforms.view_transform import ViewTransform


class SwaVViewTransform(ViewTransform):
    """One SwAV crop: resized crop, flips, rotation, colour jitter, grayscale, blur, tensor.

    Input: a PIL image or a tensor ``(C, H, W)``. Output: a float tensor
    ``(C, crop_size, crop_size)``. Unlike lightly's ``SwaVViewTransform``, which leaves the
    crop to the multi-crop wrapper, the view owns its crop (``crop_size``, ``crop_scale``),
    so its parameters are drawn with the others and it runs batched like every view.

    Args:
        crop_size: Output size in pixels (int, or ``(height, width)``).
        crop_scale: ``(min, max)`` fraction of the image area the crop covers, in (0, 1].
        hf_prob, vf_prob: Probabilities of horizontal / vertical flips.
        rr_prob, rr_degrees: Random rotation, as in :class:`SimCLRViewTransform`.
        cj_prob, cj_strength, cj_bright, cj_contrast, cj_sat, cj_hue: Colour jitter, as in
            :class:`SimCLRViewTransform`.
        random_gray_scale: Probability of converting to grayscale.
        gaussian_blur: Probability of Gaussian blur.
        kernel_size: Blur window (see :mod:`selfsup.transforms.gaussian_blur`).
        sigmas: ``(min, max)`` blur standard deviation in pixels.
        normalize: ``{"mean": [...], "std": [...]}``; ``None`` or ``False`` disables it.
    """

    def __init__(
        self,
        crop_size: int | Sequence[int] = 224,
        crop_scale: Sequence[float] = (0.14, 1.0),
        hf_prob: float = 0.5,
        vf_prob: float = 0.0,
        rr_prob: float = 0.0,
        rr_degrees: float | Sequence[float] | None = None,
        cj_prob: float = 0.8,
        cj_strength: float = 1.0,
        cj_bright: float = 0.8,
        cj_contrast: float = 0.8,
        cj_sat: float = 0.8,
        cj_hue: float = 0.2,
        random_gray_scale: float = 0.2,
        gaussian_blur: float = 0.5,
        kernel_size: float | None = None,
        sigmas: Sequence[float] = (0.1, 2),
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        size = check_size("crop_size", crop_size)
        scale = _check_scale("crop_scale", crop_scale)
        super().__init__(
            steps=[
                RandomResizedCrop(size=size, scale=scale),
                RandomHorizontalFlip(prob=check_probability("hf_prob", hf_prob)),
                RandomVerticalFlip(prob=check_probability("vf_prob", vf_prob)),
                random_rotation_transform(rr_prob=rr_prob, rr_degrees=rr_degrees),
                color_jitter_step(cj_prob, cj_strength, cj_bright, cj_contrast, cj_sat, cj_hue),
                RandomGrayscale(prob=check_probability("random_gray_scale", random_gray_scale)),
                gaussian_blur_step(gaussian_blur, kernel_size, sigmas),
            ],
            normalize=normalize,
        )
        self.crop_size = size


def _check_scale(name: str, value: object) -> tuple[float, float]:
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(f"{name}={value!r}: expected a (min, max) pair of area fractions")
    low, high = check_real(f"{name}[0]", value[0]), check_real(f"{name}[1]", value[1])
    if not 0.0 < low <= high <= 1.0:
        raise ConfigError(
            f"{name}={value!r}: expected 0 < min <= max <= 1 (fractions of the image area)"
        )
    return low, high


def _check_scale_bounds(
    low_name: str, low: object, high_name: str, high: object
) -> tuple[float, float]:
    """``(low, high)`` given as two arguments, as floats with ``0 < low <= high <= 1``."""
    low_value, high_value = check_real(low_name, low), check_real(high_name, high)
    if not 0.0 < low_value <= high_value <= 1.0:
        raise ConfigError(
            f"{low_name}={low!r}, {high_name}={high!r}: "
            "expected 0 < min <= max <= 1 (fractions of the image area)"
        )
    return low_value, high_value


def _per_category(name: str, value: object, n: int | None) -> list[object]:
    """``value`` as a list with one entry per crop category (``n`` of them, if known)."""
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) == 0:
        raise ConfigError(f"{name}={value!r}: expected a list with one entry per crop category")
    if n is not None and len(value) != n:
        raise ConfigError(
            f"{name}={value!r}: expected {n} entries, one per crop category as in crop_sizes"
        )
    return list(value)


class SwaVTransform(MultiViewTransform):
    """SwAV transform: ``crop_counts[i]`` crops of size ``crop_sizes[i]`` per category ``i``.

    Output: a list of ``sum(crop_counts)`` float tensors, category by category: with the
    defaults, 2 views ``(C, 224, 224)`` then 6 views ``(C, 96, 96)``. SwAV computes codes
    from the first category (the high-resolution crops).

    Args:
        crop_sizes: Size in pixels of the crops of each category (int or ``(height, width)``).
        crop_counts: Number of crops of each category (>= 0, at least one crop in all).
        crop_min_scales: Smallest area fraction of the crops of each category, in (0, 1].
        crop_max_scales: Largest area fraction of the crops of each category, in (0, 1].
        Others: as in :class:`SwaVViewTransform`, shared by all crops.
    """

    def __init__(
        self,
        crop_sizes: Sequence[int | Sequence[int]] = (224, 96),
        crop_counts: Sequence[int] = (2, 6),
        crop_min_scales: Sequence[float] = (0.14, 0.05),
        crop_max_scales: Sequence[float] = (1.0, 0.14),
        hf_prob: float = 0.5,
        vf_prob: float = 0.0,
        rr_prob: float = 0.0,
        rr_degrees: float | Sequence[float] | None = None,
        cj_prob: float = 0.8,
        cj_strength: float = 1.0,
        cj_bright: float = 0.8,
        cj_contrast: float = 0.8,
        cj_sat: float = 0.8,
        cj_hue: float = 0.2,
        random_gray_scale: float = 0.2,
        gaussian_blur: float = 0.5,
        kernel_size: float | None = None,
        sigmas: Sequence[float] = (0.1, 2),
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        sizes = _per_category("crop_sizes", crop_sizes, None)
        n = len(sizes)
        counts = [
            check_positive_int(f"crop_counts[{i}]", c, minimum=0)
            for i, c in enumerate(_per_category("crop_counts", crop_counts, n))
        ]
        if sum(counts) == 0:
            raise ConfigError(f"crop_counts={crop_counts!r}: expected at least one crop in all")
        lows = _per_category("crop_min_scales", crop_min_scales, n)
        highs = _per_category("crop_max_scales", crop_max_scales, n)
        views: list[SwaVViewTransform] = []
        for i in range(n):
            scale = _check_scale_bounds(
                f"crop_min_scales[{i}]", lows[i], f"crop_max_scales[{i}]", highs[i]
            )
            view = SwaVViewTransform(
                crop_size=check_size(f"crop_sizes[{i}]", sizes[i]),
                crop_scale=scale,
                hf_prob=hf_prob,
                vf_prob=vf_prob,
                rr_prob=rr_prob,
                rr_degrees=rr_degrees,
                cj_prob=cj_prob,
                cj_strength=cj_strength,
                cj_bright=cj_bright,
                cj_contrast=cj_contrast,
                cj_sat=cj_sat,
                cj_hue=cj_hue,
                random_gray_scale=random_gray_scale,
                gaussian_blur=gaussian_blur,
                kernel_size=kernel_size,
                sigmas=sigmas,
                normalize=normalize,
            )
            views += [view] * counts[i]
        super().__init__(transforms=views)
        self.crop_counts = counts
