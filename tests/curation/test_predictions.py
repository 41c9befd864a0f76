"""Predictions folder: loading, every validation error, the missing-file policy and the scores."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfsup.curation.predictions import (
    ClassificationPredictions,
    DetectionPredictions,
    MissingPredictionsWarning,
    TaskSchema,
    active_learning_scores,
    class_counts,
    default_predictions_dir,
    list_tasks,
    load_predictions,
    load_task_schema,
    prediction_path,
    referenced_tasks,
    resolve_predictions_dir,
    score_names,
    selection_prediction_inputs,
)
from selfsup.errors import DataError
from selfsup.selection import (
    DiversityStrategy,
    ScoresInput,
    SelectionConfig,
    SelectionInputs,
    WeightsStrategy,
    scorers,
    select,
    selection_config_from_worker_config,
)

CATS = [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}, {"id": 2, "name": "bird"}]


def _write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def make_folder(
    root: Path,
    tasks: dict[str, tuple[str, list[dict[str, Any]], dict[str, list[dict[str, Any]]]]],
) -> Path:
    """Write tasks.json, schemas and sample files from ``{task: (type, cats, {name: preds})}``."""
    _write(root / "tasks.json", list(tasks))
    for task, (task_type, categories, files) in tasks.items():
        _write(root / task / "schema.json", {"task_type": task_type, "categories": categories})
        for name, preds in files.items():
            _write(prediction_path(root, task, name), {"file_name": name, "predictions": preds})
    return root


def cls(p: list[float], cid: int | None = None) -> list[dict[str, Any]]:
    return [{"category_id": int(np.argmax(p)) if cid is None else cid, "probabilities": p}]


def box(
    cid: int, bbox: list[float], score: float, probs: list[float] | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"category_id": cid, "bbox": bbox, "score": score}
    if probs is not None:
        entry["probabilities"] = probs
    return entry


CLS_FILES = {
    "a.png": cls([0.7, 0.2, 0.1]),
    "sub/b.jpg": cls([0.4, 0.35, 0.25]),
    "c.png": cls([1.0, 0.0, 0.0]),
}
DET_FILES: dict[str, list[dict[str, Any]]] = {
    "a.png": [box(0, [1, 2, 10, 8], 0.9, [0.8, 0.1, 0.1]), box(1, [20, 20, 5, 5], 0.6)],
    "sub/b.jpg": [],
    "c.png": [box(2, [0, 0, 32, 32], 0.5), box(2, [3, 3, 4, 4], 0.99), box(0, [5, 5, 2, 2], 0.3)],
}
NAMES = ["a.png", "sub/b.jpg", "c.png"]
SIZES: list[tuple[int, int] | None] = [(32, 32), (32, 32), (32, 32)]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_folder(
        tmp_path / "preds",
        {
            "weather": ("classification", CATS, dict(CLS_FILES)),
            "objects": ("object-detection", CATS, dict(DET_FILES)),
        },
    )


# ----------------------------------------------------------------------------- loading


def test_paths_follow_lightly_naming(tmp_path: Path) -> None:
    assert default_predictions_dir(tmp_path) == tmp_path / ".lightly" / "predictions"
    assert resolve_predictions_dir(tmp_path, "") == tmp_path / ".lightly" / "predictions"
    assert resolve_predictions_dir(tmp_path, "/x/p") == Path("/x/p")
    assert prediction_path("/p", "t", "sub/img.jpg") == Path("/p/t/sub/img.json")
    assert prediction_path("/p", "t", "clips/a-042-mp4.png") == Path("/p/t/clips/a-042-mp4.json")


def test_list_tasks_and_schema(folder: Path) -> None:
    assert list_tasks(folder) == ["weather", "objects"]
    schema = load_task_schema(folder, "weather")
    assert schema.task_type == "classification"
    assert schema.category_names == ("cat", "dog", "bird")
    assert schema.category_ids == (0, 1, 2)


def test_classification_arrays(folder: Path) -> None:
    preds = load_predictions(folder, "weather", NAMES)
    assert isinstance(preds, ClassificationPredictions)
    assert preds.filenames == tuple(NAMES)
    assert preds.present.tolist() == [True, True, True]
    assert preds.labels.tolist() == [0, 0, 0]
    np.testing.assert_allclose(preds.probabilities[1], [0.4, 0.35, 0.25])
    assert preds.probabilities.shape == (3, 3)


def test_categories_sorted_by_id_define_the_columns(tmp_path: Path) -> None:
    cats = [{"id": 7, "name": "z"}, {"id": 3, "name": "a"}]
    root = make_folder(tmp_path, {"t": ("classification", cats, {"x.png": cls([0.9, 0.1], 7)})})
    preds = load_predictions(root, "t", ["x.png"])
    assert isinstance(preds, ClassificationPredictions)
    assert preds.schema.category_ids == (3, 7)
    assert preds.schema.category_names == ("a", "z")
    assert preds.labels.tolist() == [1]  # id 7 is the second column


def test_classification_without_probabilities_is_one_hot(tmp_path: Path) -> None:
    files = {"x.png": [{"category_id": 2}]}
    root = make_folder(tmp_path, {"t": ("classification", CATS, files)})
    preds = load_predictions(root, "t", ["x.png"])
    assert isinstance(preds, ClassificationPredictions)
    assert preds.probabilities.tolist() == [[0.0, 0.0, 1.0]]
    assert active_learning_scores(preds)["uncertainty_margin"].tolist() == [0.0]


def test_probabilities_within_tolerance_are_renormalised(tmp_path: Path) -> None:
    root = make_folder(tmp_path, {"t": ("classification", CATS, {"x.png": cls([0.5, 0.3, 0.195])})})
    preds = load_predictions(root, "t", ["x.png"])
    assert isinstance(preds, ClassificationPredictions)
    np.testing.assert_allclose(preds.probabilities[0], np.array([0.5, 0.3, 0.195]) / 0.995)


def test_detection_arrays(folder: Path) -> None:
    preds = load_predictions(folder, "objects", NAMES, SIZES)
    assert isinstance(preds, DetectionPredictions)
    a, b, c = preds.detections
    assert a.boxes.tolist() == [[1, 2, 10, 8], [20, 20, 5, 5]]
    assert a.class_ids.tolist() == [0, 1]
    assert a.scores.tolist() == [0.9, 0.6]
    np.testing.assert_allclose(a.probabilities[0], [0.8, 0.1, 0.1])
    assert np.isnan(a.probabilities[1]).all()
    assert len(b) == 0  # an empty list: the model found nothing, which is a prediction
    assert preds.present[1]
    assert c.class_ids.tolist() == [2, 2, 0]


def test_boxes_slightly_outside_are_clipped(tmp_path: Path) -> None:
    files = {"x.png": [box(0, [-0.5, 2, 10, 30.7], 0.9)]}
    root = make_folder(tmp_path, {"t": ("object-detection", CATS, files)})
    preds = load_predictions(root, "t", ["x.png"], [(32, 32)])
    assert isinstance(preds, DetectionPredictions)
    np.testing.assert_allclose(preds.detections[0].boxes, [[0.0, 2.0, 9.5, 30.0]])


def test_only_requested_files_are_read(folder: Path) -> None:
    # a broken file of a sample nobody asks for (e.g. a corrupt image) does not matter
    _write(folder / "weather" / "zz_corrupt.json", "{not json")
    preds = load_predictions(folder, "weather", ["a.png"])
    assert preds.present.tolist() == [True]


def test_video_frame_predictions(tmp_path: Path) -> None:
    frame = "clips/a-042-mp4.png"
    root = make_folder(tmp_path, {"t": ("classification", CATS, {frame: cls([0.2, 0.2, 0.6])})})
    assert (root / "t" / "clips" / "a-042-mp4.json").is_file()
    preds = load_predictions(root, "t", [frame])
    assert isinstance(preds, ClassificationPredictions)
    assert preds.labels.tolist() == [2]


def test_same_stem_samples_are_told_apart_by_file_name(tmp_path: Path) -> None:
    root = make_folder(tmp_path, {"t": ("classification", CATS, {"a.jpg": cls([0, 1.0, 0])})})
    with pytest.warns(MissingPredictionsWarning, match="1 of 2"):
        preds = load_predictions(root, "t", ["a.png", "a.jpg"])
    assert preds.present.tolist() == [False, True]


# ----------------------------------------------------------------------------- validation


def _setup_error(tmp_path: Path, mutate: Callable[[Path], object]) -> Path:
    root = make_folder(
        tmp_path / "preds",
        {
            "weather": ("classification", CATS, dict(CLS_FILES)),
            "objects": ("object-detection", CATS, dict(DET_FILES)),
        },
    )
    mutate(root)
    return root


def _pred(root: Path, task: str, name: str, preds: Any, file_name: str | None = None) -> None:
    _write(
        prediction_path(root, task, name),
        {"file_name": name if file_name is None else file_name, "predictions": preds},
    )


def _schema(root: Path, task: str, data: Any) -> None:
    _write(root / task / "schema.json", data)


ERROR_CASES: list[tuple[str, str, Callable[[Path], object], list[str]]] = [
    # (id, task to load, mutation, substrings the message must contain)
    ("no tasks.json", "weather", lambda r: (r / "tasks.json").unlink(), ["tasks.json", "missing"]),
    (
        "tasks not list",
        "weather",
        lambda r: _write(r / "tasks.json", {"a": 1}),
        ["tasks.json", "list"],
    ),
    (
        "task listed twice",
        "weather",
        lambda r: _write(r / "tasks.json", ["weather", "weather"]),
        ["tasks.json", "[1]", "twice"],
    ),
    (
        "task with slash",
        "weather",
        lambda r: _write(r / "tasks.json", ["weather", "a/b"]),
        ["tasks.json", "[1]", "plain folder name"],
    ),
    (
        "unknown task",
        "wether",
        lambda r: None,
        ["'wether'", "did you mean 'weather'", "tasks.json"],
    ),
    (
        "no schema",
        "weather",
        lambda r: (r / "weather" / "schema.json").unlink(),
        ["weather/schema.json", "missing"],
    ),
    (
        "bad json",
        "weather",
        lambda r: _write(r / "weather" / "schema.json", '{"task_type": "classification",\n x}'),
        ["weather/schema.json", "not valid JSON", "line 2"],
    ),
    (
        "unknown task type",
        "weather",
        lambda r: _schema(r, "weather", {"task_type": "clasification", "categories": CATS}),
        ["schema.json", "task_type 'clasification'", "did you mean 'classification'"],
    ),
    (
        "unsupported task type",
        "weather",
        lambda r: _schema(r, "weather", {"task_type": "semantic-segmentation", "categories": CATS}),
        ["schema.json", "not supported", "object-detection"],
    ),
    (
        "schema unknown key",
        "weather",
        lambda r: _schema(r, "weather", {"task_type": "classification", "categorys": CATS}),
        ["schema.json", "'categorys'", "did you mean 'categories'"],
    ),
    (
        "duplicate category id",
        "weather",
        lambda r: _schema(
            r,
            "weather",
            {"task_type": "classification", "categories": [*CATS, {"id": 1, "name": "x"}]},
        ),
        ["schema.json", "categories[3]", "id 1", "unique"],
    ),
    (
        "category id not int",
        "weather",
        lambda r: _schema(
            r, "weather", {"task_type": "classification", "categories": [{"id": "0", "name": "a"}]}
        ),
        ["schema.json", "categories[0]", "integer >= 0"],
    ),
    (
        "category without name",
        "weather",
        lambda r: _schema(r, "weather", {"task_type": "classification", "categories": [{"id": 0}]}),
        ["schema.json", "categories[0]", "'name'"],
    ),
    (
        "empty categories",
        "weather",
        lambda r: _schema(r, "weather", {"task_type": "classification", "categories": []}),
        ["schema.json", "non-empty list"],
    ),
    (
        "prediction file not json",
        "weather",
        lambda r: _write(r / "weather" / "a.json", "[1, 2"),
        ["weather/a.json", "not valid JSON"],
    ),
    (
        "NaN literal",
        "weather",
        lambda r: _write(
            r / "weather" / "a.json",
            '{"file_name": "a.png", "predictions": '
            '[{"category_id": 0, "probabilities": [NaN, 0, 1]}]}',
        ),
        ["weather/a.json", "NaN"],
    ),
    (
        "file is a list",
        "weather",
        lambda r: _write(r / "weather" / "a.json", []),
        ["weather/a.json", "file_name"],
    ),
    (
        "file_name mismatch",
        "weather",
        lambda r: _pred(r, "weather", "a.png", cls([1.0, 0, 0]), file_name="a.jpg"),
        ["weather/a.json", "file_name 'a.jpg'", "'a.png'"],
    ),
    (
        "missing predictions key",
        "weather",
        lambda r: _write(r / "weather" / "a.json", {"file_name": "a.png"}),
        ["weather/a.json", "'predictions'"],
    ),
    (
        "predictions not a list",
        "weather",
        lambda r: _write(r / "weather" / "a.json", {"file_name": "a.png", "predictions": {}}),
        ["weather/a.json", "predictions must be a list"],
    ),
    (
        "unknown entry key",
        "weather",
        lambda r: _pred(r, "weather", "a.png", [{"category_id": 0, "propabilities": [1, 0, 0]}]),
        ["weather/a.json", "predictions[0]", "'propabilities'", "did you mean 'probabilities'"],
    ),
    (
        "two classifications",
        "weather",
        lambda r: _pred(r, "weather", "a.png", cls([1.0, 0, 0]) * 2),
        ["weather/a.json", "exactly one"],
    ),
    (
        "category not in schema",
        "weather",
        lambda r: _pred(r, "weather", "a.png", cls([1.0, 0, 0], cid=5)),
        ["weather/a.json", "predictions[0].category_id", "5", "ids: 0, 1, 2"],
    ),
    (
        "category id is bool",
        "weather",
        lambda r: _pred(r, "weather", "a.png", [{"category_id": True}]),
        ["weather/a.json", "predictions[0].category_id", "integer"],
    ),
    (
        "wrong number of probabilities",
        "weather",
        lambda r: _pred(r, "weather", "a.png", cls([0.5, 0.5])),
        ["weather/a.json", "predictions[0].probabilities", "2 values", "3 categories"],
    ),
    (
        "probabilities do not sum to 1",
        "weather",
        lambda r: _pred(r, "weather", "a.png", cls([0.5, 0.3, 0.1])),
        ["weather/a.json", "predictions[0].probabilities", "sums to 0.9"],
    ),
    (
        "probability outside [0, 1]",
        "weather",
        lambda r: _pred(r, "weather", "a.png", cls([1.5, -0.5, 0.0], cid=0)),
        ["weather/a.json", "predictions[0].probabilities[0]", "outside [0, 1]", "logits"],
    ),
    (
        "probability not a number",
        "weather",
        lambda r: _pred(r, "weather", "a.png", cls(["0.5", 0.5, 0.0], cid=0)),  # type: ignore[list-item]  # deliberately wrong
        ["weather/a.json", "predictions[0].probabilities[0]", "expected a number"],
    ),
    (
        "negative box size",
        "objects",
        lambda r: _pred(r, "objects", "c.png", [box(0, [1, 1, -3, 4], 0.5)]),
        ["objects/c.json", "predictions[0].bbox", "w=-3"],
    ),
    (
        "box outside image",
        "objects",
        lambda r: _pred(
            r, "objects", "c.png", [box(0, [0, 0, 1, 1], 0.5), box(0, [20, 20, 30, 5], 0.5)]
        ),
        ["objects/c.json", "predictions[1].bbox", "outside the 32x32 image"],
    ),
    (
        "box corner negative",
        "objects",
        lambda r: _pred(r, "objects", "c.png", [box(0, [-5, 1, 3, 4], 0.5)]),
        ["objects/c.json", "predictions[0].bbox", "outside the image"],
    ),
    (
        "box not four numbers",
        "objects",
        lambda r: _pred(r, "objects", "c.png", [box(0, [1, 1, 3], 0.5)]),
        ["objects/c.json", "predictions[0].bbox", "[x, y, w, h]"],
    ),
    (
        "score out of range",
        "objects",
        lambda r: _pred(r, "objects", "c.png", [box(0, [1, 1, 3, 3], 1.2)]),
        ["objects/c.json", "predictions[0].score", "outside [0, 1]"],
    ),
    (
        "score missing",
        "objects",
        lambda r: _pred(r, "objects", "c.png", [{"category_id": 0, "bbox": [1, 1, 3, 3]}]),
        ["objects/c.json", "predictions[0]", "'score'"],
    ),
    (
        "box probabilities bad",
        "objects",
        lambda r: _pred(r, "objects", "c.png", [box(0, [1, 1, 3, 3], 0.5, [0.2, 0.2, 0.2])]),
        ["objects/c.json", "predictions[0].probabilities", "sums to 0.6"],
    ),
]


@pytest.mark.parametrize(
    ("task", "mutate", "expected"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_validation_errors_name_file_and_key(
    tmp_path: Path, task: str, mutate: Callable[[Path], object], expected: list[str]
) -> None:
    root = _setup_error(tmp_path, mutate)
    with pytest.raises(DataError) as info:
        load_predictions(root, task, NAMES, SIZES)
    message = str(info.value)
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist.*predictions_dir"):
        list_tasks(tmp_path / "nope")


def test_no_prediction_at_all_is_an_error(folder: Path) -> None:
    with pytest.raises(DataError, match=r"none of the 2 samples.*weather/x\.json"):
        load_predictions(folder, "weather", ["x.png", "y.png"])


def test_duplicate_filenames_are_an_error(folder: Path) -> None:
    with pytest.raises(DataError, match=r"'a\.png' more than once"):
        load_predictions(folder, "weather", ["a.png", "c.png", "a.png"])


# ----------------------------------------------------------------------------- missing files


def test_missing_files_warn_and_get_missing_score(folder: Path) -> None:
    names = ["a.png", "nope1.png", "c.png", "nope2.png"]
    with pytest.warns(MissingPredictionsWarning, match=r"2 of 4 samples.*'nope1.png', 'nope2.png'"):
        preds = load_predictions(folder, "weather", names)
    assert isinstance(preds, ClassificationPredictions)
    assert preds.missing == ["nope1.png", "nope2.png"]
    assert np.isnan(preds.probabilities[[1, 3]]).all()
    assert preds.labels.tolist() == [0, -1, 0, -1]
    scores = active_learning_scores(preds)
    present = scorers.uncertainty_margin(preds.probabilities[[0, 2]])
    np.testing.assert_allclose(scores["uncertainty_margin"], [present[0], 0.0, present[1], 0.0])
    nan_scores = active_learning_scores(preds, missing_score=math.nan)
    assert np.isnan(nan_scores["uncertainty_entropy"][[1, 3]]).all()
    counts = class_counts(preds)
    assert counts.counts.tolist() == [[1, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0]]


def test_missing_detection_files(folder: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingPredictionsWarning)
        preds = load_predictions(
            folder, "objects", ["a.png", "nope.png", "c.png"], warn_missing=False
        )
    scores = active_learning_scores(preds, missing_score=0.0)
    for name in score_names("object-detection"):
        assert scores[name][1] == 0.0
    # object frequency is scaled over the images that have a file only
    expected = scorers.object_frequency([[0, 1], [2, 2, 0]])
    np.testing.assert_allclose(scores["object_frequency"][[0, 2]], expected)


def test_no_warning_when_everything_is_present(folder: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_predictions(folder, "weather", NAMES)


# ----------------------------------------------------------------------------- scores


def _margin(p: np.ndarray) -> float:
    top = np.sort(p)[::-1]
    return float(1.0 - (top[0] - top[1]))


def _least_confidence(p: np.ndarray) -> float:
    return float((1.0 - p.max()) / (1.0 - 1.0 / p.size))


def _entropy(p: np.ndarray) -> float:
    nz = p[p > 0]
    return float(-(nz * np.log2(nz)).sum() / np.log2(p.size))


REFERENCE = {
    "uncertainty_margin": _margin,
    "uncertainty_least_confidence": _least_confidence,
    "uncertainty_entropy": _entropy,
}


def test_classification_scores_match_formulas(folder: Path) -> None:
    preds = load_predictions(folder, "weather", NAMES)
    scores = active_learning_scores(preds)
    assert set(scores) == set(score_names("classification"))
    for name, ref in REFERENCE.items():
        expected = [ref(np.asarray(CLS_FILES[n][0]["probabilities"], dtype=float)) for n in NAMES]
        np.testing.assert_allclose(scores[name], expected, atol=1e-12, err_msg=name)
    # hand-computed: margin of [0.7, 0.2, 0.1] is 1 - 0.5
    assert scores["uncertainty_margin"][0] == pytest.approx(0.5)
    assert scores["uncertainty_margin"][2] == pytest.approx(0.0)


def test_detection_scores(folder: Path) -> None:
    preds = load_predictions(folder, "objects", NAMES, SIZES)
    scores = active_learning_scores(preds, frequency_penalty=0.5, min_score=0.2)
    assert set(scores) == set(score_names("object-detection"))

    def binary(s: float) -> np.ndarray:
        return np.array([s, 1.0 - s])

    for name, ref in REFERENCE.items():
        # a.png: box 0 has probabilities, box 1 only a score; b.jpg: no boxes; c.png: scores
        a = max(ref(np.array([0.8, 0.1, 0.1])), ref(binary(0.6)))
        c = max(ref(binary(0.5)), ref(binary(0.99)), ref(binary(0.3)))
        np.testing.assert_allclose(scores[name], [a, 0.0, c], atol=1e-12, err_msg=name)
    assert scores["uncertainty_margin"][2] == pytest.approx(1.0)  # the box with score 0.5
    expected_freq = scorers.object_frequency(
        [[0, 1], [], [2, 2, 0]], frequency_penalty=0.5, min_score=0.2
    )
    np.testing.assert_allclose(scores["object_frequency"], expected_freq)
    # v = [2, 0, 2.5] by hand -> [0.2 + 2/2.5 * 0.8, 0.2, 1]
    np.testing.assert_allclose(scores["object_frequency"], [0.84, 0.2, 1.0])
    np.testing.assert_allclose(
        scores["objectness_least_confidence"], [1 - 0.75, 0.0, 1 - (0.5 + 0.99 + 0.3) / 3]
    )


def test_min_confidence_drops_boxes_from_frequency_and_counts(folder: Path) -> None:
    preds = load_predictions(folder, "objects", NAMES, SIZES)
    scores = active_learning_scores(preds, min_confidence=0.55)
    expected = scorers.object_frequency([[0, 1], [], [2]])
    np.testing.assert_allclose(scores["object_frequency"], expected)
    counts = class_counts(preds, min_confidence=0.55)
    assert counts.names == ("cat", "dog", "bird")
    assert counts.counts.tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 1]]
    assert class_counts(preds).counts.tolist() == [[1, 1, 0], [0, 0, 0], [1, 0, 2]]


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3).filter(lambda r: sum(r) > 0.1),
        min_size=1,
        max_size=6,
    )
)
def test_scores_are_in_unit_interval_and_inputs_untouched(rows: list[list[float]]) -> None:
    probs = np.asarray(rows) / np.asarray(rows).sum(axis=1, keepdims=True)
    names = [f"{i}.png" for i in range(len(rows))]
    preds = ClassificationPredictions(
        schema=TaskSchema("t", "classification", (0, 1, 2), ("a", "b", "c")),
        filenames=tuple(names),
        present=np.ones(len(rows), dtype=bool),
        labels=np.argmax(probs, axis=1),
        probabilities=probs.copy(),
    )
    scores = active_learning_scores(preds)
    for values in scores.values():
        assert np.all((values >= 0) & (values <= 1))
    np.testing.assert_array_equal(preds.probabilities, probs)


# ----------------------------------------------------------------------------- wiring


def test_selection_inputs_from_config(folder: Path) -> None:
    config = selection_config_from_worker_config(
        {
            "method": "coreset",
            "stopping_condition": {"n_samples": 2},
            "active_learning": {"task_name": "weather", "score_name": "uncertainty_entropy"},
        }
    )
    assert referenced_tasks(config) == ["weather"]
    scores, predictions = selection_prediction_inputs(folder, ["weather", "objects"], NAMES, SIZES)
    assert set(scores) == {"weather", "objects"}
    assert predictions["objects"].counts.shape == (3, 3)
    emb = np.eye(3, dtype=np.float32)
    result = select(SelectionInputs(embeddings=emb, scores=scores, predictions=predictions), config)
    # c.png is one-hot (entropy 0): with equally distant embeddings it is picked last
    assert sorted(int(i) for i in result.indices) == [0, 1]


def test_referenced_tasks_ignores_other_inputs() -> None:
    config = SelectionConfig(
        strategies=(
            DiversityStrategy(),
            WeightsStrategy(ScoresInput("b", "uncertainty_margin")),
            WeightsStrategy(ScoresInput("a", "uncertainty_entropy")),
            WeightsStrategy(ScoresInput("b", "uncertainty_entropy")),
        ),
        n_samples=1,
    )
    assert referenced_tasks(config) == ["b", "a"]
