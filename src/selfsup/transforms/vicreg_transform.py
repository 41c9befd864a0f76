"""VICReg augmentations: two views per image, BYOL's augmentations made symmetric.

VICReg (Bardes et al. 2022, https://arxiv.org/abs/2105.04906, appendix C.1): "The exact set of
augmentations is based on BYOL data augmentation pipeline but is symmetrised", so both views
are drawn from the same distribution: a random resized crop covering 8% to 100% of the image,
a horizontal flip (p=0.5), colour jitter of brightness, contrast, saturation and hue
(0.4, 0.4, 0.2, 0.1) with p=0.8, grayscale with p=0.2, Gaussian blur with p=0.5 and
solarization with p=0.1.

As in the lightly library, the jitter is given as ``cj_strength=0.5`` times (0.8, 0.8, 0.4,
0.2), solarization comes before the blur and its knob is ``solarize_prob``. Blur sigmas are
[0.1, 2] for :class:`VICRegViewTransform` too (BYOL's range, and lightly's for
:class:`VICRegTransform`; lightly's view transform alone defaults to [0.2, 2]).
"""

from __future__ import annotations

from collections.abc import Sequence

from selfsup.transforms._checks import NormalizeArg, check_probability
from selfsup.transforms.gaussian_blur import GaussianBlur
from selfsup.transforms.multi_view_transform import MultiViewTransform
from selfsup.transforms.simclr_transform import SimCLRViewTransform
from selfsup.transforms.solarize import RandomSolarization
from selfsup.transforms.utils import IMAGENET_NORMALIZE


class VICRegViewTransform(SimCLRViewTransform):
    """One VICReg view: crop, rotate, flip, jitter, grayscale, solarize, blur, tensor, normalise.

    The steps of :class:`SimCLRViewTransform` with :class:`RandomSolarization` before the blur.

    Input: a PIL image or a tensor ``(C, H, W)`` (uint8, or float in [0, 1]).
    Output: a float tensor ``(C, input_size, input_size)``.

    Args:
        solarize_prob: Probability of solarization (pixels >= 128 of 255 are inverted).
        Others: as in :class:`SimCLRViewTransform`; the effective colour jitter is
            ``cj_strength * (cj_bright, cj_contrast, cj_sat, cj_hue)``.
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 224,
        cj_prob: float = 0.8,
        cj_strength: float = 0.5,
        cj_bright: float = 0.8,
        cj_contrast: float = 0.8,
        cj_sat: float = 0.4,
        cj_hue: float = 0.2,
        min_scale: float = 0.08,
        random_gray_scale: float = 0.2,
        solarize_prob: float = 0.1,
        gaussian_blur: float = 0.5,
        kernel_size: float | None = None,
        sigmas: Sequence[float] = (0.1, 2),
        vf_prob: float = 0.0,
        hf_prob: float = 0.5,
        rr_prob: float = 0.0,
        rr_degrees: float | Sequence[float] | None = None,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        super().__init__(
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
        solarize = RandomSolarization(prob=check_probability("solarize_prob", solarize_prob))
        blur_index = next(i for i, s in enumerate(self.steps) if isinstance(s, GaussianBlur))
        self.steps.insert(blur_index, solarize)


class VICRegTransform(MultiViewTransform):
    """VICReg transform: two independently augmented views of every image.

    Input: a PIL image or a tensor ``(C, H, W)``. Output: a list of two float tensors
    ``(C, input_size, input_size)``. Takes the same arguments as :class:`VICRegViewTransform`,
    with the same defaults.

    Example:
        >>> transform = VICRegTransform(input_size=32)
        >>> x0, x1 = transform(image)
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 224,
        cj_prob: float = 0.8,
        cj_strength: float = 0.5,
        cj_bright: float = 0.8,
        cj_contrast: float = 0.8,
        cj_sat: float = 0.4,
        cj_hue: float = 0.2,
        min_scale: float = 0.08,
        random_gray_scale: float = 0.2,
        solarize_prob: float = 0.1,
        gaussian_blur: float = 0.5,
        kernel_size: float | None = None,
        sigmas: Sequence[float] = (0.1, 2),
        vf_prob: float = 0.0,
        hf_prob: float = 0.5,
        rr_prob: float = 0.0,
        rr_degrees: float | Sequence[float] | None = None,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        view_transform = VICRegViewTransform(
            input_size=input_size,
            cj_prob=cj_prob,
            cj_strength=cj_strength,
            cj_bright=cj_bright,
            cj_contrast=cj_contrast,
            cj_sat=cj_sat,
            cj_hue=cj_hue,
            min_scale=min_scale,
            random_gray_scale=random_gray_scale,
            solarize_prob=solarize_prob,
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
