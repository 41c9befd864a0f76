"""DINO multi-crop augmentations: two global views and ``n_local_views`` local views.

"We construct a set V of different views of an image ... this set contains two global views
... and several local views of smaller resolution. ... 2 global views at resolution 224^2
covering a large (for example greater than 50%) area of the original image, and several local
views of resolution 96^2 covering only small areas (for example less than 50%)." (DINO, Caron et
al. 2021, https://arxiv.org/abs/2104.14294). Colour jitter, grayscale, blur and solarization
follow BYOL: blur always on the first global view, with p=0.1 on the second and p=0.5 on local
views; solarization (p=0.2) only on the second global view.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfsup.errors import ConfigError
from selfsup.transforms._checks import (
    NormalizeArg,
    check_positive_int,
    check_probability,
    check_range,
    check_size,
)
from selfsup.transforms._steps import color_jitter_step, gaussian_blur_step
from selfsup.transforms.color import RandomGrayscale
from selfsup.transforms.flip import RandomHorizontalFlip, RandomVerticalFlip
from selfsup.transforms.multi_view_transform import MultiViewTransform
from selfsup.transforms.random_resized_crop import RandomResizedCrop
from selfsup.transforms.rotation import random_rotation_transform
from selfsup.transforms.solarize import RandomSolarization
from selfsup.transforms.utils import IMAGENET_NORMALIZE
from selfsup.transforms.view_transform import ViewTransform


class DINOViewTransform(ViewTransform):
    """One DINO view: bicubic crop, flips, rotation, jitter, grayscale, blur, solarize, tensor.

    Input: a PIL image or a tensor ``(C, H, W)``. Output: a float tensor
    ``(C, crop_size, crop_size)``.

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
        kernel_scale: Legacy relative jitter of the blur window; needs ``kernel_size``.
        sigmas: ``(min, max)`` blur standard deviation in pixels.
        solarization_prob: Probability of solarization.
        normalize: ``{"mean": [...], "std": [...]}``; ``None`` or ``False`` disables it.
    """

    def __init__(
        self,
        crop_size: int | Sequence[int] = 224,
        crop_scale: Sequence[float] = (0.4, 1.0),
        hf_prob: float = 0.5,
        vf_prob: float = 0.0,
        rr_prob: float = 0.0,
        rr_degrees: float | Sequence[float] | None = None,
        cj_prob: float = 0.8,
        cj_strength: float = 0.5,
        cj_bright: float = 0.8,
        cj_contrast: float = 0.8,
        cj_sat: float = 0.4,
        cj_hue: float = 0.2,
        random_gray_scale: float = 0.2,
        gaussian_blur: float = 1.0,
        kernel_size: float | None = None,
        kernel_scale: float | None = None,
        sigmas: Sequence[float] = (0.1, 2),
        solarization_prob: float = 0.2,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        size = check_size("crop_size", crop_size)
        scale = check_range("crop_scale", crop_scale, 0.0, 1.0, low_inclusive=False)
        super().__init__(
            steps=[
                RandomResizedCrop(size=size, scale=scale, interpolation="bicubic"),
                RandomHorizontalFlip(prob=check_probability("hf_prob", hf_prob)),
                RandomVerticalFlip(prob=check_probability("vf_prob", vf_prob)),
                random_rotation_transform(rr_prob=rr_prob, rr_degrees=rr_degrees),
                color_jitter_step(cj_prob, cj_strength, cj_bright, cj_contrast, cj_sat, cj_hue),
                RandomGrayscale(prob=check_probability("random_gray_scale", random_gray_scale)),
                gaussian_blur_step(gaussian_blur, kernel_size, sigmas, kernel_scale),
                RandomSolarization(prob=check_probability("solarization_prob", solarization_prob)),
            ],
            normalize=normalize,
        )
        self.crop_size = size


class DINOTransform(MultiViewTransform):
    """DINO transform: ``[global_0, global_1, local_0, ..., local_{n-1}]`` views per image.

    Output: a list of ``2 + n_local_views`` float tensors; the first two are
    ``(C, global_crop_size, global_crop_size)``, the rest ``(C, local_crop_size,
    local_crop_size)``.

    Args:
        global_crop_size: Size of the two global views in pixels.
        global_crop_scale: ``(min, max)`` area fraction of the global crops.
        local_crop_size: Size of the local views in pixels.
        local_crop_scale: ``(min, max)`` area fraction of the local crops.
        n_local_views: Number of local views (>= 0).
        gaussian_blur: Blur probabilities ``(global_view_0, global_view_1, local_views)``.
        solarization_prob: Solarization probability of the second global view (the others
            are never solarized).
        Others: as in :class:`DINOViewTransform`, shared by all views.
    """

    def __init__(
        self,
        global_crop_size: int = 224,
        global_crop_scale: Sequence[float] = (0.4, 1.0),
        local_crop_size: int = 96,
        local_crop_scale: Sequence[float] = (0.05, 0.4),
        n_local_views: int = 6,
        hf_prob: float = 0.5,
        vf_prob: float = 0.0,
        rr_prob: float = 0.0,
        rr_degrees: float | Sequence[float] | None = None,
        cj_prob: float = 0.8,
        cj_strength: float = 0.5,
        cj_bright: float = 0.8,
        cj_contrast: float = 0.8,
        cj_sat: float = 0.4,
        cj_hue: float = 0.2,
        random_gray_scale: float = 0.2,
        gaussian_blur: Sequence[float] = (1.0, 0.1, 0.5),
        kernel_size: float | None = None,
        kernel_scale: float | None = None,
        sigmas: Sequence[float] = (0.1, 2),
        solarization_prob: float = 0.2,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        global_size = check_size("global_crop_size", global_crop_size)
        local_size = check_size("local_crop_size", local_crop_size)
        global_scale = check_range(
            "global_crop_scale", global_crop_scale, 0.0, 1.0, low_inclusive=False
        )
        local_scale = check_range(
            "local_crop_scale", local_crop_scale, 0.0, 1.0, low_inclusive=False
        )
        n_local = check_positive_int("n_local_views", n_local_views, minimum=0)
        if isinstance(gaussian_blur, str) or not isinstance(gaussian_blur, Sequence):
            raise ConfigError(
                f"gaussian_blur={gaussian_blur!r}: expected three probabilities "
                "(global_view_0, global_view_1, local_views)"
            )
        if len(gaussian_blur) != 3:
            raise ConfigError(
                f"gaussian_blur={gaussian_blur!r}: expected three probabilities "
                f"(global_view_0, global_view_1, local_views), got {len(gaussian_blur)}"
            )
        blur = [check_probability(f"gaussian_blur[{i}]", p) for i, p in enumerate(gaussian_blur)]
        solarization = check_probability("solarization_prob", solarization_prob)

        def view(
            size: tuple[int, int], scale: tuple[float, float], blur_prob: float, solarize: float
        ) -> DINOViewTransform:
            return DINOViewTransform(
                crop_size=size,
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
                gaussian_blur=blur_prob,
                kernel_size=kernel_size,
                kernel_scale=kernel_scale,
                sigmas=sigmas,
                solarization_prob=solarize,
                normalize=normalize,
            )

        global_0 = view(global_size, global_scale, blur[0], 0.0)
        global_1 = view(global_size, global_scale, blur[1], solarization)
        local = view(local_size, local_scale, blur[2], 0.0)
        super().__init__(transforms=[global_0, global_1] + [local] * n_local)
        self.n_local_views = n_local
