"""The contract every multi-view method transform keeps, as reusable checks.

A method's test module states the paper's augmentation table as data (step -> probability)
and calls these checks:

* ``check_step_probabilities(view, table)``: over many seeded draws of ``get_params``, each
  step fires at the table's rate (binomial tolerance; exactly never / always for 0 and 1);
* ``check_crop_scale(view, (low, 1))``: crops cover between ``low`` and all of the image;
* ``check_common_knobs(make_view)``: every lightly knob shared by the SimCLR-style views reaches
  the step it configures;
* ``check_identity_when_all_off(make_view, off)``: with every augmentation off a view is the
  normalised input itself;
* ``check_bad_argument(make, kwargs, message)``: a bad value raises a ``ConfigError`` naming
  the key, the value and the accepted range (``COMMON_BAD_ARGUMENTS`` lists the shared knobs);
* ``check_transform_contract(transform, n_views, size)``: views shaped ``(3, size, size)``
  float32; inputs not mutated; same seed -> same views, other seed -> other views; a PIL image
  and its uint8 tensor give the same views up to rounding; ``apply_batch`` equals per-sample
  ``apply``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.errors import ConfigError
from selfsup.transforms import (
    IMAGENET_NORMALIZE,
    ColorJitterParams,
    CropParams,
    GaussianBlur,
    GaussianBlurParams,
    MultiViewTransform,
    RandomColorJitter,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotateDegrees,
    RandomTransform,
    RandomVerticalFlip,
    ViewTransform,
)

S = TypeVar("S", bound=RandomTransform[Any])

#: Defaults every SimCLR-style view of lightly shares (crop size, flips, rotation, blur sigma
#: range, normalisation); a method's test adds its own jitter, crop, blur and solarize values.
SHARED_DEFAULTS: dict[str, object] = {
    "input_size": 224,
    "cj_prob": 0.8,
    "random_gray_scale": 0.2,
    "kernel_size": None,
    "sigmas": (0.1, 2),
    "vf_prob": 0.0,
    "hf_prob": 0.5,
    "rr_prob": 0.0,
    "rr_degrees": None,
    "normalize": IMAGENET_NORMALIZE,
}

#: The shared knobs that switch every augmentation of a SimCLR-style view off.
ALL_OFF: dict[str, object] = {
    "min_scale": 1.0,
    "cj_prob": 0.0,
    "random_gray_scale": 0.0,
    "gaussian_blur": 0.0,
    "hf_prob": 0.0,
}

_PROBABILITY = "expected a probability in [0, 1]"
_NON_NEGATIVE = "expected a number >= 0"

#: Bad values of the shared knobs, with the start of the error: the key, the value and what
#: would be accepted.
COMMON_BAD_ARGUMENTS: list[tuple[dict[str, object], str]] = [
    ({"input_size": 0}, "input_size=0: expected an integer >= 1"),
    ({"input_size": -3}, "input_size=-3: expected an integer >= 1"),
    ({"cj_prob": 1.5}, f"cj_prob=1.5: {_PROBABILITY}"),
    ({"cj_prob": -0.1}, f"cj_prob=-0.1: {_PROBABILITY}"),
    ({"cj_strength": -1.0}, f"cj_strength=-1.0: {_NON_NEGATIVE}"),
    ({"cj_bright": -0.1}, f"cj_bright=-0.1: {_NON_NEGATIVE}"),
    ({"cj_contrast": -0.1}, f"cj_contrast=-0.1: {_NON_NEGATIVE}"),
    ({"cj_sat": -0.1}, f"cj_sat=-0.1: {_NON_NEGATIVE}"),
    ({"cj_hue": 2.0, "cj_strength": 0.5}, "cj_strength * cj_hue = 0.5 * 2.0 = 1: "),
    ({"min_scale": 0.0}, "min_scale=0.0: expected a fraction of the image area in (0, 1]"),
    ({"min_scale": 1.2}, "min_scale=1.2: expected a fraction of the image area in (0, 1]"),
    ({"random_gray_scale": 2}, f"random_gray_scale=2: {_PROBABILITY}"),
    ({"gaussian_blur": -0.5}, f"gaussian_blur=-0.5: {_PROBABILITY}"),
    ({"gaussian_blur": 1.01}, f"gaussian_blur=1.01: {_PROBABILITY}"),
    ({"kernel_size": 4}, "kernel_size=4: an int is a window in pixels and must be odd and >= 3"),
    ({"sigmas": (2, 1)}, "sigmas=(2, 1): expected min <= max with both in (0, inf]"),
    ({"vf_prob": 1.1}, f"vf_prob=1.1: {_PROBABILITY}"),
    ({"hf_prob": -0.1}, f"hf_prob=-0.1: {_PROBABILITY}"),
    ({"rr_prob": 5}, f"rr_prob=5: {_PROBABILITY}"),
    ({"rr_degrees": -5}, "rr_degrees=-5: a single number means the range [-d, d]"),
    ({"normalize": {"mean": [0.5]}}, "normalize: expected exactly the keys 'mean' and 'std'"),
]


def check_bad_argument(
    make: Callable[..., object], kwargs: Mapping[str, object], message: str
) -> None:
    """``make(**kwargs)`` raises a ConfigError whose message starts with ``message``."""
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        make(**kwargs)


def first_view(transform_cls: Callable[..., MultiViewTransform]) -> Callable[..., ViewTransform]:
    """``make(**kwargs)``: the first view transform of ``transform_cls(**kwargs)``."""

    def make(**kwargs: Any) -> ViewTransform:
        view = transform_cls(**kwargs).transforms[0]
        assert isinstance(view, ViewTransform)
        return view

    return make


def is_applied(params: object) -> bool:
    """Whether one step's parameters say the step changes the image."""
    if isinstance(params, ColorJitterParams | GaussianBlurParams):
        return params.applied
    if isinstance(params, bool):
        return params
    if params is None or isinstance(params, float):  # RandomRotateDegrees: angle or None
        return params is not None
    raise TypeError(f"no 'applied' flag in {params!r}")


