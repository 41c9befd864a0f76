"""Views of a whole batch at once: a method's view transforms run on ``(B, C, H, W)`` tensors.

:class:`BatchedViewTransform` wraps a :class:`~selfsup.transforms.view_transform.ViewTransform`
(the description of one view: its steps and normalisation) and runs the same steps with the
batched functions of :mod:`selfsup.transforms.batched`: parameters for the whole batch come from
each step's ``sample_batch(n, size, generator)`` (vectorised draws with the per-image
distributions), and are applied on the images' device (CPU or GPU).
:class:`BatchedMultiViewTransform` does the same for a method transform
(:class:`~selfsup.transforms.simclr_transform.SimCLRTransform`, BYOL, SimSiam, VICReg, DINO
multi-crop, ...): one batched view per view transform, each with fresh parameters.

Both paths give the same views for the same parameters (see :mod:`selfsup.transforms.batched`
for the tolerances); :meth:`BatchedViewTransform.params_from_views` stacks per-image draws so
the two can be compared. One difference is deliberate: a uint8 batch runs a leading resized
crop in uint8 (PyTorch's fixed-point kernel, PIL's arithmetic, several times faster than
float) and is then converted to float in [0, 1], where every later step runs in float32,
whereas the per-image path keeps uint8 (rounding after every step) until its final
conversion. The batched path is therefore the per-image float path after the crop, and
differs from the per-image uint8 and PIL paths by that rounding only.

Training batches resized once to a common source size (``(B, 3, S, S)``, the fast input path)
pass each image's original ``(height, width)`` as ``original_sizes``: crops are then drawn in
original pixels, exactly as the per-image transform draws them on the original image, and
mapped onto the source (edges rounded to its pixels), so the crop distribution is the
per-image one (see :func:`map_boxes`).

Example::

    batched = BatchedMultiViewTransform(SimCLRTransform(input_size=32))
    views = batched(images_u8.cuda())  # [view0, view1], each (B, 3, 32, 32) float32 on the GPU
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from selfsup.errors import ConfigError, DataError
from selfsup.transforms import batched as B
from selfsup.transforms.base import ImageSize, RandomTransform
from selfsup.transforms.color import (
    ColorJitterBatch,
    ColorJitterParams,
    RandomColorJitter,
    RandomGrayscale,
)
from selfsup.transforms.flip import RandomHorizontalFlip, RandomVerticalFlip
from selfsup.transforms.gaussian_blur import GaussianBlur, GaussianBlurBatch, GaussianBlurParams
from selfsup.transforms.multi_view_transform import MultiViewTransform
from selfsup.transforms.random_resized_crop import CropParams, RandomResizedCrop, crop_boxes
from selfsup.transforms.rotation import RandomRotate, RandomRotateDegrees, RotationBatch
from selfsup.transforms.solarize import RandomSolarization
from selfsup.transforms.view_transform import ViewParams, ViewTransform

#: Parameters of one batched view: one entry per step, each for the whole batch (a bool mask
#: ``(n,)``, crop boxes ``(n, 4)`` or a ``*Batch`` dataclass).
BatchViewParams = tuple[Any, ...]

#: Steps with a batched form. Matched by exact type: a subclass may apply differently.
SUPPORTED_STEPS: tuple[type[RandomTransform[Any]], ...] = (
    RandomResizedCrop,
    RandomHorizontalFlip,
    RandomVerticalFlip,
    RandomRotate,
    RandomRotateDegrees,
    RandomColorJitter,
    RandomGrayscale,
    GaussianBlur,
    RandomSolarization,
)


def map_boxes(boxes: torch.Tensor, original_sizes: torch.Tensor, size: ImageSize) -> torch.Tensor:
    """Crop boxes drawn in each image's original pixels -> the same regions of its resized copy.

    Args:
        boxes: int64 ``(n, 4)`` ``top, left, height, width`` inside ``original_sizes``.
        original_sizes: int ``(n, 2)`` ``(height, width)`` of each original image.
        size: ``(height, width)`` the images were resized to (aspect ratio not kept).

    Returns int64 ``(n, 4)`` boxes in the resized pixels: each edge is scaled and rounded to
    the nearest pixel boundary, and every box keeps at least one pixel. With a source at
    least as large as the original this moves an edge by less than half an original pixel.
    """
    scale = torch.tensor(size, dtype=torch.float64) / original_sizes.to("cpu", torch.float64)
    b = boxes.to("cpu", torch.float64)
    top = torch.round(b[:, 0] * scale[:, 0])
    left = torch.round(b[:, 1] * scale[:, 1])
    bottom = torch.round((b[:, 0] + b[:, 2]) * scale[:, 0])
    right = torch.round((b[:, 1] + b[:, 3]) * scale[:, 1])
    top = top.clamp(0, size[0] - 1)
    left = left.clamp(0, size[1] - 1)
    height = torch.maximum(bottom.clamp(max=size[0]) - top, torch.ones_like(top))
    width = torch.maximum(right.clamp(max=size[1]) - left, torch.ones_like(left))
    return torch.stack([top, left, height, width], dim=1).to(torch.int64)


def _stack(step: RandomTransform[Any], params: Sequence[Any]) -> Any:
    """Per-image params of ``step`` for ``n`` images -> its batch params."""
    if isinstance(step, RandomResizedCrop):
        crops: list[CropParams] = list(params)
        return crop_boxes(crops)
    if isinstance(step, RandomRotateDegrees):
        return RotationBatch.from_params(list(params))
    if isinstance(step, RandomColorJitter):
        jitters: list[ColorJitterParams] = list(params)
        return ColorJitterBatch.from_params(jitters)
    if isinstance(step, GaussianBlur):
        blurs: list[GaussianBlurParams] = list(params)
        return GaussianBlurBatch.from_params(blurs)
    return torch.tensor([bool(p) for p in params], dtype=torch.bool)


def _unbind(step: RandomTransform[Any], params: Any) -> list[Any]:
    """Batch params of ``step`` -> per-image params, as ``step.get_params`` returns them."""
    if isinstance(step, RandomResizedCrop):
        return [CropParams(*row) for row in params.tolist()]
    if isinstance(params, RotationBatch | ColorJitterBatch | GaussianBlurBatch):
        return list(params.unbind())
    return [bool(v) for v in params.tolist()]


def _skips_all(params: Any) -> bool:
    """Whether a step's batch params apply it to no image (a coin flip that is never set,
    e.g. SimCLR's ``vf_prob=0``): such a step is skipped rather than run as a copy."""
    if isinstance(params, RotationBatch | ColorJitterBatch | GaussianBlurBatch):
        params = params.applied
    return params.dtype == torch.bool and not bool(params.any())


