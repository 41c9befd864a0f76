"""Collapse figures: references computed by hand on tiny arrays, and the verdict on a
collapsed set (one vector plus tiny noise) against a random Gaussian one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from selfsup.utils.embedding_stats import (
    MIN_EFFECTIVE_RANK,
    MIN_SCALED_STD,
    EmbeddingStats,
    collapse_verdict,
    effective_rank,
    embedding_stats,
    std_of_l2_normalized,
)


def test_std_of_l2_normalized_by_hand() -> None:
    # Rows normalise to (1, 0), (0, 1), (1, 0), (0, 1): each column is 1, 0, 1, 0 with mean
    # 1/2 and population std 1/2, so the mean over the two columns is 1/2.
    emb = np.array([[3.0, 0.0], [0.0, 2.0], [5.0, 0.0], [0.0, 0.5]])
    assert std_of_l2_normalized(emb) == pytest.approx(0.5)


def test_std_of_l2_normalized_collapsed_is_zero() -> None:
    emb = np.tile(np.array([[1.0, 2.0, 3.0]]), (5, 1)) * np.arange(1, 6)[:, None]
    # Same direction at different lengths: the normalised rows are equal.
    assert std_of_l2_normalized(emb) == pytest.approx(0.0, abs=1e-12)


def test_std_of_l2_normalized_uniform_sphere_is_one_over_sqrt_d() -> None:
    rng = np.random.default_rng(0)
    d = 64
    emb = rng.standard_normal((20000, d))
    assert std_of_l2_normalized(emb) * math.sqrt(d) == pytest.approx(1.0, abs=0.02)


def test_effective_rank_by_hand() -> None:
    # Normalised rows (1, 0) twice and (0, 1) once: singular values sqrt(2) and 1, so
    # p = (sqrt(2), 1) / (sqrt(2) + 1) and erank = exp(-sum p log p).
    emb = np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 7.0]])
    s = np.array([math.sqrt(2.0), 1.0])
    p = s / s.sum()
    expected = math.exp(-float(np.sum(p * np.log(p))))
    assert effective_rank(emb) == pytest.approx(expected)


def test_effective_rank_extremes() -> None:
    assert effective_rank(np.ones((4, 3))) == pytest.approx(1.0)
    # Orthonormal rows: equal singular values, erank = Q = 3.
    assert effective_rank(np.eye(3) * np.array([[2.0], [3.0], [4.0]])) == pytest.approx(3.0)
    assert effective_rank(np.zeros((4, 3))) == 0.0


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        std_of_l2_normalized(np.zeros(3))
    with pytest.raises(ValueError, match="NaN or inf"):
        effective_rank(np.array([[1.0, np.nan]]))


def test_collapsed_set_gets_the_warning() -> None:
    rng = np.random.default_rng(1)
    emb = np.tile(rng.standard_normal((1, 32)), (200, 1)) + 1e-4 * rng.standard_normal((200, 32))
    stats = embedding_stats(emb)
    assert stats.scaled_std < MIN_SCALED_STD
    assert stats.effective_rank < MIN_EFFECTIVE_RANK
    verdict = collapse_verdict(stats)
    assert verdict is not None
    assert "collapsed" in verdict
    assert "lr" in verdict
    assert "model.weights" in verdict
    report = stats.to_json()
    assert report["collapsed"] is True
    assert report["warning"] == verdict


def test_random_gaussian_set_is_healthy() -> None:
    emb = np.random.default_rng(2).standard_normal((200, 32)).astype(np.float32)
    stats = embedding_stats(emb)
    assert stats.dim == 32
    assert stats.n_samples == 200
    assert collapse_verdict(stats) is None
    assert stats.to_json()["collapsed"] is False


def test_each_threshold_alone_flags() -> None:
    low_std = EmbeddingStats(n_samples=10, dim=16, std_of_l2_normalized=0.01, effective_rank=5.0)
    low_rank = EmbeddingStats(n_samples=10, dim=16, std_of_l2_normalized=0.2, effective_rank=1.2)
    assert collapse_verdict(low_std) is not None
    assert "std" in str(collapse_verdict(low_std))
    assert "effective rank" in str(collapse_verdict(low_rank))
    one = EmbeddingStats(n_samples=1, dim=16, std_of_l2_normalized=0.0, effective_rank=1.0)
    assert collapse_verdict(one) is None


def test_large_sets_are_subsampled() -> None:
    emb = np.random.default_rng(3).standard_normal((50, 4))
    assert embedding_stats(emb, max_rows=10).n_samples == 10
    with pytest.raises(ValueError, match="max_rows"):
        embedding_stats(emb, max_rows=0)
