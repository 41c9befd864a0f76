"""Predictions the user supplies: lightly's predictions folder, read into selection inputs.

A curation run can weight or balance its selection with the output of the user's own model
(active learning). The predictions live in a folder in lightly's format, by default
``<input_dir>/.lightly/predictions`` (hidden, so the scan of ``input_dir`` never lists it)::

    .lightly/predictions/
        tasks.json                  ["weather", "vehicles"]
        weather/schema.json         {"task_type": "classification",
                                     "categories": [{"id": 0, "name": "sunny"}, ...]}
        weather/img_0.json          {"file_name": "img_0.png",
                                     "predictions": [{"category_id": 0,
                                                      "probabilities": [0.8, 0.1, 0.1]}]}
        weather/subdir/img_1.json   (for the sample "subdir/img_1.jpg")
        vehicles/schema.json        {"task_type": "object-detection", "categories": [...]}
        vehicles/clips/a-042-mp4.json   (for frame 42 of clips/a.mp4, "clips/a-042-mp4.png")
                                    {"file_name": "clips/a-042-mp4.png",
                                     "predictions": [{"category_id": 1, "bbox": [10, 4, 32, 20],
                                                      "score": 0.9}, ...]}

The prediction file of a sample is the sample's name (see
:mod:`selfsup.curation.manifest`) with its extension replaced by ``.json``. The full
specification, with the policy for samples without a file, is ``docs/predictions.md``.

Columns and class ids
    Categories are sorted by ``id``; column ``j`` of every probability array, and class id
    ``j`` of loaded detections and labels, is the ``j``-th category in that order
    (``TaskSchema.category_ids[j]``). With the usual ids ``0..C-1`` column and id coincide.

Functions here read files and validate them (errors name the file and the key at fault);
the scores themselves are the pure functions of :mod:`selfsup.selection.scorers`.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias, TypeGuard, get_args

import numpy as np
from numpy.typing import NDArray

from selfsup.errors import DataError
from selfsup.selection.config import SelectionConfig, did_you_mean
from selfsup.selection.inputs import ClassCounts
from selfsup.selection.scorers import CLASSIFICATION_SCORES, classification_scores, object_frequency

__all__ = [
    "BBOX_TOLERANCE",
    "CLASSIFICATION_SCORE_NAMES",
    "DETECTION_SCORE_NAMES",
    "PROBABILITY_SUM_TOLERANCE",
    "TASK_TYPES",
    "ClassificationPredictions",
    "DetectionPredictions",
    "Detections",
    "MissingPredictionsWarning",
    "TaskPredictions",
    "TaskSchema",
    "TaskType",
    "active_learning_scores",
    "box_uncertainty",
    "class_counts",
    "default_predictions_dir",
    "list_tasks",
    "load_predictions",
    "load_task_schema",
    "prediction_path",
    "referenced_tasks",
    "resolve_predictions_dir",
    "score_names",
    "selection_prediction_inputs",
]

TaskType: TypeAlias = Literal["classification", "object-detection"]
TASK_TYPES: Final[tuple[str, ...]] = get_args(TaskType)
# lightly knows these too; named in the error so a user sees it is a known, unsupported type
_UNSUPPORTED_TASK_TYPES: Final = (
    "semantic-segmentation",
    "instance-segmentation",
    "keypoint-detection",
)

CLASSIFICATION_SCORE_NAMES: Final[tuple[str, ...]] = tuple(CLASSIFICATION_SCORES)
DETECTION_SCORE_NAMES: Final[tuple[str, ...]] = (
    *CLASSIFICATION_SCORES,
    "object_frequency",
    "objectness_least_confidence",
)

PROBABILITY_SUM_TOLERANCE: Final = 1e-2
"""Probabilities may sum to 1 +- this (JSON written with few decimals); they are renormalised."""

BBOX_TOLERANCE: Final = 1.0
"""Pixels a box may extend past the image border (rounding of detector output); it is clipped."""

_TASKS_FILE: Final = "tasks.json"
_SCHEMA_FILE: Final = "schema.json"
_FILE_KEYS: Final = ("file_name", "predictions")
_CLASSIFICATION_KEYS: Final = ("category_id", "probabilities")
_DETECTION_KEYS: Final = ("category_id", "bbox", "score", "probabilities")
_MAX_NAMED: Final = 5


class MissingPredictionsWarning(UserWarning):
    """Some samples have no prediction file in a task; they get ``missing_score``."""


# ----------------------------------------------------------------------------- types


@dataclass(frozen=True)
class TaskSchema:
    """One prediction task as its ``schema.json`` describes it.

    Attributes:
        name: Task name (its folder in the predictions folder).
        task_type: ``"classification"`` or ``"object-detection"``.
        category_ids: The categories' ``id`` values, ascending; column ``j`` of probability
            arrays is category ``category_ids[j]``.
        category_names: The categories' names, in the same order.
        path: The ``schema.json`` file, for messages.
    """

    name: str
    task_type: TaskType
    category_ids: tuple[int, ...]
    category_names: tuple[str, ...]
    path: str = ""

    @property
    def num_classes(self) -> int:
        """Number of categories ``C``."""
        return len(self.category_ids)


@dataclass(frozen=True)
class Detections:
    """The objects detected in one image, one row per box, in the order of its file.

    Attributes:
        boxes: ``(K, 4)`` float64 ``[x, y, w, h]`` in pixels, top-left origin, clipped to
            the image when its size was known.
        class_ids: ``(K,)`` int64 column index of each box's category (see module docstring).
        scores: ``(K,)`` float64 detection confidence in [0, 1].
        probabilities: ``(K, C)`` float64 class probabilities; NaN rows for boxes without.
    """

    boxes: NDArray[np.float64]
    class_ids: NDArray[np.int64]
    scores: NDArray[np.float64]
    probabilities: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.class_ids.shape[0])

    @staticmethod
    def empty(num_classes: int) -> Detections:
        """No objects (an image without detections, or without a prediction file)."""
        return Detections(
            boxes=np.zeros((0, 4), dtype=np.float64),
            class_ids=np.zeros(0, dtype=np.int64),
            scores=np.zeros(0, dtype=np.float64),
            probabilities=np.zeros((0, num_classes), dtype=np.float64),
        )


@dataclass(frozen=True)
class ClassificationPredictions:
    """Predictions of a classification task for ``N`` samples, in the order requested.

    Attributes:
        schema: The task.
        filenames: ``N`` sample names.
        present: ``(N,)`` bool, True where the sample has a prediction.
        labels: ``(N,)`` int64 predicted column (``category_id`` of the file); -1 where missing.
        probabilities: ``(N, C)`` float64 class probabilities, rows summing to 1; NaN rows
            where missing. A prediction without ``probabilities`` is one-hot at its category.
    """

    schema: TaskSchema
    filenames: tuple[str, ...]
    present: NDArray[np.bool_]
    labels: NDArray[np.int64]
    probabilities: NDArray[np.float64]

    @property
    def missing(self) -> list[str]:
        """Names of the samples without a prediction."""
        return [self.filenames[i] for i in np.flatnonzero(~self.present)]


@dataclass(frozen=True)
class DetectionPredictions:
    """Predictions of an object-detection task for ``N`` samples, in the order requested.

    Attributes:
        schema: The task.
        filenames: ``N`` sample names.
        present: ``(N,)`` bool, True where the sample has a prediction file.
        detections: ``N`` :class:`Detections` (empty where missing).
    """

    schema: TaskSchema
    filenames: tuple[str, ...]
    present: NDArray[np.bool_]
    detections: tuple[Detections, ...]

    @property
    def missing(self) -> list[str]:
        """Names of the samples without a prediction file."""
        return [self.filenames[i] for i in np.flatnonzero(~self.present)]


TaskPredictions: TypeAlias = ClassificationPredictions | DetectionPredictions


# ----------------------------------------------------------------------------- folder and files


def default_predictions_dir(input_dir: str | os.PathLike[str]) -> Path:
    """lightly's location: ``<input_dir>/.lightly/predictions``."""
    return Path(input_dir) / ".lightly" / "predictions"


