"""Collate functions: apply augmentations while batching samples (lightly's pre-1.4 API).

A ``collate_fn`` receives the list of ``(image, label, filename)`` samples a dataset such as
:class:`selfsup.data.LightlyDataset` returns and builds the batch of augmented views:

* :class:`BaseCollateFunction` and its presets (:class:`ImageCollateFunction`,
  :class:`SimCLRCollateFunction`, :class:`MoCoCollateFunction`) give two views,
  ``((x0, x1), labels, filenames)`` with ``x0, x1`` shaped ``(B, C, H, W)``.
* :class:`MultiViewCollateFunction` and its presets (:class:`MultiCropCollateFunction`,
  :class:`DINOCollateFunction`) give any number of views, ``(views, labels, filenames)``.
* :class:`MultiViewCollate` is the modern route: the dataset's transform (a
  :class:`selfsup.transforms.MultiViewTransform`) makes the views and this only stacks them.

The augmentation pipelines are those of :mod:`selfsup.transforms`; nothing is duplicated here.
Every sample is used: a malformed sample or views that cannot be stacked raise
:class:`selfsup.errors.DataError` naming the file, never a silently shorter batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral
from typing import Any

import torch
from torch import nn

from selfsup.errors import ConfigError, DataError
from selfsup.transforms._checks import (
    NormalizeArg,
    check_non_negative,
    check_positive_int,
    check_range,
    check_size,
)
from selfsup.transforms.dino_transform import DINOTransform
from selfsup.transforms.random_resized_crop import RandomResizedCrop
from selfsup.transforms.simclr_transform import SimCLRViewTransform
from selfsup.transforms.utils import IMAGENET_NORMALIZE

#: ``(views, labels, filenames)``: views ``(B, C, H, W)`` each, labels ``(B,)`` int64.
MultiViewBatch = tuple[list[torch.Tensor], torch.Tensor, list[str]]
#: ``((x0, x1), labels, filenames)`` of the two-view collate functions.
TwoViewBatch = tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor, list[str]]


def _unpack(batch: Sequence[Any], caller: str) -> tuple[list[Any], torch.Tensor, list[str]]:
    """Split ``[(image, label, filename), ...]`` into images, int64 labels ``(B,)``, names."""
    if len(batch) == 0:
        raise DataError(f"{caller}: received an empty batch; expected (image, label, filename)")
    images: list[Any] = []
    labels: list[int] = []
    fnames: list[str] = []
    for index, item in enumerate(batch):
        if isinstance(item, str | bytes) or not isinstance(item, Sequence) or len(item) != 3:
            raise DataError(
                f"{caller}: batch[{index}] is {type(item).__name__}; expected an "
                "(image, label, filename) tuple as LightlyDataset returns"
            )
        image, label, fname = item
        if isinstance(label, torch.Tensor) and label.numel() == 1 and not label.is_floating_point():
            label = int(label.item())
        if isinstance(label, bool) or not isinstance(label, Integral):
            raise DataError(
                f"{caller}: sample {fname!r} has label {label!r}; expected an integer class index"
            )
        images.append(image)
        labels.append(int(label))
        fnames.append(str(fname))
    return images, torch.tensor(labels, dtype=torch.long), fnames


def _stack(
    views: Sequence[Any], fnames: Sequence[str], caller: str, view_index: int
) -> torch.Tensor:
    """Stack one view of every sample into ``(B, C, H, W)``, naming the file that does not fit."""
    first = views[0]
    for view, fname in zip(views, fnames, strict=True):
        if not isinstance(view, torch.Tensor):
            raise DataError(
                f"{caller}: view {view_index} of {fname!r} is {type(view).__name__}; the "
                "transform must return a tensor (end it with ToTensor)"
            )
        if view.shape != first.shape:
            raise DataError(
                f"{caller}: view {view_index} of {fname!r} has shape {tuple(view.shape)} but "
                f"{fnames[0]!r} has {tuple(first.shape)}; views must have one size per batch "
                "(crop or resize them to a fixed size)"
            )
    return torch.stack(list(views))


class BaseCollateFunction(nn.Module):
    """Make two randomly augmented views of every image in the batch.

    Args:
        transform: Callable ``image -> tensor (C, H, W)`` applied twice, independently, to
            every image (e.g. :class:`selfsup.transforms.SimCLRViewTransform`).

    ``collate_fn([(img, 0, "a.png"), ...])`` returns ``((x0, x1), labels, fnames)``: ``x0`` and
    ``x1`` are ``(B, C, H, W)`` (the first and second view of every image), ``labels`` an int64
    tensor ``(B,)``, ``fnames`` a list of ``B`` strings.
    """

    def __init__(self, transform: Callable[[Any], torch.Tensor]) -> None:
        super().__init__()
        if not callable(transform):
            raise ConfigError(f"transform={transform!r}: expected a callable image -> tensor")
        self.transform = transform

    def forward(self, batch: Sequence[Any]) -> TwoViewBatch:
        """Turn ``[(image, label, filename), ...]`` into ``((x0, x1), labels, filenames)``."""
        caller = type(self).__name__
        images, labels, fnames = _unpack(batch, caller)
        # All first views, then all second views: the random stream order of lightly.
        x0 = _stack([self.transform(img) for img in images], fnames, caller, 0)
        x1 = _stack([self.transform(img) for img in images], fnames, caller, 1)
        return (x0, x1), labels, fnames


class ImageCollateFunction(BaseCollateFunction):
    """Two SimCLR-style views per image with explicit colour-jitter strengths.

    The transform is :class:`selfsup.transforms.SimCLRViewTransform` with ``cj_strength=1``,
    so ``cj_bright`` etc. are used as given. Defaults are lightly's, which are also the CLI's
    ``collate`` config except ``kernel_size``: ``None`` sizes the blur window from sigma, while
    the CLI's ``kernel_size: 0.1`` means a window of 0.1 * ``input_size`` pixels (see
    :mod:`selfsup.transforms.gaussian_blur`).

    Example:
        >>> collate_fn = ImageCollateFunction(input_size=32, cj_prob=0.5)
        >>> (x0, x1), labels, fnames = collate_fn([(img, 0, "a.png")])
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 64,
        cj_prob: float = 0.8,
        cj_bright: float = 0.7,
        cj_contrast: float = 0.7,
        cj_sat: float = 0.7,
        cj_hue: float = 0.2,
        min_scale: float = 0.15,
        random_gray_scale: float = 0.2,
        gaussian_blur: float = 0.5,
        kernel_size: float | None = None,
        sigmas: Sequence[float] = (0.2, 2),
        vf_prob: float = 0.0,
        hf_prob: float = 0.5,
        rr_prob: float = 0.0,
        rr_degrees: float | Sequence[float] | None = None,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        transform = SimCLRViewTransform(
            input_size=input_size,
            cj_prob=cj_prob,
            cj_strength=1.0,
            cj_bright=cj_bright,
            cj_contrast=cj_contrast,
            cj_sat=cj_sat,
            cj_hue=cj_hue,
            min_scale=min_scale,
            random_gray_scale=random_gray_scale,
            gaussian_blur=gaussian_blur,
            kernel_size=kernel_size,
            sigmas=sigmas,
            vf_prob=vf_prob,
            hf_prob=hf_prob,
            rr_prob=rr_prob,
            rr_degrees=rr_degrees,
            normalize=normalize,
        )
        super().__init__(transform)


