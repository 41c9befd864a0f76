"""SelectionInputs validation and resolution of typed inputs to arrays."""

from __future__ import annotations

import numpy as np
import pytest

from selfsup.errors import DataError
from selfsup.selection import (
    CategoryCountInput,
    ClassCounts,
    ClassDistributionInput,
    MetadataInput,
    RandomInput,
    ScoresInput,
    SelectionInputs,
)


def test_class_counts_constructors() -> None:
    onehot = ClassCounts.from_labels(np.array([2, 0, 2]), ["a", "b", "c"])
    np.testing.assert_array_equal(onehot.counts, [[0, 0, 1], [1, 0, 0], [0, 0, 1]])
    assert onehot.is_single_label
    probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]])
    np.testing.assert_array_equal(
        ClassCounts.from_probabilities(probs, ["a", "b", "c"]).counts, [[0, 1, 0], [1, 0, 0]]
    )
    det = ClassCounts.from_detections(
        [[0, 0, 1], [], [2]],
        ["a", "b", "c"],
        confidences=[[0.9, 0.1, 0.8], [], [0.6]],
        min_confidence=0.5,
    )
    np.testing.assert_array_equal(det.counts, [[1, 1, 0], [0, 0, 0], [0, 0, 1]])
    assert not det.is_single_label


@pytest.mark.parametrize(
    ("make", "text"),
    [
        (lambda: ClassCounts(("a",), np.zeros((2, 2))), r"shape \(N, 1\)"),
        (lambda: ClassCounts(("a", "a"), np.zeros((2, 2))), "duplicates"),
        (lambda: ClassCounts(("a", "b"), -np.ones((1, 2))), "non-negative"),
        (lambda: ClassCounts.from_labels(np.array([3]), ["a"]), r"\[0, 1\)"),
        (lambda: ClassCounts.from_detections([[0, 5]], ["a"]), "image 0"),
    ],
)
def test_class_counts_errors(make: object, text: str) -> None:
    with pytest.raises(DataError, match=text):
        make()  # type: ignore[operator]


def test_lengths_must_agree() -> None:
    with pytest.raises(DataError, match=r"metadata\['m'\] has 3 rows but embeddings has 2"):
        SelectionInputs(embeddings=np.zeros((2, 3)), metadata={"m": np.zeros(3)})
    with pytest.raises(DataError, match="row 1 has a NaN"):
        SelectionInputs(embeddings=np.array([[1.0, 0.0], [np.nan, 1.0]]))
    assert SelectionInputs().n == 0
    assert SelectionInputs(scores={"t": {"s": np.zeros(4)}}).n == 4


def test_numeric_inputs_resolve() -> None:
    counts = ClassCounts(("car", "bus"), np.array([[2, 0], [1, 3]]))
    inputs = SelectionInputs(
        scores={"t": {"s": np.array([0.5, 0.25])}},
        metadata={"m": np.array([1, 2]), "obj": np.array([1.5, None], dtype=object)},
        predictions={"det": counts},
    )
    np.testing.assert_array_equal(inputs.numeric(ScoresInput("t", "s")), [0.5, 0.25])
    np.testing.assert_array_equal(inputs.numeric(MetadataInput("m")), [1.0, 2.0])
    np.testing.assert_array_equal(inputs.numeric(MetadataInput("obj")), [1.5, np.nan])
    np.testing.assert_array_equal(inputs.numeric(CategoryCountInput("det", "bus")), [0, 3])
    r = inputs.numeric(RandomInput(5))
    np.testing.assert_array_equal(r, 1.0 - np.random.default_rng(5).random(2))
    assert np.all((r > 0) & (r <= 1))


def test_missing_inputs_suggest_names() -> None:
    inputs = SelectionInputs(
        scores={"task": {"uncertainty_margin": np.zeros(2)}},
        metadata={"weather": np.array(["sun", "rain"])},
        predictions={"det": ClassCounts(("car",), np.zeros((2, 1)))},
    )
    with pytest.raises(DataError, match="did you mean 'task'"):
        inputs.numeric(ScoresInput("tsak", "uncertainty_margin"))
    with pytest.raises(DataError, match="did you mean 'uncertainty_margin'"):
        inputs.numeric(ScoresInput("task", "uncertainty_margn"))
    with pytest.raises(DataError, match="did you mean 'car'"):
        inputs.numeric(CategoryCountInput("det", "cars"))
    with pytest.raises(DataError, match="WEIGHTS and THRESHOLD need numbers"):
        inputs.numeric(MetadataInput("weather"))
    with pytest.raises(DataError, match=r"no metadata 'x'\. Metadata keys"):
        inputs.numeric(MetadataInput("x"))
    with pytest.raises(DataError, match="did you mean 'det'"):
        inputs.categorical(ClassDistributionInput("dett"))


def test_categorical_metadata_becomes_one_hot() -> None:
    inputs = SelectionInputs(metadata={"w": np.array(["sun", None, "rain", "sun"], dtype=object)})
    counts = inputs.categorical(MetadataInput("w"))
    assert counts.names == ("None", "rain", "sun")
    np.testing.assert_array_equal(counts.counts.argmax(axis=1), [2, 0, 1, 2])


def test_query_sets() -> None:
    emb = np.eye(3)
    inputs = SelectionInputs(
        embeddings=emb,
        queries={"idx": np.array([2]), "emb": np.ones((1, 3)), "bad": np.ones((1, 2))},
    )
    np.testing.assert_array_equal(inputs.query_embeddings("idx"), [[0, 0, 1]])
    assert inputs.query_embeddings("emb").dtype == np.float32
    with pytest.raises(DataError, match=r"\(M, 3\)"):
        inputs.query_embeddings("bad")
    with pytest.raises(DataError, match="did you mean 'idx'"):
        inputs.query_embeddings("id")