def resolve_predictions_dir(
    input_dir: str | os.PathLike[str], predictions_dir: str | os.PathLike[str] = ""
) -> Path:
    """``predictions_dir`` when given (relative paths are taken from the current folder),
    else :func:`default_predictions_dir`."""
    if os.fspath(predictions_dir):
        return Path(predictions_dir)
    return default_predictions_dir(input_dir)


def prediction_path(folder: str | os.PathLike[str], task: str, filename: str) -> Path:
    """The prediction file of sample ``filename``: ``<folder>/<task>/<name, ext -> .json>``.

    ``subdir/img.jpg`` -> ``subdir/img.json``; the frame ``clips/a-042-mp4.png`` ->
    ``clips/a-042-mp4.json``.
    """
    return Path(folder) / task / _prediction_relpath(filename)


def _prediction_relpath(filename: str) -> str:
    stem, _ = posixpath.splitext(filename)
    return f"{stem}.json"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows; write a finite number")


def _read_json(path: Path, what: str) -> Any:
    """Parsed JSON of ``path``; FileNotFoundError passes through, other failures are DataErrors."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: {what} is not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what}: {exc}") from exc
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from exc


def _check_keys(data: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            hint = did_you_mean(str(key), allowed) or "."
            raise DataError(
                f"{where}: unknown key {key!r}{hint} Accepted keys: {', '.join(allowed)}"
            )


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _task_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: task names must be non-empty strings, got {value!r}")
    if "/" in value or "\\" in value or value in (".", ".."):
        raise DataError(
            f"{where}: task name {value!r} must be a plain folder name (no '/', '\\', '.', '..')"
        )
    return value


def list_tasks(folder: str | os.PathLike[str]) -> list[str]:
    """Task names listed in ``<folder>/tasks.json``, in file order.

    Raises:
        DataError: the folder or ``tasks.json`` is missing, or it is not a JSON list of
            unique task names.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(
            f"predictions folder {os.fspath(folder)!r} does not exist; put the predictions in "
            "<input_dir>/.lightly/predictions or set predictions_dir (see docs/predictions.md)"
        )
    path = root / _TASKS_FILE
    try:
        data = _read_json(path, _TASKS_FILE)
    except FileNotFoundError:
        raise DataError(
            f"{path}: missing; the predictions folder needs a {_TASKS_FILE} listing its tasks, "
            'e.g. ["my_classification_task", "my_detection_task"]'
        ) from None
    if not isinstance(data, list):
        raise DataError(
            f"{path}: expected a JSON list of task names, got {type(data).__name__}, "
            'e.g. ["my_classification_task"]'
        )
    tasks: list[str] = []
    for i, value in enumerate(data):
        name = _task_name(value, f"{path}: [{i}]")
        if name in tasks:
            raise DataError(f"{path}: [{i}]: task {name!r} is listed twice")
        tasks.append(name)
    return tasks


