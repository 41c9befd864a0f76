"""Strategy objectives against references computed naively here."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from selfsup.errors import DataError
from selfsup.selection import objectives
from selfsup.selection.objectives import (
    OBJECTIVE_FLOOR,
    balance_objective,
    balance_quotients,
    balance_target_shares,
    l2_normalize,
    log_objective,
    similarity,
    threshold_mask,
    typicality,
)


def unit_rows(n: int, d: int, seed: int) -> NDArray[np.float32]:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    out: NDArray[np.float32] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def test_l2_normalize_copies_only_when_needed() -> None:
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    before = x.copy()
    out = l2_normalize(x)
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    assert out.dtype == np.float32
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(x, before)
    unit = unit_rows(5, 3, seed=0)
    assert l2_normalize(unit) is unit  # already unit float32: no 2nd copy of big arrays
    with pytest.raises(DataError, match="2-D"):
        l2_normalize(np.ones(3))


def test_typicality_matches_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(objectives, "KNN_ROW_BLOCK", 7)
    monkeypatch.setattr(objectives, "KNN_COL_BLOCK", 11)
    x = unit_rows(40, 4, seed=1)
    xd = x.astype(np.float64)
    dist = np.sqrt(((xd[:, None] - xd[None]) ** 2).sum(-1))
    np.fill_diagonal(dist, np.inf)
    k = 5
    want = 1.0 / np.sort(dist, axis=1)[:, :k].mean(axis=1)
    np.testing.assert_allclose(typicality(x, k), want, rtol=1e-4)


def test_typicality_edge_cases() -> None:
    np.testing.assert_array_equal(typicality(unit_rows(1, 3, seed=2), 5), [1.0])
    dup = np.repeat(unit_rows(1, 3, seed=2), 3, axis=0)
    assert np.all(typicality(dup, 2) == pytest.approx(1e12))  # exact duplicates: capped
    # k larger than N - 1 uses all other samples
    x = unit_rows(4, 3, seed=3)
    np.testing.assert_allclose(typicality(x, 10), typicality(x, 3))


def test_similarity_formula() -> None:
    x = unit_rows(30, 5, seed=4)
    q = unit_rows(3, 5, seed=5) * 2.0  # queries are normalised inside
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    d2 = ((x[:, None].astype(np.float64) - qn[None]) ** 2).sum(-1).min(axis=1)
    np.testing.assert_allclose(similarity(x, q), 1 - d2 / 4, atol=1e-6)
    np.testing.assert_allclose(similarity(qn.astype(np.float32), q), 1.0, atol=1e-6)
    np.testing.assert_allclose(similarity(-qn[:1].astype(np.float32), qn[:1]), 0.0, atol=1e-6)


@pytest.mark.parametrize(
    ("op", "want"),
    [
        ("BIGGER", [False, False, True, False]),
        ("BIGGER_EQUAL", [False, True, True, False]),
        ("SMALLER", [True, False, False, False]),
        ("SMALLER_EQUAL", [True, True, False, False]),
    ],
)
def test_threshold_mask(op: str, want: list[bool]) -> None:
    values = np.array([1.0, 2.0, 3.0, np.nan])
    assert threshold_mask(values, op, 2.0).tolist() == want  # type: ignore[arg-type]


def test_log_objective_floors_zero() -> None:
    out = log_objective(np.array([1.0, np.e, 0.0]), 2.0)
    np.testing.assert_allclose(out, [0.0, 2.0, 2.0 * np.log(OBJECTIVE_FLOOR)])


def test_balance_target_shares() -> None:
    names = ("a", "b", "c", "d")
    present = np.array([True, True, True, False])
    np.testing.assert_allclose(
        balance_target_shares(names, present, "uniform"), [1 / 3, 1 / 3, 1 / 3, 0]
    )
    # remainder 0.4 spread over present, unlisted classes b and c
    np.testing.assert_allclose(
        balance_target_shares(names, present, {"a": 0.6}), [0.6, 0.2, 0.2, 0.0]
    )
    # everything listed but summing to 0.5: rescaled
    np.testing.assert_allclose(
        balance_target_shares(names, present, {"a": 0.1, "b": 0.1, "c": 0.2, "d": 0.1}),
        [0.2, 0.2, 0.4, 0.2],
    )
    with pytest.raises(DataError, match="did you mean 'a'"):
        balance_target_shares(("a", "b"), np.array([True, True]), {"A": 0.5})


def test_balance_quotients_and_objective() -> None:
    shares = np.array([0.5, 0.5])
    q = balance_quotients(shares, np.array([3.0, 0.0]))
    np.testing.assert_allclose(q, [0.125, 0.5])
    counts = np.array([[1, 0], [0, 2], [1, 1], [0, 0]], dtype=np.float32)
    # object-weighted mean quotient; no objects -> target-weighted mean quotient
    np.testing.assert_allclose(balance_objective(counts, q, shares), [0.125, 0.5, 0.3125, 0.3125])


def test_dhondt_greedy_reproduces_target_counts() -> None:
    shares = np.array([0.6, 0.3, 0.1])
    chosen = np.zeros(3)
    for _ in range(50):
        chosen[int(np.argmax(balance_quotients(shares, chosen)))] += 1
    np.testing.assert_array_equal(chosen, [30, 15, 5])
