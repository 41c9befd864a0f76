"""EMP-SSL augmentations: many small, fixed-scale patches of every image.

EMP-SSL (Tong, Chen, Ma & LeCun 2023, https://arxiv.org/abs/2304.03977): "the key towards
efficient self-supervised learning is to increase the number of crops from each image
instance" (abstract). Every patch is a square crop covering a fixed quarter of the image,
resized to the patch size (32 pixels in the authors' code), then flipped (p=0.5), colour
jittered with (0.4, 0.4, 0.4, 0.2) (p=0.8), turned grayscale (p=0.2), blurred with sigma in
[0.1, 2] (p=0.1) and solarized (p=0.1), in that order; the authors train with 100 patches per
image (20 and 200 in their ablations).

The jitter is given lightly's way, ``cj_strength=0.5`` times (0.8, 0.8, 0.8, 0.4). The
authors normalise with mean = std = 0.5; this transform uses ImageNet statistics like every
other selfsup transform (``normalize={"mean": [0.5] * 3, "std": [0.5] * 3}`` gives theirs).
"""

from __future__ import annotations

from collections.abc import Sequence

from selfsup.transforms._checks import (
    NormalizeArg,
    check_min_scale,
    check_positive_int,
    check_probability,
)
from selfsup.transforms.multi_view_transform import MultiViewTransform
from selfsup.transforms.random_resized_crop import RandomResizedCrop
from selfsup.transforms.simclr_transform import SimCLRViewTransform
from selfsup.transforms.solarize import RandomSolarization
from selfsup.transforms.utils import IMAGENET_NORMALIZE


class EMPSSLViewTransform(SimCLRViewTransform):
    """One EMP-SSL patch: crop, rotate, flip, jitter, grayscale, blur, solarize, normalise.

    The steps of :class:`selfsup.transforms.SimCLRViewTransform` with a fixed-scale square
    crop, followed by :class:`RandomSolarization`.

    Input: a PIL image or a tensor ``(C, H, W)`` (uint8, or float in [0, 1]).
    Output: a float tensor ``(C, input_size, input_size)``.

    Args:
        input_size: Patch size in pixels (int, or ``(height, width)``); 32 as the authors.
        patch_scale: Fraction of the image area every patch covers, in (0, 1] (0.25); the
            crop is square before resizing.
        solarize_prob: Probability of solarization (after the blur, as the authors).
        Others: as in :class:`selfsup.transforms.SimCLRViewTransform`; the effective colour
            jitter is ``cj_strength * (cj_bright, cj_contrast, cj_sat, cj_hue)``.
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 32,
        cj_prob: float = 0.8,
        cj_strength: float = 0.5,
        cj_bright: float = 0.8,
        cj_contrast: float = 0.8,
        cj_sat: float = 0.8,
        cj_hue: float = 0.4,
        patch_scale: float = 0.25,
        random_gray_scale: float = 0.2,
        gaussian_blur: float = 0.1,
        kernel_size: float | None = None,
        sigmas: Sequence[float] = (0.1, 2),
        solarize_prob: float = 0.1,
        vf_prob: float = 0.0,
        hf_prob: float = 0.5,
        rr_prob: float = 0.0,
        rr_degrees: float | Sequence[float] | None = None,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        # Checked here first so that an error names patch_scale, not min_scale.
        scale = check_min_scale("patch_scale", patch_scale)
        super().__init__(
            input_size=input_size,
            cj_prob=cj_prob,
            cj_strength=cj_strength,
            cj_bright=cj_bright,
            cj_contrast=cj_contrast,
            cj_sat=cj_sat,
            cj_hue=cj_hue,
            min_scale=scale,
            random_gray_scale=random_gray_scale,
            gaussian_blur=gaussian_blur,
            kernel_size=kernel_size,
            sigmas=sigmas,
            vf_prob=vf_prob,
            hf_prob=hf_prob,
            rr_prob=rr_prob,
            rr_degrees=rr_degrees,
            normalize=normalize,
        )
        # SimCLR's crop covers (min_scale, 1) of the image; a patch covers exactly
        # patch_scale of it, as a square. Solarization comes after the blur, as the authors'.
        self.steps[0] = RandomResizedCrop(
            size=self.input_size, scale=(scale, scale), ratio=(1.0, 1.0)
        )
        self.steps.append(
            RandomSolarization(prob=check_probability("solarize_prob", solarize_prob))
        )


class EMPSSLTransform(MultiViewTransform):
    """EMP-SSL transform: ``num_patches`` independently augmented patches of every image.

    Input: a PIL image or a tensor ``(C, H, W)``. Output: a list of ``num_patches`` float
    tensors ``(C, input_size, input_size)``. Takes the arguments of
    :class:`EMPSSLViewTransform`, with the same defaults.

    Args:
        num_patches: Patches per image, >= 2 (100, the authors' code).

    Example:
        >>> transform = EMPSSLTransform(num_patches=20, input_size=32)
        >>> patches = transform(image)  # 20 tensors (3, 32, 32)
    """

    def __init__(
        self,
        num_patches: int = 100,
        input_size: int | Sequence[int] = 32,
        cj_prob: float = 0.8,
        cj_strength: float = 0.5,
        cj_bright: float = 0.8,
        cj_contrast: float = 0.8,
        cj_sat: float = 0.8,
        cj_hue: float = 0.4,
        patch_scale: float = 0.25,
        random_gray_scale: float = 0.2,
        gaussian_blur: float = 0.1,
        kernel_size: float | None = None,
        sigmas: Sequence[float] = (0.1, 2),
        solarize_prob: float = 0.1,
        vf_prob: float = 0.0,
        hf_prob: float = 0.5,
        rr_prob: float = 0.0,
        rr_degrees: float | Sequence[float] | None = None,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        count = check_positive_int("num_patches", num_patches, minimum=2)
        view_transform = EMPSSLViewTransform(
            input_size=input_size,
            cj_prob=cj_prob,
            cj_strength=cj_strength,
            cj_bright=cj_bright,
            cj_contrast=cj_contrast,
            cj_sat=cj_sat,
            cj_hue=cj_hue,
            patch_scale=patch_scale,
            random_gray_scale=random_gray_scale,
            gaussian_blur=gaussian_blur,
            kernel_size=kernel_size,
            sigmas=sigmas,
            solarize_prob=solarize_prob,
            vf_prob=vf_prob,
            hf_prob=hf_prob,
            rr_prob=rr_prob,
            rr_degrees=rr_degrees,
            normalize=normalize,
        )
        super().__init__(transforms=[view_transform] * count)
        self.num_patches = count