def _check_strength(cj_strength: float, hue_per_strength: float) -> float:
    strength = check_non_negative("cj_strength", cj_strength)
    if strength * hue_per_strength > 0.5:
        raise ConfigError(
            f"cj_strength={cj_strength!r} gives a hue jitter of {strength * hue_per_strength:g}; "
            f"the hue jitter must be in [0, 0.5], so cj_strength must be <= "
            f"{0.5 / hue_per_strength:g}"
        )
    return strength


class SimCLRCollateFunction(ImageCollateFunction):
    """SimCLR views: colour jitter ``(0.8 s, 0.8 s, 0.8 s, 0.2 s)`` with ``s = cj_strength``.

    Other arguments as in :class:`ImageCollateFunction`. For CIFAR-sized images use e.g.
    ``SimCLRCollateFunction(input_size=32, gaussian_blur=0.0)``.
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 224,
        cj_prob: float = 0.8,
        cj_strength: float = 0.5,
        min_scale: float = 0.08,
        random_gray_scale: float = 0.2,
        gaussian_blur: float = 0.5,
        kernel_size: float | None = None,
        sigmas: Sequence[float] = (0.2, 2),
        vf_prob: float = 0.0,
        hf_prob: float = 0.5,
        rr_prob: float = 0.0,
        rr_degrees: float | Sequence[float] | None = None,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        strength = _check_strength(cj_strength, 0.2)
        super().__init__(
            input_size=input_size,
            cj_prob=cj_prob,
            cj_bright=strength * 0.8,
            cj_contrast=strength * 0.8,
            cj_sat=strength * 0.8,
            cj_hue=strength * 0.2,
            min_scale=min_scale,
            random_gray_scale=random_gray_scale,
            gaussian_blur=gaussian_blur,
            kernel_size=kernel_size,
            sigmas=sigmas,
            vf_prob=vf_prob,
            hf_prob=hf_prob,
            rr_prob=rr_prob,
            rr_degrees=rr_degrees,
            normalize=normalize,
        )


class MoCoCollateFunction(ImageCollateFunction):
    """MoCo v1 views: colour jitter ``(s, s, s, s)`` with ``s = cj_strength``, no blur.

    For MoCo v2 use :class:`SimCLRCollateFunction` (or ``selfsup.transforms.MoCoV2Transform``).
    Other arguments as in :class:`ImageCollateFunction`.
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 224,
        cj_prob: float = 0.8,
        cj_strength: float = 0.4,
        min_scale: float = 0.2,
        random_gray_scale: float = 0.2,
        gaussian_blur: float = 0.0,
        kernel_size: float | None = None,
        sigmas: Sequence[float] = (0.2, 2),
        vf_prob: float = 0.0,
        hf_prob: float = 0.5,
        rr_prob: float = 0.0,
        rr_degrees: float | Sequence[float] | None = None,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        strength = _check_strength(cj_strength, 1.0)
        super().__init__(
            input_size=input_size,
            cj_prob=cj_prob,
            cj_bright=strength,
            cj_contrast=strength,
            cj_sat=strength,
            cj_hue=strength,
            min_scale=min_scale,
            random_gray_scale=random_gray_scale,
            gaussian_blur=gaussian_blur,
            kernel_size=kernel_size,
            sigmas=sigmas,
            vf_prob=vf_prob,
            hf_prob=hf_prob,
            rr_prob=rr_prob,
            rr_degrees=rr_degrees,
            normalize=normalize,
        )


