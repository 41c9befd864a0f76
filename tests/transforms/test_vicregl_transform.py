"""VICRegLTransform: lightly's views plus a grid that tracks each view's crop and flips."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from _transform_contract import check_bad_argument, check_step_probabilities, step_of
from selfsup.transforms import (
    IMAGENET_NORMALIZE,
    CropParams,
    GaussianBlur,
    RandomColorJitter,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomSolarization,
    VICRegLTransform,
    VICRegLViewTransform,
)
from selfsup.transforms.vicregl_transform import crop_grid

LIGHTLY_DEFAULTS: dict[str, object] = {
    "global_crop_size": 224,
    "local_crop_size": 96,
    "n_global_views": 2,
    "n_local_views": 6,
    "global_crop_scale": (0.2, 1.0),
    "local_crop_scale": (0.05, 0.2),
    "global_grid_size": 7,
    "local_grid_size": 3,
    "global_gaussian_blur_prob": 0.5,
    "local_gaussian_blur_prob": 0.1,
    "global_gaussian_blur_kernel_size": None,
    "local_gaussian_blur_kernel_size": None,
    "global_gaussian_blur_sigmas": (0.1, 2),
    "local_gaussian_blur_sigmas": (0.1, 2),
    "global_solarize_prob": 0.0,
    "local_solarize_prob": 0.2,
    "hf_prob": 0.5,
    "vf_prob": 0.0,
    "cj_prob": 1.0,
    "cj_strength": 0.5,
    "cj_bright": 0.8,
    "cj_contrast": 0.8,
    "cj_sat": 0.4,
    "cj_hue": 0.2,
    "random_gray_scale": 0.2,
    "normalize": IMAGENET_NORMALIZE,
}

#: Every colour augmentation off and no normalisation: a view is the resized crop itself.
PLAIN: dict[str, Any] = {
    "cj_prob": 0.0,
    "random_gray_scale": 0.0,
    "gaussian_blur_prob": 0.0,
    "solarize_prob": 0.0,
    "normalize": None,
}


def test_defaults_match_lightly() -> None:
    params = inspect.signature(VICRegLTransform).parameters
    assert {k: params[k].default for k in params} == LIGHTLY_DEFAULTS


def test_views_then_grids() -> None:
    transform = VICRegLTransform(global_crop_size=16, local_crop_size=8, n_local_views=2)
    out = transform(torch.rand(3, 40, 30))
    assert [tuple(t.shape) for t in out] == [(3, 16, 16)] * 2 + [(3, 8, 8)] * 2 + [
        (7, 7, 2)
    ] * 2 + [(3, 3, 2)] * 2
    assert all(0 <= float(g.min()) <= float(g.max()) <= 1 for g in out[4:])


def test_global_and_local_views_follow_lightly() -> None:
    transform = VICRegLTransform(global_crop_size=16, local_crop_size=8, n_local_views=1)
    large, small = transform.transforms[0], transform.transforms[2]
    assert isinstance(large, VICRegLViewTransform)
    assert isinstance(small, VICRegLViewTransform)
    for view, blur, solarize, scale in (
        (large, 0.5, 0.0, (0.2, 1.0)),
        (small, 0.1, 0.2, (0.05, 0.2)),
    ):
        check_step_probabilities(
            view,
            {
                RandomHorizontalFlip: 0.5,
                RandomColorJitter: 1.0,
                RandomGrayscale: 0.2,
                GaussianBlur: blur,
                RandomSolarization: solarize,
            },
            n=500,
        )
        assert step_of(view, RandomResizedCrop).scale == scale


def test_crop_grid_is_the_cell_centres_and_follows_flips() -> None:
    crop = CropParams(top=10, left=20, height=40, width=80)
    grid = crop_grid(crop, (100, 200), 2, hflip=False, vflip=False)
    expected = torch.tensor([[[0.2, 0.2], [0.2, 0.4]], [[0.4, 0.2], [0.4, 0.4]]])
    torch.testing.assert_close(grid, expected)
    torch.testing.assert_close(crop_grid(crop, (100, 200), 2, True, False), expected.flip(1))
    torch.testing.assert_close(crop_grid(crop, (100, 200), 2, False, True), expected.flip(0))


@pytest.mark.parametrize("hf_prob", [0.0, 1.0])
def test_the_view_at_each_cell_shows_the_image_at_its_grid_position(hf_prob: float) -> None:
    # An image whose channels hold the pixel's own (y, x) position: pooled to the grid, the
    # view must show the grid's coordinates, whatever the crop and flip.
    h, w = 60, 80
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    image = torch.stack([ys[:, None].expand(h, w), xs[None, :].expand(h, w), torch.zeros(h, w)])
    view = VICRegLViewTransform(crop_size=32, grid_size=4, hf_prob=hf_prob, **PLAIN)
    for seed in range(5):
        out, grid = view.view_and_grid(image, torch.Generator().manual_seed(seed))
        pooled = F.adaptive_avg_pool2d(out[:2][None], 4)[0].permute(1, 2, 0)
        torch.testing.assert_close(pooled, grid, atol=0.02, rtol=0)


def test_same_seed_same_views_and_grids() -> None:
    transform = VICRegLTransform(global_crop_size=8, n_local_views=1, local_crop_size=4)
    image = torch.rand(3, 20, 20)
    a = transform(image, generator=torch.Generator().manual_seed(0))
    b = transform(image, generator=torch.Generator().manual_seed(0))
    c = transform(image, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_global_views": 1}, "n_global_views=1: expected an integer >= 2"),
        ({"n_local_views": -1}, "n_local_views=-1: expected an integer >= 0"),
        ({"global_crop_scale": 0.5}, "global_crop_scale=0.5: expected a (min, max) pair"),
        ({"local_crop_scale": (0.3, 0.2)}, "crop_min_scale=0.3, crop_max_scale=0.2"),
        ({"global_grid_size": 0}, "grid_size=0: expected an integer >= 1"),
        ({"cj_prob": 2}, "cj_prob=2: expected a probability in [0, 1]"),
        ({"local_solarize_prob": -1}, "solarize_prob=-1: expected a probability in [0, 1]"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, Any], message: str) -> None:
    check_bad_argument(VICRegLTransform, kwargs, message)
