"""SMoGTransform / SMoGViewTransform against SMoG's multi-crop augmentations (lightly's)."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
import torch

from _transform_contract import (
    check_bad_argument,
    check_crop_scale,
    check_identity_when_all_off,
    check_step_probabilities,
    check_transform_contract,
    step_index,
    step_of,
    views_of,
)
from selfsup.transforms import (
    IMAGENET_NORMALIZE,
    GaussianBlur,
    RandomColorJitter,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomSolarization,
    RandomTransform,
    SMoGTransform,
    SMoGViewTransform,
)

LIGHTLY_DEFAULTS: dict[str, object] = {
    "crop_sizes": (224, 96),
    "crop_counts": (4, 4),
    "crop_min_scales": (0.2, 0.05),
    "crop_max_scales": (1.0, 0.2),
    "gaussian_blur_probs": (0.5, 0.1),
    "gaussian_blur_kernel_sizes": (None, None),
    "gaussian_blur_sigmas": (0.1, 2),
    "solarize_probs": (0.0, 0.2),
    "hf_prob": 0.5,
    "cj_prob": 1.0,
    "cj_strength": 0.5,
    "cj_bright": 0.8,
    "cj_contrast": 0.8,
    "cj_sat": 0.4,
    "cj_hue": 0.2,
    "random_gray_scale": 0.2,
    "normalize": IMAGENET_NORMALIZE,
}

VIEW_DEFAULTS: dict[str, object] = {
    "crop_size": 224,
    "crop_min_scale": 0.2,
    "crop_max_scale": 1.0,
    "gaussian_blur_prob": 0.5,
    "kernel_size": None,
    "sigmas": (0.1, 2),
    "solarize_prob": 0.0,
    **{k: LIGHTLY_DEFAULTS[k] for k in list(LIGHTLY_DEFAULTS)[8:]},
}


def _table(blur: float, solarize: float) -> dict[type[RandomTransform[Any]], float]:
    return {
        RandomHorizontalFlip: 0.5,
        RandomColorJitter: 1.0,
        RandomGrayscale: 0.2,
        GaussianBlur: blur,
        RandomSolarization: solarize,
    }


def test_defaults_match_lightly() -> None:
    params = inspect.signature(SMoGTransform).parameters
    assert {k: params[k].default for k in params} == LIGHTLY_DEFAULTS
    view_params = inspect.signature(SMoGViewTransform).parameters
    assert {k: view_params[k].default for k in view_params} == VIEW_DEFAULTS


def test_both_categories_follow_lightly() -> None:
    transform = SMoGTransform(crop_sizes=(16, 8))
    views = views_of(transform)
    assert len(views) == 8
    large, small = views[0], views[4]
    assert all(v is large for v in views[:4])
    assert all(v is small for v in views[4:])
    check_step_probabilities(large, _table(0.5, 0.0))
    check_step_probabilities(small, _table(0.1, 0.2))
    check_crop_scale(large, (0.2, 1.0))
    check_crop_scale(small, (0.05, 0.2))
    jitter = step_of(large, RandomColorJitter)
    np.testing.assert_allclose(
        [jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue], [0.4, 0.4, 0.2, 0.1]
    )
    assert step_index(large, GaussianBlur) + 1 == step_index(large, RandomSolarization)
    out = transform(torch.rand(3, 40, 40))
    assert [tuple(v.shape) for v in out] == [(3, 16, 16)] * 4 + [(3, 8, 8)] * 4


def test_every_knob_reaches_its_step() -> None:
    transform = SMoGTransform(
        crop_sizes=(20, 10),
        crop_counts=(1, 2),
        crop_min_scales=(0.3, 0.1),
        crop_max_scales=(0.9, 0.3),
        gaussian_blur_probs=(0.7, 0.6),
        gaussian_blur_kernel_sizes=(5, None),
        gaussian_blur_sigmas=(0.3, 0.9),
        solarize_probs=(0.4, 0.5),
        hf_prob=0.1,
        cj_prob=0.3,
        cj_strength=0.5,
        cj_bright=0.2,
        cj_contrast=0.4,
        cj_sat=0.6,
        cj_hue=0.8,
        random_gray_scale=0.4,
        normalize={"mean": [0.5] * 3, "std": [0.25] * 3},
    )
    views = views_of(transform)
    assert len(views) == 3
    for view, size, scale, blur, kernel, solarize in (
        (views[0], (20, 20), (0.3, 0.9), 0.7, 5, 0.4),
        (views[1], (10, 10), (0.1, 0.3), 0.6, None, 0.5),
    ):
        crop = step_of(view, RandomResizedCrop)
        assert (crop.size, crop.scale) == (size, scale)
        gaussian = step_of(view, GaussianBlur)
        assert (gaussian.prob, gaussian.kernel_size, gaussian.sigmas) == (blur, kernel, (0.3, 0.9))
        assert step_of(view, RandomSolarization).prob == solarize
        assert step_of(view, RandomHorizontalFlip).prob == 0.1
        jitter = step_of(view, RandomColorJitter)
        assert jitter.prob == 0.3
        np.testing.assert_allclose(
            [jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue],
            [0.1, 0.2, 0.3, 0.4],
        )
        assert step_of(view, RandomGrayscale).prob == 0.4
        assert view.normalize == ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def test_all_augmentations_off_gives_normalised_input() -> None:
    def one_crop(input_size: int, **kwargs: Any) -> SMoGViewTransform:
        return SMoGViewTransform(crop_size=input_size, **kwargs)

    off = {
        "crop_min_scale": 1.0,
        "cj_prob": 0.0,
        "random_gray_scale": 0.0,
        "gaussian_blur_prob": 0.0,
        "solarize_prob": 0.0,
        "hf_prob": 0.0,
    }
    check_identity_when_all_off(one_crop, off)


def test_transform_contract() -> None:
    check_transform_contract(SMoGTransform(crop_sizes=(8, 8), crop_counts=(2, 2)), 4, size=8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"crop_sizes": (224,)}, "crop_counts=(4, 4): expected 1 entries, one per crop"),
        ({"crop_counts": (2, -1)}, "crop_counts[1]=-1: expected an integer >= 0"),
        ({"crop_counts": (0, 0)}, "crop_counts=(0, 0): expected at least one crop in all"),
        ({"crop_min_scales": (0.2, 0.5)}, "crop_min_scales[1]=0.5, crop_max_scales[1]=0.2"),
        ({"gaussian_blur_probs": (0.5, 2)}, "gaussian_blur_probs[1]=2: expected a probability"),
        ({"gaussian_blur_probs": (0.5,)}, "gaussian_blur_probs=(0.5,): expected 2 entries"),
        ({"gaussian_blur_kernel_sizes": (4, None)}, "gaussian_blur_kernel_sizes[0]=4: an int"),
        ({"solarize_probs": (0.0, -1)}, "solarize_probs[1]=-1: expected a probability"),
        ({"cj_prob": 1.5}, "cj_prob=1.5: expected a probability in [0, 1]"),
        ({"hf_prob": -0.1}, "hf_prob=-0.1: expected a probability in [0, 1]"),
        ({"gaussian_blur_sigmas": (2, 1)}, "sigmas=(2, 1): expected min <= max"),
    ],
)
def test_bad_arguments_name_the_argument_and_the_range(
    kwargs: dict[str, Any], message: str
) -> None:
    check_bad_argument(SMoGTransform, kwargs, message)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"crop_size": 0}, "crop_size=0: expected an integer >= 1"),
        ({"crop_min_scale": 0.5, "crop_max_scale": 0.2}, "crop_min_scale=0.5, crop_max_scale"),
        ({"gaussian_blur_prob": 2}, "gaussian_blur_prob=2: expected a probability in [0, 1]"),
        ({"solarize_prob": 2}, "solarize_prob=2: expected a probability in [0, 1]"),
    ],
)
def test_bad_view_arguments(kwargs: dict[str, Any], message: str) -> None:
    check_bad_argument(SMoGViewTransform, kwargs, message)
