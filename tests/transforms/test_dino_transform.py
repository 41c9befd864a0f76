"""DINOTransform: view count and sizes, per-view blur/solarization, validation."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.errors import ConfigError
from selfsup.transforms import (
    IMAGENET_NORMALIZE,
    DINOTransform,
    DINOViewTransform,
    GaussianBlur,
    RandomColorJitter,
    RandomResizedCrop,
    RandomSolarization,
)

LIGHTLY_DEFAULTS = {
    "global_crop_size": 224,
    "global_crop_scale": (0.4, 1.0),
    "local_crop_size": 96,
    "local_crop_scale": (0.05, 0.4),
    "n_local_views": 6,
    "hf_prob": 0.5,
    "vf_prob": 0,
    "rr_prob": 0,
    "rr_degrees": None,
    "cj_prob": 0.8,
    "cj_strength": 0.5,
    "cj_bright": 0.8,
    "cj_contrast": 0.8,
    "cj_sat": 0.4,
    "cj_hue": 0.2,
    "random_gray_scale": 0.2,
    "gaussian_blur": (1.0, 0.1, 0.5),
    "kernel_size": None,
    "kernel_scale": None,
    "sigmas": (0.1, 2),
    "solarization_prob": 0.2,
    "normalize": IMAGENET_NORMALIZE,
}


def small(**kwargs: object) -> DINOTransform:
    sizes: dict[str, object] = {"global_crop_size": 16, "local_crop_size": 8}
    return DINOTransform(**{**sizes, **kwargs})  # type: ignore[arg-type]


def test_defaults_match_lightly() -> None:
    params = inspect.signature(DINOTransform).parameters
    assert {k: params[k].default for k in LIGHTLY_DEFAULTS} == LIGHTLY_DEFAULTS


@pytest.mark.parametrize("n_local", [0, 1, 6])
def test_view_count_and_sizes(pil_image: Image.Image, n_local: int) -> None:
    views = small(n_local_views=n_local)(pil_image)
    assert len(views) == 2 + n_local
    assert [tuple(v.shape) for v in views] == [(3, 16, 16)] * 2 + [(3, 8, 8)] * n_local
    assert all(v.dtype == torch.float32 for v in views)


def test_per_view_blur_solarization_and_crop_settings() -> None:
    transform = small(n_local_views=2)
    g0, g1, local, local_again = transform.transforms
    assert local is local_again
    for view, blur, solar, size, scale in [
        (g0, 1.0, 0.0, (16, 16), (0.4, 1.0)),
        (g1, 0.1, 0.2, (16, 16), (0.4, 1.0)),
        (local, 0.5, 0.0, (8, 8), (0.05, 0.4)),
    ]:
        assert isinstance(view, DINOViewTransform)
        crop, jitter, blur_step, solar_step = (
            view.steps[0],
            view.steps[4],
            view.steps[6],
            view.steps[7],
        )
        assert isinstance(crop, RandomResizedCrop)
        assert (crop.size, crop.scale, crop.interpolation) == (size, scale, "bicubic")
        assert isinstance(blur_step, GaussianBlur)
        assert blur_step.prob == blur
        assert isinstance(solar_step, RandomSolarization)
        assert solar_step.prob == solar
        # cj_strength reaches every view (lightly forgot it on the second global view)
        assert isinstance(jitter, RandomColorJitter)
        assert jitter.brightness == pytest.approx(0.4)
        assert jitter.saturation == pytest.approx(0.2)


def test_only_the_second_global_view_is_solarized() -> None:
    arr = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    transform = small(
        n_local_views=1,
        global_crop_scale=(1.0, 1.0),
        local_crop_scale=(1.0, 1.0),
        hf_prob=0.0,
        cj_prob=0.0,
        random_gray_scale=0.0,
        gaussian_blur=(0.0, 0.0, 0.0),
        solarization_prob=1.0,
        normalize=None,
    )
    view0, view1, local = transform(Image.fromarray(arr))
    x = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
    solarized = (
        torch.from_numpy(np.where(arr >= 128, 255 - arr, arr)).permute(2, 0, 1).float() / 255
    )
    assert torch.equal(view0, x)
    assert torch.equal(view1, solarized)
    assert local.shape == (3, 8, 8)


def test_same_seed_same_views(float_image: torch.Tensor) -> None:
    transform = small(n_local_views=2)
    torch.manual_seed(0)
    a = transform(float_image)
    torch.manual_seed(0)
    b = transform(float_image)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[2], a[3])  # the shared local transform draws fresh crops


def test_input_not_mutated(float_image: torch.Tensor) -> None:
    before = float_image.clone()
    small(n_local_views=2, solarization_prob=1.0)(float_image)
    assert torch.equal(float_image, before)


def test_legacy_kernel_size_and_scale() -> None:
    transform = small(n_local_views=1, kernel_size=0.5, kernel_scale=0.6)
    blur = transform.transforms[0].steps[6]  # type: ignore[attr-defined]
    assert isinstance(blur, GaussianBlur)
    assert (blur.kernel_size, blur.scale) == (0.5, 0.6)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"global_crop_size": 0}, "global_crop_size"),
        ({"local_crop_size": -8}, "local_crop_size"),
        ({"global_crop_scale": (0.5, 0.2)}, "global_crop_scale"),
        ({"local_crop_scale": (0.0, 0.4)}, "local_crop_scale"),
        ({"n_local_views": -1}, "n_local_views"),
        ({"n_local_views": 2.5}, "n_local_views"),
        ({"gaussian_blur": (1.0, 0.5)}, "gaussian_blur"),
        ({"gaussian_blur": (1.0, 0.5, 1.5)}, "gaussian_blur\\[2\\]"),
        ({"gaussian_blur": 0.5}, "gaussian_blur"),
        ({"solarization_prob": 1.2}, "solarization_prob"),
        ({"kernel_scale": 0.6}, "kernel_scale"),
        ({"cj_sat": -1}, "cj_sat"),
        ({"hf_prob": 2}, "hf_prob"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        small(**kwargs)
