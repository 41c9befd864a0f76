"""Random horizontal and vertical flips with separately sampled parameters."""

from __future__ import annotations

import torch
import torchvision.transforms.functional as TF

from selfsup.transforms._checks import check_probability
from selfsup.transforms.base import ImageSize, ImageT, RandomTransform, rand_bool, same_type


class RandomHorizontalFlip(RandomTransform[bool]):
    """Mirror the image left-right with probability ``prob``. Params: ``True`` = flip."""

    def __init__(self, prob: float = 0.5) -> None:
        self.prob = check_probability("prob", prob)

    def get_params(self, size: ImageSize, generator: torch.Generator | None = None) -> bool:
        return rand_bool(self.prob, generator)

    def sample_batch(
        self, n: int, size: ImageSize, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Bool mask ``(n,)``: which of ``n`` images to flip, each with probability ``prob``."""
        return torch.rand(n, generator=generator) < self.prob

    def apply(self, img: ImageT, params: bool) -> ImageT:
        return same_type(TF.hflip(img), img) if params else img


class RandomVerticalFlip(RandomTransform[bool]):
    """Mirror the image top-bottom with probability ``prob``. Params: ``True`` = flip."""

    def __init__(self, prob: float = 0.5) -> None:
        self.prob = check_probability("prob", prob)

    def get_params(self, size: ImageSize, generator: torch.Generator | None = None) -> bool:
        return rand_bool(self.prob, generator)

    def sample_batch(
        self, n: int, size: ImageSize, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Bool mask ``(n,)``: which of ``n`` images to flip, each with probability ``prob``."""
        return torch.rand(n, generator=generator) < self.prob

    def apply(self, img: ImageT, params: bool) -> ImageT:
        return same_type(TF.vflip(img), img) if params else img
