"""MAE's single view: a bicubic random resized crop of 20-100% and a flip.

MAE (He et al. 2021, https://arxiv.org/abs/2111.06377, appendix A.1) pre-trains with
"random resized cropping" and horizontal flipping only: "MAE works well using cropping-only
augmentation", since random masking already regularises. The official recipe crops 20-100% of
the image, resizes it bicubically and normalises with the ImageNet statistics. The
reconstruction targets are the patches of this same view.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfsup.transforms._checks import NormalizeArg
from selfsup.transforms.crop_flip_transform import CropFlipViewTransform
from selfsup.transforms.multi_view_transform import MultiViewTransform
from selfsup.transforms.utils import IMAGENET_NORMALIZE

__all__ = ["MAETransform"]


class MAETransform(MultiViewTransform):
    """One MAE view per image, as a one-element list ``[(C, H, W) float tensor]`` (lightly's
    ``MAETransform`` returns the list too, so it plugs into the multi-view collate).

    Args:
        input_size: Output size in pixels (int or ``(height, width)``).
        min_scale: Smallest fraction of the image area the crop covers (0.2).
        hf_prob: Probability of a horizontal flip.
        normalize: ``{"mean": [...], "std": [...]}``; ``None`` or ``False`` disables it.
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 224,
        min_scale: float = 0.2,
        hf_prob: float = 0.5,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        view = CropFlipViewTransform(input_size, min_scale, hf_prob, normalize)
        super().__init__([view])
        self.view = view
        self.input_size = view.input_size