def load_task_schema(folder: str | os.PathLike[str], task: str) -> TaskSchema:
    """The validated ``<folder>/<task>/schema.json`` of a task listed in ``tasks.json``.

    Raises:
        DataError: the task is not listed (with a did-you-mean), or the schema is missing or
            malformed (unknown task type, categories without unique integer ids >= 0 and
            unique non-empty names).
    """
    tasks = list_tasks(folder)
    if task not in tasks:
        hint = did_you_mean(task, tasks) or "."
        raise DataError(
            f"unknown prediction task {task!r}{hint} Tasks in "
            f"{Path(folder) / _TASKS_FILE}: {', '.join(tasks) or '(none)'}"
        )
    path = Path(folder) / task / _SCHEMA_FILE
    try:
        data = _read_json(path, _SCHEMA_FILE)
    except FileNotFoundError:
        raise DataError(
            f"{path}: missing; every task folder needs a {_SCHEMA_FILE} like "
            '{"task_type": "classification", "categories": [{"id": 0, "name": "cat"}]}'
        ) from None
    return _parse_schema(data, task, path)


def _parse_schema(data: Any, task: str, path: Path) -> TaskSchema:
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(data).__name__}")
    _check_keys(data, ("task_type", "categories"), str(path))
    for key in ("task_type", "categories"):
        if key not in data:
            raise DataError(f"{path}: missing key {key!r}")
    task_type = data["task_type"]
    if task_type not in TASK_TYPES:
        if task_type in _UNSUPPORTED_TASK_TYPES:
            why = "is not supported by selfsup."
        else:
            hint = did_you_mean(task_type, TASK_TYPES) if isinstance(task_type, str) else ""
            why = f"is unknown{hint or '.'}"
        raise DataError(f"{path}: task_type {task_type!r} {why} Accepted: {', '.join(TASK_TYPES)}")
    categories = data["categories"]
    if not isinstance(categories, list) or not categories:
        raise DataError(
            f'{path}: categories must be a non-empty list of {{"id": int, "name": str}}, '
            f"got {categories!r}"
        )
    pairs: list[tuple[int, str]] = []
    seen_ids: set[int] = set()
    seen_names: set[str] = set()
    for i, cat in enumerate(categories):
        where = f"{path}: categories[{i}]"
        if not isinstance(cat, dict):
            raise DataError(f'{where}: expected {{"id": int, "name": str}}, got {cat!r}')
        _check_keys(cat, ("id", "name"), where)
        if "id" not in cat or "name" not in cat:
            raise DataError(f"{where}: needs both 'id' and 'name', got {cat!r}")
        cid, name = cat["id"], cat["name"]
        if not _is_int(cid) or cid < 0:
            raise DataError(f"{where}: id must be an integer >= 0, got {cid!r}")
        if not isinstance(name, str) or not name:
            raise DataError(f"{where}: name must be a non-empty string, got {name!r}")
        if cid in seen_ids:
            raise DataError(f"{where}: id {cid} is used by another category; ids must be unique")
        if name in seen_names:
            raise DataError(f"{where}: name {name!r} is used by another category")
        seen_ids.add(cid)
        seen_names.add(name)
        pairs.append((cid, name))
    pairs.sort()
    return TaskSchema(
        name=task,
        task_type=task_type,
        category_ids=tuple(c for c, _ in pairs),
        category_names=tuple(n for _, n in pairs),
        path=str(path),
    )