class MultiViewCollateFunction(nn.Module):
    """Make one view per transform of every image in the batch.

    Args:
        transforms: One callable ``image -> tensor (C, H, W)`` per view.

    Returns ``(views, labels, fnames)``: ``views[i]`` is ``(B, C, H_i, W_i)``, the ``i``-th view
    of every image.
    """

    def __init__(self, transforms: Sequence[Callable[[Any], torch.Tensor]]) -> None:
        super().__init__()
        if isinstance(transforms, str | bytes) or not isinstance(transforms, Sequence):
            raise ConfigError(
                f"transforms={transforms!r}: expected a list with one callable per view"
            )
        if len(transforms) == 0:
            raise ConfigError("transforms=[]: expected at least one transform (one per view)")
        for index, transform in enumerate(transforms):
            if not callable(transform):
                raise ConfigError(
                    f"transforms[{index}]={transform!r}: expected a callable image -> tensor"
                )
        self.transforms = list(transforms)

    def forward(self, batch: Sequence[Any]) -> MultiViewBatch:
        """Turn ``[(image, label, filename), ...]`` into ``(views, labels, filenames)``."""
        caller = type(self).__name__
        images, labels, fnames = _unpack(batch, caller)
        views = [
            _stack([transform(img) for img in images], fnames, caller, index)
            for index, transform in enumerate(self.transforms)
        ]
        return views, labels, fnames


class _CropThen:
    """A random resized crop followed by a user transform (one multi-crop view)."""

    def __init__(self, crop: RandomResizedCrop, transform: Callable[[Any], torch.Tensor]) -> None:
        self.crop = crop
        self.transform = transform

    def __call__(self, image: Any) -> torch.Tensor:
        return self.transform(self.crop(image))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(crop={self.crop!r}, transform={self.transform!r})"


