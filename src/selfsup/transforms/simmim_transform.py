"""SimMIM's single view: a random resized crop of 67-100% and a flip.

SimMIM (Xie et al. 2021, https://arxiv.org/abs/2111.09886, sec. 4.1): "The data augmentation
is light, including random resize cropping with scale range of [0.67, 1] and a aspect ratio
range of [3/4, 4/3], followed by a random flipping and a color normalization steps." The
targets are the raw pixels of this same view.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfsup.transforms._checks import NormalizeArg
from selfsup.transforms.crop_flip_transform import CropFlipViewTransform
from selfsup.transforms.multi_view_transform import MultiViewTransform
from selfsup.transforms.utils import IMAGENET_NORMALIZE

__all__ = ["SimMIMTransform"]


class SimMIMTransform(MultiViewTransform):
    """One SimMIM view per image, as a one-element list ``[(C, H, W) float tensor]``.

    Args:
        input_size: Output size in pixels (int or ``(height, width)``).
        min_scale: Smallest fraction of the image area the crop covers (0.67).
        hf_prob: Probability of a horizontal flip.
        normalize: ``{"mean": [...], "std": [...]}``; ``None`` or ``False`` disables it.
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 224,
        min_scale: float = 0.67,
        hf_prob: float = 0.5,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        view = CropFlipViewTransform(input_size, min_scale, hf_prob, normalize)
        super().__init__([view])
        self.view = view
        self.input_size = view.input_size
