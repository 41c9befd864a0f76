"""The arrays a selection reads: embeddings, scores, metadata, predictions and query sets.

Nothing here touches files: the pipeline step that calls :func:`selfsup.selection.select`
loads CSVs or JSON into these arrays first. Every array has one row per sample, in the same
order as the embeddings; indices in a :class:`~selfsup.selection.engine.SelectionResult` refer
to that order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from selfsup.errors import DataError, did_you_mean
from selfsup.selection.config import CategoricalInput, NumericInput

__all__ = ["ClassCounts", "SelectionInputs"]

FloatArray: TypeAlias = NDArray[np.float64]


@dataclass(frozen=True, init=False)
class ClassCounts:
    """Predicted classes per sample as a count matrix.

    Attributes:
        names: Class names, one per column.
        counts: ``(N, C)`` non-negative float32 counts: a one-hot row for an image
            classification, the number of detected objects of each class for object detection.
    """

    names: tuple[str, ...]
    counts: NDArray[np.float32]

    def __init__(self, names: Sequence[str], counts: ArrayLike) -> None:
        names = tuple(names)
        array = np.asarray(counts, dtype=np.float32)
        if array.ndim != 2 or array.shape[1] != len(names):
            raise DataError(
                f"ClassCounts.counts must have shape (N, {len(names)}) to match "
                f"{len(names)} class names, got {array.shape}"
            )
        if len(set(names)) != len(names):
            raise DataError(f"ClassCounts.names has duplicates: {names}")
        if array.size and (not np.all(np.isfinite(array)) or array.min() < 0):
            raise DataError("ClassCounts.counts must be finite and non-negative")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "counts", array)

    @property
    def is_single_label(self) -> bool:
        """True when every row holds exactly one object (image classification)."""
        rows = self.counts
        return bool(np.all(rows.sum(axis=1) == 1) and np.all((rows == 0) | (rows == 1)))

    @classmethod
    def from_labels(cls, labels: NDArray[np.integer[Any]], names: Sequence[str]) -> ClassCounts:
        """One-hot counts from ``(N,)`` integer class ids in ``[0, len(names))``."""
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(
                f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}"
            )
        if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
            raise DataError(
                f"labels must lie in [0, {len(names)}), got [{labels.min()}, {labels.max()}]"
            )
        counts = np.zeros((labels.shape[0], len(names)), dtype=np.float32)
        counts[np.arange(labels.shape[0]), labels] = 1.0
        return cls(tuple(names), counts)

    @classmethod
    def from_probabilities(
        cls, probabilities: NDArray[np.floating[Any]], names: Sequence[str]
    ) -> ClassCounts:
        """One-hot counts of the most probable class of ``(N, C)`` class probabilities."""
        probs = np.asarray(probabilities)
        if probs.ndim != 2 or probs.shape[1] != len(names):
            raise DataError(f"probabilities must have shape (N, {len(names)}), got {probs.shape}")
        return cls.from_labels(np.argmax(probs, axis=1), names)

    @classmethod
    def from_detections(
        cls,
        class_ids: Sequence[NDArray[np.integer[Any]] | Sequence[int]],
        names: Sequence[str],
        confidences: Sequence[NDArray[np.floating[Any]] | Sequence[float]] | None = None,
        min_confidence: float = 0.0,
    ) -> ClassCounts:
        """Objects per class per image from per-image lists of detected class ids.

        Args:
            class_ids: For each image, the class id of each detected object.
            names: Class names.
            confidences: Optional per-object confidences, same shapes as ``class_ids``.
            min_confidence: Objects with a confidence below this are not counted.
        """
        counts = np.zeros((len(class_ids), len(names)), dtype=np.float32)
        for i, ids in enumerate(class_ids):
            arr = np.asarray(ids, dtype=np.int64).reshape(-1)
            if confidences is not None:
                conf = np.asarray(confidences[i], dtype=np.float64).reshape(-1)
                if conf.shape != arr.shape:
                    raise DataError(f"image {i}: {arr.size} class ids but {conf.size} confidences")
                arr = arr[conf >= min_confidence]
            if arr.size and (arr.min() < 0 or arr.max() >= len(names)):
                raise DataError(
                    f"image {i}: class ids must lie in [0, {len(names)}), got {arr.tolist()}"
                )
            np.add.at(counts[i], arr, 1.0)
        return cls(tuple(names), counts)


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class SelectionInputs:
    """Everything a selection may read, as arrays with one row per sample.

    Attributes:
        embeddings: ``(N, D)`` float embeddings (DIVERSITY, TYPICALITY, SIMILARITY). They are
            L2-normalised inside the selection; the array is never modified.
        scores: ``task -> score name -> (N,)`` active-learning scores (SCORES input).
        metadata: ``key -> (N,)`` values (METADATA input): numbers for WEIGHTS/THRESHOLD, any
            values for BALANCE (compared as strings; ``None`` becomes the category ``"None"``).
        predictions: ``task -> ClassCounts`` (PREDICTIONS input).
        queries: ``name -> query set`` for SIMILARITY: a 1-D integer array of sample indices or
            a ``(M, D)`` array of query embeddings.
        n_samples: Number of samples; inferred from the arrays when not given.
    """

    embeddings: NDArray[np.floating[Any]] | None = None
    scores: Mapping[str, Mapping[str, NDArray[Any]]] = field(default_factory=dict)
    metadata: Mapping[str, NDArray[Any]] = field(default_factory=dict)
    predictions: Mapping[str, ClassCounts] = field(default_factory=dict)
    queries: Mapping[str, NDArray[Any]] = field(default_factory=dict)
    n_samples: int | None = None

    def __post_init__(self) -> None:
        lengths: list[tuple[str, int]] = []
        if self.embeddings is not None:
            emb = np.asarray(self.embeddings)
            if emb.ndim != 2 or not np.issubdtype(emb.dtype, np.floating):
                raise DataError(
                    f"embeddings must be a (N, D) float array, got {emb.dtype} {emb.shape}"
                )
            for start in range(0, emb.shape[0], 65536):
                # in blocks: a full isfinite mask of 1M x 128 would take 128 MB
                finite = np.isfinite(emb[start : start + 65536]).all(axis=1)
                if not finite.all():
                    bad = start + int(np.flatnonzero(~finite)[0])
                    raise DataError(f"embeddings row {bad} has a NaN or infinite value")
            lengths.append(("embeddings", emb.shape[0]))
        for task, by_name in self.scores.items():
            for name, values in by_name.items():
                arr = np.asarray(values)
                if arr.ndim != 1:
                    raise DataError(f"scores[{task!r}][{name!r}] must be 1-D, got {arr.shape}")
                lengths.append((f"scores[{task!r}][{name!r}]", arr.shape[0]))
        for key, values in self.metadata.items():
            arr = np.asarray(values)
            if arr.ndim != 1:
                raise DataError(f"metadata[{key!r}] must be 1-D, got {arr.shape}")
            lengths.append((f"metadata[{key!r}]", arr.shape[0]))
        for task, counts in self.predictions.items():
            if not isinstance(counts, ClassCounts):
                raise DataError(f"predictions[{task!r}] must be a ClassCounts, got {type(counts)}")
            lengths.append((f"predictions[{task!r}]", counts.counts.shape[0]))
        if self.n_samples is not None:
            lengths.insert(0, ("n_samples", self.n_samples))
        if lengths:
            first_name, first_len = lengths[0]
            for name, length in lengths[1:]:
                if length != first_len:
                    raise DataError(
                        f"{name} has {length} rows but {first_name} has {first_len}; every "
                        "input needs one row per sample"
                    )
            object.__setattr__(self, "n_samples", first_len)
        object.__setattr__(self, "scores", _frozen({k: _frozen(v) for k, v in self.scores.items()}))
        object.__setattr__(self, "metadata", _frozen(self.metadata))
        object.__setattr__(self, "predictions", _frozen(self.predictions))
        object.__setattr__(self, "queries", _frozen(self.queries))

    @property
    def n(self) -> int:
        """Number of samples (0 when nothing was given)."""
        return self.n_samples or 0

    def numeric(self, inp: NumericInput) -> FloatArray:
        """The ``(N,)`` float64 values of a numeric input; NaN marks a missing value.

        Each typed input is its own loader (``inp.numeric(inputs)``, see
        :mod:`selfsup.selection.registry`); this is the same call from the arrays' side.
        """
        return inp.numeric(self)

    def categorical(self, inp: CategoricalInput) -> ClassCounts:
        """The class counts of a categorical input (metadata values become one-hot classes)."""
        return inp.categorical(self)

    def random_values(self, seed: int) -> FloatArray:
        """``(N,)`` uniform numbers in (0, 1] drawn from ``seed`` (the RANDOM input)."""
        # 1 - U[0, 1) lies in (0, 1], so no sample gets a zero weight
        return 1.0 - np.random.default_rng(seed).random(self.n)

    def score_values(self, task: str, score: str) -> FloatArray:
        """``(N,)`` active-learning scores ``score`` of ``task`` (the SCORES input)."""
        if task not in self.scores:
            hint = did_you_mean(task, list(self.scores)) or "."
            known = sorted(self.scores)
            raise DataError(f"no scores for task {task!r}{hint} Tasks with scores: {known}")
        by_name = self.scores[task]
        if score not in by_name:
            hint = did_you_mean(score, list(by_name)) or "."
            raise DataError(f"task {task!r} has no score {score!r}{hint} Scores: {sorted(by_name)}")
        return _as_float(by_name[score], f"scores[{task!r}][{score!r}]")

    def metadata_numbers(self, key: str) -> FloatArray:
        """``(N,)`` metadata column ``key`` as numbers; NaN (or None) marks a missing value."""
        return _as_float(self._metadata(key), f"metadata[{key!r}]")

    def metadata_categories(self, key: str) -> ClassCounts:
        """Metadata column ``key`` as one-hot classes (values compared as strings)."""
        values = self._metadata(key)
        as_text = np.array(["None" if v is None else str(v) for v in values.tolist()], dtype=object)
        names, codes = np.unique(as_text, return_inverse=True)
        return ClassCounts.from_labels(codes.astype(np.int64), [str(n) for n in names])

    def category_counts(self, task: str, category: str) -> FloatArray:
        """``(N,)`` predicted objects of class ``category`` of ``task`` per sample."""
        counts = self.prediction_counts(task)
        if category not in counts.names:
            hint = did_you_mean(category, counts.names) or "."
            raise DataError(
                f"task {task!r} has no class {category!r}{hint} Classes: {list(counts.names)}"
            )
        return counts.counts[:, counts.names.index(category)].astype(np.float64)

    def prediction_counts(self, task: str) -> ClassCounts:
        """The class counts of prediction task ``task``."""
        return self._predictions(task)

    def query_embeddings(self, name: str) -> NDArray[np.float32]:
        """The ``(M, D)`` embeddings of query set ``name`` (rows picked from ``embeddings``)."""
        if name not in self.queries:
            hint = did_you_mean(name, list(self.queries)) or "."
            raise DataError(f"no query set {name!r}{hint} Query sets: {sorted(self.queries)}")
        if self.embeddings is None:
            raise DataError(f"query set {name!r} needs embeddings")
        emb = np.asarray(self.embeddings)
        query = np.asarray(self.queries[name])
        if query.ndim == 1:
            if not np.issubdtype(query.dtype, np.integer):
                raise DataError(f"query set {name!r}: 1-D queries must be sample indices")
            if query.size and (query.min() < 0 or query.max() >= self.n):
                raise DataError(f"query set {name!r}: indices must lie in [0, {self.n})")
            query = emb[query]
        elif query.ndim != 2 or query.shape[1] != emb.shape[1]:
            raise DataError(
                f"query set {name!r} must be sample indices or (M, {emb.shape[1]}) embeddings, "
                f"got shape {query.shape}"
            )
        if query.shape[0] == 0:
            raise DataError(f"query set {name!r} is empty")
        if not np.all(np.isfinite(query)):
            raise DataError(f"query set {name!r} has a NaN or infinite value")
        return np.asarray(query, dtype=np.float32)

    def _metadata(self, key: str) -> NDArray[Any]:
        if key not in self.metadata:
            hint = did_you_mean(key, list(self.metadata)) or "."
            raise DataError(f"no metadata {key!r}{hint} Metadata keys: {sorted(self.metadata)}")
        return np.asarray(self.metadata[key])

    def _predictions(self, task: str) -> ClassCounts:
        if task not in self.predictions:
            hint = did_you_mean(task, list(self.predictions)) or "."
            raise DataError(
                f"no predictions for task {task!r}{hint} Tasks: {sorted(self.predictions)}"
            )
        return self.predictions[task]


def _as_float(values: NDArray[Any], name: str) -> FloatArray:
    arr = np.asarray(values)
    if arr.dtype == object:
        try:
            return np.array(
                [math.nan if v is None else float(v) for v in arr.tolist()], dtype=np.float64
            )
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"{name} holds non-numeric values ({exc}); WEIGHTS and THRESHOLD need numbers, "
                "BALANCE takes categories"
            ) from exc
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise DataError(
            f"{name} has dtype {arr.dtype}; WEIGHTS and THRESHOLD need numbers, "
            "BALANCE takes categories"
        )
    return arr.astype(np.float64)
