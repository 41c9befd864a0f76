"""DINOv2's multi-crop: DINO's views with DINOv2's crop scales and eight local views.

DINOv2 (Oquab et al. 2023, https://arxiv.org/abs/2304.07193) keeps DINO's augmentations
(colour jitter, grayscale, blur on every first global view, solarization of the second)
and changes the crops: global crops cover 32-100% of the image, local crops 5-32%, and
there are eight local views (the official config: ``global_crops_scale: [0.32, 1.0]``,
``local_crops_scale: [0.05, 0.32]``, ``local_crops_number: 8``). iBOT trains on DINO's
multi-crop as it is (:class:`DINOTransform`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from selfsup.transforms.dino_transform import DINOTransform

__all__ = ["DINOv2Transform"]


class DINOv2Transform(DINOTransform):
    """``[global_0, global_1, local_0, ..., local_{n-1}]`` views per image, as DINOv2 crops.

    Output: a list of ``2 + n_local_views`` float tensors, the two global views
    ``(C, global_crop_size, global_crop_size)`` first, then the local ones
    ``(C, local_crop_size, local_crop_size)``.

    Args:
        global_crop_size: Size of the global views in pixels (224).
        global_crop_scale: ``(min, max)`` area fraction of the global crops ((0.32, 1.0)).
        local_crop_size: Size of the local views (96; DINOv2's ViT/14 use 98 = 7 patches).
        local_crop_scale: ``(min, max)`` area fraction of the local crops ((0.05, 0.32)).
        n_local_views: Number of local views (8).
        kwargs: The other arguments of :class:`DINOTransform` (jitter, blur, solarization,
            normalisation), whose defaults DINOv2 shares.
    """

    def __init__(
        self,
        global_crop_size: int = 224,
        global_crop_scale: Sequence[float] = (0.32, 1.0),
        local_crop_size: int = 96,
        local_crop_scale: Sequence[float] = (0.05, 0.32),
        n_local_views: int = 8,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            global_crop_size=global_crop_size,
            global_crop_scale=global_crop_scale,
            local_crop_size=local_crop_size,
            local_crop_scale=local_crop_scale,
            n_local_views=n_local_views,
            **kwargs,
        )
