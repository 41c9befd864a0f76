"""WMSETransform: ``num_samples`` views with W-MSE's augmentations (lightly's defaults)."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
import torch

from _transform_contract import (
    check_bad_argument,
    check_crop_scale,
    check_step_probabilities,
    check_transform_contract,
    step_of,
    views_of,
)
from selfsup.transforms import (
    IMAGENET_NORMALIZE,
    GaussianBlur,
    RandomColorJitter,
    RandomGrayscale,
    RandomHorizontalFlip,
    SimCLRViewTransform,
    WMSETransform,
)

LIGHTLY_DEFAULTS: dict[str, object] = {
    "num_samples": 2,
    "input_size": 224,
    "cj_prob": 0.8,
    "cj_bright": 0.4,
    "cj_contrast": 0.4,
    "cj_sat": 0.4,
    "cj_hue": 0.1,
    "min_scale": 0.2,
    "random_gray_scale": 0.1,
    "hf_prob": 0.5,
    "gaussian_blur": 0.5,
    "sigmas": (0.1, 2.0),
    "normalize": IMAGENET_NORMALIZE,
}


def test_defaults_match_lightly() -> None:
    params = inspect.signature(WMSETransform).parameters
    assert {k: params[k].default for k in params} == LIGHTLY_DEFAULTS


def test_views_follow_the_papers_augmentations() -> None:
    views = views_of(WMSETransform(input_size=16))
    assert len(views) == 2
    view = views[0]
    assert isinstance(view, SimCLRViewTransform)
    check_step_probabilities(
        view,
        {
            RandomHorizontalFlip: 0.5,
            RandomColorJitter: 0.8,
            RandomGrayscale: 0.1,
            GaussianBlur: 0.5,
        },
    )
    check_crop_scale(view, (0.2, 1.0))
    jitter = step_of(view, RandomColorJitter)
    np.testing.assert_allclose(
        [jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue], [0.4, 0.4, 0.4, 0.1]
    )
    assert step_of(view, GaussianBlur).sigmas == (0.1, 2.0)


@pytest.mark.parametrize("num_samples", [1, 2, 4])
def test_num_samples_sets_the_view_count(float_image: torch.Tensor, num_samples: int) -> None:
    transform = WMSETransform(num_samples=num_samples, input_size=8)
    views = transform(float_image, generator=torch.Generator().manual_seed(0))
    assert len(views) == num_samples == transform.num_samples
    assert all(v.shape == (3, 8, 8) for v in views)
    assert len({tuple(v.flatten().tolist()) for v in views}) == num_samples


def test_every_knob_reaches_its_step() -> None:
    view = views_of(
        WMSETransform(
            input_size=16,
            cj_prob=0.3,
            cj_bright=0.1,
            cj_contrast=0.2,
            cj_sat=0.3,
            cj_hue=0.05,
            random_gray_scale=0.4,
            hf_prob=0.6,
            gaussian_blur=0.7,
            sigmas=(0.5, 1.0),
        )
    )[0]
    jitter = step_of(view, RandomColorJitter)
    assert jitter.prob == 0.3
    np.testing.assert_allclose(
        [jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue], [0.1, 0.2, 0.3, 0.05]
    )
    assert step_of(view, RandomGrayscale).prob == 0.4
    assert step_of(view, RandomHorizontalFlip).prob == 0.6
    assert step_of(view, GaussianBlur).prob == 0.7
    assert step_of(view, GaussianBlur).sigmas == (0.5, 1.0)


def test_transform_contract() -> None:
    check_transform_contract(WMSETransform(input_size=16), n_views=2, size=16)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_samples": 0}, "num_samples=0: expected an integer >= 1"),
        ({"input_size": 0}, "input_size=0: expected an integer >= 1"),
        ({"cj_prob": 1.5}, "cj_prob=1.5: expected a probability in [0, 1]"),
        ({"random_gray_scale": -1}, "random_gray_scale=-1: expected a probability in [0, 1]"),
        ({"min_scale": 0.0}, "min_scale=0.0: expected a fraction of the image area in (0, 1]"),
    ],
)
def test_bad_arguments_name_the_argument_and_the_range(
    kwargs: dict[str, Any], message: str
) -> None:
    check_bad_argument(WMSETransform, kwargs, message)
