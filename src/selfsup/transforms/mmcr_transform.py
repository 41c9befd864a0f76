"""MMCR augmentations: ``k`` views per image, all drawn like BYOL's first view.

MMCR (Yerxa et al. 2023, "Learning Efficient Coding of Natural Images with Maximum Manifold
Capacity Representations", https://arxiv.org/abs/2303.03307) embeds many augmented views of
every image and maximises the nuclear norm of the matrix of their centroids; it uses BYOL's
augmentations, so every one of the ``k`` views here is a :class:`BYOLView1Transform` (crop of
8-100% of the area, flip, colour jitter (0.4, 0.4, 0.2, 0.1) with p=0.8, grayscale p=0.2,
Gaussian blur p=1, no solarization), as in lightly's ``MMCRTransform``.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfsup.transforms._checks import NormalizeArg, check_positive_int
from selfsup.transforms.byol_transform import BYOLView1Transform
from selfsup.transforms.multi_view_transform import MultiViewTransform
from selfsup.transforms.utils import IMAGENET_NORMALIZE


class MMCRTransform(MultiViewTransform):
    """MMCR transform: ``k`` independently augmented BYOL (view 1) views of every image.

    Input: a PIL image or a tensor ``(C, H, W)``. Output: a list of ``k`` float tensors
    ``(C, input_size, input_size)``.

    Args:
        k: Number of views, an int >= 1 (the method needs >= 2; one view is allowed for
            inspecting the augmentations).
        Others: as in :class:`selfsup.transforms.BYOLView1Transform`, with the same
            defaults, shared by all views.

    Example:
        >>> transform = MMCRTransform(k=8, input_size=32)
        >>> views = transform(image)  # eight tensors (3, 32, 32)
    """

    def __init__(
        self,
        k: int = 8,
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
        views = check_positive_int("k", k)
        view_transform = BYOLView1Transform(
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
        # One view transform serves every view: each call draws fresh parameters.
        super().__init__(transforms=[view_transform] * views)
        self.k = views
