"""CropFlipViewTransform: the shared crop + flip view of MAE, SimMIM, I-JEPA and AIM."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from selfsup.errors import ConfigError
from selfsup.transforms import (
    AIMTransform,
    IJEPATransform,
    MAETransform,
    RandomHorizontalFlip,
    RandomResizedCrop,
    SimMIMTransform,
)
from selfsup.transforms.crop_flip_transform import CropFlipViewTransform


def test_steps_take_the_arguments() -> None:
    crop, flip = CropFlipViewTransform(
        20, min_scale=0.5, hf_prob=0.25, interpolation="nearest"
    ).steps
    assert isinstance(crop, RandomResizedCrop)
    assert (crop.size, crop.scale, crop.interpolation) == ((20, 20), (0.5, 1.0), "nearest")
    assert isinstance(flip, RandomHorizontalFlip)
    assert flip.prob == 0.25


@pytest.mark.parametrize(
    ("view", "scale", "interpolation"),
    [
        (MAETransform().view, 0.2, "bicubic"),
        (SimMIMTransform().view, 0.67, "bicubic"),
        (IJEPATransform(), 0.3, "bilinear"),
        (AIMTransform(), 0.4, "bicubic"),
    ],
)
def test_each_method_sets_its_papers_crop(
    view: CropFlipViewTransform, scale: float, interpolation: str
) -> None:
    crop = view.steps[0]
    assert isinstance(crop, RandomResizedCrop)
    assert (crop.scale, crop.interpolation) == ((scale, 1.0), interpolation)


def test_interpolation_changes_the_pixels(pil_image: Image.Image) -> None:
    views = []
    for interpolation in ("bilinear", "bicubic"):
        torch.manual_seed(0)
        views.append(CropFlipViewTransform(16, interpolation=interpolation)(pil_image))
    assert views[0].shape == views[1].shape == (3, 16, 16)
    assert not torch.equal(views[0], views[1])


def test_bad_arguments_name_the_key() -> None:
    with pytest.raises(ConfigError, match="min_scale"):
        CropFlipViewTransform(min_scale=0.0)
    with pytest.raises(ConfigError, match="hf_prob"):
        CropFlipViewTransform(hf_prob=2.0)
    with pytest.raises(ConfigError, match="interpolation"):
        CropFlipViewTransform(interpolation="lanczos9")
