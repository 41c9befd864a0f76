"""MSN augmentations: random (large) views and focal (small) views, SimCLR's augmentations.

MSN (Assran et al. 2022, https://arxiv.org/abs/2204.07141, sec. 3 and appendix C) takes
"random" views, resized crops of 224 pixels covering (0.3, 1) of the image, and "focal"
views, 96 pixels covering (0.05, 0.3); lightly's defaults make 2 random views (one the
target, one the first anchor) and 10 focal views (anchors). Every crop is flipped (p=0.5),
colour jittered (0.8s, 0.8s, 0.8s, 0.2s with s = 1, p=0.8), turned grayscale (p=0.2) and
blurred (p=0.5), as SimCLR's. The crops are :class:`SwaVViewTransform` views, which own
their crop; the output lists the random views first, then the focal ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfsup.transforms._checks import NormalizeArg, check_positive_int, check_size
from selfsup.transforms.swav_transform import SwaVTransform, _check_scale
from selfsup.transforms.utils import IMAGENET_NORMALIZE


class MSNTransform(SwaVTransform):
    """MSN transform: ``random_views`` crops of ``random_size``, then ``focal_views`` crops of
    ``focal_size`` (lightly's ``MSNTransform``).

    Output: a list of ``random_views + focal_views`` float tensors ``(C, size, size)``; with
    the defaults 2 of 224 pixels and 10 of 96.

    Args:
        random_size: Size in pixels of the random views.
        focal_size: Size in pixels of the focal views.
        random_views: Number of random views (>= 1; MSN uses the first as the target).
        focal_views: Number of focal views (>= 0).
        random_crop_scale: ``(min, max)`` area fraction of the random views.
        focal_crop_scale: ``(min, max)`` area fraction of the focal views.
        Others: as in :class:`SwaVViewTransform`, shared by all crops.
    """

    def __init__(
        self,
        random_size: int = 224,
        focal_size: int = 96,
        random_views: int = 2,
        focal_views: int = 10,
        random_crop_scale: Sequence[float] = (0.3, 1.0),
        focal_crop_scale: Sequence[float] = (0.05, 0.3),
        cj_prob: float = 0.8,
        cj_strength: float = 1.0,
        gaussian_blur: float = 0.5,
        kernel_size: float | None = None,
        sigmas: Sequence[float] = (0.1, 2),
        random_gray_scale: float = 0.2,
        hf_prob: float = 0.5,
        vf_prob: float = 0.0,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        random_scale = _check_scale("random_crop_scale", random_crop_scale)
        focal_scale = _check_scale("focal_crop_scale", focal_crop_scale)
        super().__init__(
            crop_sizes=(
                check_size("random_size", random_size),
                check_size("focal_size", focal_size),
            ),
            crop_counts=(
                check_positive_int("random_views", random_views, minimum=1),
                check_positive_int("focal_views", focal_views, minimum=0),
            ),
            crop_min_scales=(random_scale[0], focal_scale[0]),
            crop_max_scales=(random_scale[1], focal_scale[1]),
            hf_prob=hf_prob,
            vf_prob=vf_prob,
            cj_prob=cj_prob,
            cj_strength=cj_strength,
            random_gray_scale=random_gray_scale,
            gaussian_blur=gaussian_blur,
            kernel_size=kernel_size,
            sigmas=sigmas,
            normalize=normalize,
        )