def _apply(step: RandomTransform[Any], images: torch.Tensor, params: Any) -> torch.Tensor:
    """Apply one step's batch params to a float batch ``(B, C, H, W)``; a step that applies
    to no image returns ``images`` itself (callers never modify it)."""
    if _skips_all(params):
        return images
    if isinstance(step, RandomResizedCrop):
        return B.resized_crop(images, params, step.size, step.interpolation)
    if isinstance(step, RandomHorizontalFlip):
        return B.hflip(images, params)
    if isinstance(step, RandomVerticalFlip):
        return B.vflip(images, params)
    if isinstance(step, RandomRotate):
        return B.rotate90(images, params, step.angle // 90)
    if isinstance(step, RandomRotateDegrees):
        return B.rotate(images, params)
    if isinstance(step, RandomColorJitter):
        return B.color_jitter(images, params)
    if isinstance(step, RandomGrayscale):
        return B.grayscale(images, params)
    if isinstance(step, GaussianBlur):
        return B.gaussian_blur(images, params)
    if isinstance(step, RandomSolarization):
        return B.solarize(images, params, step.threshold)
    raise ConfigError(f"internal error: no batched form for {type(step).__name__}")


def _check_images(images: Any) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise DataError(
            "expected images shaped (B, C, H, W), got "
            f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images)}"
        )


