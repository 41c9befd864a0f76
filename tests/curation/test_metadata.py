"""Computed metadata against references written here from the definitions."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image, ImageFilter

from selfsup.curation.metadata import (
    METADATA_KEYS,
    brightness,
    compute_image_metadata,
    contrast,
    laplacian,
    luma_array,
    metadata_table,
    saturation,
    sharpness,
)


def _rgb(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(arr.astype(np.uint8), mode="RGB")


def _reference_laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian over interior pixels, by explicit loops."""
    h, w = gray.shape
    values = []
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            g = [int(v) for v in (gray[y - 1, x], gray[y + 1, x], gray[y, x - 1], gray[y, x + 1])]
            values.append(sum(g) - 4 * int(gray[y, x]))
    if not values:
        return 0.0
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / len(values)


def _checkerboard(size: int) -> np.ndarray:
    yy, xx = np.indices((size, size))
    return np.where((yy + xx) % 2 == 0, 255, 0).astype(np.uint8)


@pytest.mark.parametrize("level", [0, 1, 77, 128, 254, 255])
def test_constant_image_statistics(level: int) -> None:
    image = _rgb(np.full((12, 10, 3), level))
    meta = compute_image_metadata(image)
    assert (meta.width, meta.height) == (10, 12)
    assert meta.brightness == level
    assert meta.contrast == 0.0
    assert meta.sharpness == 0.0  # a flat image has no edges
    assert meta.saturation == 0.0  # grey has no saturation


def test_luma_uses_bt601_weights() -> None:
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 256, size=(9, 11, 3))
    expected = 0.299 * arr[..., 0] + 0.587 * arr[..., 1] + 0.114 * arr[..., 2]
    luma = luma_array(_rgb(arr))
    assert luma.shape == (9, 11)
    assert luma.dtype == np.uint8
    # PIL rounds each pixel to an integer.
    assert np.abs(luma.astype(np.float64) - expected).max() <= 0.5 + 1e-9
    assert brightness(luma) == pytest.approx(expected.mean(), abs=0.5)


def test_contrast_is_population_std_of_luma() -> None:
    half = np.zeros((4, 8, 3), dtype=np.uint8)
    half[:, 4:] = 200  # luma 0 and 200 in equal parts: std is exactly 100
    meta = compute_image_metadata(_rgb(half))
    assert meta.brightness == 100.0
    assert meta.contrast == 100.0


def test_checkerboard_sharpness_matches_reference() -> None:
    board = _checkerboard(8)
    image = _rgb(np.repeat(board[..., None], 3, axis=2))
    # Every interior Laplacian is +-4*255 = +-1020 with mean 0: variance 1020^2.
    assert sharpness(luma_array(image)) == pytest.approx(1020.0**2)
    assert compute_image_metadata(image).sharpness == pytest.approx(1040400.0)


def test_sharpness_matches_loop_reference_on_random_image() -> None:
    rng = np.random.default_rng(7)
    gray = rng.integers(0, 256, size=(7, 9)).astype(np.uint8)
    assert sharpness(gray) == pytest.approx(_reference_laplacian_variance(gray), rel=1e-12)
    lap = laplacian(gray)
    assert lap.shape == (5, 7)
    assert lap[0, 0] == (
        int(gray[0, 1]) + int(gray[2, 1]) + int(gray[1, 0]) + int(gray[1, 2]) - 4 * int(gray[1, 1])
    )


def test_blur_lowers_sharpness() -> None:
    rng = np.random.default_rng(0)
    image = _rgb(rng.integers(0, 256, size=(32, 32, 3)))
    blurred = image.filter(ImageFilter.GaussianBlur(radius=2))
    assert compute_image_metadata(blurred).sharpness < 0.2 * compute_image_metadata(image).sharpness


@pytest.mark.parametrize("shape", [(1, 1), (2, 5), (5, 2), (0, 0)])
def test_sharpness_of_tiny_images_is_zero(shape: tuple[int, int]) -> None:
    assert sharpness(np.zeros(shape, dtype=np.uint8) + 9) == 0.0


def test_saturation_of_known_colours() -> None:
    red = _rgb(np.tile(np.array([255, 0, 0]), (2, 2, 1)))
    assert saturation(red) == pytest.approx(255.0)
    pink = _rgb(np.tile(np.array([255, 128, 128]), (2, 2, 1)))
    assert saturation(pink) == pytest.approx(255.0 * 127 / 255, rel=1e-6)
    black = _rgb(np.zeros((2, 2, 3)))
    assert saturation(black) == 0.0


def test_saturation_matches_colorsys_reference() -> None:
    rng = np.random.default_rng(5)
    arr = rng.integers(0, 256, size=(6, 7, 3))
    reference = np.mean(
        [colorsys.rgb_to_hsv(*(px / 255.0))[1] * 255.0 for px in arr.reshape(-1, 3)]
    )
    assert saturation(_rgb(arr)) == pytest.approx(reference, rel=1e-5)


def test_inputs_are_not_modified() -> None:
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, size=(10, 10, 3)).astype(np.uint8)
    image = _rgb(arr)
    before = image.tobytes()
    compute_image_metadata(image)
    gray = luma_array(image)
    gray_before = gray.copy()
    sharpness(gray)
    brightness(gray)
    assert image.tobytes() == before
    assert np.array_equal(gray, gray_before)


def test_non_rgb_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="RGB"):
        compute_image_metadata(Image.new("L", (4, 4)))
    with pytest.raises(ValueError, match="RGB"):
        saturation(Image.new("RGBA", (4, 4)))
    with pytest.raises(ValueError, match="2-D"):
        laplacian(np.zeros((3, 3, 3), dtype=np.uint8))


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.uint8, st.tuples(st.integers(3, 9), st.integers(3, 9))),
    st.integers(-40, 40),
)
def test_sharpness_and_contrast_ignore_a_brightness_offset(gray: np.ndarray, offset: int) -> None:
    """Adding a constant (without clipping) moves brightness only: L and std are unchanged."""
    shifted = gray.astype(np.int64) + offset
    if shifted.min() < 0 or shifted.max() > 255:
        return
    moved = shifted.astype(np.uint8)
    assert sharpness(moved) == pytest.approx(sharpness(gray), abs=1e-6)
    assert contrast(moved) == pytest.approx(contrast(gray), abs=1e-9)
    assert brightness(moved) == pytest.approx(brightness(gray) + offset, abs=1e-9)
    assert sharpness(gray) >= 0.0


def test_metadata_table_columns() -> None:
    rows: list[dict[str, float | int | None]] = [
        {"width": 4, "brightness": 10.5},
        {"width": 8, "brightness": None},
    ]
    table = metadata_table(rows, keys=["width", "brightness"])
    assert table["width"].tolist() == [4.0, 8.0]
    assert table["brightness"][0] == 10.5
    assert np.isnan(table["brightness"][1])
    assert set(metadata_table(rows)) == set(METADATA_KEYS)
    with pytest.raises(KeyError, match="unknown metadata key 'colour'"):
        metadata_table(rows, keys=["colour"])


def test_grayscale_shortcut_gives_the_computed_values() -> None:
    gray = np.random.default_rng(2).integers(0, 256, size=(9, 9)).astype(np.uint8)
    rgb = Image.fromarray(gray, mode="L").convert("RGB")
    assert compute_image_metadata(rgb, grayscale=True) == compute_image_metadata(rgb)
    assert compute_image_metadata(rgb).saturation == 0.0
    assert compute_image_metadata(rgb).brightness == pytest.approx(gray.mean())
