"""Active-learning scores from predictions the user supplies, as pure functions.

Classification scores follow lightly's ``ScorerClassification`` (after Settles, "Active
Learning Literature Survey", 2009, section 3.1); each is 0 for a one-hot prediction and 1 for
the uniform one. For class probabilities ``p`` of one sample over ``C`` classes, sorted so
that ``p_(1) >= p_(2) >= ...``:

* ``uncertainty_least_confidence = (1 - p_(1)) / (1 - 1/C)``
* ``uncertainty_margin = 1 - (p_(1) - p_(2))``
* ``uncertainty_entropy = -sum_c p_c log2 p_c / log2 C``  (``0 log 0 = 0``)

A single column ``(N, 1)`` is read as the probability of the first of two classes.

``object_frequency`` follows lightly's object-detection scorer of the same name: it favours
images with many objects of many different classes. See its docstring for the formula.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from selfsup.errors import DataError

__all__ = [
    "CLASSIFICATION_SCORES",
    "classification_scores",
    "object_frequency",
    "uncertainty_entropy",
    "uncertainty_least_confidence",
    "uncertainty_margin",
]

CLASSIFICATION_SCORES: Final = (
    "uncertainty_least_confidence",
    "uncertainty_margin",
    "uncertainty_entropy",
)
_SUM_TOLERANCE: Final = 1e-3


def _probabilities(probabilities: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """Validated ``(N, C)`` float64 probabilities, ``C >= 2``."""
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] == 0:
        raise DataError(f"class probabilities must have shape (N, C), got {probs.shape}")
    if probs.shape[1] == 1:
        probs = np.concatenate([probs, 1.0 - probs], axis=1)
    if probs.size == 0:
        return probs
    bad = ~np.all(np.isfinite(probs) & (probs >= 0.0) & (probs <= 1.0), axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"class probabilities row {row} has values outside [0, 1]: {probs[row].tolist()}; "
            "pass softmax outputs, not logits"
        )
    sums = probs.sum(axis=1)
    off = np.abs(sums - 1.0) > _SUM_TOLERANCE
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise DataError(
            f"class probabilities row {row} sums to {sums[row]:.6g}, expected 1 "
            f"(tolerance {_SUM_TOLERANCE}); pass softmax outputs"
        )
    return probs


def uncertainty_least_confidence(probabilities: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """``(1 - max_c p_c) / (1 - 1/C)`` per row of ``(N, C)`` probabilities, in [0, 1]."""
    probs = _probabilities(probabilities)
    c = probs.shape[1]
    out: NDArray[np.float64] = np.clip((1.0 - probs.max(axis=1)) / (1.0 - 1.0 / c), 0.0, 1.0)
    return out


def uncertainty_margin(probabilities: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """``1 - (p_(1) - p_(2))``: one minus the gap between the two most probable classes."""
    probs = _probabilities(probabilities)
    top2 = np.partition(probs, -2, axis=1)[:, -2:]
    return np.clip(1.0 - (top2[:, 1] - top2[:, 0]), 0.0, 1.0)


def uncertainty_entropy(probabilities: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """Shannon entropy divided by its maximum: ``-sum_c p_c log2 p_c / log2 C``."""
    probs = _probabilities(probabilities)
    logs = np.log2(probs, out=np.zeros_like(probs), where=probs > 0)
    entropy = -(probs * logs).sum(axis=1)
    out: NDArray[np.float64] = np.clip(entropy / np.log2(probs.shape[1]), 0.0, 1.0)
    return out


def classification_scores(
    probabilities: NDArray[np.floating[Any]],
) -> dict[str, NDArray[np.float64]]:
    """All classification scores by name (the names a SCORES input refers to)."""
    return {
        "uncertainty_least_confidence": uncertainty_least_confidence(probabilities),
        "uncertainty_margin": uncertainty_margin(probabilities),
        "uncertainty_entropy": uncertainty_entropy(probabilities),
    }


def object_frequency(
    class_ids: Sequence[NDArray[np.integer[Any]] | Sequence[int]],
    frequency_penalty: float = 0.25,
    min_score: float = 0.9,
    confidences: Sequence[NDArray[np.floating[Any]] | Sequence[float]] | None = None,
    min_confidence: float = 0.0,
) -> NDArray[np.float64]:
    """Score images by how many objects of how many classes they hold (lightly's defaults).

    For image ``i`` with ``n_ic`` detected objects of class ``c``, the first object of each
    class counts 1 and every further object of the same class counts ``frequency_penalty``:

        v_i = sum_{c: n_ic > 0} (1 + (n_ic - 1) * frequency_penalty)

    and scores are ``v`` mapped linearly from ``[min_i v_i, max_i v_i]`` onto
    ``[min_score, 1]``: the image with the fewest (distinct) objects gets ``min_score``, the
    one with the most gets 1. A low ``frequency_penalty`` favours images with many *different*
    classes over images crowded with one class; a low ``min_score`` sharpens the preference
    for busy images (1 makes every score 1). If every image has the same ``v``, all scores
    are 1.

    Args:
        class_ids: For each image, the class id of each detected object.
        frequency_penalty: Weight of each repeated object of a class, in [0, 1].
        min_score: Score of the image with the fewest objects, in [0, 1].
        confidences: Optional per-object confidences, same shapes as ``class_ids``.
        min_confidence: Objects with a confidence below this are not counted.

    Returns:
        ``(N,)`` scores in ``[min_score, 1]``.
    """
    for name, value in (("frequency_penalty", frequency_penalty), ("min_score", min_score)):
        if not 0.0 <= value <= 1.0:
            raise DataError(f"object_frequency {name} must be in [0, 1], got {value!r}")
    values = np.zeros(len(class_ids), dtype=np.float64)
    for i, ids in enumerate(class_ids):
        arr = np.asarray(ids).reshape(-1)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"image {i}: class ids must be integers, got {arr.dtype}")
        if confidences is not None:
            conf = np.asarray(confidences[i], dtype=np.float64).reshape(-1)
            if conf.shape != arr.shape:
                raise DataError(f"image {i}: {arr.size} class ids but {conf.size} confidences")
            arr = arr[conf >= min_confidence]
        _, per_class = np.unique(arr, return_counts=True)
        values[i] = float(np.sum(1.0 + (per_class - 1) * frequency_penalty))
    if values.size == 0:
        return values
    lo, hi = float(values.min()), float(values.max())
    if hi == lo:
        return np.ones_like(values)
    return min_score + (values - lo) / (hi - lo) * (1.0 - min_score)
