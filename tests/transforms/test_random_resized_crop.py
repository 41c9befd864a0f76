"""RandomResizedCrop: sampled windows obey scale/ratio, apply crops exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.errors import ConfigError
from selfsup.transforms import CropParams, RandomResizedCrop
from selfsup.transforms.random_resized_crop import sample_crop


def test_sampled_windows_fit_and_respect_scale_and_ratio() -> None:
    g = torch.Generator().manual_seed(0)
    scale, ratio = (0.2, 0.6), (3 / 4, 4 / 3)
    for _ in range(300):
        p = sample_crop((60, 80), scale, ratio, g)
        assert p.top >= 0
        assert p.top + p.height <= 60
        assert p.left >= 0
        assert p.left + p.width <= 80
        area = p.height * p.width / (60 * 80)
        # rounding each side to whole pixels moves the area and ratio slightly
        assert scale[0] - 0.03 <= area <= scale[1] + 0.03
        assert ratio[0] - 0.06 <= p.width / p.height <= ratio[1] + 0.06


def test_offsets_cover_the_image() -> None:
    g = torch.Generator().manual_seed(1)
    tops = [sample_crop((64, 64), (0.05, 0.1), (1.0, 1.0), g).top for _ in range(200)]
    assert min(tops) < 10
    assert max(tops) > 40


def test_fallback_is_central_crop_with_valid_ratio() -> None:
    # A 10x100 strip cannot hold a square crop of the whole area: every proposal fails.
    p = sample_crop((10, 100), (1.0, 1.0), (1.0, 1.0), torch.Generator().manual_seed(0))
    assert p == CropParams(top=0, left=45, height=10, width=10)


def test_apply_crop_without_resize_is_exact_slice(
    float_image: torch.Tensor, pil_image: Image.Image
) -> None:
    crop = RandomResizedCrop(size=(10, 12))
    params = CropParams(top=3, left=5, height=10, width=12)
    out = crop.apply(float_image, params)
    assert torch.equal(out, float_image[:, 3:13, 5:17])
    pil_out = crop.apply(pil_image, params)
    np.testing.assert_array_equal(np.asarray(pil_out), np.asarray(pil_image)[3:13, 5:17])


def test_output_size_dtype_and_batch_dims(float_image: torch.Tensor) -> None:
    crop = RandomResizedCrop(size=16)
    assert crop(float_image).shape == (3, 16, 16)
    u8 = (float_image * 255).to(torch.uint8)
    assert crop(u8).dtype == torch.uint8
    assert crop(float_image.double()).dtype == torch.float64
    batch = torch.rand(2, 3, 20, 20)
    assert crop(batch).shape == (2, 3, 16, 16)
    assert crop.output_size((20, 20), crop.get_params((20, 20))) == (16, 16)


def test_full_scale_square_crop_is_identity_on_square_images() -> None:
    x = torch.rand(3, 32, 32)
    crop = RandomResizedCrop(size=32, scale=(1.0, 1.0))
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        assert torch.equal(crop(x, generator=g), x)


def test_same_generator_seed_same_window() -> None:
    crop = RandomResizedCrop(size=8)
    a = [crop.get_params((40, 30), torch.Generator().manual_seed(s)) for s in range(5)]
    b = [crop.get_params((40, 30), torch.Generator().manual_seed(s)) for s in range(5)]
    assert a == b
    assert len(set(a)) > 1


def test_draw_count_is_fixed() -> None:
    """Every call consumes the same amount of randomness, whatever the outcome."""
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    RandomResizedCrop(size=8, scale=(1.0, 1.0)).get_params((10, 100), g1)  # always falls back
    RandomResizedCrop(size=8).get_params((100, 100), g2)  # first proposal fits
    assert math.isclose(torch.rand((), generator=g1).item(), torch.rand((), generator=g2).item())


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"size": 0}, "size"),
        ({"size": (8, 0)}, "size"),
        ({"size": 8, "scale": (0.5, 0.2)}, "scale"),
        ({"size": 8, "scale": (0.0, 1.0)}, "scale"),
        ({"size": 8, "scale": (0.5, 1.5)}, "scale"),
        ({"size": 8, "ratio": (0.0, 1.0)}, "ratio"),
        ({"size": 8, "interpolation": "cubic"}, "interpolation"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        RandomResizedCrop(**kwargs)  # type: ignore[arg-type]
