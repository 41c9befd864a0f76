"""A method's views made on the training device from uint8 source batches (the default path).

The data loader only decodes: every image arrives resized once to a square source
``(3, S, S)`` uint8 with its original ``(height, width)``, and collated batches
``(images (B, 3, S, S) uint8, original_sizes (B, 2) int64, labels (B,), filenames)`` move to
the training device as they are (a quarter of the bytes of float views, one copy instead of
one per view). There :class:`DeviceViews` makes the method's views with
:class:`~selfsup.transforms.batched_view.BatchedMultiViewTransform`: fresh per-sample
parameters for every view, crop boxes drawn in each image's ORIGINAL pixels (the per-image
transform's distribution) and mapped onto the source, then the batched steps on the device.

:func:`device_views_for` says whether a method transform can run this way; a transform with a
step that has no batched form (or that returns more than its views, as VICRegL's and
DetCon's location grids) is refused with the reason, and training augments per image in the
loader workers instead.

Why a source larger than the views (:data:`SOURCE_SCALE` times the largest view side): a
random resized crop of 8 % of the area is about 0.28 of the side; cut from a source of the
view's own size it would be upsampled ~3.5x and blurred, cut from twice the size ~1.8x, about
what a 224-px crop of an ImageNet-sized original (~400 px) gets per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import default_collate

from selfsup.errors import ConfigError, DataError
from selfsup.transforms.batched_view import SUPPORTED_STEPS, BatchedMultiViewTransform
from selfsup.transforms.multi_view_transform import MultiViewTransform
from selfsup.transforms.random_resized_crop import RandomResizedCrop
from selfsup.transforms.view_transform import ViewTransform

#: Side of the source images as a multiple of the largest view side (see the module docstring).
SOURCE_SCALE = 2

#: ``(images (B, 3, S, S) uint8, original_sizes (B, 2) int64, labels (B,), filenames)``.
SourceBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]


def _views_of(transform: Any) -> list[Any]:
    if isinstance(transform, MultiViewTransform):
        return list(transform.transforms)
    if isinstance(transform, Sequence) and not isinstance(transform, str | bytes):
        return list(transform)
    return [transform]


def unbatchable_reason(transform: Any) -> str | None:
    """Why ``transform`` (a method transform, or a list of view transforms) cannot make its
    views on the device; ``None`` when it can."""
    if isinstance(transform, MultiViewTransform) and (
        type(transform).__call__ is not MultiViewTransform.__call__
    ):
        return f"{type(transform).__name__} returns more than its views (its own __call__)"
    views = _views_of(transform)
    if not views:
        return "the transform has no views"
    for index, view in enumerate(views):
        if not isinstance(view, ViewTransform):
            return f"view {index} is a {type(view).__name__}, not a selfsup ViewTransform"
        for step in view.steps:
            if type(step) not in SUPPORTED_STEPS:
                return f"view {index} has the step {type(step).__name__} without a batched form"
        if not view.steps or type(view.steps[0]) is not RandomResizedCrop:
            first = type(view.steps[0]).__name__ if view.steps else "no step"
            return (
                f"view {index} starts with {first}, not a RandomResizedCrop (its size would "
                "depend on each image's own size)"
            )
    return None


class DeviceViews:
    """The views of a method transform, made from uint8 source batches on their device.

    Args:
        transform: A :class:`MultiViewTransform` of :class:`ViewTransform` views, or a list of
            them (SimCLR's collate function has one view transform used twice), whose views
            all start with a :class:`RandomResizedCrop` (:func:`unbatchable_reason` is None).
        source_size: Side S of the square source images; default :data:`SOURCE_SCALE` times
            the largest view side.

    ``device_views(images, original_sizes)`` returns the list of views, each float
    ``(B, C, h, w)`` on the images' device, normalised as the per-image views are.
    """

    def __init__(
        self,
        transform: MultiViewTransform | Sequence[ViewTransform],
        source_size: int | None = None,
    ) -> None:
        reason = unbatchable_reason(transform)
        if reason is not None:
            raise ConfigError(
                f"{type(transform).__name__} cannot make its views on the device: {reason}"
            )
        views: list[ViewTransform] = _views_of(transform)
        self.batched = BatchedMultiViewTransform(views)
        largest = max(max(view.steps[0].size) for view in views)  # type: ignore[attr-defined]
        if source_size is None:
            source_size = SOURCE_SCALE * largest
        if isinstance(source_size, bool) or not isinstance(source_size, int) or source_size < 1:
            raise ConfigError(f"source_size={source_size!r}: expected a positive int")
        self.source_size = source_size

    def __call__(
        self,
        images: torch.Tensor,
        original_sizes: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> list[torch.Tensor]:
        """Views of ``images`` (uint8 ``(B, 3, S, S)``) resized from ``original_sizes``
        (int ``(B, 2)`` heights and widths); parameters are drawn on the CPU from
        ``generator`` (torch's global generator when None), pixels processed on the images'
        device."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.dtype != torch.uint8:
            got = (
                f"{images.dtype} {tuple(images.shape)}"
                if isinstance(images, torch.Tensor)
                else type(images).__name__
            )
            raise DataError(f"expected source images (B, 3, S, S) uint8, got {got}")
        n = int(images.shape[0])
        if tuple(original_sizes.shape) != (n, 2) or original_sizes.is_floating_point():
            raise DataError(
                f"expected original sizes int ({n}, 2), got {original_sizes.dtype} "
                f"{tuple(original_sizes.shape)}"
            )
        return self.batched(images, generator, original_sizes.to("cpu"))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(source_size={self.source_size}, {self.batched!r})"


def device_views_for(transform: Any) -> tuple[DeviceViews | None, str | None]:
    """``(DeviceViews(transform), None)``, or ``(None, reason)`` when it cannot run batched."""
    reason = unbatchable_reason(transform)
    if reason is not None:
        return None, reason
    return DeviceViews(transform), None


def is_source_batch(batch: Any) -> bool:
    """Whether ``batch`` is a collated :data:`SourceBatch` (not already made views)."""
    return (
        isinstance(batch, Sequence)
        and len(batch) == 4
        and isinstance(batch[0], torch.Tensor)
        and batch[0].dtype == torch.uint8
        and batch[0].ndim == 4
        and isinstance(batch[1], torch.Tensor)
    )


class SourceCollate:
    """The training loader's ``collate_fn`` on the device path: stacks ``(image (3, S, S)
    uint8, original_size (2,), label, filename)`` samples into a :data:`SourceBatch`, and
    carries the :class:`DeviceViews` that turns such batches into views (the trainer reads it
    from here, so a loader built for the device path brings its augmentation along)."""

    def __init__(self, views: DeviceViews) -> None:
        self.views = views

    def __call__(self, samples: Sequence[Any]) -> SourceBatch:
        images, sizes, labels, names = default_collate(list(samples))
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
            raise DataError(
                "the device augmentation path expects samples (image (3, S, S) uint8, "
                "original_size, label, filename), as selfsup.data.uint8.Uint8Dataset gives"
            )
        return images, sizes, labels, [str(name) for name in names]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.views!r})"
