"""UMAP's fuzzy k-nearest-neighbour graph, computed with numpy.

UMAP (McInnes, Healy & Melville 2018, https://arxiv.org/abs/1802.03426, sec. 3 and
algorithms 2-3) lays out a weighted graph of each point's ``k`` nearest neighbours. For point
``i`` with neighbour distances ``d_i1 <= ... <= d_ik`` (the point itself first, at distance
0), the paper defines

    ρ_i = min { d_ij : d_ij > 0 }                         (distance to the nearest neighbour)
    σ_i such that  Σ_j exp(-max(0, d_ij - ρ_i) / σ_i) = log2(k)           (algorithm 3)
    w_ij = exp(-max(0, d_ij - ρ_i) / σ_i)                 (the directed edge weights)

and symmetrises the directed graph ``A`` by the fuzzy union (probabilistic t-conorm)

    B = A + Aᵀ - A ∘ Aᵀ.

The details follow umap-learn 0.5 (``umap.umap_.smooth_knn_dist`` and
``compute_membership_strengths``), so that the graph is the one umap-learn would build from
the same neighbours: the sum runs over the neighbours after the first column (the point
itself); σ_i is found by 64 bisection steps from 1 (doubling while the upper bound is open),
stopping when the sum is within 1e-5 of log2(k); σ_i is at least 1e-3 times the mean distance
of row ``i`` (of all rows when ρ_i = 0); the edge from a point to itself weighs 0.

Why not umap-learn's own function: its numba kernels compile on the first call in every
process, 9.4 s on the 2-core development machine (plus about 4 s for its neighbour search),
which was most of the report time of a small run. The vectorised form below needs no
compilation; umap-learn still lays the graph out (:func:`selfsup.curation.plots.umap_2d`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = ["fuzzy_union", "membership_strengths", "smooth_knn_dist", "umap_graph"]

_TOLERANCE = 1e-5
_MIN_DIST_SCALE = 1e-3


def smooth_knn_dist(
    distances: NDArray[np.floating[Any]], n_iter: int = 64
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """σ_i and ρ_i of every row (algorithm 3 of the paper, as umap-learn computes them).

    Args:
        distances: ``(N, k)`` distances to each point's ``k`` nearest neighbours, ascending
            per row, the point itself first (distance 0).
        n_iter: Bisection steps.

    Returns:
        ``(sigmas, rhos)``, float32 ``(N,)`` each.
    """
    d = np.asarray(distances, dtype=np.float32)
    if d.ndim != 2 or d.shape[1] < 2:
        raise ValueError(f"distances must be (N, k) with k >= 2, got shape {d.shape}")
    n, k = d.shape
    target = np.log2(k)
    positive = np.where(d > 0, d, np.inf)
    rho = positive.min(axis=1)
    rho = np.where(np.isfinite(rho), rho, 0.0).astype(np.float32)
    shifted = d[:, 1:] - rho[:, None]  # float32, as umap-learn subtracts
    lo = np.zeros(n)
    hi = np.full(n, np.inf)
    mid = np.ones(n)
    active = np.ones(n, dtype=bool)
    for _ in range(n_iter):
        with np.errstate(over="ignore"):
            psum = np.where(shifted > 0, np.exp(-shifted / mid[:, None]), 1.0).sum(axis=1)
        active &= np.abs(psum - target) >= _TOLERANCE
        if not active.any():
            break
        too_big = active & (psum > target)
        too_small = active & ~(psum > target)
        hi = np.where(too_big, mid, hi)
        lo = np.where(too_small, mid, lo)
        halved = (lo + hi) / 2.0
        mid = np.where(too_big, halved, mid)
        mid = np.where(too_small, np.where(np.isinf(hi), mid * 2.0, halved), mid)
    sigma = mid.astype(np.float32)
    floor = np.where(
        rho > 0.0, _MIN_DIST_SCALE * d.mean(axis=1), _MIN_DIST_SCALE * d.mean()
    ).astype(np.float32)
    return np.maximum(sigma, floor), rho


def membership_strengths(
    indices: NDArray[np.integer[Any]],
    distances: NDArray[np.floating[Any]],
    sigmas: NDArray[np.floating[Any]],
    rhos: NDArray[np.floating[Any]],
) -> sp.csr_matrix:
    """The directed graph ``A``: ``A[i, indices[i, j]] = w_ij`` (0 for the point itself),
    float32 ``(N, N)`` sparse, zero entries dropped."""
    idx = np.asarray(indices, dtype=np.int64)
    d = np.asarray(distances, dtype=np.float32)
    n, k = idx.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    shifted = d - np.asarray(rhos, dtype=np.float32)[:, None]
    sig = np.asarray(sigmas, dtype=np.float32)[:, None]
    with np.errstate(divide="ignore", over="ignore"):
        weights = np.where((shifted <= 0) | (sig == 0), 1.0, np.exp(-(shifted / sig)))
    weights = np.where(idx == np.arange(n)[:, None], 0.0, weights).astype(np.float32)
    keep = idx.reshape(-1) >= 0  # -1: fewer than k neighbours found
    graph = sp.csr_matrix(
        (weights.reshape(-1)[keep], (rows[keep], idx.reshape(-1)[keep])), shape=(n, n)
    )
    graph.eliminate_zeros()
    return graph


def fuzzy_union(graph: sp.csr_matrix) -> sp.csr_matrix:
    """``B = A + Aᵀ - A ∘ Aᵀ`` of a square sparse ``A``, zero entries dropped."""
    transpose = graph.transpose().tocsr()
    union = (graph + transpose - graph.multiply(transpose)).tocsr()
    union.eliminate_zeros()
    return union


def umap_graph(
    indices: NDArray[np.integer[Any]], distances: NDArray[np.floating[Any]]
) -> sp.coo_matrix:
    """UMAP's symmetric fuzzy graph of ``N`` points from their ``(N, k)`` nearest neighbours
    (indices and ascending distances, each point itself first), as float32 ``(N, N)`` COO,
    the form ``umap.umap_.simplicial_set_embedding`` lays out."""
    sigmas, rhos = smooth_knn_dist(distances)
    return fuzzy_union(membership_strengths(indices, distances, sigmas, rhos)).tocoo()
