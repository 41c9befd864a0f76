"""VICRegTransform / VICRegViewTransform against VICReg's augmentations (Bardes et al., C.1)."""

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
    first_view,
    step_index,
    step_of,
    views_of,
)
from selfsup.transforms import (
    GaussianBlur,
    RandomColorJitter,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomSolarization,
    RandomTransform,
    VICRegTransform,
    VICRegViewTransform,
)

#: VICReg's augmentations (BYOL's, symmetrised): probability of each step, both views.
PAPER_TABLE: dict[type[RandomTransform[Any]], float] = {
    RandomHorizontalFlip: 0.5,
    RandomColorJitter: 0.8,
    RandomGrayscale: 0.2,
    GaussianBlur: 0.5,
    RandomSolarization: 0.1,
}

LIGHTLY_DEFAULTS: dict[str, object] = {
    **SHARED_DEFAULTS,
    "cj_strength": 0.5,
    "cj_bright": 0.8,
    "cj_contrast": 0.8,
    "cj_sat": 0.4,
    "cj_hue": 0.2,
    "min_scale": 0.08,
    "solarize_prob": 0.1,
    "gaussian_blur": 0.5,
    # lightly's VICRegViewTransform alone says (0.2, 2); the paper and VICRegTransform (0.1, 2).
    "sigmas": (0.1, 2),
}

#: Every augmentation switched off: the view must be the (normalised) input itself.
VICREG_ALL_OFF: dict[str, object] = {**ALL_OFF, "solarize_prob": 0.0}

#: VICRegTransform's own view, built from its arguments.
view_of = first_view(VICRegTransform)


@pytest.mark.parametrize("cls", [VICRegTransform, VICRegViewTransform])
def test_defaults_match_lightly(cls: type) -> None:
    params = inspect.signature(cls).parameters
    assert {k: params[k].default for k in params} == LIGHTLY_DEFAULTS
    assert list(params).index("solarize_prob") == list(params).index("gaussian_blur") - 1


def test_both_views_follow_the_paper() -> None:
    view_0, view_1 = views_of(VICRegTransform(input_size=16))
    assert view_0 is view_1
    check_step_probabilities(view_0, PAPER_TABLE)
    check_crop_scale(view_0, (0.08, 1.0))
    jitter = step_of(view_0, RandomColorJitter)
    np.testing.assert_allclose(
        [jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue], [0.4, 0.4, 0.2, 0.1]
    )
    assert step_of(view_0, GaussianBlur).sigmas == (0.1, 2.0)


def test_solarization_comes_before_the_blur() -> None:
    view = VICRegViewTransform(input_size=16)
    assert step_index(view, RandomSolarization) + 1 == step_index(view, GaussianBlur)
    assert step_index(view, GaussianBlur) == len(view.steps) - 1


def test_solarize_prob_one_solarizes_every_view() -> None:
    arr = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    off: dict[str, Any] = {**VICREG_ALL_OFF, "solarize_prob": 1.0}
    views = VICRegTransform(input_size=16, normalize=None, **off)(Image.fromarray(arr))
    solarized = torch.from_numpy(np.where(arr >= 128, 255 - arr, arr)).permute(2, 0, 1) / 255
    assert all(torch.equal(v, solarized.float()) for v in views)


@pytest.mark.parametrize("make_view", [VICRegViewTransform, view_of])
def test_every_knob_reaches_its_step(make_view: Any) -> None:
    check_common_knobs(make_view)
    assert step_of(make_view(solarize_prob=0.7), RandomSolarization).prob == 0.7


@pytest.mark.parametrize(
    ("kwargs", "table"),
    [
        (
            {"solarize_prob": 0.0, "gaussian_blur": 0.0},
            {RandomSolarization: 0.0, GaussianBlur: 0.0},
        ),
        (
            {"solarize_prob": 0.5, "gaussian_blur": 1.0},
            {RandomSolarization: 0.5, GaussianBlur: 1.0},
        ),
    ],
)
def test_probability_knobs_change_the_rates(
    kwargs: dict[str, Any], table: dict[type[RandomTransform[Any]], float]
) -> None:
    check_step_probabilities(view_of(input_size=16, **kwargs), table, n=400)


@pytest.mark.parametrize("make_view", [VICRegViewTransform, view_of])
def test_all_augmentations_off_gives_normalised_input(make_view: Any) -> None:
    check_identity_when_all_off(make_view, VICREG_ALL_OFF)


def test_transform_contract() -> None:
    check_transform_contract(VICRegTransform(input_size=16), n_views=2, size=16)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        *COMMON_BAD_ARGUMENTS,
        ({"solarize_prob": -0.2}, "solarize_prob=-0.2: expected a probability in [0, 1]"),
    ],
)
@pytest.mark.parametrize("cls", [VICRegTransform, VICRegViewTransform])
def test_bad_arguments_name_the_argument_and_the_range(
    cls: type, kwargs: dict[str, Any], message: str
) -> None:
    check_bad_argument(cls, kwargs, message)
