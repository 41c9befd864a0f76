"""MSNTransform against MSN's random and focal views (Assran et al. 2022, appendix C)."""

from __future__ import annotations

import inspect

import pytest
import torch
from PIL import Image

from _transform_contract import (
    check_crop_scale,
    check_transform_contract,
    step_of,
    views_of,
)
from selfsup.errors import ConfigError
from selfsup.transforms import (
    GaussianBlur,
    MSNTransform,
    RandomColorJitter,
    RandomGrayscale,
    RandomHorizontalFlip,
)

LIGHTLY_DEFAULTS: dict[str, object] = {
    "random_size": 224,
    "focal_size": 96,
    "random_views": 2,
    "focal_views": 10,
    "random_crop_scale": (0.3, 1.0),
    "focal_crop_scale": (0.05, 0.3),
    "cj_prob": 0.8,
    "cj_strength": 1.0,
    "gaussian_blur": 0.5,
    "random_gray_scale": 0.2,
    "hf_prob": 0.5,
    "vf_prob": 0.0,
}


def test_defaults_match_lightly() -> None:
    params = inspect.signature(MSNTransform).parameters
    defaults = {k: params[k].default for k in LIGHTLY_DEFAULTS}
    assert defaults == LIGHTLY_DEFAULTS


def test_random_views_then_focal_views(pil_image: Image.Image) -> None:
    transform = MSNTransform(random_size=16, focal_size=8, random_views=2, focal_views=3)
    views = transform(pil_image)
    assert [tuple(v.shape) for v in views] == [(3, 16, 16)] * 2 + [(3, 8, 8)] * 3
    assert all(v.dtype == torch.float32 for v in views)


def test_crops_and_augmentations_follow_the_paper() -> None:
    views = views_of(MSNTransform(random_size=16, focal_size=8, focal_views=1))
    check_crop_scale(views[0], (0.3, 1.0))
    check_crop_scale(views[2], (0.05, 0.3))
    for view in (views[0], views[2]):
        assert step_of(view, RandomHorizontalFlip).prob == 0.5
        assert step_of(view, RandomColorJitter).prob == 0.8
        assert step_of(view, RandomGrayscale).prob == 0.2
        assert step_of(view, GaussianBlur).prob == 0.5


def test_contract() -> None:
    check_transform_contract(MSNTransform(random_size=16, random_views=2, focal_views=0), 2, 16)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"random_views": 0}, "random_views=0: expected an integer >= 1"),
        ({"focal_views": -1}, "focal_views=-1: expected an integer >= 0"),
        ({"random_crop_scale": (0.5, 0.2)}, r"random_crop_scale=\(0.5, 0.2\): expected 0 < min"),
        ({"focal_crop_scale": 0.3}, r"focal_crop_scale=0.3: expected a \(min, max\) pair"),
        ({"focal_size": 0}, "focal_size"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MSNTransform(**kwargs)  # type: ignore[arg-type]
