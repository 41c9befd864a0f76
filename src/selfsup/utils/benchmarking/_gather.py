"""Gathering rows of tensors of unequal length from all processes (for kNN feature banks)."""

from __future__ import annotations

import torch
from torch import Tensor

from selfsup.utils.dist import gather_no_grad, world_size

__all__ = ["all_gather_rows"]


def all_gather_rows(x: Tensor) -> Tensor:
    """Concatenate the (n_r, ...) tensors of all processes along dim 0, in rank order.

    Ranks may hold different numbers of rows (:func:`selfsup.utils.dist.gather_no_grad`,
    ``all_gather`` and Lightning's ``LightningModule.all_gather`` need equal shapes, and a
    ``DistributedSampler`` without padding or a sharded last batch gives unequal ones), so
    each rank pads to the largest count and the padding is cut off after gathering. Not
    differentiable: it is meant for feature banks built under ``torch.no_grad``.

    Args:
        x: This process's rows, shape (n_r, ...); same trailing shape and dtype everywhere.

    Returns:
        Shape (Σ_r n_r, ...): ``x`` itself when not distributed.
    """
    if world_size() == 1:
        return x
    count = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    sizes = [int(c.item()) for c in gather_no_grad(count)]
    padded = x.new_zeros((max(sizes), *x.shape[1:]))
    padded[: x.shape[0]] = x
    gathered = gather_no_grad(padded)
    return torch.cat([g[:n] for g, n in zip(gathered, sizes, strict=True)], dim=0)
