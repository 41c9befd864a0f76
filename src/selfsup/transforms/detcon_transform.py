"""DetCon augmentations: SimCLR's (DetCon-S) or BYOL's (DetCon-B) two views, with grids.

DetCon (Hénaff et al. 2021, https://arxiv.org/abs/2103.10957) pools features under region
masks that must follow each view's crop and flip. Here every view comes with the grid of its
feature cells' image positions (as :class:`selfsup.transforms.VICRegLTransform`), from which
a model derives the masks: DetCon's spatial heuristic splits the image into an n x n grid of
regions, and a cell belongs to the region its image position falls in
(:func:`selfsup.methods.detcon.spatial_regions`). Output: two views (C, input_size,
input_size), then their (grid_size, grid_size, 2) grids.
"""

from __future__ import annotations

from typing import Any

import torch

from selfsup.transforms._checks import NormalizeArg
from selfsup.transforms.multi_view_transform import MultiViewTransform
from selfsup.transforms.utils import IMAGENET_NORMALIZE
from selfsup.transforms.vicregl_transform import VICRegLViewTransform, views_then_grids

__all__ = ["DetConBTransform", "DetConSTransform"]


class DetConSTransform(MultiViewTransform):
    """Two SimCLR views (crop (0.08, 1), flip, jitter (0.8, 0.8, 0.8, 0.2) p=0.8, grayscale
    p=0.2, blur p=0.5) and their grids.

    Args:
        input_size: View size in pixels.
        grid_size: Cells per side of each view's grid (7: a ResNet's map of 224 pixels).
        normalize: ``{"mean": [...], "std": [...]}``; ``None`` or ``False`` disables it.
    """

    def __init__(
        self,
        input_size: int = 224,
        grid_size: int = 7,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        view = VICRegLViewTransform(
            crop_size=input_size,
            crop_min_scale=0.08,
            grid_size=grid_size,
            gaussian_blur_prob=0.5,
            solarize_prob=0.0,
            cj_prob=0.8,
            cj_strength=1.0,
            cj_sat=0.8,
            normalize=normalize,
        )
        super().__init__(transforms=[view, view])

    def __call__(self, image: Any, generator: torch.Generator | None = None) -> list[Any]:
        """Both views of ``image``, then their grids."""
        return views_then_grids(self.transforms, image, generator)


class DetConBTransform(MultiViewTransform):
    """BYOL's two asymmetric views (crop (0.08, 1), flip, jitter (0.4, 0.4, 0.2, 0.1) p=0.8,
    grayscale p=0.2; blur p=1 and 0.1, solarize p=0 and 0.2) and their grids.

    Args:
        input_size: View size in pixels.
        grid_size: Cells per side of each view's grid.
        normalize: ``{"mean": [...], "std": [...]}``; ``None`` or ``False`` disables it.
    """

    def __init__(
        self,
        input_size: int = 224,
        grid_size: int = 7,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        views = [
            VICRegLViewTransform(
                crop_size=input_size,
                crop_min_scale=0.08,
                grid_size=grid_size,
                gaussian_blur_prob=blur,
                solarize_prob=solarize,
                cj_prob=0.8,
                normalize=normalize,
            )
            for blur, solarize in ((1.0, 0.0), (0.1, 0.2))
        ]
        super().__init__(transforms=views)

    def __call__(self, image: Any, generator: torch.Generator | None = None) -> list[Any]:
        """Both views of ``image``, then their grids."""
        return views_then_grids(self.transforms, image, generator)
