"""Turn one image into several augmented views, one transform per view."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from selfsup.errors import ConfigError
from selfsup.transforms.base import RandomTransform
from selfsup.transforms.view_transform import ViewTransform


class MultiViewTransform:
    """Apply every transform in ``transforms`` to the same image; one view per transform.

    ``MultiViewTransform([global_view, global_view, local_view])(image)`` returns
    ``[global_view(image), global_view(image), local_view(image)]``; the same transform listed
    twice draws fresh random parameters each time. Any callable works (torchvision
    ``Compose`` included). Use it as a dataset's ``transform`` and
    :class:`selfsup.data.collate.MultiViewCollate` as the data loader's ``collate_fn``.

    Args:
        transforms: One callable per view, applied in order.
    """

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        if isinstance(transforms, str | bytes) or not isinstance(transforms, Sequence):
            raise ConfigError(
                f"transforms={transforms!r}: expected a list with one callable per view"
            )
        if len(transforms) == 0:
            raise ConfigError("transforms=[]: expected at least one transform (one per view)")
        for index, transform in enumerate(transforms):
            if not callable(transform):
                raise ConfigError(
                    f"transforms[{index}]={transform!r}: expected a callable image -> view"
                )
        self.transforms: list[Callable[[Any], Any]] = list(transforms)

    def __call__(self, image: Any, generator: torch.Generator | None = None) -> list[Any]:
        """Return the list of views of ``image`` (PIL image or tensor), one per transform.

        With ``generator`` the views are drawn from it, so a seeded generator reproduces them;
        this needs every transform to be a selfsup ``ViewTransform`` or ``RandomTransform``.
        Without it, torch's global generator is used (``torch.manual_seed`` reproduces them).
        """
        if generator is None:
            return [transform(image) for transform in self.transforms]
        views: list[Any] = []
        for index, transform in enumerate(self.transforms):
            if not isinstance(transform, ViewTransform | RandomTransform):
                raise ConfigError(
                    f"transforms[{index}] ({type(transform).__name__}) cannot take a "
                    "generator; only selfsup ViewTransform/RandomTransform can. Seed torch's "
                    "global generator with torch.manual_seed instead"
                )
            views.append(transform(image, generator=generator))
        return views

    def __repr__(self) -> str:
        return f"{type(self).__name__}(transforms={self.transforms!r})"
