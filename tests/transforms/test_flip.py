"""Flips against numpy.fliplr / flipud."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.errors import ConfigError
from selfsup.transforms import RandomHorizontalFlip, RandomVerticalFlip


def test_horizontal_flip_matches_numpy(float_image: torch.Tensor, pil_image: Image.Image) -> None:
    flip = RandomHorizontalFlip(prob=1.0)
    np.testing.assert_array_equal(flip(float_image).numpy(), float_image.numpy()[:, :, ::-1])
    np.testing.assert_array_equal(np.asarray(flip(pil_image)), np.fliplr(np.asarray(pil_image)))


def test_vertical_flip_matches_numpy(float_image: torch.Tensor, pil_image: Image.Image) -> None:
    flip = RandomVerticalFlip(prob=1.0)
    np.testing.assert_array_equal(flip(float_image).numpy(), float_image.numpy()[:, ::-1, :])
    np.testing.assert_array_equal(np.asarray(flip(pil_image)), np.flipud(np.asarray(pil_image)))


@pytest.mark.parametrize("cls", [RandomHorizontalFlip, RandomVerticalFlip])
def test_probability_and_purity(
    cls: type[RandomHorizontalFlip] | type[RandomVerticalFlip], float_image: torch.Tensor
) -> None:
    g = torch.Generator().manual_seed(0)
    assert cls(prob=0.0)(float_image, generator=g) is float_image
    rate = np.mean([cls(prob=0.5).get_params((4, 4), g) for _ in range(1000)])
    assert 0.45 < rate < 0.55
    before = float_image.clone()
    cls(prob=1.0)(float_image)
    assert torch.equal(float_image, before)
    with pytest.raises(ConfigError, match="prob"):
        cls(prob=1.5)
