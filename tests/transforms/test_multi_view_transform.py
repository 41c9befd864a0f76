"""MultiViewTransform: one view per transform, in order, reproducible."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from selfsup.errors import ConfigError
from selfsup.transforms import SimCLRViewTransform
from selfsup.transforms.multi_view_transform import MultiViewTransform


def test_seed_example_global_and_local_views(pil_image: Image.Image) -> None:
    global_view = T.Compose(
        [
            T.RandomResizedCrop(size=16, scale=(0.08, 1.0)),
            T.RandomHorizontalFlip(p=0.5),
            T.RandomGrayscale(p=0.5),
            T.ToTensor(),
        ]
    )
    local_view = T.Compose(
        [
            T.RandomResizedCrop(size=8, scale=(0.05, 0.4)),
            T.RandomHorizontalFlip(p=0.5),
            T.RandomGrayscale(p=0.5),
            T.ToTensor(),
        ]
    )
    transform = MultiViewTransform([global_view, global_view, local_view, local_view])
    views = transform(pil_image)
    assert [tuple(v.shape) for v in views] == [(3, 16, 16)] * 2 + [(3, 8, 8)] * 2


def test_one_call_per_transform_in_order() -> None:
    calls: list[str] = []

    def make(name: str) -> Callable[[int], str]:
        def transform(image: int) -> str:
            calls.append(name)
            return f"{name}({image})"

        return transform

    transform = MultiViewTransform([make("a"), make("b"), make("a")])
    assert transform(1) == ["a(1)", "b(1)", "a(1)"]
    assert calls == ["a", "b", "a"]


def test_repeated_transform_draws_fresh_views(float_image: torch.Tensor) -> None:
    view = SimCLRViewTransform(input_size=16)
    v0, v1 = MultiViewTransform([view, view])(float_image)
    assert not torch.equal(v0, v1)


def test_generator_and_global_seed_reproduce_views(float_image: torch.Tensor) -> None:
    transform = MultiViewTransform([SimCLRViewTransform(input_size=16)] * 3)
    a = transform(float_image, generator=torch.Generator().manual_seed(0))
    b = transform(float_image, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    torch.manual_seed(1)
    c = transform(float_image)
    torch.manual_seed(1)
    d = transform(float_image)
    assert all(torch.equal(x, y) for x, y in zip(c, d, strict=True))


def test_generator_needs_selfsup_transforms(float_image: torch.Tensor) -> None:
    transform = MultiViewTransform([SimCLRViewTransform(input_size=8), T.ToTensor()])
    with pytest.raises(ConfigError, match="transforms\\[1\\]"):
        transform(float_image, generator=torch.Generator())


@pytest.mark.parametrize(
    ("transforms", "match"),
    [([], "at least one"), ([lambda x: x, 3], "transforms\\[1\\]"), ("abc", "list")],
)
def test_bad_transforms_are_reported(transforms: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        MultiViewTransform(transforms)  # type: ignore[arg-type]
