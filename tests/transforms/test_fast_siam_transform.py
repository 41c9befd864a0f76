"""FastSiamTransform: ``num_views`` SimSiam views (Pototzky et al. 2022: K + 1 = 4)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch

from _transform_contract import (
    COMMON_BAD_ARGUMENTS,
    check_bad_argument,
    check_common_knobs,
    check_step_probabilities,
    check_transform_contract,
    views_of,
)
from selfsup.transforms import (
    FastSiamTransform,
    GaussianBlur,
    RandomColorJitter,
    RandomGrayscale,
    RandomHorizontalFlip,
    SimSiamTransform,
    SimSiamViewTransform,
)


def test_defaults_are_four_simsiam_views() -> None:
    params = inspect.signature(FastSiamTransform).parameters
    assert next(iter(params)) == "num_views"
    assert params["num_views"].default == 4
    simsiam = inspect.signature(SimSiamTransform).parameters
    assert {k: v.default for k, v in params.items() if k != "num_views"} == {
        k: v.default for k, v in simsiam.items()
    }
    views = views_of(FastSiamTransform(input_size=16))
    assert len(views) == 4
    assert all(type(v) is SimSiamViewTransform for v in views)


def test_views_follow_simsiam_augmentations() -> None:
    view = views_of(FastSiamTransform(input_size=16))[0]
    check_step_probabilities(
        view,
        {
            RandomHorizontalFlip: 0.5,
            RandomColorJitter: 0.8,
            RandomGrayscale: 0.2,
            GaussianBlur: 0.5,
        },
    )


@pytest.mark.parametrize("num_views", [1, 2, 5])
def test_num_views_sets_the_view_count(float_image: torch.Tensor, num_views: int) -> None:
    transform = FastSiamTransform(num_views=num_views, input_size=8)
    views = transform(float_image, generator=torch.Generator().manual_seed(0))
    assert len(views) == num_views == transform.num_views
    assert all(v.shape == (3, 8, 8) for v in views)
    # Every view is its own draw.
    assert len({tuple(v.flatten().tolist()) for v in views}) == num_views


def test_every_knob_reaches_every_view() -> None:
    def last_view(**kwargs: Any) -> SimSiamViewTransform:
        view = FastSiamTransform(num_views=3, **kwargs).transforms[-1]
        assert isinstance(view, SimSiamViewTransform)
        return view

    check_common_knobs(last_view)


def test_transform_contract() -> None:
    check_transform_contract(FastSiamTransform(input_size=16), n_views=4, size=16)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_views": 0}, "num_views=0: expected an integer >= 1"),
        ({"num_views": -2}, "num_views=-2: expected an integer >= 1"),
        ({"num_views": 2.5}, "num_views=2.5: expected an integer >= 1"),
        ({"num_views": True}, "num_views=True: expected an integer >= 1"),
        *COMMON_BAD_ARGUMENTS,
    ],
)
def test_bad_arguments_name_the_argument_and_the_range(
    kwargs: dict[str, Any], message: str
) -> None:
    check_bad_argument(FastSiamTransform, kwargs, message)
