"""DetConSTransform / DetConBTransform: SimCLR's and BYOL's views, each with its grid."""

from __future__ import annotations

import numpy as np
import torch

from _transform_contract import check_step_probabilities, step_of, views_of
from selfsup.transforms import (
    DetConBTransform,
    DetConSTransform,
    GaussianBlur,
    RandomColorJitter,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomSolarization,
)


def test_outputs_are_two_views_then_two_grids() -> None:
    for transform in (DetConSTransform(input_size=16, grid_size=2), DetConBTransform(16, 2)):
        out = transform(torch.rand(3, 30, 20))
        assert [tuple(t.shape) for t in out] == [(3, 16, 16)] * 2 + [(2, 2, 2)] * 2
        again = transform(torch.rand(3, 30, 20), generator=torch.Generator().manual_seed(0))
        same = transform(torch.rand(3, 30, 20), generator=torch.Generator().manual_seed(0))
        assert all(torch.equal(a, b) for a, b in zip(again[2:], same[2:], strict=True))


def test_detcons_views_are_simclr_views() -> None:
    view_0, view_1 = views_of(DetConSTransform(input_size=16))
    assert view_0 is view_1
    check_step_probabilities(
        view_0,
        {
            RandomHorizontalFlip: 0.5,
            RandomColorJitter: 0.8,
            RandomGrayscale: 0.2,
            GaussianBlur: 0.5,
            RandomSolarization: 0.0,
        },
    )
    jitter = step_of(view_0, RandomColorJitter)
    np.testing.assert_allclose(
        [jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue], [0.8, 0.8, 0.8, 0.2]
    )
    assert step_of(view_0, RandomResizedCrop).scale == (0.08, 1.0)


def test_detconb_views_are_byol_views() -> None:
    view_0, view_1 = views_of(DetConBTransform(input_size=16))
    for view, blur, solarize in ((view_0, 1.0, 0.0), (view_1, 0.1, 0.2)):
        check_step_probabilities(
            view,
            {
                RandomColorJitter: 0.8,
                RandomGrayscale: 0.2,
                GaussianBlur: blur,
                RandomSolarization: solarize,
            },
        )
        jitter = step_of(view, RandomColorJitter)
        np.testing.assert_allclose(
            [jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue],
            [0.4, 0.4, 0.2, 0.1],
        )
