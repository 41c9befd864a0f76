"""Rotations against numpy.rot90 (counter-clockwise) and the angle definitions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from selfsup.errors import ConfigError
from selfsup.transforms import RandomRotate, RandomRotateDegrees, random_rotation_transform
from selfsup.transforms.rotation import rotate90


@pytest.mark.parametrize(("angle", "k"), [(90, 1), (180, 2), (270, 3), (-90, 3), (360, 0)])
def test_tensor_rotation_matches_numpy_rot90(float_image: torch.Tensor, angle: int, k: int) -> None:
    out = RandomRotate(prob=1.0, angle=angle)(float_image)
    expected = np.rot90(float_image.numpy(), k=k, axes=(1, 2))
    np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize(("angle", "k"), [(90, 1), (180, 2), (270, 3)])
def test_pil_rotation_matches_numpy_rot90(pil_image: Image.Image, angle: int, k: int) -> None:
    out = RandomRotate(prob=1.0, angle=angle)(pil_image)
    assert isinstance(out, Image.Image)
    np.testing.assert_array_equal(np.asarray(out), np.rot90(np.asarray(pil_image), k=k))


def test_non_square_keeps_whole_image_and_reports_size(float_image: torch.Tensor) -> None:
    rotate = RandomRotate(prob=1.0, angle=90)
    params = rotate.get_params((24, 32))
    assert rotate.apply(float_image, params).shape == (3, 32, 24)
    assert rotate.output_size((24, 32), params) == (32, 24)
    assert RandomRotate(prob=1.0, angle=180).output_size((24, 32), True) == (24, 32)


def test_batched_tensor_rotates_last_two_dims() -> None:
    x = torch.rand(2, 3, 5, 5)
    out = RandomRotate(prob=1.0)(x)
    np.testing.assert_array_equal(out.numpy(), np.rot90(x.numpy(), 1, axes=(2, 3)))


def test_probability_zero_one_and_frequency(float_image: torch.Tensor) -> None:
    g = torch.Generator().manual_seed(0)
    assert all(not RandomRotate(prob=0.0).get_params((8, 8), g) for _ in range(50))
    assert all(RandomRotate(prob=1.0).get_params((8, 8), g) for _ in range(50))
    rate = np.mean([RandomRotate(prob=0.3).get_params((8, 8), g) for _ in range(1000)])
    assert 0.25 < rate < 0.35
    assert RandomRotate(prob=0.0)(float_image) is float_image


def test_rotation_does_not_mutate_input(float_image: torch.Tensor) -> None:
    before = float_image.clone()
    out = RandomRotate(prob=1.0)(float_image)
    out += 1  # the output must not alias the input
    assert torch.equal(float_image, before)


def test_degrees_rotation_samples_in_range_and_applies() -> None:
    rotate = RandomRotateDegrees(prob=1.0, degrees=(10.0, 20.0))
    g = torch.Generator().manual_seed(0)
    angles = [rotate.get_params((9, 9), g) for _ in range(200)]
    assert all(a is not None and 10.0 <= a <= 20.0 for a in angles)
    symmetric = RandomRotateDegrees(prob=1.0, degrees=15)
    assert symmetric.degrees == (-15.0, 15.0)
    x = torch.rand(3, 9, 9)
    # 90 degrees with nearest resampling about the centre is an exact rot90 on square images.
    np.testing.assert_array_equal(
        symmetric.apply(x, 90.0).numpy(), np.rot90(x.numpy(), 1, axes=(1, 2))
    )
    assert torch.equal(symmetric.apply(x, 0.0), x)
    assert symmetric.apply(x, None) is x
    assert RandomRotateDegrees(prob=0.0, degrees=30).get_params((9, 9), g) is None


def test_random_rotation_transform_picks_the_right_block() -> None:
    steps = random_rotation_transform(rr_prob=0.5, rr_degrees=None)
    assert isinstance(steps, RandomRotate)
    assert (steps.prob, steps.angle) == (0.5, 90)
    degrees = random_rotation_transform(rr_prob=0.2, rr_degrees=10)
    assert isinstance(degrees, RandomRotateDegrees)
    assert degrees.degrees == (-10.0, 10.0)
    pair = random_rotation_transform(rr_prob=0.2, rr_degrees=(5, 20))
    assert isinstance(pair, RandomRotateDegrees)
    assert pair.degrees == (5.0, 20.0)


@settings(max_examples=30, deadline=None)
@given(k=st.integers(-8, 8), h=st.integers(1, 7), w=st.integers(1, 7), seed=st.integers(0, 99))
def test_rotate90_inverse_and_period(k: int, h: int, w: int, seed: int) -> None:
    x = torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(rotate90(rotate90(x, k), -k), x)
    assert torch.equal(rotate90(x, k), rotate90(x, k + 4))


@pytest.mark.parametrize(
    ("factory", "name"),
    [
        (lambda: RandomRotate(prob=0.5, angle=45), "angle"),
        (lambda: RandomRotate(prob=1.5), "prob"),
        (lambda: RandomRotateDegrees(prob=0.5, degrees=-5), "degrees"),
        (lambda: RandomRotateDegrees(prob=0.5, degrees=(20, 10)), "degrees"),
        (lambda: RandomRotateDegrees(prob=0.5, degrees=None), "degrees"),  # type: ignore[arg-type]
        (lambda: random_rotation_transform(rr_prob=2.0, rr_degrees=None), "rr_prob"),
        (lambda: random_rotation_transform(rr_prob=0.5, rr_degrees=-1), "rr_degrees"),
        (lambda: random_rotation_transform(rr_prob=0.5, rr_degrees=(1, 2, 3)), "rr_degrees"),
    ],
)
def test_bad_arguments_name_the_argument(factory: Callable[[], object], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        factory()
