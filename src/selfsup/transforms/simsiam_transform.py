"""SimSiam augmentations: two views per image, MoCo v2's pipeline.

SimSiam (Chen & He 2021, https://arxiv.org/abs/2011.10566, appendix A) trains on two views drawn
from the same distribution, MoCo v2's augmentations: "Geometric augmentation is
RandomResizedCrop with scale in [0.2, 1.0] and RandomHorizontalFlip. Color augmentation is
ColorJitter with {brightness, contrast, saturation, hue} strength of {0.4, 0.4, 0.4, 0.1} with
an applying probability of 0.8, and RandomGrayscale with an applying probability of 0.2.
Blurring augmentation has a Gaussian kernel with std in [0.1, 2.0]." The paper does not give
the blur probability; 0.5 (MoCo v2's and the lightly library's) is the default here.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfsup.transforms._checks import NormalizeArg
from selfsup.transforms.multi_view_transform import MultiViewTransform
from selfsup.transforms.simclr_transform import SimCLRViewTransform
from selfsup.transforms.utils import IMAGENET_NORMALIZE


class SimSiamViewTransform(SimCLRViewTransform):
    """One SimSiam view: the steps of :class:`SimCLRViewTransform` with SimSiam's strengths.

    Crop scale (0.2, 1) and colour jitter (0.4, 0.4, 0.4, 0.1) where SimCLR uses (0.08, 1) and
    (0.8, 0.8, 0.8, 0.2): SimSiam's objective has no negatives, and the weaker distortions of
    MoCo v2 are the ones it was tuned with.

    Input: a PIL image or a tensor ``(C, H, W)`` (uint8, or float in [0, 1]).
    Output: a float tensor ``(C, input_size, input_size)``.
    Arguments as in :class:`SimCLRViewTransform`; only the defaults differ.
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 224,
        cj_prob: float = 0.8,
        cj_strength: float = 1.0,
        cj_bright: float = 0.4,
        cj_contrast: float = 0.4,
        cj_sat: float = 0.4,
        cj_hue: float = 0.1,
        min_scale: float = 0.2,
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


class SimSiamTransform(MultiViewTransform):
    """SimSiam transform: two independently augmented views of every image.

    Input: a PIL image or a tensor ``(C, H, W)``. Output: a list of two float tensors
    ``(C, input_size, input_size)``. Takes the same arguments as :class:`SimSiamViewTransform`,
    with the same defaults.

    Example:
        >>> transform = SimSiamTransform(input_size=32, cj_strength=0.5)
        >>> x0, x1 = transform(image)
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 224,
        cj_prob: float = 0.8,
        cj_strength: float = 1.0,
        cj_bright: float = 0.4,
        cj_contrast: float = 0.4,
        cj_sat: float = 0.4,
        cj_hue: float = 0.1,
        min_scale: float = 0.2,
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
        view_transform = SimSiamViewTransform(
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
