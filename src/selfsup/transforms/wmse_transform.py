"""W-MSE augmentations: ``num_samples`` views per image, drawn from one distribution.

W-MSE (Ermolov et al. 2021, https://arxiv.org/abs/2007.06346, sec. 5) uses the augmentations
of SimCLR and BYOL with its own probabilities, as lightly's ``WMSETransform``: a random
resized crop of 20-100% of the area, a horizontal flip (p=0.5), colour jitter (0.4, 0.4,
0.4, 0.1) with p=0.8, grayscale with p=0.1 and Gaussian blur with p=0.5, sigma in [0.1, 2].

The steps run in :class:`SimCLRViewTransform`'s order (crop and flip, then colour) where
lightly jitters the colours of the whole image before cropping: brightness, saturation and
hue shifts are the same either way; the contrast shift blends with the mean grey of the crop
instead of the image's. The crop is resized bilinearly where lightly uses bicubic.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfsup.transforms._checks import NormalizeArg, check_positive_int
from selfsup.transforms.multi_view_transform import MultiViewTransform
from selfsup.transforms.simclr_transform import SimCLRViewTransform
from selfsup.transforms.utils import IMAGENET_NORMALIZE


class WMSETransform(MultiViewTransform):
    """W-MSE transform: ``num_samples`` independently augmented views of every image.

    Input: a PIL image or a tensor ``(C, H, W)``. Output: a list of ``num_samples`` float
    tensors ``(C, input_size, input_size)``. The arguments are lightly's.

    Args:
        num_samples: Number of views, an int >= 1; must match ``WMSELoss(num_samples=...)``.
        input_size: Side of the square output in pixels.
        cj_prob: Probability of colour jitter.
        cj_bright: Brightness jitter.
        cj_contrast: Contrast jitter.
        cj_sat: Saturation jitter.
        cj_hue: Hue jitter, <= 0.5.
        min_scale: Smallest fraction of the image area a crop covers.
        random_gray_scale: Probability of grayscale.
        hf_prob: Probability of a horizontal flip.
        gaussian_blur: Probability of Gaussian blur.
        sigmas: Range of the blur's standard deviation.
        normalize: ``{"mean": [...], "std": [...]}`` or None.

    Example:
        >>> transform = WMSETransform(num_samples=2, input_size=32)
        >>> x0, x1 = transform(image)
    """

    def __init__(
        self,
        num_samples: int = 2,
        input_size: int | Sequence[int] = 224,
        cj_prob: float = 0.8,
        cj_bright: float = 0.4,
        cj_contrast: float = 0.4,
        cj_sat: float = 0.4,
        cj_hue: float = 0.1,
        min_scale: float = 0.2,
        random_gray_scale: float = 0.1,
        hf_prob: float = 0.5,
        gaussian_blur: float = 0.5,
        sigmas: Sequence[float] = (0.1, 2.0),
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        views = check_positive_int("num_samples", num_samples)
        view_transform = SimCLRViewTransform(
            input_size=input_size,
            cj_prob=cj_prob,
            cj_strength=1.0,
            cj_bright=cj_bright,
            cj_contrast=cj_contrast,
            cj_sat=cj_sat,
            cj_hue=cj_hue,
            min_scale=min_scale,
            random_gray_scale=random_gray_scale,
            gaussian_blur=gaussian_blur,
            sigmas=sigmas,
            hf_prob=hf_prob,
            normalize=normalize,
        )
        # One view transform serves every view: each call draws fresh parameters.
        super().__init__(transforms=[view_transform] * views)
        self.num_samples = views