# ----------------------------------------------------------------------------- one prediction file


def _describe_ids(ids: Sequence[int]) -> str:
    if len(ids) > 12:
        return f"{len(ids)} ids from {ids[0]} to {ids[-1]}"
    return ", ".join(str(i) for i in ids)


def _column(value: object, schema: TaskSchema, columns: Mapping[int, int], where: str) -> int:
    if not _is_int(value):
        raise DataError(f"{where}.category_id: expected an integer, got {value!r}")
    if value not in columns:
        raise DataError(
            f"{where}.category_id: {value} is not a category of {schema.path or 'schema.json'} "
            f"(ids: {_describe_ids(schema.category_ids)})"
        )
    return columns[value]


def _probability_row(value: object, num_classes: int, where: str) -> NDArray[np.float64]:
    key = f"{where}.probabilities"
    if not isinstance(value, list):
        raise DataError(f"{key}: expected a list of {num_classes} numbers, got {value!r}")
    if len(value) != num_classes:
        raise DataError(
            f"{key}: has {len(value)} values but the schema has {num_classes} categories; give "
            "one probability per category, in ascending order of category id"
        )
    for j, p in enumerate(value):
        if not _is_number(p):
            raise DataError(f"{key}[{j}]: expected a number, got {p!r}")
        if not 0.0 <= p <= 1.0:
            raise DataError(
                f"{key}[{j}]: {p!r} is outside [0, 1]; pass softmax outputs, not logits"
            )
    row = np.asarray(value, dtype=np.float64)
    total = float(row.sum())
    if abs(total - 1.0) > PROBABILITY_SUM_TOLERANCE:
        raise DataError(
            f"{key}: sums to {total:.6g}, expected 1 (tolerance {PROBABILITY_SUM_TOLERANCE}); "
            "pass softmax outputs"
        )
    out: NDArray[np.float64] = row / total
    return out


