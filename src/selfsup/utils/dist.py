"""Helpers for ``torch.distributed`` that degrade to no-ops in a single process.

Contrastive losses get better with more negatives, so under data-parallel training each
process wants to compare its embeddings against the embeddings of *all* processes. This
module supplies the pieces for that: :func:`gather` (an all-gather that lets gradients flow
back to the process that produced each slice) and :func:`eye_rank` (the mask of "this
process's own samples" inside the gathered batch).

Every function works when ``torch.distributed`` is unavailable or not initialised: the
process is then treated as rank 0 of a world of size 1.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import torch
import torch.distributed as torch_dist
from torch import Tensor

__all__ = [
    "GatherLayer",
    "eye_rank",
    "gather",
    "is_dist_initialized",
    "rank",
    "rank_zero_only",
    "world_size",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def is_dist_initialized() -> bool:
    """Return True when ``torch.distributed`` is available and a process group is set up."""
    return torch_dist.is_available() and torch_dist.is_initialized()


def rank() -> int:
    """Return the rank of this process in the default group, 0 when not distributed."""
    return torch_dist.get_rank() if is_dist_initialized() else 0


def world_size() -> int:
    """Return the number of processes in the default group, 1 when not distributed."""
    return torch_dist.get_world_size() if is_dist_initialized() else 1


class GatherLayer(torch.autograd.Function):
    """All-gather with a backward pass (after SimCLR's ``GatherLayer``).

    Forward: every process contributes ``x`` of shape (n, ...) and receives the tuple of all
    processes' tensors, ordered by rank.

    Backward: the loss on process ``r`` depends on the slice of process ``s`` only through
    ``r``'s copy of it, so the gradient of the *sum* of all processes' losses w.r.t. ``x_s``
    is the sum over ``r`` of the gradients each process received for slice ``s``. We
    therefore all-reduce (sum) the incoming gradients and return this rank's slice. Combined
    with DDP's averaging of parameter gradients this yields the gradient of the mean of the
    per-process losses, i.e. exactly the single-process gradient of the full batch when each
    process's loss is a mean over an equal share of rows.

    All processes must pass tensors of the same shape, dtype and device type.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> tuple[Tensor, ...]:
        x = x.contiguous()
        output = [torch.empty_like(x) for _ in range(torch_dist.get_world_size())]
        torch_dist.all_gather(output, x)
        return tuple(output)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> Tensor:
        all_grads = torch.stack([g.contiguous() for g in grads])
        torch_dist.all_reduce(all_grads, op=torch_dist.ReduceOp.SUM)
        return all_grads[torch_dist.get_rank()]


def gather(x: Tensor) -> tuple[Tensor, ...]:
    """Gather ``x`` from every process, keeping the autograd graph.

    Args:
        x: This process's tensor, shape (n, ...). Same shape on all processes.

    Returns:
        ``world_size()`` tensors of shape (n, ...), ordered by rank; this process's entry is
        a copy of ``x`` through which gradients flow back (see :class:`GatherLayer`).
        Without an initialised process group, ``(x,)``.
    """
    if not is_dist_initialized():
        return (x,)
    out: tuple[Tensor, ...] = GatherLayer.apply(x)
    return out


@torch.no_grad()
def gather_no_grad(x: Tensor) -> tuple[Tensor, ...]:
    """Gather ``x`` from every process without autograd (e.g. keys for a memory bank).

    Args:
        x: This process's tensor, shape (n, ...). Same shape on all processes.

    Returns:
        ``world_size()`` detached tensors of shape (n, ...), ordered by rank; ``(x,)``
        when not distributed.
    """
    if not is_dist_initialized():
        return (x.detach(),)
    x = x.detach().contiguous()
    output = [torch.empty_like(x) for _ in range(torch_dist.get_world_size())]
    torch_dist.all_gather(output, x)
    return tuple(output)


def eye_rank(n: int, device: torch.device | str | None = None) -> Tensor:
    """Return the (n, n * world_size) boolean block of the identity that belongs to this rank.

    Entry (i, rank * n + i) is True, every other entry False: it marks where each of this
    process's n samples sits in a batch gathered with :func:`gather`. Example for n=3,
    rank 1, world size 4::

        rank0   rank1   rank2   rank3
        0 0 0 | 1 0 0 | 0 0 0 | 0 0 0
        0 0 0 | 0 1 0 | 0 0 0 | 0 0 0
        0 0 0 | 0 0 1 | 0 0 0 | 0 0 0

    Equals ``torch.eye(n, dtype=torch.bool)`` in a single process.
    """
    if n < 0:
        raise ValueError(f"eye_rank: n must be >= 0, got {n}")
    rows = torch.arange(n, device=device, dtype=torch.long)
    cols = rows + rank() * n
    mask = torch.zeros((n, n * world_size()), dtype=torch.bool, device=device)
    mask[rows, cols] = True
    return mask


def rank_zero_only(fn: Callable[_P, _R]) -> Callable[_P, _R | None]:
    """Decorate ``fn`` so that it runs on rank 0 only and returns None on other ranks.

    Useful for logging, printing and writing files once per distributed job.
    """

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R | None:
        if rank() == 0:
            return fn(*args, **kwargs)
        return None

    return wrapper
