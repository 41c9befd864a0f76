"""Small random images shared by the transform tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from PIL import Image


def random_array(height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    """A random RGB uint8 array ``(H, W, 3)``."""
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


@pytest.fixture
def rgb_array() -> Callable[..., np.ndarray]:
    """Factory ``rgb_array(height, width, seed) -> (H, W, 3) uint8``."""
    return random_array


@pytest.fixture
def pil_image() -> Image.Image:
    """A random 24x32 RGB PIL image."""
    return Image.fromarray(random_array(24, 32, seed=1))


@pytest.fixture
def float_image() -> torch.Tensor:
    """A random float32 tensor ``(3, 24, 32)`` with values in [0, 1]."""
    return torch.from_numpy(random_array(24, 32, seed=2)).permute(2, 0, 1).float() / 255.0