def _bbox(
    value: object, size: tuple[int, int] | None, where: str
) -> tuple[float, float, float, float]:
    key = f"{where}.bbox"
    if not isinstance(value, list) or len(value) != 4 or not all(_is_number(v) for v in value):
        raise DataError(
            f"{key}: expected [x, y, w, h], four numbers in pixels with (x, y) the top-left "
            f"corner, got {value!r}"
        )
    x, y, w, h = (float(v) for v in value)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise DataError(f"{key}: values must be finite, got {value!r}")
    if w < 0 or h < 0:
        raise DataError(f"{key}: width and height must be >= 0, got w={w:g}, h={h:g} in {value!r}")
    if x < -BBOX_TOLERANCE or y < -BBOX_TOLERANCE:
        raise DataError(
            f"{key}: the top-left corner ({x:g}, {y:g}) lies outside the image; x and y must "
            "be >= 0 (pixels from the top-left corner)"
        )
    x1, y1 = x + w, y + h
    if size is not None:
        width, height = size
        if x1 > width + BBOX_TOLERANCE or y1 > height + BBOX_TOLERANCE:
            raise DataError(
                f"{key}: the box {value!r} ends at ({x1:g}, {y1:g}), outside the "
                f"{width}x{height} image; bbox is [x, y, w, h] in pixels, not [x1, y1, x2, y2] "
                "or normalised coordinates"
            )
        x1, y1 = min(x1, float(width)), min(y1, float(height))
    x, y = max(x, 0.0), max(y, 0.0)
    return x, y, max(x1 - x, 0.0), max(y1 - y, 0.0)


