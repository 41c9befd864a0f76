"""SwaVTransform / SwaVViewTransform against SwAV's multi-crop augmentations (Caron et al.)."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from _transform_contract import (
    ALL_OFF,
    COMMON_BAD_ARGUMENTS,
    SHARED_DEFAULTS,
    check_bad_argument,
    check_common_knobs,
    check_crop_scale,
    check_identity_when_all_off,
    check_step_probabilities,
    check_transform_contract,
    step_of,
    views_of,
)
from selfsup.transforms import (
    GaussianBlur,
    RandomColorJitter,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomTransform,
    SwaVTransform,
    SwaVViewTransform,
    ViewTransform,
)

#: SwAV's augmentations (SimCLR's, on every crop): probability of each step.
PAPER_TABLE: dict[type[RandomTransform[Any]], float] = {
    RandomHorizontalFlip: 0.5,
    RandomColorJitter: 0.8,
    RandomGrayscale: 0.2,
    GaussianBlur: 0.5,
}

_SHARED = {k: v for k, v in SHARED_DEFAULTS.items() if k != "input_size"}
LIGHTLY_DEFAULTS: dict[str, object] = {
    **_SHARED,
    "crop_sizes": (224, 96),
    "crop_counts": (2, 6),
    "crop_min_scales": (0.14, 0.05),
    "crop_max_scales": (1.0, 0.14),
    "cj_strength": 1.0,
    "cj_bright": 0.8,
    "cj_contrast": 0.8,
    "cj_sat": 0.8,
    "cj_hue": 0.2,
    "gaussian_blur": 0.5,
}


def one_crop(**kwargs: Any) -> ViewTransform:
    """The single view of a one-crop SwaVTransform, taking the SimCLR-style knobs
    (``input_size``, ``min_scale``) the shared checks use."""
    size = kwargs.pop("input_size", 224)
    min_scale = kwargs.pop("min_scale", 0.14)
    transform = SwaVTransform(
        crop_sizes=(size,),
        crop_counts=(1,),
        crop_min_scales=(min_scale,),
        crop_max_scales=(1.0,),
        **kwargs,
    )
    (view,) = views_of(transform)
    assert isinstance(view, ViewTransform)
    return view


def test_defaults_match_lightly() -> None:
    params = inspect.signature(SwaVTransform).parameters
    assert {k: params[k].default for k in params} == LIGHTLY_DEFAULTS
    view_params = inspect.signature(SwaVViewTransform).parameters
    view_defaults = {k: view_params[k].default for k in view_params}
    assert view_defaults.pop("crop_size") == 224
    assert view_defaults.pop("crop_scale") == (0.14, 1.0)
    assert view_defaults == {k: v for k, v in LIGHTLY_DEFAULTS.items() if not k.startswith("crop_")}


@pytest.mark.parametrize(
    ("counts", "sizes", "expected"),
    [
        ((2, 6), (16, 8), [16] * 2 + [8] * 6),
        ((1, 0), (16, 8), [16]),
        ((0, 3), (16, 8), [8] * 3),
        ((2, 1, 2), (16, 12, 8), [16, 16, 12, 8, 8]),
    ],
)
def test_view_count_and_sizes(
    pil_image: Image.Image,
    counts: tuple[int, ...],
    sizes: tuple[int, ...],
    expected: list[int],
) -> None:
    n = len(counts)
    transform = SwaVTransform(
        crop_sizes=sizes,
        crop_counts=counts,
        crop_min_scales=(0.14,) * n,
        crop_max_scales=(1.0,) * n,
    )
    views = transform(pil_image)
    assert [tuple(v.shape) for v in views] == [(3, s, s) for s in expected]
    assert all(v.dtype == torch.float32 for v in views)
    assert transform.crop_counts == list(counts)


def test_both_categories_follow_the_paper() -> None:
    views = views_of(SwaVTransform(crop_sizes=(16, 8)))
    high, low = views[0], views[2]
    assert all(v is high for v in views[:2])
    assert all(v is low for v in views[2:])
    for view, size, scale in [(high, (16, 16), (0.14, 1.0)), (low, (8, 8), (0.05, 0.14))]:
        check_step_probabilities(view, PAPER_TABLE)
        check_crop_scale(view, scale)
        assert step_of(view, RandomResizedCrop).size == size
        jitter = step_of(view, RandomColorJitter)
        np.testing.assert_allclose(
            [jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue],
            [0.8, 0.8, 0.8, 0.2],
        )
        assert step_of(view, GaussianBlur).sigmas == (0.1, 2.0)
    # The crop comes first, the blur last, as in the authors' pipeline.
    assert isinstance(high.steps[0], RandomResizedCrop)
    assert isinstance(high.steps[-1], GaussianBlur)


def test_crops_differ_and_seeds_reproduce(float_image: torch.Tensor) -> None:
    transform = SwaVTransform(crop_sizes=(16, 8))
    torch.manual_seed(0)
    a = transform(float_image)
    torch.manual_seed(0)
    b = transform(float_image)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a[2], a[3])  # one local transform draws fresh crops
    g = [transform(float_image, generator=torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert all(torch.equal(x, y) for x, y in zip(g[0], g[1], strict=True))
    assert not any(torch.equal(x, y) for x, y in zip(g[0], g[2], strict=True))


def test_transform_contract() -> None:
    check_transform_contract(SwaVTransform(crop_sizes=(16, 16)), n_views=8, size=16)


def test_every_knob_reaches_its_step() -> None:
    check_common_knobs(one_crop)


def test_all_augmentations_off_gives_normalised_input() -> None:
    check_identity_when_all_off(one_crop, ALL_OFF)


def test_view_transform_alone() -> None:
    view = SwaVViewTransform(crop_size=12, crop_scale=(0.5, 0.5))
    assert step_of(view, RandomResizedCrop).scale == (0.5, 0.5)
    assert view(torch.rand(3, 20, 20)).shape == (3, 12, 12)


_SHARED_BAD = [
    (kwargs, message)
    for kwargs, message in COMMON_BAD_ARGUMENTS
    if not {"input_size", "min_scale"} & set(kwargs)
]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        *_SHARED_BAD,
        ({"crop_sizes": (224,)}, "crop_counts=(2, 6): expected 1 entries, one per crop"),
        ({"crop_sizes": ()}, "crop_sizes=(): expected a list with one entry per crop category"),
        ({"crop_sizes": (0, 96)}, "crop_sizes[0]=0: expected an integer >= 1"),
        ({"crop_counts": (2,)}, "crop_counts=(2,): expected 2 entries, one per crop category"),
        ({"crop_counts": (2, -1)}, "crop_counts[1]=-1: expected an integer >= 0"),
        ({"crop_counts": (0, 0)}, "crop_counts=(0, 0): expected at least one crop in all"),
        ({"crop_counts": 8}, "crop_counts=8: expected a list with one entry per crop"),
        ({"crop_min_scales": (0.14,)}, "crop_min_scales=(0.14,): expected 2 entries"),
        ({"crop_max_scales": (1.0, 1.0, 1.0)}, "crop_max_scales=(1.0, 1.0, 1.0): expected 2"),
        (
            {"crop_min_scales": (0.14, 0.5)},
            "crop_min_scales[1]=0.5, crop_max_scales[1]=0.14: expected 0 < min <= max <= 1",
        ),
        ({"crop_min_scales": (0.0, 0.05)}, "crop_min_scales[0]=0.0, crop_max_scales[0]=1.0"),
        ({"crop_max_scales": (1.5, 0.14)}, "crop_min_scales[0]=0.14, crop_max_scales[0]=1.5"),
        ({"crop_min_scales": ("a", 0.05)}, "crop_min_scales[0]='a': expected a number"),
    ],
)
def test_bad_arguments_name_the_argument_and_the_range(
    kwargs: dict[str, Any], message: str
) -> None:
    check_bad_argument(SwaVTransform, kwargs, message)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"crop_size": 0}, "crop_size=0: expected an integer >= 1"),
        ({"crop_scale": (0.5, 0.2)}, "crop_scale=(0.5, 0.2): expected 0 < min <= max <= 1"),
        ({"crop_scale": 0.5}, "crop_scale=0.5: expected a (min, max) pair"),
        ({"gaussian_blur": 2}, "gaussian_blur=2: expected a probability in [0, 1]"),
    ],
)
def test_bad_view_arguments(kwargs: dict[str, Any], message: str) -> None:
    check_bad_argument(SwaVViewTransform, kwargs, message)