class BatchedViewTransform:
    """Run a :class:`ViewTransform`'s steps on a whole batch ``(B, C, H, W)`` on its device.

    Args:
        view: The per-image view (e.g. ``SimCLRViewTransform(input_size=32)``); every step must
            be one of :data:`SUPPORTED_STEPS` (by exact type).

        channels_last: Lay the output out channels-last (NHWC strides, same shape), the
            layout convolutions run fastest in: given such a batch, PyTorch runs a model's
            convolutions channels-last even where its weights are not, which made a
            ResNet-18 training step at 28 px 1.28x faster on a 2-core CPU (medians of one
            probe, benchmarks/README.md). ``False`` returns contiguous NCHW.

    Output of :meth:`apply` / ``__call__``: float ``(B, C, h, w)`` on the input's device,
    normalised as the view is.
    """

    def __init__(self, view: ViewTransform, channels_last: bool = True) -> None:
        if not isinstance(view, ViewTransform):
            raise ConfigError(
                f"view={view!r}: expected a selfsup ViewTransform (a list of random steps), "
                f"got {type(view).__name__}"
            )
        for index, step in enumerate(view.steps):
            if type(step) not in SUPPORTED_STEPS:
                names = ", ".join(t.__name__ for t in SUPPORTED_STEPS)
                raise ConfigError(
                    f"{type(view).__name__}.steps[{index}] is a {type(step).__name__}, which "
                    f"has no batched form; batched views support {names}"
                )
        self.view = view
        self.channels_last = channels_last

    def _output_size(self, step: RandomTransform[Any], size: ImageSize, params: Any) -> ImageSize:
        if isinstance(step, RandomResizedCrop):
            return step.size
        if isinstance(step, RandomRotate) and (step.angle // 90) % 2 == 1 and size[0] != size[1]:
            mask: torch.Tensor = params
            if bool(mask.all()):
                return (size[1], size[0])
            if bool(mask.any()):
                raise DataError(
                    f"{type(self.view).__name__}: a 90-degree rotation of {size[0]}x{size[1]} "
                    "images changes their shape, so a batch cannot mix rotated and unrotated "
                    "ones; rotate after a square crop, use square images or rr_prob=0"
                )
        return size

    def sample_batch(
        self,
        n: int,
        size: ImageSize,
        generator: torch.Generator | None = None,
        original_sizes: torch.Tensor | None = None,
    ) -> BatchViewParams:
        """Draw every step's parameters for ``n`` inputs of ``size = (height, width)``.

        ``original_sizes``: int ``(n, 2)``, the ``(height, width)`` each input had before it
        was resized to ``size``. A leading :class:`RandomResizedCrop` then draws its boxes in
        those original pixels (the per-image distribution) and maps them onto ``size``
        (:func:`map_boxes`); other steps do not depend on the input size before them.
        """
        if n < 1:
            raise ConfigError(f"n={n!r}: expected a batch size >= 1")
        if original_sizes is not None and not self.crops_first:
            first = type(self.view.steps[0]).__name__ if self.view.steps else "no step"
            raise ConfigError(
                f"original_sizes needs a view that starts with a RandomResizedCrop; "
                f"{type(self.view).__name__} starts with {first}"
            )
        params: list[Any] = []
        for index, step in enumerate(self.view.steps):
            if index == 0 and original_sizes is not None:
                crop: RandomResizedCrop = step  # type: ignore[assignment]
                sizes = original_sizes.to("cpu", torch.int64)
                boxes = crop.sample_batch(n, sizes, generator)  # type: ignore[arg-type]
                step_params: Any = map_boxes(boxes, sizes, size)
            else:
                step_params = step.sample_batch(n, size, generator)  # type: ignore[attr-defined]
            size = self._output_size(step, size, step_params)
            params.append(step_params)
        return tuple(params)

    @property
    def crops_first(self) -> bool:
        """Whether the view's first step is a :class:`RandomResizedCrop`."""
        return bool(self.view.steps) and type(self.view.steps[0]) is RandomResizedCrop

    def params_from_views(self, params: Sequence[ViewParams]) -> BatchViewParams:
        """Stack per-image ``view.get_params`` draws into batch params (to compare the paths)."""
        if len(params) == 0:
            raise ConfigError("params=[]: expected the per-image params of at least one image")
        for index, one in enumerate(params):
            if len(one) != len(self.view.steps):
                raise ConfigError(
                    f"params[{index}] has {len(one)} entries but the view has "
                    f"{len(self.view.steps)} steps; pass get_params results of the same view"
                )
        return tuple(
            _stack(step, [one[i] for one in params]) for i, step in enumerate(self.view.steps)
        )

    def unbind(self, params: BatchViewParams) -> list[ViewParams]:
        """Batch params -> one ``ViewParams`` per image, usable with ``view.apply``."""
        columns = [_unbind(step, p) for step, p in zip(self.view.steps, params, strict=True)]
        return [tuple(row) for row in zip(*columns, strict=True)]

    def apply(self, images: torch.Tensor, params: BatchViewParams) -> torch.Tensor:
        """Apply batch ``params`` to ``images`` ``(B, C, H, W)`` (uint8 or float in [0, 1]).

        Returns float ``(B, C, h, w)`` on the images' device; ``images`` is not modified. A
        leading crop of a uint8 batch resamples in uint8; every other step runs in float32.
        On a CPU with one torch thread the batch goes through all steps a few images at a time
        (:func:`~selfsup.transforms.batched.rows_per_chunk`), so that the steps' temporaries
        stay in the cache instead of being fresh batch-sized allocations.
        """
        if len(params) != len(self.view.steps):
            raise ConfigError(
                f"params has {len(params)} entries but the view has {len(self.view.steps)} "
                "steps; pass the result of sample_batch of the same BatchedViewTransform"
            )
        n, rows = int(images.shape[0]), B.rows_per_chunk(images)
        if rows >= n:
            out = self._apply_chunk(images, params)
        else:
            chunks = [
                self._apply_chunk(
                    images[a : a + rows], [B.take_rows(p, slice(a, a + rows)) for p in params]
                )
                for a in range(0, n, rows)
            ]
            out = torch.cat(chunks)
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        return out.contiguous(memory_format=layout)

    def _apply_chunk(self, images: torch.Tensor, params: Sequence[Any]) -> torch.Tensor:
        """:meth:`apply` on one chunk of images with its rows of ``params``."""
        out = images
        for index, step in enumerate(self.view.steps):
            if out.dtype == torch.uint8 and not (index == 0 and self.crops_first):
                out = B.to_float(out)
            out = _apply(step, out, params[index])
        if out.dtype == torch.uint8 or out is images:
            out = B.to_float(out)
        if self.view.normalize is None:
            return out
        mean, std = self.view.normalize
        if out.shape[1] != len(mean):
            raise DataError(
                f"normalize has {len(mean)} channel values but the images have {out.shape[1]} "
                "channels; convert images to RGB or pass matching mean/std (or normalize=None)"
            )
        return B.normalize(out, mean, std)

    def __call__(
        self,
        images: torch.Tensor,
        generator: torch.Generator | None = None,
        original_sizes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Draw parameters for the batch (on the CPU) and return its views ``(B, C, h, w)``.

        ``original_sizes``: int ``(B, 2)`` sizes of the images before they were resized to
        the batch's size (see :meth:`sample_batch`).
        """
        _check_images(images)
        size = (int(images.shape[-2]), int(images.shape[-1]))
        params = self.sample_batch(int(images.shape[0]), size, generator, original_sizes)
        return self.apply(images, params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.view!r})"


class BatchedMultiViewTransform:
    """A method transform run on whole batches: one batched view per view transform.

    Args:
        transform: A :class:`MultiViewTransform` whose views are all :class:`ViewTransform`
            (SimCLR, MoCo, BYOL, SimSiam, VICReg, DINO, SwaV, ...), or a list of
            :class:`ViewTransform`. Transforms that return more than the views (VICRegL's and
            DetCon's location grids) are refused rather than silently losing those outputs.

        channels_last: Each view laid out channels-last (:class:`BatchedViewTransform`).

    ``batched(images)`` returns ``[view_0, view_1, ...]``, each float ``(B, C, h_i, w_i)`` on
    the images' device, where the per-image transform returns, per image, the list of its views.
    """

    def __init__(
        self, transform: MultiViewTransform | Sequence[ViewTransform], channels_last: bool = True
    ) -> None:
        if isinstance(transform, MultiViewTransform):
            if type(transform).__call__ is not MultiViewTransform.__call__:
                raise ConfigError(
                    f"{type(transform).__name__} returns more than its views (its own "
                    "__call__), which batched views do not reproduce; use the per-image "
                    "transform for it"
                )
            views: Sequence[Any] = transform.transforms
        else:
            views = transform
        if isinstance(views, str | bytes) or not isinstance(views, Sequence) or not views:
            raise ConfigError(
                f"transform={transform!r}: expected a MultiViewTransform or a non-empty list "
                "of ViewTransform"
            )
        batched: list[BatchedViewTransform] = []
        for index, view in enumerate(views):
            if not isinstance(view, ViewTransform):
                raise ConfigError(
                    f"transforms[{index}] is a {type(view).__name__}; batched views need "
                    "selfsup ViewTransform views (steps with get_params/apply)"
                )
            batched.append(BatchedViewTransform(view, channels_last))
        self.views = batched

    def sample_batch(
        self,
        n: int,
        size: ImageSize,
        generator: torch.Generator | None = None,
        original_sizes: torch.Tensor | None = None,
    ) -> list[BatchViewParams]:
        """Draw fresh parameters of every view for ``n`` inputs of ``size`` (and of
        ``original_sizes`` before resizing, see :meth:`BatchedViewTransform.sample_batch`)."""
        return [view.sample_batch(n, size, generator, original_sizes) for view in self.views]

    def apply(self, images: torch.Tensor, params: Sequence[BatchViewParams]) -> list[torch.Tensor]:
        """Apply each view's batch params; one float tensor ``(B, C, h, w)`` per view."""
        if len(params) != len(self.views):
            raise ConfigError(
                f"params has {len(params)} entries for {len(self.views)} views; pass the "
                "result of sample_batch of the same BatchedMultiViewTransform"
            )
        return [view.apply(images, p) for view, p in zip(self.views, params, strict=True)]

    def __call__(
        self,
        images: torch.Tensor,
        generator: torch.Generator | None = None,
        original_sizes: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Draw parameters and return the list of views of the batch ``(B, C, H, W)``;
        ``original_sizes`` (int ``(B, 2)``): the images' sizes before they were resized."""
        return [view(images, generator, original_sizes) for view in self.views]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(views={self.views!r})"
