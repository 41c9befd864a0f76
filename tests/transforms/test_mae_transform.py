"""MAETransform: one bicubic crop of scale (0.2, 1.0) with a flip, normalised, in a list."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from selfsup.errors import ConfigError
from selfsup.transforms import MAETransform, RandomHorizontalFlip, RandomResizedCrop


def test_one_view_of_the_given_size(pil_image: Image.Image, float_image: torch.Tensor) -> None:
    transform = MAETransform(input_size=16)
    for source in (pil_image, float_image):
        views = transform(source)
        assert isinstance(views, list)
        assert len(views) == 1
        assert views[0].shape == (3, 16, 16)
        assert views[0].dtype == torch.float32


def test_steps_are_the_papers() -> None:
    crop, flip = MAETransform().view.steps
    assert isinstance(crop, RandomResizedCrop)
    assert (crop.size, crop.scale, crop.interpolation) == ((224, 224), (0.2, 1.0), "bicubic")
    assert crop.ratio == (3 / 4, 4 / 3)
    assert isinstance(flip, RandomHorizontalFlip)
    assert flip.prob == 0.5


def test_same_seed_same_view(pil_image: Image.Image) -> None:
    transform = MAETransform(input_size=16)
    torch.manual_seed(3)
    first = transform(pil_image)[0]
    torch.manual_seed(3)
    assert torch.equal(first, transform(pil_image)[0])
    seeded = [transform(pil_image, generator=torch.Generator().manual_seed(5)) for _ in range(2)]
    assert torch.equal(seeded[0][0], seeded[1][0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_scale": 0.0}, "min_scale"),
        ({"hf_prob": 1.5}, "hf_prob"),
        ({"input_size": 0}, "input_size"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MAETransform(**kwargs)  # type: ignore[arg-type]
