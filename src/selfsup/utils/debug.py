"""Tools to look inside self-supervised training: collapse monitor and augmentation preview.

* :func:`std_of_l2_normalized` tells whether representations have collapsed (SimSiam, Chen and
  He 2021, Sec. 4.1).
* :func:`plot_augmented_images` shows what the model sees: every input image next to the
  views a collate function or a multi-view transform makes of it.

Matplotlib is imported only when a plot is made, and figures are built with the
object-oriented API (no pyplot state, no display needed, works on headless machines).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_augmented_images", "std_of_l2_normalized"]


def std_of_l2_normalized(z: Tensor) -> Tensor:
    """Mean over dimensions of the standard deviation of the L2-normalised representations.

    SimSiam (https://arxiv.org/abs/2011.10566, Sec. 4.1) monitors collapse with "the std of
    the l2-normalized output z/||z||_2 ... If the outputs collapse to a constant vector, their
    std over all samples should be zero for each channel"; and if z has "a zero-mean isotropic
    Gaussian distribution ... the standard deviation of z/||z||_2 is 1/sqrt(d)".

    Args:
        z: representations of shape (N, D), N >= 2.

    Returns:
        A scalar tensor: about 1/sqrt(D) for well-spread representations, 0 for collapsed ones.
    """
    if z.ndim != 2:
        raise ValueError(
            f"std_of_l2_normalized expects representations of shape (N, D), got shape "
            f"{tuple(z.shape)} ({z.ndim} dimensions); flatten them with z.flatten(1)"
        )
    if z.shape[0] < 2:
        raise ValueError(
            f"std_of_l2_normalized needs at least 2 representations to measure a spread, got "
            f"N={z.shape[0]}"
        )
    z_norm = F.normalize(z, dim=1)
    return z_norm.std(dim=0).mean()


# --------------------------------------------------------------------------------------
# Augmentation preview
# --------------------------------------------------------------------------------------

#: ``(mean, std)`` per channel, or None when the views are plain [0, 1] tensors.
_Normalize = tuple[tuple[float, ...], tuple[float, ...]] | None
_UNKNOWN = "unknown"


def _as_normalize(value: Any) -> _Normalize | str:
    """Read a normalisation from the forms selfsup/lightly/torchvision use, else ``_UNKNOWN``."""
    if value is None or value is False:
        return None
    if isinstance(value, dict) and "mean" in value and "std" in value:
        return (tuple(float(v) for v in value["mean"]), tuple(float(v) for v in value["std"]))
    if isinstance(value, tuple | list) and len(value) == 2:
        mean, std = value
        if isinstance(mean, Sequence) and isinstance(std, Sequence):
            return (tuple(float(v) for v in mean), tuple(float(v) for v in std))
    return _UNKNOWN


def _find_normalize(transform: Any, depth: int = 0) -> _Normalize | str:
    """The normalisation a view transform applies last, found by walking its attributes.

    Understands selfsup's ``ViewTransform.normalize``, torchvision's ``Normalize`` (``mean``
    and ``std`` attributes) inside ``Compose.transforms``, and wrappers holding the real
    transform in ``transform``. Returns ``_UNKNOWN`` when nothing is recognised.
    """
    if depth > 6 or transform is None:
        return _UNKNOWN
    if type(transform).__name__ == "Normalize" and hasattr(transform, "mean"):
        return _as_normalize((list(transform.mean), list(transform.std)))
    if hasattr(transform, "normalize") and not callable(transform.normalize):
        found = _as_normalize(transform.normalize)
        if found != _UNKNOWN:
            return found
    children = getattr(transform, "transforms", None)
    if isinstance(children, Sequence) and not isinstance(children, str):
        # In a Compose the last Normalize wins; a pipeline without one yields [0, 1] tensors.
        for child in reversed(children):
            found = _find_normalize(child, depth + 1)
            if found != _UNKNOWN:
                return found
        if type(transform).__name__ == "Compose":
            return None
    inner = getattr(transform, "transform", None)
    if inner is not None and inner is not transform:
        return _find_normalize(inner, depth + 1)
    return _UNKNOWN


def _view_transforms(fn: Any, n_views: int) -> list[Any]:
    """The transform behind each view of a collate function or multi-view transform."""
    transforms = getattr(fn, "transforms", None)
    if isinstance(transforms, Sequence) and len(transforms) == n_views:
        return list(transforms)
    single = getattr(fn, "transform", None)
    return [single if single is not None else fn] * n_views


def _to_display(view: Any, normalize: _Normalize | str, where: str) -> npt.NDArray[np.float64]:
    """A view (tensor (C, H, W) or PIL image) as an (H, W) or (H, W, 3) array in [0, 1]."""
    if isinstance(view, Image.Image):
        return _pil_to_array(view)
    if not isinstance(view, Tensor):
        raise DataError(f"{where} is {type(view).__name__}; expected a tensor (C, H, W)")
    if view.ndim != 3 or view.shape[0] not in (1, 3):
        raise DataError(
            f"{where} has shape {tuple(view.shape)}; expected (C, H, W) with C = 1 or 3"
        )
    x = view.detach().to("cpu", torch.float64)
    if not x.is_floating_point() or view.dtype == torch.uint8:
        x = x / 255.0
    elif isinstance(normalize, tuple):
        mean, std = normalize
        if len(mean) != x.shape[0]:
            raise DataError(
                f"{where} has {x.shape[0]} channels but its normalisation has {len(mean)} "
                "values; cannot un-normalise it"
            )
        x = x * torch.tensor(std, dtype=x.dtype)[:, None, None]
        x = x + torch.tensor(mean, dtype=x.dtype)[:, None, None]
    elif normalize == _UNKNOWN:
        # Unknown normalisation: stretch each view to [0, 1] so it is at least visible.
        low, high = x.min(), x.max()
        x = (x - low) / (high - low) if high > low else torch.zeros_like(x)
    array: npt.NDArray[np.float64] = x.clamp(0.0, 1.0).permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def _pil_to_array(image: Image.Image) -> npt.NDArray[np.float64]:
    """(H, W) for grayscale images, (H, W, 3) otherwise, in [0, 1]."""
    if image.mode in ("L", "1", "I", "I;16", "F"):
        return np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


def _is_collate_function(fn: Any) -> bool:
    """Legacy collate functions (lightly's and selfsup's) are ``nn.Module`` subclasses."""
    return isinstance(fn, nn.Module)


def _views_from_collate(fn: Callable[..., Any], images: list[Image.Image]) -> list[list[Any]]:
    """Views per image from a collate function: ``views[i][j]`` is view j of image i."""
    batch = [(image, 0, f"image_{i}") for i, image in enumerate(images)]
    output = fn(batch)
    if not isinstance(output, tuple | list) or len(output) != 3:
        raise DataError(
            f"{type(fn).__name__} returned {type(output).__name__}; expected a collate output "
            "(views, labels, filenames)"
        )
    view_batches = output[0]
    if not isinstance(view_batches, tuple | list) or not view_batches:
        raise DataError(
            f"{type(fn).__name__} returned views of type {type(view_batches).__name__}; "
            "expected (x0, x1) or a list of view batches (B, C, H, W)"
        )
    for j, vb in enumerate(view_batches):
        if not isinstance(vb, Tensor) or vb.ndim != 4 or vb.shape[0] != len(images):
            shape = tuple(vb.shape) if isinstance(vb, Tensor) else type(vb).__name__
            raise DataError(
                f"{type(fn).__name__}: view batch {j} is {shape}; expected a tensor "
                f"(B={len(images)}, C, H, W)"
            )
    return [[vb[i] for vb in view_batches] for i in range(len(images))]


def _views_from_transform(fn: Callable[..., Any], images: list[Image.Image]) -> list[list[Any]]:
    """Views per image from a multi-view transform (image -> list of views)."""
    views: list[list[Any]] = []
    for i, image in enumerate(images):
        out = fn(image)
        if isinstance(out, Tensor | Image.Image) or not isinstance(out, Sequence) or not out:
            raise DataError(
                f"{type(fn).__name__} returned {type(out).__name__} for image {i}; expected a "
                "non-empty list of views, as MultiViewTransform returns (for a single-view "
                "transform, wrap it: MultiViewTransform([t, t]))"
            )
        views.append(list(out))
    return views


def plot_augmented_images(
    images: Sequence[Image.Image],
    collate_function: Callable[..., Any],
    shuffle: bool = False,
    max_images: int = 8,
    save_path: str | os.PathLike[str] | None = None,
    *,
    kind: Literal["auto", "collate", "transform"] = "auto",
    seed: int | None = None,
) -> Figure:
    """Plot each image (left column) followed by the augmented views made of it.

    Args:
        images: input images (PIL).
        collate_function: a legacy collate function (``BaseCollateFunction`` subclasses return
            ``((x0, x1), labels, filenames)``; ``MultiViewCollateFunction`` subclasses such as
            ``MultiCropCollateFunction`` and ``DINOCollateFunction`` return
            ``(list of view batches, labels, filenames)``), or a multi-view transform
            (``image -> list of views``, e.g. ``SimCLRTransform``).
        shuffle: show a random selection (and order) of the images instead of the first ones.
        max_images: at most this many rows.
        save_path: if given, the figure is also written there as a PNG (atomically).
        kind: ``"collate"`` or ``"transform"`` to override the detection, which treats
            ``nn.Module``s (the legacy collate functions) as collate functions and any
            other callable as a transform.
        seed: seed of the shuffle, for a reproducible selection.

    Returns:
        A :class:`matplotlib.figure.Figure` with one row per image: the original, then
        view 1, view 2, ... Tensors are un-normalised with the normalisation found on the
        collate function/transform, or stretched to [0, 1] per view when none is found.
    """
    from matplotlib.figure import Figure

    images = list(images)
    if not images:
        raise ValueError("plot_augmented_images needs at least one image, got an empty list")
    for i, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise DataError(f"images[{i}] is {type(image).__name__}; expected a PIL image")
    if max_images < 1:
        raise ConfigError(f"max_images must be >= 1, got {max_images}")
    if kind not in ("auto", "collate", "transform"):
        raise ConfigError(f"kind must be 'auto', 'collate' or 'transform', got {kind!r}")
    if not callable(collate_function):
        raise ConfigError(
            f"collate_function={collate_function!r} is not callable; pass a collate function "
            "or a multi-view transform"
        )
    if shuffle:
        random.Random(seed).shuffle(images)
    images = images[:max_images]

    as_collate = kind == "collate" or (kind == "auto" and _is_collate_function(collate_function))
    if as_collate:
        views = _views_from_collate(collate_function, images)
    else:
        views = _views_from_transform(collate_function, images)
    n_views = max(len(v) for v in views)
    normalizes = [_find_normalize(t) for t in _view_transforms(collate_function, n_views)]

    nrows, ncols = len(images), 1 + n_views
    fig = Figure(figsize=(1.8 * ncols, 1.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, image in enumerate(images):
        cells = [_pil_to_array(image)] + [
            _to_display(view, normalizes[j], f"view {j} of image {i}")
            for j, view in enumerate(views[i])
        ]
        for j in range(ncols):
            ax = axes[i][j]
            ax.set_axis_off()
            if j < len(cells):
                cell = cells[j]
                cmap = "gray" if cell.ndim == 2 else None
                ax.imshow(cell, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            if i == 0:
                ax.set_title("original" if j == 0 else f"view {j}", fontsize=9)
    if save_path is not None:
        from selfsup.utils.atomic import atomic_path

        with atomic_path(save_path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    return fig
