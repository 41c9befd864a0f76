"""DenseCL augmentations: MoCo v2's two views.

DenseCL (Wang et al. 2021, https://arxiv.org/abs/2011.09157) trains on MoCo v2's data
augmentation. :class:`DenseCLTransform` is :class:`MoCoV2Transform` under
DenseCL's name (as in lightly), with the same arguments and defaults.
"""

from __future__ import annotations

from selfsup.transforms.moco_transform import MoCoV2Transform

__all__ = ["DenseCLTransform"]


class DenseCLTransform(MoCoV2Transform):
    """DenseCL transform: two MoCo v2 views ``(C, input_size, input_size)`` per image.

    Example:
        >>> x_query, x_key = DenseCLTransform(input_size=32)(image)
    """
