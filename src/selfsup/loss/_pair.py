"""Checks and gathering shared by losses over a pair of (batch_size, dim) embeddings."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from selfsup.errors import ConfigError, DataError
from selfsup.utils import dist


def check_weight(value: object, key: str, owner: str, hint: str = "") -> float:
    """``value`` as a float if it is a finite number >= 0, else a ConfigError naming ``key``."""
    return _finite(value, key, owner, hint, positive=False)


def check_positive(value: object, key: str, owner: str, hint: str = "") -> float:
    """``value`` as a float if it is a finite number > 0, else a ConfigError naming ``key``."""
    return _finite(value, key, owner, hint, positive=True)


def _finite(value: object, key: str, owner: str, hint: str, positive: bool) -> float:
    bound = "> 0" if positive else ">= 0"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (positive and value == 0)
    ):
        raise ConfigError(f"{owner}: {key} must be a finite number {bound}{hint}, got {value!r}")
    return float(value)


def stack_views(
    z_views: Sequence[Tensor], owner: str, items: str, each: str, min_batch: int, why: str = ""
) -> Tensor:
    """Check a list of >= 2 same-shape (batch_size, dim) embeddings with batch_size >=
    ``min_batch`` and stack them to (n, batch_size, dim); a DataError says what is wrong
    (``items``: e.g. "patch embeddings", ``each``: "patch embedding", ``why``: why the
    minimum batch)."""
    if isinstance(z_views, Tensor) or len(z_views) < 2:
        got = "a tensor" if isinstance(z_views, Tensor) else f"{len(z_views)}"
        raise DataError(
            f"{owner}: expected a list of at least 2 {items} (batch_size, dim), got {got}"
        )
    shape = z_views[0].shape
    if len(shape) != 2 or shape[0] < min_batch or any(z.shape != shape for z in z_views):
        shapes = sorted({tuple(z.shape) for z in z_views})
        raise DataError(
            f"{owner}: every {each} must have the same shape (batch_size, dim) with "
            f"batch_size >= {min_batch}{why}, got shapes {shapes}"
        )
    return torch.stack(list(z_views))


def check_gather_available(gather_distributed: bool, owner: str) -> None:
    """Refuse ``gather_distributed=True`` on a PyTorch build without torch.distributed."""
    if gather_distributed and not torch.distributed.is_available():
        raise ConfigError(
            f"{owner}: gather_distributed=True but this PyTorch build has no "
            "torch.distributed support; set gather_distributed=False"
        )


def global_pair(
    z_a: Tensor, z_b: Tensor, gather_distributed: bool, owner: str, needs: str
) -> tuple[Tensor, Tensor]:
    """Check a pair of (batch_size, dim) embeddings and gather them over all processes.

    With ``gather_distributed`` and an initialised process group, both are concatenated
    over processes in rank order, with gradients (:func:`selfsup.utils.dist.gather`): every
    process then computes the loss of the global batch, and DDP's averaged gradient is that
    loss's gradient. The (global) batch must hold at least two samples, since batch
    statistics ("``needs``") are taken over it.
    """
    if z_a.ndim != 2 or z_a.shape != z_b.shape:
        raise DataError(
            f"{owner}: z_a and z_b must both have the same shape (batch_size, dim), got "
            f"{tuple(z_a.shape)} and {tuple(z_b.shape)}"
        )
    if gather_distributed and dist.world_size() > 1:
        z_a = torch.cat(dist.gather(z_a), dim=0)
        z_b = torch.cat(dist.gather(z_b), dim=0)
    if z_a.shape[0] < 2:
        raise DataError(f"{owner}: {needs} a batch of at least 2 samples, got {z_a.shape[0]}")
    return z_a, z_b
