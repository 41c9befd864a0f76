"""IJEPATransform: one crop of scale (0.3, 1) with a flip, normalised; validation."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from selfsup.errors import ConfigError
from selfsup.transforms import IJEPATransform, RandomHorizontalFlip, RandomResizedCrop


def test_one_view_of_the_given_size(pil_image: Image.Image, float_image: torch.Tensor) -> None:
    transform = IJEPATransform(input_size=16)
    for source in (pil_image, float_image):
        view = transform(source)
        assert view.shape == (3, 16, 16)
        assert view.dtype == torch.float32


def test_steps_are_the_papers() -> None:
    crop, flip = IJEPATransform().steps
    assert isinstance(crop, RandomResizedCrop)
    assert (crop.size, crop.scale) == ((224, 224), (0.3, 1.0))
    assert isinstance(flip, RandomHorizontalFlip)
    assert flip.prob == 0.5


def test_same_seed_same_view(pil_image: Image.Image) -> None:
    transform = IJEPATransform(input_size=16)
    torch.manual_seed(3)
    first = transform(pil_image)
    torch.manual_seed(3)
    assert torch.equal(first, transform(pil_image))


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
        IJEPATransform(**kwargs)  # type: ignore[arg-type]
