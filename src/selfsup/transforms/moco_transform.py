"""MoCo v1 and v2 augmentations: two views per image, SimCLR's pipeline with other defaults.

MoCo v1 (He et al. 2019, https://arxiv.org/abs/1911.05722): "a 224x224-pixel crop is taken
from a randomly resized image, and then undergoes random color jittering, random horizontal
flip, and random grayscale conversion" (torchvision ``ColorJitter(0.4, 0.4, 0.4, 0.4)``,
crop scale (0.2, 1), no blur).

MoCo v2 (Chen et al. 2020, https://arxiv.org/abs/2003.04297) adds SimCLR's blur and uses
``ColorJitter(0.4, 0.4, 0.4, 0.1)``, crop scale (0.2, 1), blur p=0.5 with sigma in [0.1, 2].
"""

from __future__ import annotations

from collections.abc import Sequence

from selfsup.transforms._checks import NormalizeArg
from selfsup.transforms.simclr_transform import SimCLRTransform
from selfsup.transforms.utils import IMAGENET_NORMALIZE


class MoCoV1Transform(SimCLRTransform):
    """MoCo v1 transform: two views; output a list of two tensors ``(C, input_size, input_size)``.

    Arguments as in :class:`selfsup.transforms.SimCLRViewTransform`; only the defaults differ.
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 224,
        cj_prob: float = 0.8,
        cj_strength: float = 1.0,
        cj_bright: float = 0.4,
        cj_contrast: float = 0.4,
        cj_sat: float = 0.4,
        cj_hue: float = 0.4,
        min_scale: float = 0.2,
        random_gray_scale: float = 0.2,
        gaussian_blur: float = 0.0,
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


class MoCoV2Transform(SimCLRTransform):
    """MoCo v2 transform: two views; output a list of two tensors ``(C, input_size, input_size)``.

    SimCLR's pipeline with MoCo v2's colour jitter (0.4, 0.4, 0.4, 0.1) and ``min_scale=0.2``.
    The effective jitter equals ``cj_strength=0.5`` with SimCLR's (0.8, 0.8, 0.8, 0.2).
    Arguments as in :class:`selfsup.transforms.SimCLRViewTransform`.
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
