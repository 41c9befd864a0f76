"""BYOLTransform and its two views against BYOL's augmentation table (Grill et al., Table 6)."""

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
    draw_params,
    step_index,
    step_of,
    views_of,
)
from selfsup.errors import ConfigError
from selfsup.transforms import (
    BYOLTransform,
    BYOLView1Transform,
    BYOLView2Transform,
    GaussianBlur,
    RandomColorJitter,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomSolarization,
    RandomTransform,
    SimCLRViewTransform,
)

#: Table 6 of the BYOL paper: probability of each augmentation in view 1 (T) and view 2 (T').
PAPER_TABLE: dict[str, dict[type[RandomTransform[Any]], float]] = {
    "view_1": {
        RandomHorizontalFlip: 0.5,
        RandomColorJitter: 0.8,
        RandomGrayscale: 0.2,
        GaussianBlur: 1.0,
        RandomSolarization: 0.0,
    },
    "view_2": {
        RandomHorizontalFlip: 0.5,
        RandomColorJitter: 0.8,
        RandomGrayscale: 0.2,
        GaussianBlur: 0.1,
        RandomSolarization: 0.2,
    },
}

LIGHTLY_DEFAULTS: dict[str, object] = {
    **SHARED_DEFAULTS,
    "cj_strength": 1.0,
    "cj_bright": 0.4,
    "cj_contrast": 0.4,
    "cj_sat": 0.2,
    "cj_hue": 0.1,
    "min_scale": 0.08,
}

#: Every augmentation switched off: the view must be the (normalised) input itself.
BYOL_ALL_OFF: dict[str, object] = {**ALL_OFF, "solarization_prob": 0.0}


def small() -> BYOLTransform:
    return BYOLTransform(BYOLView1Transform(input_size=16), BYOLView2Transform(input_size=16))


@pytest.mark.parametrize(
    ("cls", "blur", "solarize"), [(BYOLView1Transform, 1.0, 0.0), (BYOLView2Transform, 0.1, 0.2)]
)
def test_defaults_match_lightly(cls: type, blur: float, solarize: float) -> None:
    params = inspect.signature(cls).parameters
    expected = {**LIGHTLY_DEFAULTS, "gaussian_blur": blur, "solarization_prob": solarize}
    assert {k: params[k].default for k in params} == expected
    # lightly's argument order, so positional calls mean the same.
    assert list(params) == list(inspect.signature(BYOLView1Transform).parameters)


def test_default_transform_is_view_1_then_view_2() -> None:
    view_1, view_2 = views_of(BYOLTransform())
    assert type(view_1) is BYOLView1Transform
    assert type(view_2) is BYOLView2Transform
    assert isinstance(view_1, SimCLRViewTransform)
    assert step_of(view_1, RandomResizedCrop).size == (224, 224)


@pytest.mark.parametrize("view", ["view_1", "view_2"])
def test_each_view_follows_the_paper_table(view: str) -> None:
    transform = BYOLTransform()
    index = 0 if view == "view_1" else 1
    check_step_probabilities(views_of(transform)[index], PAPER_TABLE[view])


@pytest.mark.parametrize("cls", [BYOLView1Transform, BYOLView2Transform])
def test_crop_scale_jitter_strength_and_blur_sigma(cls: type[BYOLView1Transform]) -> None:
    view = cls(input_size=16)
    check_crop_scale(view, (0.08, 1.0))
    jitter = step_of(view, RandomColorJitter)
    np.testing.assert_allclose(
        [jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue], [0.4, 0.4, 0.2, 0.1]
    )
    index = step_index(view, GaussianBlur)
    sigmas = [params[index].sigma for params in draw_params(view, 500)]
    assert 0.1 <= min(sigmas) < 0.2
    assert 1.9 < max(sigmas) <= 2.0


def test_solarization_comes_after_the_blur() -> None:
    view = BYOLView2Transform(input_size=16)
    assert step_index(view, RandomSolarization) == step_index(view, GaussianBlur) + 1
    assert step_index(view, RandomSolarization) == len(view.steps) - 1


@pytest.mark.parametrize("cls", [BYOLView1Transform, BYOLView2Transform])
def test_every_shared_knob_reaches_its_step(cls: type[BYOLView1Transform]) -> None:
    check_common_knobs(cls)


@pytest.mark.parametrize(
    ("kwargs", "table"),
    [
        ({"gaussian_blur": 0.0}, {GaussianBlur: 0.0}),
        (
            {"gaussian_blur": 1.0, "solarization_prob": 1.0},
            {GaussianBlur: 1.0, RandomSolarization: 1.0},
        ),
        (
            {"solarization_prob": 0.5, "cj_prob": 0.0},
            {RandomSolarization: 0.5, RandomColorJitter: 0.0},
        ),
        (
            {"random_gray_scale": 1.0, "hf_prob": 0.0},
            {RandomGrayscale: 1.0, RandomHorizontalFlip: 0.0},
        ),
    ],
)
def test_probability_knobs_change_the_rates(
    kwargs: dict[str, Any], table: dict[type[RandomTransform[Any]], float]
) -> None:
    for cls in (BYOLView1Transform, BYOLView2Transform):
        check_step_probabilities(cls(input_size=16, **kwargs), table, n=400)


def test_solarization_inverts_the_bright_pixels() -> None:
    arr = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    off: dict[str, Any] = {**BYOL_ALL_OFF, "solarization_prob": 1.0}
    out = BYOLView2Transform(input_size=16, normalize=None, **off)(Image.fromarray(arr))
    solarized = np.where(arr >= 128, 255 - arr, arr)
    assert torch.equal(out, torch.from_numpy(solarized).permute(2, 0, 1).float() / 255)


@pytest.mark.parametrize("cls", [BYOLView1Transform, BYOLView2Transform])
def test_all_augmentations_off_gives_normalised_input(cls: type[BYOLView1Transform]) -> None:
    check_identity_when_all_off(cls, BYOL_ALL_OFF)


def test_transform_contract() -> None:
    check_transform_contract(small(), n_views=2, size=16)


def test_accepts_any_callable_view(float_image: torch.Tensor) -> None:
    transform = BYOLTransform(view_1_transform=lambda img: img)
    assert transform.transforms[0](float_image) is float_image
    assert type(transform.transforms[1]) is BYOLView2Transform


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        *COMMON_BAD_ARGUMENTS,
        ({"solarization_prob": 1.5}, "solarization_prob=1.5: expected a probability in [0, 1]"),
    ],
)
@pytest.mark.parametrize("cls", [BYOLView1Transform, BYOLView2Transform])
def test_bad_arguments_name_the_argument_and_the_range(
    cls: type[BYOLView1Transform], kwargs: dict[str, Any], message: str
) -> None:
    check_bad_argument(cls, kwargs, message)


@pytest.mark.parametrize("key", ["view_1_transform", "view_2_transform"])
def test_a_view_that_is_not_callable_is_refused(key: str) -> None:
    with pytest.raises(ConfigError, match=f"{key}=0.5: expected a callable"):
        BYOLTransform(**{key: 0.5})  # type: ignore[arg-type]
