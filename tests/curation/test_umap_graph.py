"""selfsup.curation.umap_graph: UMAP's fuzzy graph, checked against the paper's definitions
and against umap-learn's own implementation given the same neighbours."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from selfsup.curation.umap_graph import (
    fuzzy_union,
    membership_strengths,
    smooth_knn_dist,
    umap_graph,
)
from selfsup.utils.vectors import knn


def _neighbours(
    n: int, k: int, seed: int = 0, duplicates: bool = False
) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
    x = np.random.default_rng(seed).normal(size=(n, 8)).astype(np.float32)
    if duplicates:
        x[5:12] = x[0]  # rows at distance 0 from each other
    found = knn(x, x, k, distance_dtype=np.float32)
    return found.indices, found.distances.astype(np.float32)


@pytest.mark.parametrize(("k", "duplicates"), [(5, False), (15, False), (15, True)])
def test_sigma_solves_the_papers_equation(k: int, duplicates: bool) -> None:
    """Algorithm 3: Σ_j exp(-max(0, d_ij - ρ_i) / σ_i) = log2(k) over the neighbours after
    the point itself, with ρ_i the smallest positive distance."""
    _, d = _neighbours(200, k, duplicates=duplicates)
    sigmas, rhos = smooth_knn_dist(d)
    solved = 0
    for i in range(d.shape[0]):
        positive = d[i][d[i] > 0]
        assert rhos[i] == pytest.approx(positive.min())
        shifted = np.maximum(0.0, d[i, 1:].astype(np.float64) - rhos[i])
        total = np.exp(-shifted / float(sigmas[i])).sum()
        floor = 1e-3 * d[i].mean()
        if sigmas[i] > floor * (1 + 1e-6):  # not held up by the minimum σ
            assert total == pytest.approx(np.log2(k), abs=1e-4)
            solved += 1
    assert solved > 0.9 * d.shape[0]  # the floor holds up few rows: the equation is tested


def test_directed_weights_follow_the_definition() -> None:
    idx, d = _neighbours(60, 6, duplicates=True)
    sigmas, rhos = smooth_knn_dist(d)
    graph = membership_strengths(idx, d, sigmas, rhos).toarray()
    expected = np.zeros((60, 60))
    for i in range(60):
        for j, dist in zip(idx[i], d[i], strict=True):
            if j != i:
                expected[i, j] = np.exp(-max(0.0, float(dist) - float(rhos[i])) / float(sigmas[i]))
    np.testing.assert_allclose(graph, expected, rtol=1e-5, atol=1e-7)
    assert np.all(np.diag(graph) == 0)


def test_fuzzy_union_is_the_probabilistic_t_conorm() -> None:
    import scipy.sparse as sp

    rng = np.random.default_rng(1)
    dense = rng.uniform(size=(30, 30)) * (rng.uniform(size=(30, 30)) < 0.2)
    union = fuzzy_union(sp.csr_matrix(dense)).toarray()
    np.testing.assert_allclose(union, dense + dense.T - dense * dense.T)
    np.testing.assert_allclose(union, union.T)


def test_identical_points_get_full_weight_without_nan() -> None:
    """All distances 0: ρ = 0 and σ = 0; umap-learn then gives every edge weight 1."""
    idx = np.array([[0, 1, 2], [1, 0, 2], [2, 0, 1]])
    d = np.zeros((3, 3), dtype=np.float32)
    graph = umap_graph(idx, d).toarray()
    np.testing.assert_array_equal(graph, 1.0 - np.eye(3))


def test_bad_shape_is_refused() -> None:
    with pytest.raises(ValueError, match=r"distances must be \(N, k\) with k >= 2"):
        smooth_knn_dist(np.zeros((4, 1), dtype=np.float32))


@pytest.mark.slow  # umap-learn compiles its numba kernels on the first call (~10 s)
@pytest.mark.parametrize(("k", "duplicates"), [(5, False), (15, True), (30, False)])
def test_equals_umap_learns_graph(k: int, duplicates: bool) -> None:
    from sklearn.utils import check_random_state
    from umap.umap_ import fuzzy_simplicial_set

    idx, d = _neighbours(300, k, seed=k, duplicates=duplicates)
    ours = umap_graph(idx, d).tocsr()
    theirs, _, _ = fuzzy_simplicial_set(
        np.zeros((300, 1), dtype=np.float32),  # unused: the neighbours are given
        k,
        check_random_state(0),
        "euclidean",
        knn_indices=idx,
        knn_dists=d,
    )
    theirs = theirs.tocsr()
    assert ours.nnz == theirs.nnz
    assert abs(ours - theirs).max() < 1e-6