class MultiCropCollateFunction(MultiViewCollateFunction):
    """Multi-crop views (SwAV): for each category ``i``, ``crop_counts[i]`` crops of size
    ``crop_sizes[i]`` covering ``[crop_min_scales[i], crop_max_scales[i]]`` of the area, each
    followed by ``transforms``.

    Args:
        crop_sizes: Output size in pixels of each crop category.
        crop_counts: Number of crops of each category (>= 0, at least one crop in total).
        crop_min_scales: Minimum area fraction of each category, in (0, 1].
        crop_max_scales: Maximum area fraction of each category, in [min, 1].
        transforms: Callable ``crop -> tensor (C, H, W)`` applied after every crop (flips,
            colour, ``ToTensor``, normalisation...).

    Views are ordered by category: all crops of category 0, then category 1, ...
    """

    def __init__(
        self,
        crop_sizes: Sequence[int],
        crop_counts: Sequence[int],
        crop_min_scales: Sequence[float],
        crop_max_scales: Sequence[float],
        transforms: Callable[[Any], torch.Tensor],
    ) -> None:
        lists = {
            "crop_sizes": crop_sizes,
            "crop_counts": crop_counts,
            "crop_min_scales": crop_min_scales,
            "crop_max_scales": crop_max_scales,
        }
        for name, values in lists.items():
            if isinstance(values, str | bytes) or not isinstance(values, Sequence):
                raise ConfigError(
                    f"{name}={values!r}: expected a list, one entry per crop category"
                )
        lengths = {name: len(values) for name, values in lists.items()}
        if len(set(lengths.values())) != 1:
            raise ConfigError(
                f"crop_sizes, crop_counts, crop_min_scales and crop_max_scales must have one "
                f"entry per crop category, but their lengths are {lengths}"
            )
        if not callable(transforms):
            raise ConfigError(f"transforms={transforms!r}: expected a callable crop -> tensor")
        views: list[Callable[[Any], torch.Tensor]] = []
        for i in range(len(crop_sizes)):
            size = check_size(f"crop_sizes[{i}]", crop_sizes[i])
            count = check_positive_int(f"crop_counts[{i}]", crop_counts[i], minimum=0)
            scale = check_range(
                f"(crop_min_scales[{i}], crop_max_scales[{i}])",
                (crop_min_scales[i], crop_max_scales[i]),
                0.0,
                1.0,
                low_inclusive=False,
            )
            view = _CropThen(RandomResizedCrop(size=size, scale=scale), transforms)
            views.extend([view] * count)
        if not views:
            raise ConfigError(f"crop_counts={list(crop_counts)!r}: expected at least one crop")
        super().__init__(views)


