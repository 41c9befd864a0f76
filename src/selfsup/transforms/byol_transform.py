"""BYOL augmentations: two views per image, drawn from two different distributions.

BYOL (Grill et al. 2020, https://arxiv.org/abs/2006.07733, appendix B) produces its two views
with "random cropping: a random patch of the image is selected, with an area uniformly sampled
between 8% and 100% of that of the original image, and an aspect ratio logarithmically sampled
between 3/4 and 4/3", an "optional left-right flip", "color jittering: the brightness, contrast,
saturation and hue of the image are shifted by a uniformly random offset", "color dropping: an
optional conversion to grayscale", "Gaussian blurring ... with a standard deviation uniformly
sampled over [0.1, 2.0]" and "solarization: an optional color transformation
x -> x 1{x<0.5} + (1 - x) 1{x>=0.5}".

Table 6 of the paper gives the probabilities, which differ between the views (the asymmetry is
what the defaults of :class:`BYOLView1Transform` and :class:`BYOLView2Transform` encode):

=====================================  ======  ======
step                                   view 1  view 2
=====================================  ======  ======
random crop, area in [0.08, 1]         1.0     1.0
horizontal flip                        0.5     0.5
colour jitter (0.4, 0.4, 0.2, 0.1)     0.8     0.8
grayscale                              0.2     0.2
Gaussian blur, sigma in [0.1, 2]       1.0     0.1
solarization                           0.0     0.2
=====================================  ======  ======

The crop is resized bilinearly (as in the lightly library) where the paper uses bicubic
interpolation. Barlow Twins (Zbontar et al. 2021) trains on these same two views, so its
recipes use :class:`BYOLTransform` as well.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from selfsup.errors import ConfigError
from selfsup.transforms._checks import NormalizeArg, check_probability
from selfsup.transforms.multi_view_transform import MultiViewTransform
from selfsup.transforms.simclr_transform import SimCLRViewTransform
from selfsup.transforms.solarize import RandomSolarization
from selfsup.transforms.utils import IMAGENET_NORMALIZE


class BYOLView1Transform(SimCLRViewTransform):
    """BYOL's first view: always blurred, never solarized (Table 6, column T).

    The steps of :class:`SimCLRViewTransform` (crop, rotation, flips, colour jitter, grayscale,
    blur) followed by :class:`RandomSolarization`, with BYOL's strengths.

    Input: a PIL image or a tensor ``(C, H, W)`` (uint8, or float in [0, 1]).
    Output: a float tensor ``(C, input_size, input_size)``.

    Args:
        solarization_prob: Probability of solarization (pixels >= 128 of 255 are inverted).
        Others: as in :class:`SimCLRViewTransform`; the effective colour jitter is
            ``cj_strength * (cj_bright, cj_contrast, cj_sat, cj_hue)``.
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 224,
        cj_prob: float = 0.8,
        cj_strength: float = 1.0,
        cj_bright: float = 0.4,
        cj_contrast: float = 0.4,
        cj_sat: float = 0.2,
        cj_hue: float = 0.1,
        min_scale: float = 0.08,
        random_gray_scale: float = 0.2,
        gaussian_blur: float = 1.0,
        solarization_prob: float = 0.0,
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
        # After the blur, as in the paper's list of augmentations.
        self.steps.append(
            RandomSolarization(prob=check_probability("solarization_prob", solarization_prob))
        )


class BYOLView2Transform(BYOLView1Transform):
    """BYOL's second view: blurred 10% and solarized 20% of the time (Table 6, column T').

    Same steps and arguments as :class:`BYOLView1Transform`; only the defaults of
    ``gaussian_blur`` (0.1) and ``solarization_prob`` (0.2) differ.

    Input: a PIL image or a tensor ``(C, H, W)``. Output: a float tensor
    ``(C, input_size, input_size)``.
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 224,
        cj_prob: float = 0.8,
        cj_strength: float = 1.0,
        cj_bright: float = 0.4,
        cj_contrast: float = 0.4,
        cj_sat: float = 0.2,
        cj_hue: float = 0.1,
        min_scale: float = 0.08,
        random_gray_scale: float = 0.2,
        gaussian_blur: float = 0.1,
        solarization_prob: float = 0.2,
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
            solarization_prob=solarization_prob,
            kernel_size=kernel_size,
            sigmas=sigmas,
            vf_prob=vf_prob,
            hf_prob=hf_prob,
            rr_prob=rr_prob,
            rr_degrees=rr_degrees,
            normalize=normalize,
        )


def _check_view(name: str, transform: object) -> Callable[[Any], Any]:
    if not callable(transform):
        raise ConfigError(
            f"{name}={transform!r}: expected a callable image -> view, such as "
            "BYOLView1Transform(...) or BYOLView2Transform(...), or None for the default"
        )
    return transform


class BYOLTransform(MultiViewTransform):
    """BYOL transform: ``[view_1(image), view_2(image)]``, the two asymmetric BYOL views.

    Input: a PIL image or a tensor ``(C, H, W)``. Output: a list of two float tensors
    ``(C, input_size, input_size)``.

    Args:
        view_1_transform: Transform of the first view; ``None`` for ``BYOLView1Transform()``.
        view_2_transform: Transform of the second view; ``None`` for ``BYOLView2Transform()``.

    Example:
        >>> transform = BYOLTransform(
        ...     view_1_transform=BYOLView1Transform(input_size=32),
        ...     view_2_transform=BYOLView2Transform(input_size=32),
        ... )
        >>> x0, x1 = transform(image)
    """

    def __init__(
        self,
        view_1_transform: BYOLView1Transform | Callable[[Any], Any] | None = None,
        view_2_transform: BYOLView2Transform | Callable[[Any], Any] | None = None,
    ) -> None:
        view_1 = BYOLView1Transform() if view_1_transform is None else view_1_transform
        view_2 = BYOLView2Transform() if view_2_transform is None else view_2_transform
        super().__init__(
            transforms=[
                _check_view("view_1_transform", view_1),
                _check_view("view_2_transform", view_2),
            ]
        )
