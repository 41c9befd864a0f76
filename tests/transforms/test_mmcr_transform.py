"""MMCRTransform: ``k`` views, each drawn like BYOL's first view (lightly's defaults)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch

from _transform_contract import (
    COMMON_BAD_ARGUMENTS,
    check_bad_argument,
    check_common_knobs,
    check_crop_scale,
    check_step_probabilities,
    check_transform_contract,
    step_of,
    views_of,
)
from selfsup.transforms import (
    BYOLView1Transform,
    GaussianBlur,
    MMCRTransform,
    RandomColorJitter,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomSolarization,
)


def test_defaults_are_eight_byol_first_views() -> None:
    params = inspect.signature(MMCRTransform).parameters
    assert next(iter(params)) == "k"
    assert params["k"].default == 8
    byol = inspect.signature(BYOLView1Transform).parameters
    assert {k: v.default for k, v in params.items() if k != "k"} == {
        k: v.default for k, v in byol.items()
    }
    views = views_of(MMCRTransform(input_size=16))
    assert len(views) == 8
    assert all(type(v) is BYOLView1Transform for v in views)


def test_views_follow_byols_first_view() -> None:
    view = views_of(MMCRTransform(input_size=16))[0]
    check_step_probabilities(
        view,
        {
            RandomHorizontalFlip: 0.5,
            RandomColorJitter: 0.8,
            RandomGrayscale: 0.2,
            GaussianBlur: 1.0,
            RandomSolarization: 0.0,
        },
    )
    check_crop_scale(view, (0.08, 1.0))


@pytest.mark.parametrize("k", [1, 2, 5])
def test_k_sets_the_view_count(float_image: torch.Tensor, k: int) -> None:
    transform = MMCRTransform(k=k, input_size=8)
    views = transform(float_image, generator=torch.Generator().manual_seed(0))
    assert len(views) == k == transform.k
    assert all(v.shape == (3, 8, 8) for v in views)
    # Every view is its own draw.
    assert len({tuple(v.flatten().tolist()) for v in views}) == k


def test_every_knob_reaches_every_view() -> None:
    def last_view(**kwargs: Any) -> BYOLView1Transform:
        view = MMCRTransform(k=3, **kwargs).transforms[-1]
        assert isinstance(view, BYOLView1Transform)
        return view

    check_common_knobs(last_view)
    assert step_of(last_view(solarization_prob=0.3), RandomSolarization).prob == 0.3


def test_transform_contract() -> None:
    check_transform_contract(MMCRTransform(k=3, input_size=16), n_views=3, size=16)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        *COMMON_BAD_ARGUMENTS,
        ({"k": 0}, "k=0: expected an integer >= 1"),
        ({"k": 2.0}, "k=2.0: expected an integer >= 1, got float"),
    ],
)
def test_bad_arguments_name_the_argument_and_the_range(
    kwargs: dict[str, Any], message: str
) -> None:
    check_bad_argument(MMCRTransform, kwargs, message)
