"""Kind of files a dataset holds."""

from __future__ import annotations

from enum import StrEnum


class DatasetType(StrEnum):
    """A dataset is a folder or bucket of images, or of videos (processed frame by frame)."""

    IMAGES = "IMAGES"
    VIDEOS = "VIDEOS"