def step_index(view: ViewTransform, step_type: type[RandomTransform[Any]]) -> int:
    """Index of the only step of ``step_type`` in ``view``."""
    found = [i for i, step in enumerate(view.steps) if type(step) is step_type]
    assert len(found) == 1, f"{step_type.__name__} appears {len(found)} times in {view!r}"
    return found[0]


def step_of(view: ViewTransform, step_type: type[S]) -> S:
    """The only step of ``step_type`` in ``view``."""
    step = view.steps[step_index(view, step_type)]
    assert isinstance(step, step_type)
    return step


def draw_params(
    view: ViewTransform, n: int, seed: int = 0, size: tuple[int, int] = (64, 64)
) -> list[tuple[Any, ...]]:
    """``n`` draws of ``view.get_params(size)`` from one seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    return [view.get_params(size, generator) for _ in range(n)]


def assert_binomial_rate(count: int, n: int, prob: float, what: str) -> None:
    """``count`` successes in ``n`` trials agree with ``prob`` (5 sigma; exact for 0 and 1)."""
    tolerance = 5.0 * math.sqrt(n * prob * (1.0 - prob))
    assert abs(count - n * prob) <= tolerance, (
        f"{what}: {count}/{n} = {count / n:.3f}, expected {prob} (+-{tolerance / n:.3f})"
    )


def check_step_probabilities(
    view: ViewTransform,
    table: Mapping[type[RandomTransform[Any]], float],
    n: int = 1000,
    seed: int = 0,
) -> None:
    """Each step in ``table`` fires with the table's probability over ``n`` seeded draws."""
    draws = draw_params(view, n, seed)
    for step_type, prob in table.items():
        index = step_index(view, step_type)
        count = sum(is_applied(params[index]) for params in draws)
        assert_binomial_rate(count, n, prob, step_type.__name__)


def check_crop_scale(view: ViewTransform, scale: tuple[float, float], n: int = 1000) -> None:
    """Crops of a 200x200 image cover an area fraction in ``scale``, reaching its low end."""
    index = step_index(view, RandomResizedCrop)
    areas: list[float] = []
    for params in draw_params(view, n, seed=1, size=(200, 200)):
        crop = params[index]
        assert isinstance(crop, CropParams)
        areas.append(crop.height * crop.width / 200**2)
    # A crop side is rounded to whole pixels: allow 1 pixel on each side of 200, at both ends
    # of the range (a small crop may round up past its upper bound).
    slack = 2 * 1 / 200
    assert scale[0] - slack <= min(areas) < scale[0] + 0.05
    assert max(areas) <= min(scale[1] + slack, 1.0)
    assert max(areas) > scale[1] - 0.1


