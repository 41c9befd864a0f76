"""Computed per-sample metadata: size, brightness, contrast, sharpness, saturation.

The values are computed once, in the same decode pass as the corruptness check, from the
RGB image a dataset feeds the model (``PIL.Image.convert("RGB")``, which is what the
datasets do when they load a file). So the numbers describe what the model sees: an RGBA
file is measured without its alpha channel, a 16-bit file after PIL's conversion to 8 bit.

All intensity-like values use the 0-255 scale of 8-bit pixels so that thresholds read the
same for every key:

========== ==================================================================================
key        definition
========== ==================================================================================
width      image width in pixels (stored orientation; EXIF rotation is not applied)
height     image height in pixels
file_size  size of the file on disk in bytes (for a video frame: of the whole video file)
brightness mean luma ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601, PIL's ``"L"`` mode)
contrast   standard deviation of the luma (RMS contrast), population formula (ddof = 0)
sharpness  variance of the 4-neighbour Laplacian of the luma over the interior pixels
           (Pech-Pacheco et al. 2000, "Diatom autofocusing in brightfield microscopy"; the
           same measure as ``cv2.Laplacian(gray, cv2.CV_64F).var()`` without the border):
           0 for a flat image, large for fine detail, small for blur
saturation mean HSV saturation ``(max - min) / max`` of R, G, B per pixel, times 255; 0 where
           ``max == 0`` (black) and for grey pixels
========== ==================================================================================

The functions over arrays are pure; :func:`compute_image_metadata` is the one entry point
the check uses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageChops

#: Names of the computed metadata, usable as keys in selection weights, thresholds and
#: balancing. Every :class:`~selfsup.curation.manifest.SampleRecord` of an ``ok`` sample has
#: a value for each of them.
METADATA_KEYS: Final[tuple[str, ...]] = (
    "width",
    "height",
    "file_size",
    "brightness",
    "contrast",
    "sharpness",
    "saturation",
)


@dataclass(frozen=True, slots=True)
class ImageMetadata:
    """Pixel statistics of one decoded image (see the module docstring for definitions)."""

    width: int
    height: int
    brightness: float
    contrast: float
    sharpness: float
    saturation: float


def luma_array(image: Image.Image) -> NDArray[np.uint8]:
    """Luma of an RGB image as an array of shape (H, W), dtype uint8.

    Uses PIL's ``"L"`` conversion, ``Y = R * 299/1000 + G * 587/1000 + B * 114/1000`` rounded
    to an integer (ITU-R BT.601 weights), so that the value matches what a grayscale
    transform in a dataset produces.
    """
    return np.asarray(image.convert("L"), dtype=np.uint8)


_LEVELS: Final = np.arange(256, dtype=np.float64)
_LEVELS_SQUARED: Final = _LEVELS * _LEVELS


def luma_moments(luma: NDArray[np.uint8]) -> tuple[float, float]:
    """(mean, population standard deviation) of a uint8 luma array of any shape.

    Computed from the 256-bin histogram: one pass over the pixels, and exact sums (integer
    counts times levels), so a constant image gives exactly (level, 0.0).
    """
    n = luma.size
    if n == 0:
        return 0.0, 0.0
    counts = np.bincount(luma.ravel(), minlength=256).astype(np.float64)
    mean = float(counts @ _LEVELS) / n
    variance = float(counts @ _LEVELS_SQUARED) / n - mean * mean
    return mean, math.sqrt(max(variance, 0.0))


def brightness(luma: NDArray[np.uint8]) -> float:
    """Mean of a luma array of shape (H, W), in 0-255; 0.0 for an empty array."""
    return luma_moments(luma)[0]


def contrast(luma: NDArray[np.uint8]) -> float:
    """Population standard deviation of a luma array of shape (H, W) (RMS contrast)."""
    return luma_moments(luma)[1]


def laplacian(luma: NDArray[np.uint8]) -> NDArray[np.int16]:
    """4-neighbour Laplacian of a (H, W) luma array over interior pixels, shape (H-2, W-2).

    ``L[y, x] = I[y-1, x] + I[y+1, x] + I[y, x-1] + I[y, x+1] - 4 I[y, x]``. Border pixels
    are left out rather than padded so that a padding choice cannot create edges that are
    not in the image. Integer arithmetic keeps the result exact (range -1020..1020 fits
    int16).
    """
    if luma.ndim != 2:
        raise ValueError(f"expected a 2-D luma array of shape (H, W), got shape {luma.shape}")
    if luma.shape[0] < 3 or luma.shape[1] < 3:
        return np.zeros((0, 0), dtype=np.int16)
    a = luma.astype(np.int16)
    lap: NDArray[np.int16] = a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:]
    lap -= 4 * a[1:-1, 1:-1]
    return lap


def sharpness(luma: NDArray[np.uint8]) -> float:
    """Variance of the Laplacian of a (H, W) luma array; 0.0 for images under 3x3 pixels.

    Computed from exact integer moments, ``E[L^2] - E[L]^2``, so a flat image gives exactly 0.
    """
    lap = laplacian(luma).ravel().astype(np.int64)
    n = lap.size
    if n == 0:
        return 0.0
    s1 = int(lap.sum())
    s2 = int(lap @ lap)  # int64 is exact: at most 1020^2 per pixel
    # Exact rational arithmetic on Python ints, then one float division.
    return (s2 * n - s1 * s1) / (n * n)


def saturation(image: Image.Image) -> float:
    """Mean HSV saturation of an RGB image on a 0-255 scale; 0.0 for an empty image.

    Per pixel ``S = 255 * (max(R, G, B) - min(R, G, B)) / max(R, G, B)`` and 0 where the
    maximum is 0. The channel maximum and minimum are taken with :mod:`PIL.ImageChops` (C
    loops), which is about twice as fast as PIL's HSV conversion on large images.
    """
    if image.width == 0 or image.height == 0:
        return 0.0
    if image.mode != "RGB":
        raise ValueError(f"saturation expects an RGB image, got mode {image.mode!r}")
    r, g, b = image.split()
    high = np.asarray(ImageChops.lighter(ImageChops.lighter(r, g), b), dtype=np.uint8)
    low = np.asarray(ImageChops.darker(ImageChops.darker(r, g), b), dtype=np.uint8)
    chroma = (high - low).astype(np.float32)  # high >= low, so no uint8 wrap-around
    denominator = np.maximum(high, 1).astype(np.float32)  # chroma is 0 where high is 0
    return float((chroma * np.float32(255.0) / denominator).mean(dtype=np.float64))


def compute_image_metadata(image: Image.Image, *, grayscale: bool = False) -> ImageMetadata:
    """Metadata of one RGB image (mode must be ``"RGB"``; convert first).

    ``grayscale=True`` says that the image was converted from a grey mode (R = G = B), so
    the saturation is 0 without computing it: a quarter of the cost for small images.
    """
    if image.mode != "RGB":
        raise ValueError(f"compute_image_metadata expects an RGB image, got mode {image.mode!r}")
    luma = luma_array(image)
    mean, std = luma_moments(luma)
    return ImageMetadata(
        width=image.width,
        height=image.height,
        brightness=mean,
        contrast=std,
        sharpness=sharpness(luma),
        saturation=0.0 if grayscale else saturation(image),
    )


def metadata_table(
    rows: Sequence[Mapping[str, float | int | None]], keys: Sequence[str] = METADATA_KEYS
) -> dict[str, NDArray[np.float64]]:
    """Columns of metadata as float64 arrays of shape (N,), NaN where a row has no value.

    ``rows`` are mappings such as :meth:`SampleRecord.metadata`; the result is what a
    selection strategy (weights, thresholds, balancing) takes as input.
    """
    table: dict[str, NDArray[np.float64]] = {}
    for key in keys:
        if key not in METADATA_KEYS:
            raise KeyError(f"unknown metadata key {key!r}; known keys: {', '.join(METADATA_KEYS)}")
        column = np.full(len(rows), np.nan, dtype=np.float64)
        for i, row in enumerate(rows):
            value = row.get(key)
            if value is not None:
                column[i] = float(value)
        table[key] = column
    return table
