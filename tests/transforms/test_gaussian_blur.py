"""GaussianBlur against an explicit convolution with the Gaussian formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from selfsup.errors import ConfigError
from selfsup.transforms import GaussianBlur, GaussianBlurParams
from selfsup.transforms.gaussian_blur import kernel_size_from_sigma


def reference_blur(x: np.ndarray, kernel_size: int, sigma: float) -> np.ndarray:
    """Blur ``(C, H, W)`` with the 2-D kernel exp(-(dx^2 + dy^2) / (2 sigma^2)), reflect borders."""
    r = kernel_size // 2
    offsets = np.arange(-r, r + 1, dtype=np.float64)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    kernel = np.exp(-(dx**2 + dy**2) / (2.0 * sigma**2))
    kernel /= kernel.sum()
    _, h, w = x.shape
    padded = np.pad(x.astype(np.float64), ((0, 0), (r, r), (r, r)), mode="reflect")
    out = np.zeros(x.shape, dtype=np.float64)
    for i in range(kernel_size):
        for j in range(kernel_size):
            out += kernel[i, j] * padded[:, i : i + h, j : j + w]
    return out


def always(kernel_size: float | None = None, sigma: float = 1.3, **kw: float) -> GaussianBlur:
    return GaussianBlur(kernel_size=kernel_size, prob=1.0, sigmas=(sigma, sigma), **kw)


@pytest.mark.parametrize(("kernel_size", "sigma"), [(7, 1.3), (3, 0.5), (9, 2.0)])
def test_tensor_matches_explicit_convolution(
    float_image: torch.Tensor, kernel_size: int, sigma: float
) -> None:
    out = always(kernel_size, sigma)(float_image)
    expected = reference_blur(float_image.numpy(), kernel_size, sigma)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)


def test_pil_matches_explicit_convolution_up_to_rounding(pil_image: Image.Image) -> None:
    out = always(5, 1.0)(pil_image)
    assert isinstance(out, Image.Image)
    assert out.size == pil_image.size
    chw = np.asarray(pil_image).transpose(2, 0, 1)
    expected = reference_blur(chw, 5, 1.0)
    got = np.asarray(out).transpose(2, 0, 1).astype(np.float64)
    assert np.abs(got - expected).max() <= 1.0


def test_default_window_comes_from_sigma(float_image: torch.Tensor) -> None:
    blur = always(None, 1.2)
    params = blur.get_params((24, 32))
    assert params.kernel_size == 2 * math.ceil(3 * 1.2) + 1 == kernel_size_from_sigma(1.2)
    out = blur.apply(float_image, params)
    expected = reference_blur(float_image.numpy(), params.kernel_size, 1.2)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("kernel_size", "size", "window"),
    [
        (0.1, (64, 64), 7),  # 6.4 -> 6 -> next odd 7
        (0.25, (32, 32), 9),  # 8 -> 9
        (0.2, (20, 40), 9),  # fraction of the longer side: 8 -> 9
        (0.01, (32, 32), 3),  # at least 3
        (5, (32, 32), 5),  # int: pixels
        (31, (8, 8), 15),  # capped at 2 * min(H, W) - 1 for reflection padding
    ],
)
def test_kernel_size_resolution(kernel_size: float, size: tuple[int, int], window: int) -> None:
    assert always(kernel_size).get_params(size).kernel_size == window


def test_window_is_capped_on_tiny_images() -> None:
    blur = always(None, 2.0)  # 13 from sigma
    params = blur.get_params((4, 6))
    assert params.kernel_size == 7
    x = torch.rand(3, 4, 6)
    np.testing.assert_allclose(
        blur.apply(x, params).numpy(), reference_blur(x.numpy(), 7, 2.0), atol=1e-5
    )


def test_scale_jitters_window_within_bounds() -> None:
    blur = GaussianBlur(kernel_size=0.5, prob=1.0, scale=0.5, sigmas=(1, 1))
    g = torch.Generator().manual_seed(0)
    windows = {blur.get_params((40, 40), g).kernel_size for _ in range(200)}
    # k0 = 20, jittered in [10, 30] and made odd
    assert len(windows) > 3
    assert all(w % 2 == 1 and 11 <= w <= 31 for w in windows)
    fixed = GaussianBlur(kernel_size=0.5, prob=1.0, scale=0.0, sigmas=(1, 1))
    assert {fixed.get_params((40, 40), g).kernel_size for _ in range(20)} == {21}


def test_sigma_is_drawn_from_range() -> None:
    blur = GaussianBlur(prob=0.5, sigmas=(0.3, 1.7))
    g = torch.Generator().manual_seed(1)
    params = [blur.get_params((32, 32), g) for _ in range(400)]
    sigmas = np.array([p.sigma for p in params])
    assert sigmas.min() >= 0.3
    assert sigmas.max() <= 1.7
    assert sigmas.min() < 0.5
    assert sigmas.max() > 1.5
    applied = np.mean([p.applied for p in params])
    assert 0.4 < applied < 0.6


def test_probability_zero_and_one(float_image: torch.Tensor) -> None:
    never = GaussianBlur(prob=0.0)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        assert torch.equal(never(float_image, generator=g), float_image)
    blurred = GaussianBlur(prob=1.0, sigmas=(1, 1))(float_image)
    assert not torch.equal(blurred, float_image)


def test_input_not_mutated_and_dtype_kept(float_image: torch.Tensor) -> None:
    x64 = float_image.double()
    before = x64.clone()
    out = always(5)(x64)
    assert torch.equal(x64, before)
    assert out.dtype == torch.float64
    u8 = (float_image * 255).to(torch.uint8)
    assert always(5)(u8).dtype == torch.uint8


def test_same_seed_same_output(float_image: torch.Tensor) -> None:
    blur = GaussianBlur(prob=0.5, sigmas=(0.1, 2.0))
    a = [blur(float_image, generator=torch.Generator().manual_seed(s)) for s in range(5)]
    b = [blur(float_image, generator=torch.Generator().manual_seed(s)) for s in range(5)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    torch.manual_seed(3)
    c = blur(float_image)
    torch.manual_seed(3)
    assert torch.equal(c, blur(float_image))


def test_apply_is_pure_given_params(float_image: torch.Tensor) -> None:
    blur = GaussianBlur(prob=1.0)
    params = GaussianBlurParams(applied=True, sigma=0.8, kernel_size=5)
    assert torch.equal(blur.apply(float_image, params), blur.apply(float_image, params))


@settings(max_examples=25, deadline=None)
@given(
    sigma=st.floats(0.1, 3.0),
    kernel_size=st.sampled_from([3, 5, 7, 9]),
    seed=st.integers(0, 1000),
)
def test_blur_is_a_convex_average(sigma: float, kernel_size: int, seed: int) -> None:
    """Weights are positive and sum to 1: constants stay constant, values stay in range."""
    x = torch.rand(3, 10, 12, generator=torch.Generator().manual_seed(seed))
    out = always(kernel_size, sigma)(x)
    assert out.min() >= x.min() - 1e-6
    assert out.max() <= x.max() + 1e-6
    const = torch.full((3, 10, 12), 0.37)
    torch.testing.assert_close(always(kernel_size, sigma)(const), const)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"kernel_size": 4}, "kernel_size"),
        ({"kernel_size": 1}, "kernel_size"),
        ({"kernel_size": 1.5}, "kernel_size"),
        ({"kernel_size": 0.0}, "kernel_size"),
        ({"kernel_size": True}, "kernel_size"),
        ({"kernel_size": "0.1"}, "kernel_size"),
        ({"prob": 1.5}, "prob"),
        ({"prob": -0.1}, "prob"),
        ({"sigmas": (2.0, 1.0)}, "sigmas"),
        ({"sigmas": (0.0, 1.0)}, "sigmas"),
        ({"sigmas": (1.0,)}, "sigmas"),
        ({"scale": 0.5}, "scale"),  # needs kernel_size
        ({"kernel_size": 0.1, "scale": 1.5}, "scale"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        GaussianBlur(**kwargs)  # type: ignore[arg-type]
