"""Which files in a folder are samples: image and video extensions, and a stable listing.

Shared by the datasets (SSL library) and the curation pipeline so both see the same
samples in the same order.
"""

from __future__ import annotations

import os
from pathlib import Path

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
)


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True when the extension (case-insensitive) is a supported image format."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_video_file(path: str | os.PathLike[str]) -> bool:
    """True when the extension (case-insensitive) is a supported video container."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def list_sample_files(root: str | os.PathLike[str], videos: bool = True) -> list[str]:
    """All image (and, if ``videos``, video) files below ``root`` as sorted POSIX relative paths.

    Hidden files and folders (name starting with ``.``) are skipped: they hold tool state
    such as ``.selfsup/`` caches, not samples. Symbolic links to files are followed; the
    order is stable across runs and machines (plain string sort of the relative path).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is a file.
    """
    base = Path(root)
    if not base.exists():
        raise FileNotFoundError(f"input folder {str(base)!r} does not exist")
    if not base.is_dir():
        raise NotADirectoryError(
            f"input {str(base)!r} is a file; expected a folder of images or videos"
        )
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = Path(dirpath).relative_to(base)
        for name in filenames:
            if name.startswith("."):
                continue
            if is_image_file(name) or (videos and is_video_file(name)):
                found.append((rel_dir / name).as_posix())
    found.sort()
    return found
