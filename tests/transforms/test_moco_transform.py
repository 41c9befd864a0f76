"""MoCoV1Transform / MoCoV2Transform: the papers' augmentation strengths, two views."""

from __future__ import annotations

import inspect

import pytest
import torch

from selfsup.errors import ConfigError
from selfsup.transforms import (
    GaussianBlur,
    MoCoV1Transform,
    MoCoV2Transform,
    RandomColorJitter,
    RandomResizedCrop,
    SimCLRViewTransform,
)


def steps_of(
    transform: MoCoV1Transform | MoCoV2Transform,
) -> tuple[RandomResizedCrop, RandomColorJitter, GaussianBlur]:
    view = transform.transforms[0]
    assert isinstance(view, SimCLRViewTransform)
    crop, jitter, blur = view.steps[0], view.steps[4], view.steps[6]
    assert isinstance(crop, RandomResizedCrop)
    assert isinstance(jitter, RandomColorJitter)
    assert isinstance(blur, GaussianBlur)
    return crop, jitter, blur


def test_moco_v1_uses_colour_jitter_0_4_everywhere_and_no_blur() -> None:
    crop, jitter, blur = steps_of(MoCoV1Transform(input_size=16))
    assert crop.scale == (0.2, 1.0)
    assert (jitter.prob, jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (
        0.8,
        0.4,
        0.4,
        0.4,
        0.4,
    )
    assert blur.prob == 0.0


def test_moco_v2_uses_0_4_0_4_0_4_0_1_and_blur() -> None:
    crop, jitter, blur = steps_of(MoCoV2Transform(input_size=16))
    assert crop.scale == (0.2, 1.0)
    assert (jitter.brightness, jitter.contrast, jitter.saturation) == (0.4, 0.4, 0.4)
    assert jitter.hue == pytest.approx(0.1)
    assert (blur.prob, blur.sigmas) == (0.5, (0.1, 2.0))


@pytest.mark.parametrize("cls", [MoCoV1Transform, MoCoV2Transform])
def test_two_views_and_reproducible(cls: type[MoCoV1Transform], float_image: torch.Tensor) -> None:
    transform = cls(input_size=16)
    a = transform(float_image, generator=torch.Generator().manual_seed(0))
    b = transform(float_image, generator=torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in a] == [(3, 16, 16)] * 2
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("cls", [MoCoV1Transform, MoCoV2Transform])
def test_same_knobs_as_simclr(cls: type) -> None:
    assert list(inspect.signature(cls).parameters) == list(
        inspect.signature(SimCLRViewTransform).parameters
    )


def test_bad_arguments_name_the_argument() -> None:
    with pytest.raises(ConfigError, match="cj_hue"):
        MoCoV1Transform(cj_hue=0.6)
    with pytest.raises(ConfigError, match="min_scale"):
        MoCoV2Transform(min_scale=0)
