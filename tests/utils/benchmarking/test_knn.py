"""Tests of selfsup.utils.benchmarking.knn: the weighted kNN vote of InstDisc."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from selfsup.utils.benchmarking import knn_accuracy, knn_predict, knn_scores


def reference_scores(
    queries: np.ndarray, bank: np.ndarray, labels: np.ndarray, c: int, k: int, t: float
) -> np.ndarray:
    """InstDisc's weighted kNN, one query at a time: w_c = sum over top-k of exp(s_i / t)."""
    out = np.zeros((len(queries), c))
    for q, query in enumerate(queries):
        sims = [
            float(query @ bank[i]) / (np.linalg.norm(query) * np.linalg.norm(bank[i]))
            for i in range(len(bank))
        ]
        order = sorted(range(len(bank)), key=lambda i: -sims[i])[:k]
        for i in order:
            out[q, labels[i]] += math.exp(sims[i] / t)
    return out


def _random_problem(
    seed: int, n: int = 40, m: int = 9, d: int = 5, c: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, d)), rng.normal(size=(n, d)), rng.integers(0, c, size=n)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 50), t=st.sampled_from([0.05, 0.1, 1.0]))
def test_knn_predict_matches_brute_force(seed: int, k: int, t: float) -> None:
    queries, bank, labels = _random_problem(seed)
    expected = reference_scores(queries, bank, labels, 4, k, t)
    q = F.normalize(torch.from_numpy(queries), dim=1)
    b = F.normalize(torch.from_numpy(bank), dim=1).t()
    y = torch.from_numpy(labels)
    scores = knn_scores(q, b, y, 4, k, t).numpy()
    # knn_scores divides each row by exp(s_max / t); compare the per-row distributions.
    np.testing.assert_allclose(
        scores / scores.sum(1, keepdims=True), expected / expected.sum(1, keepdims=True), rtol=1e-9
    )
    predicted = knn_predict(q, b, y, 4, k, t).numpy()
    assert predicted.shape == (9, 4)
    assert sorted(predicted[0].tolist()) == [0, 1, 2, 3]
    np.testing.assert_array_equal(predicted[:, 0], expected.argmax(1))
    ordered = np.take_along_axis(expected, predicted, axis=1)
    assert np.all(np.diff(ordered, axis=1) <= 1e-12 * expected.max())


def test_knn_predict_small_temperature_does_not_overflow() -> None:
    queries, bank, labels = _random_problem(3)
    q = F.normalize(torch.from_numpy(queries).float(), dim=1)
    b = F.normalize(torch.from_numpy(bank).float(), dim=1).t()
    scores = knn_scores(q, b, torch.from_numpy(labels), 4, 10, 0.005)
    assert torch.isfinite(scores).all()
    # With t -> 0 the nearest neighbour dominates: prediction = 1-NN label.
    nearest = (q @ b).argmax(dim=1)
    assert torch.equal(scores.argmax(dim=1), torch.from_numpy(labels)[nearest])


def test_knn_k_larger_than_bank_uses_whole_bank() -> None:
    queries, bank, labels = _random_problem(4, n=6)
    q = F.normalize(torch.from_numpy(queries), dim=1)
    b = F.normalize(torch.from_numpy(bank), dim=1).t()
    got = knn_scores(q, b, torch.from_numpy(labels), 4, 200, 0.1).numpy()
    expected = reference_scores(queries, bank, labels, 4, 6, 0.1)
    np.testing.assert_allclose(
        got / got.sum(1, keepdims=True), expected / expected.sum(1, keepdims=True), rtol=1e-9
    )


def test_knn_predict_rejects_bad_shapes() -> None:
    q = torch.randn(3, 5)
    with pytest.raises(ValueError, match=r"\(D, N\)"):
        knn_predict(q, torch.randn(7, 5), torch.zeros(7, dtype=torch.long), 2)
    with pytest.raises(ValueError, match=r"feature_labels"):
        knn_predict(q, torch.randn(5, 7), torch.zeros(6, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="knn_k"):
        knn_predict(q, torch.randn(5, 7), torch.zeros(7, dtype=torch.long), 2, knn_k=0)
    with pytest.raises(ValueError, match="knn_t"):
        knn_predict(q, torch.randn(5, 7), torch.zeros(7, dtype=torch.long), 2, knn_t=0.0)


def test_knn_predict_does_not_mutate_inputs_and_keeps_device() -> None:
    q = F.normalize(torch.randn(4, 3), dim=1)
    b = F.normalize(torch.randn(10, 3), dim=1).t().contiguous()
    y = torch.arange(10) % 3
    copies = (q.clone(), b.clone(), y.clone())
    out = knn_predict(q, b, y, 3, 5)
    assert out.device == q.device
    assert out.dtype == torch.long
    for before, after in zip(copies, (q, b, y), strict=True):
        assert torch.equal(before, after)


# --------------------------------------------------------------------------------------
# knn_accuracy
# --------------------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch_size=st.integers(1, 12), k=st.integers(1, 30))
def test_knn_accuracy_matches_brute_force_for_any_batch_size(
    seed: int, batch_size: int, k: int
) -> None:
    queries, bank, labels = _random_problem(seed, n=30, m=11, c=3)
    test_labels = np.random.default_rng(seed + 1).integers(0, 3, size=11)
    expected_pred = reference_scores(queries, bank, labels, 3, k, 0.1).argmax(1)
    expected = float(np.mean(expected_pred == test_labels))
    got = knn_accuracy(bank, labels, queries, test_labels, k=k, t=0.1, batch_size=batch_size)
    assert got == pytest.approx(expected)


def test_knn_accuracy_is_scale_invariant_and_accepts_tensors() -> None:
    queries, bank, labels = _random_problem(7)
    test_labels = np.arange(9) % 4
    a = knn_accuracy(bank, labels, queries, test_labels, k=5)
    b = knn_accuracy(
        torch.from_numpy(bank * 17.0).float(),
        torch.from_numpy(labels),
        torch.from_numpy(queries * 0.01).float(),
        torch.from_numpy(test_labels),
        k=5,
    )
    assert a == b


def test_knn_accuracy_separable_and_adversarial() -> None:
    centers = np.eye(3) * 10
    rng = np.random.default_rng(0)
    train_y = np.repeat(np.arange(3), 20)
    train_x = centers[train_y] + rng.normal(size=(60, 3))
    test_y = np.repeat(np.arange(3), 5)
    test_x = centers[test_y] + rng.normal(size=(15, 3))
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=10) == 1.0
    assert knn_accuracy(train_x, train_y, test_x, (test_y + 1) % 3, k=10) == 0.0


def test_knn_accuracy_validates_inputs() -> None:
    x = np.zeros((4, 2))
    y = np.zeros(4, dtype=int)
    with pytest.raises(ValueError, match="one D"):
        knn_accuracy(x, y, np.zeros((2, 3)), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="one entry per row"):
        knn_accuracy(x, y[:3], x, y)
    with pytest.raises(ValueError, match="empty"):
        knn_accuracy(x, y, np.zeros((0, 2)), np.zeros(0, dtype=int))
    with pytest.raises(ValueError, match=">= 0"):
        knn_accuracy(x, y - 1, x, y)
