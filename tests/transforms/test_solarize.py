"""RandomSolarization against the definition: pixels >= threshold become 255 - pixel."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from selfsup.errors import ConfigError, DataError
from selfsup.transforms import RandomSolarization
from selfsup.transforms.solarize import solarize


def reference_solarize(x: np.ndarray, threshold: float) -> np.ndarray:
    """Element by element, straight from the definition (0..255 scale)."""
    out = x.copy()
    flat = out.reshape(-1)
    for i, v in enumerate(x.reshape(-1)):
        if v >= threshold:
            flat[i] = 255 - v
    return out


@pytest.mark.parametrize("threshold", [0, 1, 100, 128, 200, 255])
def test_pil_matches_definition(rgb_array: Callable[..., np.ndarray], threshold: int) -> None:
    arr = rgb_array(8, 9, seed=threshold)
    out = RandomSolarization(prob=1.0, threshold=threshold)(Image.fromarray(arr))
    np.testing.assert_array_equal(np.asarray(out), reference_solarize(arr, threshold))


@pytest.mark.parametrize("threshold", [0, 64, 128, 255])
def test_uint8_tensor_matches_definition(
    rgb_array: Callable[..., np.ndarray], threshold: int
) -> None:
    arr = rgb_array(8, 9, seed=7)
    x = torch.from_numpy(arr).permute(2, 0, 1).contiguous()
    out = RandomSolarization(prob=1.0, threshold=threshold)(x)
    assert out.dtype == torch.uint8
    expected = reference_solarize(arr, threshold).transpose(2, 0, 1)
    np.testing.assert_array_equal(out.numpy(), expected)


def test_float_tensor_uses_threshold_on_0_255_scale(rgb_array: Callable[..., np.ndarray]) -> None:
    arr = rgb_array(8, 9, seed=3)
    x = torch.from_numpy(arr).permute(2, 0, 1).double() / 255.0
    out = RandomSolarization(prob=1.0, threshold=128)(x)
    assert out.dtype == torch.float64
    expected = reference_solarize(arr, 128).transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)


def test_probability_zero_and_one(float_image: torch.Tensor) -> None:
    g = torch.Generator().manual_seed(0)
    never = RandomSolarization(prob=0.0)
    assert all(never(float_image, generator=g) is float_image for _ in range(20))
    assert not torch.equal(RandomSolarization(prob=1.0)(float_image), float_image)
    rate = np.mean([RandomSolarization(prob=0.2).get_params((4, 4), g) for _ in range(1000)])
    assert 0.15 < rate < 0.25


def test_input_not_mutated(float_image: torch.Tensor, pil_image: Image.Image) -> None:
    before = float_image.clone()
    RandomSolarization(prob=1.0)(float_image)
    assert torch.equal(float_image, before)
    pixels = np.asarray(pil_image).copy()
    RandomSolarization(prob=1.0)(pil_image)
    np.testing.assert_array_equal(np.asarray(pil_image), pixels)


def test_same_seed_same_output(float_image: torch.Tensor) -> None:
    solar = RandomSolarization(prob=0.5)
    a = [solar(float_image, generator=torch.Generator().manual_seed(s)) for s in range(6)]
    b = [solar(float_image, generator=torch.Generator().manual_seed(s)) for s in range(6)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@settings(max_examples=40, deadline=None)
@given(
    arr=arrays(np.uint8, (2, 3, 4)),
    threshold=st.integers(0, 255),
)
def test_solarize_matches_definition_for_any_pixels(arr: np.ndarray, threshold: int) -> None:
    out = solarize(torch.from_numpy(arr), threshold)
    np.testing.assert_array_equal(out.numpy(), reference_solarize(arr, threshold))


def test_unsupported_tensor_dtype_is_refused() -> None:
    with pytest.raises(DataError, match="int32"):
        solarize(torch.zeros(3, 2, 2, dtype=torch.int32), 128)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"prob": 1.1}, "prob"), ({"threshold": 300}, "threshold"), ({"threshold": -1}, "threshold")],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        RandomSolarization(**kwargs)  # type: ignore[arg-type]
