"""I-JEPA's single view: a random resized crop and a flip, nothing else.

"we do not rely on hand-crafted data augmentations" (I-JEPA, Assran et al. 2023,
https://arxiv.org/abs/2301.08243, sec. 1): the context and target blocks are both taken from
one view of the image, which the official code makes with a random resized crop of scale
(0.3, 1.0), a horizontal flip and ImageNet normalisation only.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfsup.transforms._checks import NormalizeArg
from selfsup.transforms.crop_flip_transform import CropFlipViewTransform
from selfsup.transforms.utils import IMAGENET_NORMALIZE

__all__ = ["IJEPATransform"]


class IJEPATransform(CropFlipViewTransform):
    """One I-JEPA view: ``(C, input_size, input_size)`` float tensor of a PIL image or tensor.

    Calling it returns the view itself (as a ``ViewTransform``); the registered ``ijepa``
    method wraps it in a one-element list.

    Args:
        input_size: Output size in pixels (int or ``(height, width)``).
        min_scale: Smallest fraction of the image area the crop covers (0.3).
        hf_prob: Probability of a horizontal flip.
        normalize: ``{"mean": [...], "std": [...]}``; ``None`` or ``False`` disables it.
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 224,
        min_scale: float = 0.3,
        hf_prob: float = 0.5,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        super().__init__(input_size, min_scale, hf_prob, normalize, interpolation="bilinear")
