"""EMPSSLTransform / EMPSSLViewTransform against EMP-SSL's patch augmentations (Tong et al.)."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from _transform_contract import (
    COMMON_BAD_ARGUMENTS,
    check_bad_argument,
    check_crop_scale,
    check_identity_when_all_off,
    check_step_probabilities,
    check_transform_contract,
    draw_params,
    first_view,
    step_index,
    step_of,
    views_of,
)
from selfsup.transforms import (
    IMAGENET_NORMALIZE,
    CropParams,
    EMPSSLTransform,
    EMPSSLViewTransform,
    GaussianBlur,
    RandomColorJitter,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotateDegrees,
    RandomSolarization,
    RandomTransform,
    RandomVerticalFlip,
)

#: The authors' patch augmentations: probability of each step, every patch.
PAPER_TABLE: dict[type[RandomTransform[Any]], float] = {
    RandomHorizontalFlip: 0.5,
    RandomColorJitter: 0.8,
    RandomGrayscale: 0.2,
    GaussianBlur: 0.1,
    RandomSolarization: 0.1,
}

DEFAULTS: dict[str, object] = {
    "input_size": 32,
    "cj_prob": 0.8,
    "cj_strength": 0.5,
    "cj_bright": 0.8,
    "cj_contrast": 0.8,
    "cj_sat": 0.8,
    "cj_hue": 0.4,
    "patch_scale": 0.25,
    "random_gray_scale": 0.2,
    "gaussian_blur": 0.1,
    "kernel_size": None,
    "sigmas": (0.1, 2),
    "solarize_prob": 0.1,
    "vf_prob": 0.0,
    "hf_prob": 0.5,
    "rr_prob": 0.0,
    "rr_degrees": None,
    "normalize": IMAGENET_NORMALIZE,
}

#: Every augmentation switched off: a patch of the whole (square) image, normalised.
ALL_OFF: dict[str, object] = {
    "patch_scale": 1.0,
    "cj_prob": 0.0,
    "random_gray_scale": 0.0,
    "gaussian_blur": 0.0,
    "solarize_prob": 0.0,
    "hf_prob": 0.0,
}

view_of = first_view(EMPSSLTransform)


def test_defaults() -> None:
    view_params = inspect.signature(EMPSSLViewTransform).parameters
    assert {k: view_params[k].default for k in view_params} == DEFAULTS
    params = inspect.signature(EMPSSLTransform).parameters
    assert {k: params[k].default for k in params} == {"num_patches": 100, **DEFAULTS}


def test_every_patch_follows_the_paper() -> None:
    transform = EMPSSLTransform(input_size=16)
    views = views_of(transform)
    assert len(views) == 100
    assert all(v is views[0] for v in views)
    view = views[0]
    check_step_probabilities(view, PAPER_TABLE)
    jitter = step_of(view, RandomColorJitter)
    np.testing.assert_allclose(
        [jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue], [0.4, 0.4, 0.4, 0.2]
    )
    assert step_of(view, GaussianBlur).sigmas == (0.1, 2.0)
    # Blur, then solarize, last (the authors' order).
    assert step_index(view, GaussianBlur) + 1 == step_index(view, RandomSolarization)
    assert step_index(view, RandomSolarization) == len(view.steps) - 1


def test_patches_are_square_quarters_of_the_image() -> None:
    view = EMPSSLViewTransform(input_size=16)
    check_crop_scale(view, (0.25, 0.25))
    index = step_index(view, RandomResizedCrop)
    for params in draw_params(view, 200, size=(200, 120)):
        crop = params[index]
        assert isinstance(crop, CropParams)
        assert crop.height == crop.width
        assert abs(crop.height * crop.width / (200 * 120) - 0.25) < 0.01


def test_every_knob_reaches_its_step() -> None:
    view = view_of(
        input_size=(20, 24),
        cj_prob=0.3,
        cj_strength=0.5,
        cj_bright=0.2,
        cj_contrast=0.4,
        cj_sat=0.6,
        cj_hue=0.8,
        patch_scale=0.5,
        random_gray_scale=0.4,
        gaussian_blur=0.7,
        kernel_size=5,
        sigmas=(0.3, 0.9),
        solarize_prob=0.6,
        vf_prob=0.6,
        hf_prob=0.1,
        rr_prob=0.9,
        rr_degrees=10,
        normalize={"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
    )
    crop = step_of(view, RandomResizedCrop)
    assert (crop.size, crop.scale, crop.ratio) == ((20, 24), (0.5, 0.5), (1.0, 1.0))
    jitter = step_of(view, RandomColorJitter)
    assert jitter.prob == 0.3
    np.testing.assert_allclose(
        [jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue], [0.1, 0.2, 0.3, 0.4]
    )
    assert step_of(view, RandomGrayscale).prob == 0.4
    blur = step_of(view, GaussianBlur)
    assert (blur.prob, blur.kernel_size, blur.sigmas) == (0.7, 5, (0.3, 0.9))
    assert step_of(view, RandomSolarization).prob == 0.6
    assert step_of(view, RandomVerticalFlip).prob == 0.6
    assert step_of(view, RandomHorizontalFlip).prob == 0.1
    rotate = step_of(view, RandomRotateDegrees)
    assert (rotate.prob, rotate.degrees) == (0.9, (-10.0, 10.0))
    assert view.normalize == ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


@pytest.mark.parametrize("make_view", [EMPSSLViewTransform, view_of])
def test_all_augmentations_off_gives_normalised_input(make_view: Any) -> None:
    check_identity_when_all_off(make_view, ALL_OFF)


def test_solarize_prob_one_solarizes_every_patch() -> None:
    arr = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    off: dict[str, Any] = {**ALL_OFF, "solarize_prob": 1.0}
    views = EMPSSLTransform(num_patches=3, input_size=16, normalize=None, **off)(
        Image.fromarray(arr)
    )
    solarized = torch.from_numpy(np.where(arr >= 128, 255 - arr, arr)).permute(2, 0, 1) / 255
    assert len(views) == 3
    assert all(torch.equal(v, solarized.float()) for v in views)


def test_transform_contract() -> None:
    check_transform_contract(EMPSSLTransform(num_patches=4, input_size=8), n_views=4, size=8)


_SCALE = "expected a fraction of the image area in (0, 1]"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        *[(k, m) for k, m in COMMON_BAD_ARGUMENTS if "min_scale" not in k],
        ({"patch_scale": 0.0}, f"patch_scale=0.0: {_SCALE}"),
        ({"patch_scale": 1.5}, f"patch_scale=1.5: {_SCALE}"),
        ({"solarize_prob": -0.2}, "solarize_prob=-0.2: expected a probability in [0, 1]"),
    ],
)
@pytest.mark.parametrize("cls", [EMPSSLTransform, EMPSSLViewTransform])
def test_bad_arguments_name_the_argument_and_the_range(
    cls: type, kwargs: dict[str, Any], message: str
) -> None:
    check_bad_argument(cls, kwargs, message)


@pytest.mark.parametrize("value", [1, 0, 2.5, True])
def test_bad_num_patches_is_rejected(value: object) -> None:
    check_bad_argument(EMPSSLTransform, {"num_patches": value}, f"num_patches={value!r}: expected")
