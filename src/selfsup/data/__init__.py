"""Datasets and collate functions: folders of images and videos as ``(sample, target, filename)``.

:class:`LightlyDataset` reads images and video frames (decoded on demand) from a folder or
wraps a torch dataset; the collate functions turn lists of its items into batches of
augmented views.
"""

from selfsup.data.collate import (
    BaseCollateFunction,
    DINOCollateFunction,
    ImageCollateFunction,
    MoCoCollateFunction,
    MultiCropCollateFunction,
    MultiViewCollate,
    SimCLRCollateFunction,
)
from selfsup.data.dataset import LightlyDataset, SkippedFilesWarning

__all__ = [
    "BaseCollateFunction",
    "DINOCollateFunction",
    "ImageCollateFunction",
    "LightlyDataset",
    "MoCoCollateFunction",
    "MultiCropCollateFunction",
    "MultiViewCollate",
    "SimCLRCollateFunction",
    "SkippedFilesWarning",
]
