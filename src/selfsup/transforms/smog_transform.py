"""SMoG augmentations: multi-crop with BYOL-style colour, blur and solarization.

SMoG (Pang et al. 2022, https://arxiv.org/abs/2207.06167) trains on multi-crop views: with
lightly's defaults 4 crops of 224 pixels covering (0.2, 1) of the image and 4 of 96 pixels
covering (0.05, 0.2). Every crop is flipped (p=0.5), colour jittered with (0.4, 0.4, 0.2, 0.1)
(always, ``cj_prob=1``), turned grayscale (p=0.2), blurred (p=0.5 large, 0.1 small) and
solarized (p=0 large, 0.2 small), in that order. lightly spells the view ``SmoGViewTransform``;
here it is :class:`SMoGViewTransform`, and like every selfsup view it owns its crop so its
parameters are drawn with the others and it runs batched.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfsup.errors import ConfigError
from selfsup.transforms._checks import (
    NormalizeArg,
    check_positive_int,
    check_probability,
    check_size,
)
from selfsup.transforms._steps import color_jitter_step, gaussian_blur_step
from selfsup.transforms.color import RandomGrayscale
from selfsup.transforms.flip import RandomHorizontalFlip
from selfsup.transforms.gaussian_blur import check_kernel_size
from selfsup.transforms.multi_view_transform import MultiViewTransform
from selfsup.transforms.random_resized_crop import RandomResizedCrop
from selfsup.transforms.solarize import RandomSolarization
from selfsup.transforms.swav_transform import _check_scale_bounds, _per_category
from selfsup.transforms.utils import IMAGENET_NORMALIZE
from selfsup.transforms.view_transform import ViewTransform


class SMoGViewTransform(ViewTransform):
    """One SMoG crop: resized crop, flip, colour jitter, grayscale, blur, solarize, tensor.

    Input: a PIL image or a tensor ``(C, H, W)``. Output: a float tensor
    ``(C, crop_size, crop_size)``.

    Args:
        crop_size: Output size in pixels (int, or ``(height, width)``).
        crop_min_scale: Smallest fraction of the image area the crop covers, in (0, 1].
        crop_max_scale: Largest fraction, in [crop_min_scale, 1].
        gaussian_blur_prob: Probability of Gaussian blur.
        kernel_size: Blur window (see :mod:`selfsup.transforms.gaussian_blur`).
        sigmas: ``(min, max)`` blur standard deviation in pixels.
        solarize_prob: Probability of solarization.
        hf_prob: Probability of a horizontal flip.
        cj_prob, cj_strength, cj_bright, cj_contrast, cj_sat, cj_hue: Colour jitter, as in
            :class:`selfsup.transforms.SimCLRViewTransform`.
        random_gray_scale: Probability of converting to grayscale.
        normalize: ``{"mean": [...], "std": [...]}``; ``None`` or ``False`` disables it.
    """

    def __init__(
        self,
        crop_size: int | Sequence[int] = 224,
        crop_min_scale: float = 0.2,
        crop_max_scale: float = 1.0,
        gaussian_blur_prob: float = 0.5,
        kernel_size: float | None = None,
        sigmas: Sequence[float] = (0.1, 2),
        solarize_prob: float = 0.0,
        hf_prob: float = 0.5,
        cj_prob: float = 1.0,
        cj_strength: float = 0.5,
        cj_bright: float = 0.8,
        cj_contrast: float = 0.8,
        cj_sat: float = 0.4,
        cj_hue: float = 0.2,
        random_gray_scale: float = 0.2,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        size = check_size("crop_size", crop_size)
        scale = _check_scale_bounds(
            "crop_min_scale", crop_min_scale, "crop_max_scale", crop_max_scale
        )
        super().__init__(
            steps=[
                RandomResizedCrop(size=size, scale=scale),
                RandomHorizontalFlip(prob=check_probability("hf_prob", hf_prob)),
                color_jitter_step(cj_prob, cj_strength, cj_bright, cj_contrast, cj_sat, cj_hue),
                RandomGrayscale(prob=check_probability("random_gray_scale", random_gray_scale)),
                gaussian_blur_step(
                    gaussian_blur_prob, kernel_size, sigmas, prob_name="gaussian_blur_prob"
                ),
                RandomSolarization(prob=check_probability("solarize_prob", solarize_prob)),
            ],
            normalize=normalize,
        )
        self.crop_size = size


class SMoGTransform(MultiViewTransform):
    """SMoG transform: ``crop_counts[i]`` crops of size ``crop_sizes[i]`` per category ``i``.

    Output: a list of ``sum(crop_counts)`` float tensors, category by category: with the
    defaults, 4 views ``(C, 224, 224)`` then 4 views ``(C, 96, 96)``.

    Args:
        crop_sizes: Size in pixels of the crops of each category.
        crop_counts: Number of crops of each category (>= 0, at least one crop in all).
        crop_min_scales: Smallest area fraction of the crops of each category.
        crop_max_scales: Largest area fraction of the crops of each category.
        gaussian_blur_probs: Blur probability of each category.
        gaussian_blur_kernel_sizes: Blur window of each category (``None``: from sigma).
        gaussian_blur_sigmas: ``(min, max)`` blur standard deviation, all categories.
        solarize_probs: Solarization probability of each category.
        Others: as in :class:`SMoGViewTransform`, shared by all crops.
    """

    def __init__(
        self,
        crop_sizes: Sequence[int | Sequence[int]] = (224, 96),
        crop_counts: Sequence[int] = (4, 4),
        crop_min_scales: Sequence[float] = (0.2, 0.05),
        crop_max_scales: Sequence[float] = (1.0, 0.2),
        gaussian_blur_probs: Sequence[float] = (0.5, 0.1),
        gaussian_blur_kernel_sizes: Sequence[float | None] = (None, None),
        gaussian_blur_sigmas: Sequence[float] = (0.1, 2),
        solarize_probs: Sequence[float] = (0.0, 0.2),
        hf_prob: float = 0.5,
        cj_prob: float = 1.0,
        cj_strength: float = 0.5,
        cj_bright: float = 0.8,
        cj_contrast: float = 0.8,
        cj_sat: float = 0.4,
        cj_hue: float = 0.2,
        random_gray_scale: float = 0.2,
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
        per_category = {
            name: _per_category(name, value, n)
            for name, value in (
                ("crop_min_scales", crop_min_scales),
                ("crop_max_scales", crop_max_scales),
                ("gaussian_blur_probs", gaussian_blur_probs),
                ("gaussian_blur_kernel_sizes", gaussian_blur_kernel_sizes),
                ("solarize_probs", solarize_probs),
            )
        }
        views: list[SMoGViewTransform] = []
        for i in range(n):
            low, high = _check_scale_bounds(
                f"crop_min_scales[{i}]",
                per_category["crop_min_scales"][i],
                f"crop_max_scales[{i}]",
                per_category["crop_max_scales"][i],
            )
            view = SMoGViewTransform(
                crop_size=check_size(f"crop_sizes[{i}]", sizes[i]),
                crop_min_scale=low,
                crop_max_scale=high,
                gaussian_blur_prob=check_probability(
                    f"gaussian_blur_probs[{i}]", per_category["gaussian_blur_probs"][i]
                ),
                kernel_size=check_kernel_size(
                    f"gaussian_blur_kernel_sizes[{i}]",
                    per_category["gaussian_blur_kernel_sizes"][i],
                ),
                sigmas=gaussian_blur_sigmas,
                solarize_prob=check_probability(
                    f"solarize_probs[{i}]", per_category["solarize_probs"][i]
                ),
                hf_prob=hf_prob,
                cj_prob=cj_prob,
                cj_strength=cj_strength,
                cj_bright=cj_bright,
                cj_contrast=cj_contrast,
                cj_sat=cj_sat,
                cj_hue=cj_hue,
                random_gray_scale=random_gray_scale,
                normalize=normalize,
            )
            views += [view] * counts[i]
        super().__init__(transforms=views)
        self.crop_counts = counts