def _score(value: object, where: str) -> float:
    if not _is_number(value):
        raise DataError(f"{where}.score: expected a number in [0, 1], got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise DataError(f"{where}.score: {value!r} is outside [0, 1]")
    return float(value)


def _entries(data: Any, filename: str, path: Path) -> list[Any]:
    """The ``predictions`` list of a parsed file, after checking the file's own keys."""
    where = str(path)
    if not isinstance(data, dict):
        raise DataError(
            f'{where}: expected {{"file_name": ..., "predictions": [...]}}, got '
            f"{type(data).__name__}"
        )
    _check_keys(data, _FILE_KEYS, where)
    for key in _FILE_KEYS:
        if key not in data:
            raise DataError(f"{where}: missing key {key!r}")
    if not isinstance(data["predictions"], list):
        raise DataError(f"{where}: predictions must be a list, got {data['predictions']!r}")
    return list(data["predictions"])


def _file_name(data: Any, path: Path) -> str | None:
    if isinstance(data, dict) and "file_name" in data:
        name = data["file_name"]
        if not isinstance(name, str):
            raise DataError(f"{path}: file_name must be a string, got {name!r}")
        return posixpath.normpath(name.replace("\\", "/"))
    return None


def _classification_entry(
    entries: list[Any], schema: TaskSchema, columns: Mapping[int, int], path: Path
) -> tuple[int, NDArray[np.float64]] | None:
    if not entries:
        return None
    if len(entries) > 1:
        raise DataError(
            f"{path}: predictions: a classification task takes exactly one prediction per "
            f"sample, got {len(entries)}"
        )
    where = f"{path}: predictions[0]"
    entry = entries[0]
    if not isinstance(entry, dict):
        raise DataError(f"{where}: expected an object, got {entry!r}")
    _check_keys(entry, _CLASSIFICATION_KEYS, where)
    if "category_id" not in entry:
        raise DataError(f"{where}: missing key 'category_id'")
    col = _column(entry["category_id"], schema, columns, where)
    if "probabilities" in entry:
        probs = _probability_row(entry["probabilities"], schema.num_classes, where)
    else:
        # a label without probabilities: a certain prediction (lightly accepts labels as
        # predictions, e.g. for BALANCE)
        probs = np.zeros(schema.num_classes, dtype=np.float64)
        probs[col] = 1.0
    return col, probs


def _detection_entries(
    entries: list[Any],
    schema: TaskSchema,
    columns: Mapping[int, int],
    size: tuple[int, int] | None,
    path: Path,
) -> Detections:
    c = schema.num_classes
    k = len(entries)
    boxes = np.zeros((k, 4), dtype=np.float64)
    class_ids = np.zeros(k, dtype=np.int64)
    scores = np.zeros(k, dtype=np.float64)
    probabilities = np.full((k, c), np.nan, dtype=np.float64)
    for j, entry in enumerate(entries):
        where = f"{path}: predictions[{j}]"
        if not isinstance(entry, dict):
            raise DataError(f"{where}: expected an object, got {entry!r}")
        _check_keys(entry, _DETECTION_KEYS, where)
        for key in ("category_id", "bbox", "score"):
            if key not in entry:
                raise DataError(f"{where}: missing key {key!r}")
        class_ids[j] = _column(entry["category_id"], schema, columns, where)
        boxes[j] = _bbox(entry["bbox"], size, where)
        scores[j] = _score(entry["score"], where)
        if "probabilities" in entry:
            probabilities[j] = _probability_row(entry["probabilities"], c, where)
    return Detections(boxes=boxes, class_ids=class_ids, scores=scores, probabilities=probabilities)


# ----------------------------------------------------------------------------- loading a task


def load_predictions(
    folder: str | os.PathLike[str],
    task: str,
    filenames: Sequence[str],
    image_sizes: Sequence[tuple[int, int] | None] | None = None,
    *,
    warn_missing: bool = True,
) -> TaskPredictions:
    """Read and validate the predictions of ``task`` for the samples ``filenames``.

    Only the files of the requested samples are read; other files in the task folder (e.g.
    of corrupt or irrelevant samples) are ignored.

    Args:
        folder: The predictions folder (holding ``tasks.json``).
        task: A task listed in ``tasks.json``.
        filenames: ``N`` sample names (manifest ``filename``), unique.
        image_sizes: ``N`` ``(width, height)`` (or ``None`` where unknown) to check that
            boxes lie inside their image and clip them to it; ``None`` skips that check.
        warn_missing: Emit a :class:`MissingPredictionsWarning` when samples have no file.

    Returns:
        :class:`ClassificationPredictions` or :class:`DetectionPredictions`, rows in the
        order of ``filenames``. Samples without a file (or with an empty classification
        list) are marked in ``present``; see ``docs/predictions.md`` for how they score.

    Raises:
        DataError: naming the file and key at fault (see the module docstring), or when no
            sample at all has a prediction file (a wrong folder, task or naming).
    """
    schema = load_task_schema(folder, task)
    names = [str(f) for f in filenames]
    n = len(names)
    if image_sizes is not None and len(image_sizes) != n:
        raise DataError(f"image_sizes has {len(image_sizes)} entries for {n} filenames")
    if len(set(names)) != n:
        dup = next(name for name, k in Counter(names).items() if k > 1)
        raise DataError(f"filenames lists the sample {dup!r} more than once")
    by_relpath: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        by_relpath.setdefault(_prediction_relpath(name), []).append(i)
    columns = {cid: j for j, cid in enumerate(schema.category_ids)}
    c = schema.num_classes
    present = np.zeros(n, dtype=np.bool_)
    labels = np.full(n, -1, dtype=np.int64)
    probabilities = np.full((n, c), np.nan, dtype=np.float64)
    empty = Detections.empty(c)
    detections: list[Detections] = [empty] * n
    task_dir = Path(folder) / task
    for relpath, indices in by_relpath.items():
        path = task_dir / relpath
        try:
            data = _read_json(path, "prediction file")
        except FileNotFoundError:
            continue
        i = _owner(data, names, indices, path)
        entries = _entries(data, names[i], path)
        if schema.task_type == "classification":
            parsed = _classification_entry(entries, schema, columns, path)
            if parsed is None:
                continue
            labels[i], probabilities[i] = parsed
        else:
            size = None if image_sizes is None else image_sizes[i]
            detections[i] = _detection_entries(entries, schema, columns, size, path)
        present[i] = True
    n_missing = int(n - present.sum())
    if n and n_missing == n:
        raise DataError(
            f"task {task!r}: none of the {n} samples has a prediction; expected e.g. "
            f"{prediction_path(folder, task, names[0])} for the sample {names[0]!r} "
            "(the sample name with its extension replaced by .json)"
        )
    if n_missing and warn_missing:
        missing = [names[i] for i in np.flatnonzero(~present)[:_MAX_NAMED]]
        more = f" and {n_missing - len(missing)} more" if n_missing > len(missing) else ""
        warnings.warn(
            f"task {task!r}: {n_missing} of {n} samples have no prediction "
            f"({', '.join(repr(m) for m in missing)}{more}); they get the lowest active-learning "
            "score and count as no class (see docs/predictions.md)",
            MissingPredictionsWarning,
            stacklevel=2,
        )
    if schema.task_type == "classification":
        return ClassificationPredictions(
            schema=schema,
            filenames=tuple(names),
            present=present,
            labels=labels,
            probabilities=probabilities,
        )
    return DetectionPredictions(
        schema=schema, filenames=tuple(names), present=present, detections=tuple(detections)
    )


def _owner(data: Any, names: Sequence[str], indices: Sequence[int], path: Path) -> int:
    """Which requested sample a prediction file belongs to, checked against its ``file_name``.

    Samples that differ only in their extension (``a.png``, ``a.jpg``) share ``a.json``; its
    ``file_name`` says which of them it is for, and the others count as missing.
    """
    file_name = _file_name(data, path)
    if file_name is None:
        return indices[0]  # _entries reports the missing key
    for i in indices:
        if posixpath.normpath(names[i]) == file_name:
            return i
    expected = " or ".join(repr(names[i]) for i in indices)
    raise DataError(
        f"{path}: file_name {file_name!r} does not match the sample this file is read for "
        f"({expected}); file_name is the sample's path relative to input_dir (for a video "
        "frame, its frame name)"
    )


# ----------------------------------------------------------------------------- scores and counts


def score_names(task_type: str) -> tuple[str, ...]:
    """Names of the scores :func:`active_learning_scores` computes for a task type."""
    if task_type == "classification":
        return CLASSIFICATION_SCORE_NAMES
    if task_type == "object-detection":
        return DETECTION_SCORE_NAMES
    raise DataError(f"unknown task type {task_type!r}; accepted: {', '.join(TASK_TYPES)}")


def _fill(
    values: NDArray[np.float64], present: NDArray[np.bool_], missing_score: float
) -> NDArray[np.float64]:
    out = np.full(present.shape[0], missing_score, dtype=np.float64)
    out[present] = values
    return out


def active_learning_scores(
    preds: TaskPredictions,
    *,
    frequency_penalty: float = 0.25,
    min_score: float = 0.9,
    min_confidence: float = 0.0,
    missing_score: float = 0.0,
) -> dict[str, NDArray[np.float64]]:
    """Active-learning scores per sample, by score name (the names a SCORES input uses).

    Classification (formulas in :mod:`selfsup.selection.scorers`): ``uncertainty_margin``,
    ``uncertainty_least_confidence``, ``uncertainty_entropy`` of each sample's probabilities.

    Object detection:

    * ``uncertainty_*``: the maximum over the image's boxes of the box's uncertainty, i.e.
      the image is as uncertain as its most uncertain object (lightly's reduction). A box's
      uncertainty comes from its ``probabilities`` or, without them, from the two-class
      distribution ``(score, 1 - score)`` (object present or not), so a box with score 0.5 is
      maximally uncertain. An image without boxes scores 0.
    * ``object_frequency``: :func:`selfsup.selection.scorers.object_frequency` with
      ``frequency_penalty`` and ``min_score`` over the images with a prediction file, boxes
      with ``score < min_confidence`` not counted.
    * ``objectness_least_confidence``: ``1 - mean box score`` (lightly's), 0 without boxes.

    Samples without a prediction get ``missing_score`` in every score (0 by default, the
    lowest value, so a WEIGHTS strategy picks them only after all predicted samples; pass
    ``math.nan`` to make a THRESHOLD drop them instead).

    Returns:
        ``score name -> (N,)`` float64 array, in ``[0, 1]`` except for missing samples.
    """
    present = preds.present
    if isinstance(preds, ClassificationPredictions):
        rows = preds.probabilities[present]
        return {k: _fill(v, present, missing_score) for k, v in classification_scores(rows).items()}
    dets = [d for d, p in zip(preds.detections, present, strict=True) if p]
    scores: dict[str, NDArray[np.float64]] = {}
    for name, values in _box_uncertainty_max(dets).items():
        scores[name] = _fill(values, present, missing_score)
    freq = object_frequency(
        [d.class_ids for d in dets],
        frequency_penalty=frequency_penalty,
        min_score=min_score,
        confidences=[d.scores for d in dets],
        min_confidence=min_confidence,
    )
    scores["object_frequency"] = _fill(freq, present, missing_score)
    objectness = np.array(
        [1.0 - float(d.scores.mean()) if len(d) else 0.0 for d in dets], dtype=np.float64
    )
    scores["objectness_least_confidence"] = _fill(objectness, present, missing_score)
    return scores


def box_uncertainty(
    probabilities: NDArray[np.float64], scores: NDArray[np.float64]
) -> dict[str, NDArray[np.float64]]:
    """Classification uncertainty of each box, by score name.

    A box's uncertainty comes from its class probabilities; a box without them (a NaN row)
    uses the two-class distribution ``(score, 1 - score)``: object there or not.

    Args:
        probabilities: ``(K, C)`` class probabilities, NaN rows for boxes without.
        scores: ``(K,)`` detection confidences in [0, 1].

    Returns:
        ``uncertainty_* -> (K,)`` in [0, 1].
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    conf = np.asarray(scores, dtype=np.float64).reshape(-1)
    out = {name: np.zeros(conf.shape[0], dtype=np.float64) for name in CLASSIFICATION_SCORES}
    has_probs = ~np.isnan(probs).any(axis=1)
    binary = np.stack([conf, 1.0 - conf], axis=1)
    for rows, which in ((probs[has_probs], has_probs), (binary[~has_probs], ~has_probs)):
        if rows.shape[0]:
            for name, values in classification_scores(rows).items():
                out[name][which] = values
    return out


def _box_uncertainty_max(dets: Sequence[Detections]) -> dict[str, NDArray[np.float64]]:
    """Per image, the max over its boxes of each box uncertainty (0 without boxes)."""
    out = {name: np.zeros(len(dets), dtype=np.float64) for name in CLASSIFICATION_SCORES}
    counts = [len(d) for d in dets]
    if not sum(counts):
        return out
    image = np.repeat(np.arange(len(dets)), counts)
    per_box = box_uncertainty(
        np.concatenate([d.probabilities for d in dets if len(d)], axis=0),
        np.concatenate([d.scores for d in dets if len(d)]),
    )
    for name, values in per_box.items():
        # scores are >= 0, so the zero start leaves images without boxes at 0
        np.maximum.at(out[name], image, values)
    return out


def class_counts(preds: TaskPredictions, *, min_confidence: float = 0.0) -> ClassCounts:
    """Predicted classes per sample for BALANCE (CLASS_DISTRIBUTION) and CATEGORY_COUNT.

    Classification: a one-hot row at the predicted ``category_id``. Object detection: the
    number of boxes of each class with ``score >= min_confidence``. A sample without a
    prediction has a zero row (it belongs to no class).
    """
    names = preds.schema.category_names
    if isinstance(preds, ClassificationPredictions):
        counts = np.zeros((len(preds.filenames), len(names)), dtype=np.float32)
        rows = np.flatnonzero(preds.present)
        counts[rows, preds.labels[rows]] = 1.0
        return ClassCounts(names, counts)
    return ClassCounts.from_detections(
        [d.class_ids for d in preds.detections],
        names,
        confidences=[d.scores for d in preds.detections],
        min_confidence=min_confidence,
    )


# ----------------------------------------------------------------------------- wiring helpers


def referenced_tasks(config: SelectionConfig) -> list[str]:
    """Prediction tasks a selection reads (SCORES and PREDICTIONS inputs), in first-use order."""
    tasks: list[str] = []
    for strategy in config.strategies:
        # Any strategy whose input names a prediction task (SCORES, PREDICTIONS), registered
        # strategies included.
        task = getattr(getattr(strategy, "input", None), "task", None)
        if isinstance(task, str) and task not in tasks:
            tasks.append(task)
    return tasks


def selection_prediction_inputs(
    folder: str | os.PathLike[str],
    tasks: Iterable[str],
    filenames: Sequence[str],
    image_sizes: Sequence[tuple[int, int] | None] | None = None,
    *,
    frequency_penalty: float = 0.25,
    min_score: float = 0.9,
    missing_score: float = 0.0,
) -> tuple[dict[str, dict[str, NDArray[np.float64]]], dict[str, ClassCounts]]:
    """``(scores, predictions)`` for :class:`~selfsup.selection.SelectionInputs` from tasks.

    Loads each task once for ``filenames`` and returns ``{task: {score name: (N,)}}`` and
    ``{task: ClassCounts}``, ready for ``SelectionInputs(scores=..., predictions=...)``.
    """
    scores: dict[str, dict[str, NDArray[np.float64]]] = {}
    predictions: dict[str, ClassCounts] = {}
    for task in tasks:
        if task in scores:
            continue
        preds = load_predictions(folder, task, filenames, image_sizes)
        scores[task] = active_learning_scores(
            preds,
            frequency_penalty=frequency_penalty,
            min_score=min_score,
            missing_score=missing_score,
        )
        predictions[task] = class_counts(preds)
    return scores, predictions
