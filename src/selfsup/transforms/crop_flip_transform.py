"""One view made of a random resized crop, a horizontal flip and normalisation, nothing else.

The masked-image-modelling and predictive methods (MAE, SimMIM, I-JEPA, AIM) augment this
lightly because masking or prediction already makes the task hard; they differ only in the
crop's smallest area and its interpolation, which are the arguments here. Each method's
transform (``MAETransform``, ``SimMIMTransform``, ``IJEPATransform``, ``AIMTransform``) sets
its paper's values.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfsup.transforms._checks import (
    NormalizeArg,
    check_min_scale,
    check_probability,
    check_size,
)
from selfsup.transforms.flip import RandomHorizontalFlip
from selfsup.transforms.random_resized_crop import RandomResizedCrop
from selfsup.transforms.utils import IMAGENET_NORMALIZE
from selfsup.transforms.view_transform import ViewTransform

__all__ = ["CropFlipViewTransform"]


class CropFlipViewTransform(ViewTransform):
    """A crop of ``min_scale``-100% of the area (aspect ratio 3/4-4/3) resized to
    ``input_size``, flipped with probability ``hf_prob``: ``(C, H, W)`` float tensor of a PIL
    image or tensor.

    Args:
        input_size: Output size in pixels (int or ``(height, width)``).
        min_scale: Smallest fraction of the image area the crop covers.
        hf_prob: Probability of a horizontal flip.
        normalize: ``{"mean": [...], "std": [...]}``; ``None`` or ``False`` disables it.
        interpolation: Resize interpolation of the crop (``"bilinear"``, ``"bicubic"``, ...).
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 224,
        min_scale: float = 0.2,
        hf_prob: float = 0.5,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
        interpolation: str = "bicubic",
    ) -> None:
        size = check_size("input_size", input_size)
        scale = (check_min_scale("min_scale", min_scale), 1.0)
        super().__init__(
            steps=[
                RandomResizedCrop(size=size, scale=scale, interpolation=interpolation),
                RandomHorizontalFlip(prob=check_probability("hf_prob", hf_prob)),
            ],
            normalize=normalize,
        )
        self.input_size = size
