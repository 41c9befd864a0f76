"""Active-learning scorers against their formulas, written here independently."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from selfsup.errors import DataError
from selfsup.selection.scorers import (
    CLASSIFICATION_SCORES,
    classification_scores,
    object_frequency,
    uncertainty_entropy,
    uncertainty_least_confidence,
    uncertainty_margin,
)

PROBS = np.array(
    [
        [1.0, 0.0, 0.0],  # certain
        [1 / 3, 1 / 3, 1 / 3],  # uniform
        [0.5, 0.3, 0.2],
        [0.1, 0.45, 0.45],
    ]
)


def reference(row: list[float]) -> dict[str, float]:
    c = len(row)
    top = sorted(row, reverse=True)
    entropy = -sum(p * math.log(p, 2) for p in row if p > 0)
    return {
        "uncertainty_least_confidence": (1 - top[0]) / (1 - 1 / c),
        "uncertainty_margin": 1 - (top[0] - top[1]),
        "uncertainty_entropy": entropy / math.log(c, 2),
    }


def test_scores_match_the_formulas() -> None:
    got = classification_scores(PROBS)
    assert set(got) == set(CLASSIFICATION_SCORES)
    for i, row in enumerate(PROBS.tolist()):
        for name, value in reference(row).items():
            assert got[name][i] == pytest.approx(value, abs=1e-12), (name, row)
    # the fixed points the names promise: 0 when certain, 1 when uniform
    for name in CLASSIFICATION_SCORES:
        assert got[name][0] == pytest.approx(0.0)
        assert got[name][1] == pytest.approx(1.0)
    assert got["uncertainty_margin"][3] == pytest.approx(1.0)  # two classes tie at the top


def test_single_column_is_a_binary_problem() -> None:
    p = np.array([[0.9], [0.5], [0.2]])
    two = np.concatenate([p, 1 - p], axis=1)
    for fn in (uncertainty_least_confidence, uncertainty_margin, uncertainty_entropy):
        np.testing.assert_allclose(fn(p), fn(two))
    np.testing.assert_allclose(uncertainty_margin(p), [0.2, 1.0, 0.4])


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, (5, 4), elements=st.floats(0.01, 1.0)))
def test_scores_lie_in_unit_interval_and_do_not_mutate(raw: np.ndarray) -> None:
    probs = raw / raw.sum(axis=1, keepdims=True)
    before = probs.copy()
    for name, values in classification_scores(probs).items():
        assert values.shape == (5,)
        assert np.all((values >= 0) & (values <= 1 + 1e-12)), name
        assert values.dtype == np.float64
    np.testing.assert_array_equal(probs, before)


@pytest.mark.parametrize(
    ("probs", "text"),
    [
        (np.array([[2.0, -1.0]]), "outside [0, 1]"),
        (np.array([[0.5, 0.2]]), "sums to 0.7"),
        (np.array([0.5, 0.5]), "shape (N, C)"),
        (np.array([[np.nan, 1.0]]), "outside [0, 1]"),
    ],
)
def test_invalid_probabilities_raise(probs: np.ndarray, text: str) -> None:
    with pytest.raises(DataError, match=re.escape(text)):
        uncertainty_entropy(probs)


def test_object_frequency_formula() -> None:
    images = [[0, 0, 0], [0, 1, 2], [], [1, 1], [2]]
    penalty, floor = 0.25, 0.9
    # v = sum over classes present of 1 + (count - 1) * penalty
    v = np.array([1 + 2 * penalty, 3.0, 0.0, 1 + penalty, 1.0])
    want = floor + (v - v.min()) / (v.max() - v.min()) * (1 - floor)
    np.testing.assert_allclose(object_frequency(images, penalty, floor), want)
    scores = object_frequency(images)  # lightly's defaults are 0.25 and 0.9
    np.testing.assert_allclose(scores, want)
    assert scores.min() == pytest.approx(0.9)  # the emptiest image gets min_score
    assert scores.max() == pytest.approx(1.0)  # the busiest, most varied one gets 1


def test_object_frequency_penalty_and_min_score_semantics() -> None:
    crowded, varied = [3, 3, 3, 3], [0, 1, 2]
    # no penalty: four objects beat three
    s = object_frequency([crowded, varied, [5]], frequency_penalty=1.0, min_score=0.0)
    assert s[0] > s[1]
    # full penalty: only distinct classes count
    s = object_frequency([crowded, varied, [5]], frequency_penalty=0.0, min_score=0.0)
    np.testing.assert_allclose(s, [0.0, 1.0, 0.0])
    np.testing.assert_allclose(object_frequency([[1], [1, 2]], min_score=1.0), [1.0, 1.0])
    np.testing.assert_allclose(object_frequency([[1], [2]]), [1.0, 1.0])  # all equal -> 1


def test_object_frequency_confidence_filter() -> None:
    ids = [[0, 1, 1], [0]]
    conf = [[0.9, 0.2, 0.8], [0.95]]
    # dropping the 0.2 object leaves classes {0, 1} vs {0}
    filtered = object_frequency(ids, 0.5, 0.0, confidences=conf, min_confidence=0.5)
    np.testing.assert_allclose(filtered, [1.0, 0.0])
    with pytest.raises(DataError, match="image 0: 3 class ids but 2 confidences"):
        object_frequency(ids, confidences=[[0.1, 0.2], [0.3]])
    with pytest.raises(DataError, match="frequency_penalty must be in"):
        object_frequency(ids, frequency_penalty=1.5)
    with pytest.raises(DataError, match="integers"):
        object_frequency([[0.5]])  # type: ignore[list-item]  # the wrong type is the test
