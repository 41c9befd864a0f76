"""AIM's single view: a bicubic random resized crop and a flip.

AIM (El-Nouby et al. 2024, https://arxiv.org/abs/2401.08541) pre-trains with "random
resized crops and horizontal flips" only, as MAE does: the crop covers 40-100% of the image
(the official config) and is resized with bicubic interpolation, then normalised with the
ImageNet statistics. The prediction targets are patches of this same view.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfsup.transforms._checks import NormalizeArg
from selfsup.transforms.crop_flip_transform import CropFlipViewTransform
from selfsup.transforms.utils import IMAGENET_NORMALIZE

__all__ = ["AIMTransform"]


class AIMTransform(CropFlipViewTransform):
    """One AIM view: ``(C, input_size, input_size)`` float tensor of a PIL image or tensor.

    Calling it returns the view itself (as a ``ViewTransform``); the registered ``aim``
    method wraps it in a one-element list.

    Args:
        input_size: Output size in pixels (int or ``(height, width)``).
        min_scale: Smallest fraction of the image area the crop covers (0.4).
        hf_prob: Probability of a horizontal flip.
        normalize: ``{"mean": [...], "std": [...]}``; ``None`` or ``False`` disables it.
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 224,
        min_scale: float = 0.4,
        hf_prob: float = 0.5,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        super().__init__(input_size, min_scale, hf_prob, normalize, interpolation="bicubic")