class DINOCollateFunction(MultiViewCollateFunction):
    """DINO views: two global and ``n_local_views`` local views per image.

    The views are those of :class:`selfsup.transforms.DINOTransform` with the same arguments
    and defaults; ``views[0:2]`` are ``(B, C, global_crop_size, global_crop_size)``, the rest
    ``(B, C, local_crop_size, local_crop_size)``.
    """

    def __init__(
        self,
        global_crop_size: int = 224,
        global_crop_scale: Sequence[float] = (0.4, 1.0),
        local_crop_size: int = 96,
        local_crop_scale: Sequence[float] = (0.05, 0.4),
        n_local_views: int = 6,
        hf_prob: float = 0.5,
        vf_prob: float = 0.0,
        rr_prob: float = 0.0,
        rr_degrees: float | Sequence[float] | None = None,
        cj_prob: float = 0.8,
        cj_strength: float = 0.5,
        cj_bright: float = 0.8,
        cj_contrast: float = 0.8,
        cj_sat: float = 0.4,
        cj_hue: float = 0.2,
        random_gray_scale: float = 0.2,
        gaussian_blur: Sequence[float] = (1.0, 0.1, 0.5),
        kernel_size: float | None = None,
        kernel_scale: float | None = None,
        sigmas: Sequence[float] = (0.1, 2),
        solarization_prob: float = 0.2,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        dino = DINOTransform(
            global_crop_size=global_crop_size,
            global_crop_scale=global_crop_scale,
            local_crop_size=local_crop_size,
            local_crop_scale=local_crop_scale,
            n_local_views=n_local_views,
            hf_prob=hf_prob,
            vf_prob=vf_prob,
            rr_prob=rr_prob,
            rr_degrees=rr_degrees,
            cj_prob=cj_prob,
            cj_strength=cj_strength,
            cj_bright=cj_bright,
            cj_contrast=cj_contrast,
            cj_sat=cj_sat,
            cj_hue=cj_hue,
            random_gray_scale=random_gray_scale,
            gaussian_blur=gaussian_blur,
            kernel_size=kernel_size,
            kernel_scale=kernel_scale,
            sigmas=sigmas,
            solarization_prob=solarization_prob,
            normalize=normalize,
        )
        super().__init__(dino.transforms)


class MultiViewCollate:
    """Stack views made by the dataset's transform (e.g. a ``MultiViewTransform``).

    ``collate([(views, label, filename), ...])`` with ``views`` a list of ``V`` tensors per
    sample returns ``(stacked, labels, fnames)``: ``stacked[i]`` is ``(B, C, H_i, W_i)``,
    ``labels`` int64 ``(B,)``, ``fnames`` a list of ``B`` strings. Every sample must have the
    same number of views, and view ``i`` the same shape in every sample.

    Example:
        >>> dataset = LightlyDataset(input_dir, transform=SimCLRTransform(input_size=32))
        >>> loader = DataLoader(dataset, batch_size=8, collate_fn=MultiViewCollate())
        >>> (x0, x1), labels, fnames = next(iter(loader))
    """

    def __call__(self, batch: Sequence[Any]) -> MultiViewBatch:
        """Turn ``[(views, label, filename), ...]`` into ``(stacked_views, labels, filenames)``."""
        caller = type(self).__name__
        samples, labels, fnames = _unpack(batch, caller)
        for views, fname in zip(samples, fnames, strict=True):
            if isinstance(views, torch.Tensor) or not isinstance(views, Sequence):
                raise DataError(
                    f"{caller}: sample {fname!r} has a {type(views).__name__} where a list of "
                    "views was expected; use a MultiViewTransform as the dataset transform, or "
                    "torch's default collate for single images"
                )
        n_views = len(samples[0])
        for views, fname in zip(samples, fnames, strict=True):
            if len(views) != n_views:
                raise DataError(
                    f"{caller}: sample {fname!r} has {len(views)} views but {fnames[0]!r} has "
                    f"{n_views}; every sample needs the same number of views"
                )
        if n_views == 0:
            raise DataError(f"{caller}: sample {fnames[0]!r} has no views")
        stacked = [
            _stack([views[i] for views in samples], fnames, caller, i) for i in range(n_views)
        ]
        return stacked, labels, fnames


# --- I-JEPA -------------------------------------------------------------------------------

#: Placements tried for a context block before falling back to all non-target patches (and
#: for the target blocks before giving up when they cover the whole grid).
_IJEPA_CONTEXT_TRIES = 20


def _ijepa_block_size(
    scale: tuple[float, float],
    aspect_ratio: tuple[float, float],
    grid: tuple[int, int],
    generator: torch.Generator | None,
) -> tuple[int, int]:
    """(rows, cols) of a block covering a ``scale`` fraction of the grid with height/width
    ``aspect_ratio``, both drawn uniformly from their ranges; at least 1 x 1, at most the
    grid."""
    rows, cols = grid
    u = torch.rand(2, generator=generator).tolist()
    area = rows * cols * (scale[0] + u[0] * (scale[1] - scale[0]))
    ratio = aspect_ratio[0] + u[1] * (aspect_ratio[1] - aspect_ratio[0])
    height = min(rows, max(1, round((area * ratio) ** 0.5)))
    width = min(cols, max(1, round((area / ratio) ** 0.5)))
    return height, width


def _ijepa_place_block(
    size: tuple[int, int], grid: tuple[int, int], generator: torch.Generator | None
) -> torch.Tensor:
    """(rows, cols) bool grid, True inside one block of ``size`` at a uniform position."""
    rows, cols = grid
    height, width = size
    top = int(torch.randint(0, rows - height + 1, (1,), generator=generator))
    left = int(torch.randint(0, cols - width + 1, (1,), generator=generator))
    block = torch.zeros(rows, cols, dtype=torch.bool)
    block[top : top + height, left : left + width] = True
    return block


def _subset_sorted(index: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """``k`` entries of the 1-D ``index`` picked at random, in increasing order."""
    if index.numel() == k:
        return index
    pick = torch.randperm(index.numel(), generator=generator)[:k]
    return index[pick].sort().values


def sample_ijepa_masks(
    batch_size: int,
    grid: tuple[int, int],
    enc_mask_scale: tuple[float, float] = (0.85, 1.0),
    pred_mask_scale: tuple[float, float] = (0.15, 0.2),
    aspect_ratio: tuple[float, float] = (0.75, 1.5),
    n_enc: int = 1,
    n_pred: int = 4,
    min_keep: int = 4,
    allow_overlap: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """I-JEPA's context and target blocks of a batch's patch grids, as patch indices.

    "we randomly sample M = 4 (possibly overlapping) blocks (...) with a random scale in the
    range (0.15, 0.2) and aspect ratio in the range (0.75, 1.5)" for the targets; "we sample a
    single block x from the image with a random scale in the range (0.85, 1.0) and unit aspect
    ratio (...) we remove any overlapping regions" with the targets for the context (I-JEPA,
    Assran et al. 2023, https://arxiv.org/abs/2301.08243, sec. 3). As in the authors' code, one
    target size and one context size are drawn per batch (positions per image), so all target
    blocks have one length; context blocks, which lose different numbers of patches to the
    targets, are cut to the shortest in the batch by dropping random patches.

    Args:
        batch_size: B.
        grid: (rows, cols) of the patch grid.
        enc_mask_scale: Area fraction range of the context block.
        pred_mask_scale: Area fraction range of each target block.
        aspect_ratio: Height/width range of the target blocks.
        n_enc: Context blocks per image (1 in the paper).
        n_pred: Target blocks per image (M = 4).
        min_keep: Fewest patches a context block may keep after removing the targets; a
            placement keeping fewer is redrawn (up to 20 times), then the context is every
            patch outside the targets.
        allow_overlap: Keep context patches that are also in a target block.
        generator: Random generator, for reproducible masks.

    Returns:
        ``(masks_enc, masks_pred)``: ``n_enc`` and ``n_pred`` int64 tensors ``(B, K)`` of
        row-major patch indices in increasing order, K fixed per tensor.
    """
    rows, cols = grid
    if batch_size < 1 or rows < 1 or cols < 1 or n_enc < 1 or n_pred < 1:
        raise ConfigError(
            f"sample_ijepa_masks: batch_size, grid sides, n_enc and n_pred must be >= 1, got "
            f"batch_size={batch_size}, grid={grid}, n_enc={n_enc}, n_pred={n_pred}"
        )
    pred_size = _ijepa_block_size(pred_mask_scale, aspect_ratio, grid, generator)
    enc_size = _ijepa_block_size(enc_mask_scale, (1.0, 1.0), grid, generator)
    enc: list[list[torch.Tensor]] = [[] for _ in range(n_enc)]
    pred: list[list[torch.Tensor]] = [[] for _ in range(n_pred)]
    for _ in range(batch_size):
        for _ in range(_IJEPA_CONTEXT_TRIES):
            targets = [_ijepa_place_block(pred_size, grid, generator) for _ in range(n_pred)]
            covered = torch.stack(targets).any(dim=0)
            # On a small grid the targets can tile it by chance: place them again.
            if allow_overlap or not bool(covered.all()):
                break
        else:
            raise DataError(
                f"sample_ijepa_masks: the {n_pred} target blocks of {pred_size} patches cover "
                f"the whole {rows}x{cols} grid in every placement tried, leaving no context; "
                "lower pred_mask_scale or n_pred, or use a finer patch grid"
            )
        for i, target in enumerate(targets):
            pred[i].append(target.flatten().nonzero().flatten())
        for j in range(n_enc):
            context = torch.zeros(rows, cols, dtype=torch.bool)
            for _ in range(_IJEPA_CONTEXT_TRIES):
                block = _ijepa_place_block(enc_size, grid, generator)
                context = block if allow_overlap else block & ~covered
                if int(context.sum()) >= min_keep:
                    break
            else:
                context = torch.ones(rows, cols, dtype=torch.bool) & ~covered
            enc[j].append(context.flatten().nonzero().flatten())
    masks_enc = []
    for blocks in enc:
        k = min(b.numel() for b in blocks)
        masks_enc.append(torch.stack([_subset_sorted(b, k, generator) for b in blocks]))
    masks_pred = [torch.stack(blocks) for blocks in pred]
    return masks_enc, masks_pred


#: ``((images, labels, filenames), masks_enc, masks_pred)`` of :class:`IJEPAMaskCollator`.
IJEPABatch = tuple[
    tuple[torch.Tensor, torch.Tensor, list[str]], list[torch.Tensor], list[torch.Tensor]
]


class IJEPAMaskCollator:
    """Batch single-view samples and draw I-JEPA's context and target blocks for them.

    ``collate([(image, label, filename), ...])`` with ``image`` a ``(C, H, W)`` tensor (e.g.
    from :class:`selfsup.transforms.IJEPATransform`) returns ``((images, labels, fnames),
    masks_enc, masks_pred)``: images ``(B, C, H, W)``, and the patch indices of
    :func:`sample_ijepa_masks` for the ``input_size // patch_size`` grid.

    Args:
        input_size: Image side (int) or ``(height, width)`` in pixels.
        patch_size: The ViT's patch side; must divide the image sides.
        enc_mask_scale, pred_mask_scale, aspect_ratio, n_enc, n_pred, min_keep,
        allow_overlap: As in :func:`sample_ijepa_masks`.

    Example:
        >>> dataset = LightlyDataset(input_dir, transform=IJEPATransform(input_size=224))
        >>> loader = DataLoader(dataset, batch_size=64, collate_fn=IJEPAMaskCollator())
        >>> (images, _, _), masks_enc, masks_pred = next(iter(loader))
    """

    def __init__(
        self,
        input_size: int | Sequence[int] = 224,
        patch_size: int = 16,
        enc_mask_scale: Sequence[float] = (0.85, 1.0),
        pred_mask_scale: Sequence[float] = (0.15, 0.2),
        aspect_ratio: Sequence[float] = (0.75, 1.5),
        n_enc: int = 1,
        n_pred: int = 4,
        min_keep: int = 4,
        allow_overlap: bool = False,
    ) -> None:
        height, width = check_size("input_size", input_size)
        patch = check_positive_int("patch_size", patch_size)
        if height % patch or width % patch:
            raise ConfigError(
                f"IJEPAMaskCollator: patch_size={patch} must divide input_size {(height, width)}"
            )
        self.input_size = (height, width)
        self.grid = (height // patch, width // patch)
        self.enc_mask_scale = check_range("enc_mask_scale", enc_mask_scale, 0.0, 1.0, False)
        self.pred_mask_scale = check_range("pred_mask_scale", pred_mask_scale, 0.0, 1.0, False)
        self.aspect_ratio = check_range("aspect_ratio", aspect_ratio, 0.0, float("inf"), False)
        self.n_enc = check_positive_int("n_enc", n_enc)
        self.n_pred = check_positive_int("n_pred", n_pred)
        self.min_keep = check_positive_int("min_keep", min_keep)
        self.allow_overlap = allow_overlap

    def sample_masks(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``(masks_enc, masks_pred)`` for ``batch_size`` images (see
        :func:`sample_ijepa_masks`)."""
        return sample_ijepa_masks(
            batch_size,
            self.grid,
            enc_mask_scale=self.enc_mask_scale,
            pred_mask_scale=self.pred_mask_scale,
            aspect_ratio=self.aspect_ratio,
            n_enc=self.n_enc,
            n_pred=self.n_pred,
            min_keep=self.min_keep,
            allow_overlap=self.allow_overlap,
            generator=generator,
        )

    def __call__(self, batch: Sequence[Any]) -> IJEPABatch:
        """Turn ``[(image, label, filename), ...]`` into the batch and its block indices."""
        caller = type(self).__name__
        images, labels, fnames = _unpack(batch, caller)
        stacked = _stack(images, fnames, caller, 0)
        if stacked.ndim != 4 or tuple(stacked.shape[2:]) != self.input_size:
            raise DataError(
                f"{caller}: images of {fnames[0]!r} have shape {tuple(stacked.shape[1:])}; "
                f"expected (C, {self.input_size[0]}, {self.input_size[1]}) as input_size says "
                "(make the transform's output size match)"
            )
        masks_enc, masks_pred = self.sample_masks(len(images))
        return (stacked, labels, fnames), masks_enc, masks_pred
