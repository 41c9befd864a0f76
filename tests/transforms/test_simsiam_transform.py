"""SimSiamTransform / SimSiamViewTransform against SimSiam's augmentations (Chen & He, app. A)."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest

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
    step_of,
    views_of,
)
from selfsup.transforms import (
    GaussianBlur,
    RandomColorJitter,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomRotate,
    RandomTransform,
    RandomVerticalFlip,
    SimSiamTransform,
    SimSiamViewTransform,
)

#: SimSiam's (MoCo v2's) augmentations: probability of each step, the same for both views.
PAPER_TABLE: dict[type[RandomTransform[Any]], float] = {
    RandomHorizontalFlip: 0.5,
    RandomColorJitter: 0.8,
    RandomGrayscale: 0.2,
    GaussianBlur: 0.5,
    RandomVerticalFlip: 0.0,
    RandomRotate: 0.0,
}

LIGHTLY_DEFAULTS: dict[str, object] = {
    **SHARED_DEFAULTS,
    "cj_strength": 1.0,
    "cj_bright": 0.4,
    "cj_contrast": 0.4,
    "cj_sat": 0.4,
    "cj_hue": 0.1,
    "min_scale": 0.2,
    "gaussian_blur": 0.5,
}

#: SimSiamTransform's own view, built from its arguments.
view_of = first_view(SimSiamTransform)


@pytest.mark.parametrize("cls", [SimSiamTransform, SimSiamViewTransform])
def test_defaults_match_lightly(cls: type) -> None:
    params = inspect.signature(cls).parameters
    assert {k: params[k].default for k in params} == LIGHTLY_DEFAULTS


def test_both_views_follow_the_paper() -> None:
    view_0, view_1 = views_of(SimSiamTransform(input_size=16))
    assert view_0 is view_1  # one distribution, fresh parameters per view
    check_step_probabilities(view_0, PAPER_TABLE)
    check_crop_scale(view_0, (0.2, 1.0))
    jitter = step_of(view_0, RandomColorJitter)
    np.testing.assert_allclose(
        [jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue], [0.4, 0.4, 0.4, 0.1]
    )
    assert step_of(view_0, GaussianBlur).sigmas == (0.1, 2.0)


@pytest.mark.parametrize("make_view", [SimSiamViewTransform, view_of])
def test_every_knob_reaches_its_step(make_view: Any) -> None:
    check_common_knobs(make_view)


@pytest.mark.parametrize(
    ("kwargs", "table"),
    [
        ({"gaussian_blur": 0.0}, {GaussianBlur: 0.0}),
        ({"gaussian_blur": 1.0, "cj_prob": 0.0}, {GaussianBlur: 1.0, RandomColorJitter: 0.0}),
        (
            {"random_gray_scale": 0.0, "vf_prob": 1.0},
            {RandomGrayscale: 0.0, RandomVerticalFlip: 1.0},
        ),
    ],
)
def test_probability_knobs_change_the_rates(
    kwargs: dict[str, Any], table: dict[type[RandomTransform[Any]], float]
) -> None:
    check_step_probabilities(view_of(input_size=16, **kwargs), table, n=400)


@pytest.mark.parametrize("make_view", [SimSiamViewTransform, view_of])
def test_all_augmentations_off_gives_normalised_input(make_view: Any) -> None:
    check_identity_when_all_off(make_view, ALL_OFF)


def test_transform_contract() -> None:
    check_transform_contract(SimSiamTransform(input_size=16), n_views=2, size=16)


@pytest.mark.parametrize(("kwargs", "message"), COMMON_BAD_ARGUMENTS)
@pytest.mark.parametrize("cls", [SimSiamTransform, SimSiamViewTransform])
def test_bad_arguments_name_the_argument_and_the_range(
    cls: type, kwargs: dict[str, Any], message: str
) -> None:
    check_bad_argument(cls, kwargs, message)
