"""SimCLR augmentations: two views per image.

"We sequentially apply three simple augmentations: random cropping followed by resize back to
the original size, random color distortions, and random Gaussian blur." (SimCLR, Chen et al.
2020, https://arxiv.org/abs/2002.05709). The defaults follow the paper's Appendix A and the
lightly library: crop scale (0.08, 1), colour jitter (0.8s, 0.8s, 0.8s, 0.2s) with p=0.8,
grayscale p=0.2, blur p=0.5 with sigma in [0.1, 2], horizontal flip p=0.5.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfsup.transforms._checks import (
    NormalizeArg,
    check_min_scale,
    check_probability,
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


class SimCLRViewTransform(ViewTransform):
    """One SimCLR view: crop, rotate, flip, colour jitter, grayscale, blur, tensor, normalise.

    Input: a PIL image or a tensor ``(C, H, W)`` (uint8, or float in [0, 1]).
    Output: a float tensor ``(C, input_size, input_size)``.

    Args:
        input_size: Output size in pixels (int, or ``(height, width)``).
        cj_prob: Probability of colour jitter.
        cj_strength: Multiplies ``cj_bright``, ``cj_contrast``, ``cj_sat`` and ``cj_hue``
            (0.5 is recommended for small images such as CIFAR).
        cj_bright: Brightness jitter; factor drawn from ``[max(0, 1 - b), 1 + b]``.
        cj_contrast: Contrast jitter, same convention.
        cj_sat: Saturation jitter, same convention.
        cj_hue: Hue jitter; shift drawn from ``[-h, h]``, ``cj_strength * cj_hue <= 0.5``.
        min_scale: Smallest crop as a fraction of the image area, in (0, 1]; 1.0 disables
            cropping.
        random_gray_scale: Probability of converting to grayscale.
        gaussian_blur: Probability of Gaussian blur.
        kernel_size: Blur window: ``None`` (from sigma), a float fraction of ``input_size`` in
            (0, 1] (legacy, e.g. 0.1) or an odd int in pixels. See
            :mod:`selfsup.transforms.gaussian_blur`.
        sigmas: ``(min, max)`` blur standard deviation in pixels.
        vf_prob: Probability of a vertical flip.
        hf_prob: Probability of a horizontal flip.
        rr_prob: Probability of a random rotation.
        rr_degrees: ``None`` rotates by 90 degrees; ``d`` or ``(min, max)`` by a random angle.
        normalize: ``{"mean": [...], "std": [...]}``; ``None`` or ``False`` disables it.
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 224,
        cj_prob: float = 0.8,
        cj_strength: float = 1.0,
        cj_bright: float = 0.8,
        cj_contrast: float = 0.8,
        cj_sat: float = 0.8,
        cj_hue: float = 0.2,
        min_scale: float = 0.08,
        random_gray_scale: float = 0.2,
        gaussian_blur: float = 0.5,
        kernel_size: float | None = None,
        sigmas: Sequence[float] = (0.1, 2),
        vf_prob: float = 0.0,
        hf_prob: float = 0.5,
        rr_prob: float = 0.0,
        rr_degrees: float | Sequence[float] | None = None,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        size = check_size("input_size", input_size)
        scale = check_min_scale("min_scale", min_scale)
        super().__init__(
            steps=[
                RandomResizedCrop(size=size, scale=(scale, 1.0)),
                random_rotation_transform(rr_prob=rr_prob, rr_degrees=rr_degrees),
                RandomHorizontalFlip(prob=check_probability("hf_prob", hf_prob)),
                RandomVerticalFlip(prob=check_probability("vf_prob", vf_prob)),
                color_jitter_step(cj_prob, cj_strength, cj_bright, cj_contrast, cj_sat, cj_hue),
                RandomGrayscale(prob=check_probability("random_gray_scale", random_gray_scale)),
                gaussian_blur_step(gaussian_blur, kernel_size, sigmas),
            ],
            normalize=normalize,
        )
        self.input_size = size


class SimCLRTransform(MultiViewTransform):
    """SimCLR transform: two independently augmented views of every image.

    Input: a PIL image or a tensor ``(C, H, W)``. Output: a list of two float tensors
    ``(C, input_size, input_size)``. Takes the same arguments as :class:`SimCLRViewTransform`,
    with the same defaults.

    Example:
        >>> transform = SimCLRTransform(input_size=32, cj_prob=0.0, rr_prob=0.5)
        >>> x0, x1 = transform(image)
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 224,
        cj_prob: float = 0.8,
        cj_strength: float = 1.0,
        cj_bright: float = 0.8,
        cj_contrast: float = 0.8,
        cj_sat: float = 0.8,
        cj_hue: float = 0.2,
        min_scale: float = 0.08,
        random_gray_scale: float = 0.2,
        gaussian_blur: float = 0.5,
        kernel_size: float | None = None,
        sigmas: Sequence[float] = (0.1, 2),
        vf_prob: float = 0.0,
        hf_prob: float = 0.5,
        rr_prob: float = 0.0,
        rr_degrees: float | Sequence[float] | None = None,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        view_transform = SimCLRViewTransform(
            input_size=input_size,
            cj_prob=cj_prob,
            cj_strength=cj_strength,
            cj_bright=cj_bright,
            cj_contrast=cj_contrast,
            cj_sat=cj_sat,
            cj_hue=cj_hue,
            min_scale=min_scale,
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
        super().__init__(transforms=[view_transform, view_transform])
