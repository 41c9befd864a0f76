"""DINOv2Transform: DINOv2's crop scales and view count on top of DINO's augmentations."""

from __future__ import annotations

import inspect

import torch
from PIL import Image

from selfsup.transforms import DINOTransform, DINOv2Transform, DINOViewTransform, RandomResizedCrop


def test_defaults_are_dinov2s() -> None:
    params = inspect.signature(DINOv2Transform).parameters
    assert params["global_crop_scale"].default == (0.32, 1.0)
    assert params["local_crop_scale"].default == (0.05, 0.32)
    assert params["n_local_views"].default == 8
    transform = DINOv2Transform()
    assert isinstance(transform, DINOTransform)
    assert transform.n_local_views == 8
    crops = [view.steps[0] for view in transform.transforms]
    assert all(isinstance(view, DINOViewTransform) for view in transform.transforms)
    assert all(isinstance(c, RandomResizedCrop) for c in crops)
    assert [c.scale for c in crops[:2]] == [(0.32, 1.0)] * 2  # type: ignore[attr-defined]
    assert all(c.scale == (0.05, 0.32) for c in crops[2:])  # type: ignore[attr-defined]


def test_view_count_sizes_and_passed_through_arguments(pil_image: Image.Image) -> None:
    transform = DINOv2Transform(
        global_crop_size=16, local_crop_size=8, n_local_views=3, solarization_prob=0.7
    )
    views = transform(pil_image)
    assert [tuple(v.shape) for v in views] == [(3, 16, 16)] * 2 + [(3, 8, 8)] * 3
    assert all(v.dtype == torch.float32 for v in views)
    # DINO's solarization only on the second global view, with the value given.
    solarize = [view.steps[7].prob for view in transform.transforms]  # type: ignore[attr-defined]
    assert solarize[:3] == [0.0, 0.7, 0.0]
