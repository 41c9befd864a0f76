"""CropFlipViewTransform: the shared crop + flip view of MAE, SimMIM, I-JEPA and AIM.

The behaviour the four method transforms share (view size, seeding, argument errors) is
checked here over all four; their own test files check their papers' steps."""

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

#: The method transforms built on CropFlipViewTransform. MAE's and SimMIM's return their one
#: view in a list (as lightly's); I-JEPA's and AIM's return the view itself.
METHOD_TRANSFORMS = [MAETransform, SimMIMTransform, IJEPATransform, AIMTransform]
IN_A_LIST = (MAETransform, SimMIMTransform)


def _view(
    transform: object, image: object, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The one view of ``image``, unwrapped from the list of MAE's and SimMIM's transforms."""
    out = transform(image, generator=generator)  # type: ignore[operator]
    if isinstance(transform, IN_A_LIST):
        assert isinstance(out, list)
        assert len(out) == 1
        out = out[0]
    assert isinstance(out, torch.Tensor)
    return out


@pytest.mark.parametrize("cls", METHOD_TRANSFORMS)
def test_one_view_of_the_given_size(
    cls: type, pil_image: Image.Image, float_image: torch.Tensor
) -> None:
    transform = cls(input_size=16)
    for source in (pil_image, float_image):
        view = _view(transform, source)
        assert view.shape == (3, 16, 16)
        assert view.dtype == torch.float32


@pytest.mark.parametrize("cls", METHOD_TRANSFORMS)
def test_same_seed_same_view(cls: type, pil_image: Image.Image) -> None:
    transform = cls(input_size=16)
    torch.manual_seed(3)
    first = _view(transform, pil_image)
    torch.manual_seed(3)
    assert torch.equal(first, _view(transform, pil_image))
    seeded = [_view(transform, pil_image, torch.Generator().manual_seed(5)) for _ in range(2)]
    assert torch.equal(seeded[0], seeded[1])


@pytest.mark.parametrize("cls", METHOD_TRANSFORMS)
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_scale": 0.0}, "min_scale"),
        ({"hf_prob": 1.5}, "hf_prob"),
        ({"input_size": 0}, "input_size"),
    ],
)
def test_method_transform_bad_arguments_are_clear_errors(
    cls: type, kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        cls(**kwargs)


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
