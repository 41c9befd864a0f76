"""Top-k accuracy: the metric the evaluation modules of :mod:`selfsup.utils.benchmarking` log.

A sample counts as correct at k when its target is among the k classes ranked highest, so
top-1 is the plain accuracy and top-5 the ImageNet convention (Krizhevsky et al., 2012).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from selfsup.errors import ConfigError

__all__ = ["check_topk", "logits_topk_accuracy", "mean_topk_accuracy"]


def check_topk(topk: Sequence[int], num_classes: int, owner: str) -> tuple[int, ...]:
    """Validate the ``topk`` argument of an evaluation module and return it as a tuple.

    Every k must be a whole number in [1, num_classes]: with fewer classes than k, top-k
    accuracy is 1 by construction and the ranking has fewer than k entries.

    Args:
        topk: The k values, e.g. ``(1, 5)``.
        num_classes: C, the number of classes.
        owner: Name of the class taking the argument, for the error message.

    Raises:
        ConfigError: Empty ``topk``, a k that is not an integer, or k outside [1, C].
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"{owner}: num_classes must be a whole number >= 1, got {num_classes!r}")
    values = tuple(topk)
    if not values:
        raise ConfigError(f"{owner}: topk must name at least one k, e.g. (1, 5); got {topk!r}")
    for k in values:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= num_classes:
            raise ConfigError(
                f"{owner}: every k in topk must be a whole number in [1, num_classes="
                f"{num_classes}], got {k!r} in topk={topk!r} (pass e.g. topk=(1,) when there "
                "are fewer than 5 classes)"
            )
    return values


def mean_topk_accuracy(
    predicted_classes: Tensor, targets: Tensor, k: Sequence[int]
) -> dict[int, Tensor]:
    """Fraction of samples whose target is among their first k predicted classes, per k.

    Args:
        predicted_classes: Class indices ranked best first, shape (B, K) with K >= max(k),
            e.g. the output of :func:`~selfsup.utils.benchmarking.knn_predict` or
            ``logits.topk(K, dim=1).indices``.
        targets: True class index of each sample, shape (B,).
        k: The k values.

    Returns:
        ``{k: accuracy}`` with each accuracy a float 0-dim tensor in [0, 1] on the device of
        ``predicted_classes``; no autograd graph.

    Raises:
        ValueError: Shapes that do not match, an empty batch, or a k outside [1, K].
    """
    if predicted_classes.ndim != 2:
        raise ValueError(
            f"predicted_classes must have shape (B, K), got {tuple(predicted_classes.shape)}"
        )
    batch, ranked = predicted_classes.shape
    if targets.shape != (batch,):
        raise ValueError(
            f"targets must have shape (B,)=({batch},) to match predicted_classes, got "
            f"{tuple(targets.shape)}"
        )
    if batch == 0:
        raise ValueError("top-k accuracy of an empty batch is undefined")
    for num_k in k:
        if not 1 <= num_k <= ranked:
            raise ValueError(
                f"k={num_k} needs 1 <= k <= K={ranked}, the number of ranked classes per sample"
            )
    with torch.no_grad():
        # (B, K) == (B, 1): True where a ranked class is the target; at most once per row.
        hits = predicted_classes == targets.to(predicted_classes.device).unsqueeze(1)
        return {num_k: hits[:, :num_k].any(dim=1).float().mean() for num_k in k}


def logits_topk_accuracy(logits: Tensor, targets: Tensor, k: Sequence[int]) -> dict[int, Tensor]:
    """:func:`mean_topk_accuracy` of the classes ranked by ``logits`` of shape (B, C)."""
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (B, C), got {tuple(logits.shape)}")
    ranked = logits.detach().topk(min(max(k), logits.shape[1]), dim=1).indices
    return mean_topk_accuracy(ranked, targets, k)
