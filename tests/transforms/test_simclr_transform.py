"""SimCLRTransform / SimCLRViewTransform: lightly defaults, reference pipeline, validation."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.errors import ConfigError
from selfsup.transforms import (
    IMAGENET_NORMALIZE,
    GaussianBlur,
    RandomColorJitter,
    RandomGrayscale,
    RandomResizedCrop,
    RandomRotate,
    RandomRotateDegrees,
    SimCLRTransform,
    SimCLRViewTransform,
)

LIGHTLY_DEFAULTS = {
    "input_size": 224,
    "cj_prob": 0.8,
    "cj_strength": 1.0,
    "cj_bright": 0.8,
    "cj_contrast": 0.8,
    "cj_sat": 0.8,
    "cj_hue": 0.2,
    "min_scale": 0.08,
    "random_gray_scale": 0.2,
    "gaussian_blur": 0.5,
    "kernel_size": None,
    "sigmas": (0.1, 2),
    "vf_prob": 0.0,
    "hf_prob": 0.5,
    "rr_prob": 0.0,
    "rr_degrees": None,
    "normalize": IMAGENET_NORMALIZE,
}

#: Every augmentation switched off: the view must be the (normalised) input itself.
ALL_OFF: dict[str, Any] = {
    "min_scale": 1.0,
    "cj_prob": 0.0,
    "random_gray_scale": 0.0,
    "gaussian_blur": 0.0,
    "hf_prob": 0.0,
}


@pytest.mark.parametrize("cls", [SimCLRTransform, SimCLRViewTransform])
def test_defaults_match_lightly(cls: type) -> None:
    params = inspect.signature(cls).parameters
    assert {k: params[k].default for k in LIGHTLY_DEFAULTS} == LIGHTLY_DEFAULTS


def test_steps_use_the_documented_values() -> None:
    view = SimCLRViewTransform(input_size=32, cj_strength=0.5)
    crop, rotate, _, _, jitter, gray, blur = view.steps
    assert isinstance(crop, RandomResizedCrop)
    assert crop.scale == (0.08, 1.0)
    assert crop.size == (32, 32)
    assert isinstance(rotate, RandomRotate)
    assert rotate.prob == 0.0
    assert isinstance(jitter, RandomColorJitter)
    assert (jitter.prob, jitter.brightness, jitter.contrast, jitter.saturation) == (
        0.8,
        0.4,
        0.4,
        0.4,
    )
    assert jitter.hue == pytest.approx(0.1)
    assert isinstance(gray, RandomGrayscale)
    assert gray.prob == 0.2
    assert isinstance(blur, GaussianBlur)
    assert (blur.prob, blur.sigmas) == (0.5, (0.1, 2.0))


def test_two_views_shape_dtype_and_difference(pil_image: Image.Image) -> None:
    views = SimCLRTransform(input_size=16)(pil_image)
    assert len(views) == 2
    assert all(v.shape == (3, 16, 16) and v.dtype == torch.float32 for v in views)
    assert not torch.equal(views[0], views[1])


def test_all_augmentations_off_gives_normalised_input() -> None:
    arr = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    x = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
    mean = torch.tensor(IMAGENET_NORMALIZE["mean"]).view(3, 1, 1)
    std = torch.tensor(IMAGENET_NORMALIZE["std"]).view(3, 1, 1)
    for view in SimCLRTransform(input_size=16, **ALL_OFF)(Image.fromarray(arr)):
        torch.testing.assert_close(view, (x - mean) / std)
    raw = SimCLRTransform(input_size=16, normalize=None, **ALL_OFF)(Image.fromarray(arr))
    assert all(torch.equal(v, x) for v in raw)


def test_rotation_only_matches_rot90() -> None:
    x = torch.rand(3, 12, 12)
    view = SimCLRViewTransform(input_size=12, rr_prob=1.0, normalize=None, **ALL_OFF)
    np.testing.assert_array_equal(view(x).numpy(), np.rot90(x.numpy(), 1, axes=(1, 2)))
    degrees = SimCLRViewTransform(input_size=12, rr_prob=1.0, rr_degrees=(5, 10), **ALL_OFF)
    assert isinstance(degrees.steps[1], RandomRotateDegrees)


def test_grayscale_only_gives_equal_channels(float_image: torch.Tensor) -> None:
    view = SimCLRViewTransform(
        input_size=16, normalize=None, **{**ALL_OFF, "random_gray_scale": 1.0}
    )
    out = view(float_image)
    assert torch.equal(out[0], out[1])
    assert torch.equal(out[1], out[2])


def test_uint8_tensor_input_gives_unit_range_floats(float_image: torch.Tensor) -> None:
    u8 = (float_image * 255).to(torch.uint8)
    for view in SimCLRTransform(input_size=16, normalize=None)(u8):
        assert view.dtype == torch.float32
        assert float(view.min()) >= 0.0
        assert float(view.max()) <= 1.0


def test_same_seed_same_views(pil_image: Image.Image) -> None:
    transform = SimCLRTransform(input_size=16, gaussian_blur=1.0, rr_prob=0.5)
    torch.manual_seed(0)
    a = transform(pil_image)
    torch.manual_seed(0)
    b = transform(pil_image)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    c = transform(pil_image, generator=torch.Generator().manual_seed(1))
    d = transform(pil_image, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(x, y) for x, y in zip(c, d, strict=True))


def test_input_not_mutated(pil_image: Image.Image, float_image: torch.Tensor) -> None:
    pixels = np.array(pil_image)
    before = float_image.clone()
    transform = SimCLRTransform(input_size=16, gaussian_blur=1.0)
    transform(pil_image)
    transform(float_image)
    np.testing.assert_array_equal(np.asarray(pil_image), pixels)
    assert torch.equal(float_image, before)


@pytest.mark.parametrize(("kernel_size", "window"), [(0.1, 7), (0.25, 17), (5, 5)])
def test_legacy_kernel_size_is_a_fraction_of_input_size(kernel_size: float, window: int) -> None:
    view = SimCLRViewTransform(input_size=64, kernel_size=kernel_size, gaussian_blur=1.0)
    blur_params = view.get_params((100, 80))[-1]
    assert blur_params.kernel_size == window


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"input_size": 0}, "input_size"),
        ({"input_size": (16, 16, 3)}, "input_size"),
        ({"cj_prob": 1.5}, "cj_prob"),
        ({"cj_strength": -1.0}, "cj_strength"),
        ({"cj_bright": -0.1}, "cj_bright"),
        ({"cj_contrast": -0.1}, "cj_contrast"),
        ({"cj_sat": -0.1}, "cj_sat"),
        ({"cj_hue": 0.6}, "cj_hue"),
        ({"cj_strength": 3.0}, "cj_hue"),  # 3 * 0.2 = 0.6 > 0.5
        ({"min_scale": 0.0}, "min_scale"),
        ({"min_scale": 1.2}, "min_scale"),
        ({"random_gray_scale": 2}, "random_gray_scale"),
        ({"gaussian_blur": -0.5}, "gaussian_blur"),
        ({"kernel_size": 2.0}, "kernel_size"),
        ({"kernel_size": 4}, "kernel_size"),
        ({"sigmas": (2, 1)}, "sigmas"),
        ({"vf_prob": 1.1}, "vf_prob"),
        ({"hf_prob": -0.1}, "hf_prob"),
        ({"rr_prob": 5}, "rr_prob"),
        ({"rr_degrees": -5}, "rr_degrees"),
        ({"normalize": {"mean": [0.5]}}, "normalize"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        SimCLRTransform(**kwargs)  # type: ignore[arg-type]
