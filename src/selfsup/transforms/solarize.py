"""Random solarization with separately sampled parameters.

Solarization inverts every pixel value at or above a threshold:
``out = 255 - x if x >= threshold else x`` (on the 0..255 scale), as Pillow's
``ImageOps.solarize``. BYOL and DINO apply it to one of the two global views.
"""

from __future__ import annotations

import math

import torch
from PIL import Image, ImageOps

from selfsup.errors import ConfigError, DataError
from selfsup.transforms._checks import check_probability, check_real
from selfsup.transforms.base import ImageSize, ImageT, RandomTransform, rand_bool, same_type


def solarize(img: ImageT, threshold: float) -> ImageT:
    """Invert pixels ``>= threshold``; ``threshold`` is on the 0..255 scale for every input.

    uint8 tensors: ``255 - x``; float tensors (values in [0, 1]): ``1 - x`` with the threshold
    divided by 255; PIL images: ``ImageOps.solarize``. Returns a new image.
    """
    if isinstance(img, Image.Image):
        # PIL keeps integer values v < threshold, i.e. v < ceil(threshold): same rule.
        return same_type(ImageOps.solarize(img, threshold=math.ceil(threshold)), img)
    if img.dtype == torch.uint8:
        return same_type(torch.where(img >= threshold, 255 - img, img), img)
    if img.is_floating_point():
        return same_type(torch.where(img >= threshold / 255.0, 1.0 - img, img), img)
    raise DataError(
        f"solarize: expected a PIL image, a uint8 tensor or a float tensor in [0, 1], "
        f"got a {img.dtype} tensor"
    )


class RandomSolarization(RandomTransform[bool]):
    """Solarize with probability ``prob``. Params: ``True`` = solarize.

    Args:
        prob: Probability of solarizing.
        threshold: Pixels ``>= threshold`` (0..255 scale, also for float tensors) are inverted.
    """

    def __init__(self, prob: float = 0.5, threshold: int = 128) -> None:
        self.prob = check_probability("prob", prob)
        value = check_real("threshold", threshold)
        if not 0 <= value <= 255:
            raise ConfigError(f"threshold={threshold!r}: expected a pixel value in [0, 255]")
        self.threshold = value

    def get_params(self, size: ImageSize, generator: torch.Generator | None = None) -> bool:
        return rand_bool(self.prob, generator)

    def sample_batch(
        self, n: int, size: ImageSize, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Bool mask ``(n,)``: which of ``n`` images to solarize, each with probability ``prob``."""
        return torch.rand(n, generator=generator) < self.prob

    def apply(self, img: ImageT, params: bool) -> ImageT:
        return solarize(img, self.threshold) if params else img