def check_common_knobs(make_view: Callable[..., ViewTransform]) -> None:
    """Every SimCLR-style knob given to ``make_view`` reaches the step it configures."""
    view = make_view(
        input_size=(20, 24),
        cj_prob=0.3,
        cj_strength=0.5,
        cj_bright=0.2,
        cj_contrast=0.4,
        cj_sat=0.6,
        cj_hue=0.8,
        min_scale=0.5,
        random_gray_scale=0.4,
        gaussian_blur=0.7,
        kernel_size=5,
        sigmas=(0.3, 0.9),
        vf_prob=0.6,
        hf_prob=0.1,
        rr_prob=0.9,
        rr_degrees=10,
        normalize={"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
    )
    crop = step_of(view, RandomResizedCrop)
    assert (crop.size, crop.scale) == ((20, 24), (0.5, 1.0))
    jitter = step_of(view, RandomColorJitter)
    assert jitter.prob == 0.3
    np.testing.assert_allclose(
        [jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue], [0.1, 0.2, 0.3, 0.4]
    )
    assert step_of(view, RandomGrayscale).prob == 0.4
    blur = step_of(view, GaussianBlur)
    assert (blur.prob, blur.kernel_size, blur.sigmas) == (0.7, 5, (0.3, 0.9))
    assert step_of(view, RandomVerticalFlip).prob == 0.6
    assert step_of(view, RandomHorizontalFlip).prob == 0.1
    rotate = step_of(view, RandomRotateDegrees)
    assert (rotate.prob, rotate.degrees) == (0.9, (-10.0, 10.0))
    assert view.normalize == ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def check_identity_when_all_off(
    make_view: Callable[..., ViewTransform], off: Mapping[str, object]
) -> None:
    """With the knobs in ``off`` a view is ``(x - mean) / std``, or ``x`` without normalize."""
    arr = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    x = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    torch.testing.assert_close(
        make_view(input_size=16, **off)(Image.fromarray(arr)), (x - mean) / std
    )
    assert torch.equal(make_view(input_size=16, normalize=None, **off)(x), x)


def unnormalize(view: ViewTransform, out: torch.Tensor) -> torch.Tensor:
    """Undo ``view``'s normalisation: back to values in [0, 1]."""
    if view.normalize is None:
        return out
    mean, std = (torch.tensor(v).view(-1, 1, 1) for v in view.normalize)
    return out * std + mean


def _views(transform: MultiViewTransform, image: Any, seed: int) -> list[torch.Tensor]:
    views = transform(image, generator=torch.Generator().manual_seed(seed))
    assert all(isinstance(v, torch.Tensor) for v in views)
    return views


def check_transform_contract(transform: MultiViewTransform, n_views: int, size: int) -> None:
    """The shared contract of a multi-view transform whose views are ``(3, size, size)``."""
    arr = np.random.default_rng(3).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    pil = Image.fromarray(arr)
    u8 = torch.from_numpy(arr).permute(2, 0, 1).contiguous()
    x = u8.float() / 255
    u8_before, x_before = u8.clone(), x.clone()

    views = _views(transform, pil, 0)
    assert len(views) == n_views
    assert all(v.shape == (3, size, size) and v.dtype == torch.float32 for v in views)
    for image in (u8, x):
        assert [v.shape for v in _views(transform, image, 0)] == [v.shape for v in views]
    np.testing.assert_array_equal(np.asarray(pil), arr)
    assert torch.equal(u8, u8_before)
    assert torch.equal(x, x_before)

    # Same seed: same views (generator or global seed); another seed: other views.
    assert all(torch.equal(a, b) for a, b in zip(views, _views(transform, pil, 0), strict=True))
    torch.manual_seed(5)
    a = transform(x)
    torch.manual_seed(5)
    assert all(torch.equal(v, w) for v, w in zip(a, transform(x), strict=True))
    assert not any(torch.equal(v, w) for v, w in zip(views, _views(transform, pil, 1), strict=True))
    if n_views > 1:
        assert not torch.equal(views[0], views[1])

    # A PIL image and its uint8 tensor: the same parameters, so the same views up to rounding
    # (PIL rounds to uint8 after every step, which strong jitter amplifies to ~12/255; a few
    # pixels may land across the solarize threshold).
    for seed in range(2):
        pairs = zip(_views(transform, pil, seed), _views(transform, u8, seed), strict=True)
        for view, (v, w) in zip(views_of(transform), pairs, strict=True):
            off = (unnormalize(view, v) - unnormalize(view, w)).abs()
            assert float((off > 16 / 255).float().mean()) < 0.01
            assert float(off.mean()) < 0.01

    # The batched form applies per-sample parameters to a whole batch.
    batch = torch.stack([x, x.flip(-1)])
    for view in views_of(transform):
        generator = torch.Generator().manual_seed(7)
        params = [view.get_params((24, 32), generator) for _ in range(2)]
        out = view.apply_batch(batch, params)
        expected = torch.stack([view.apply(img, p) for img, p in zip(batch, params, strict=True)])
        assert torch.equal(out, expected)


def views_of(transform: MultiViewTransform) -> Sequence[ViewTransform]:
    """The view transforms of ``transform``, checked to be selfsup ``ViewTransform``s."""
    views = list(transform.transforms)
    assert all(isinstance(v, ViewTransform) for v in views)
    return [v for v in views if isinstance(v, ViewTransform)]
