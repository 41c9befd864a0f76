"""Embedding math in one place: L2 normalisation, pairwise distances, k nearest neighbours, PCA.

Selection, the report, the web app and the benchmarks all use these functions, so a kNN or
a PCA means the same thing everywhere. numpy does the work by default; the k-nearest-neighbour
search has three back ends behind one interface:

* ``"numpy"``: exact float32 search in memory-bounded blocks (BLAS matrix products);
* ``"torch"``: the same blocks as torch matrix products, on the CPU or a CUDA device;
* ``"faiss"``: faiss's brute-force search (``faiss.knn``), only where faiss is importable.

:func:`choose_backend` picks one by size and device (the rule is in its docstring). Every back
end returns the same neighbours: a back end only ranks candidates by float32 scores and keeps
the best ``k + KNN_MARGIN`` per query; shared numpy code then recomputes their distances pair
by pair and keeps the ``k`` nearest, equal distances by position. The result is checked
against a float32 error bound, and a query whose margin does not settle it (ties or near-ties
across the margin, e.g. many copies of one embedding) is searched again exactly.

Importing this module imports neither torch nor faiss; each is imported when its back end is
used (the web app and the server must never import torch).
"""

from __future__ import annotations

import importlib.util
import itertools
import math
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

import numpy as np
from numpy.typing import DTypeLike, NDArray

__all__ = [
    "FAISS_MIN_ELEMENTS",
    "KNN_BLOCK_ELEMENTS",
    "KNN_MARGIN",
    "Backend",
    "Metric",
    "Neighbours",
    "PCAResult",
    "choose_backend",
    "faiss_available",
    "knn",
    "l2_normalize",
    "pairwise_distances",
    "pca",
]

Metric: TypeAlias = Literal["euclidean", "cosine"]
Backend: TypeAlias = Literal["auto", "numpy", "torch", "faiss"]

KNN_BLOCK_ELEMENTS: Final = 1 << 24
"""Query x support scores held at once by the kNN search (64 MB of float32)."""
KNN_MARGIN: Final = 4
"""Candidates kept per query beyond ``k`` before the exact re-ranking: the float32 ranking of
different back ends may order near-ties differently, and the margin lets the exact distances
decide among them; a query whose ties reach past the margin is searched again exactly. A wider
margin means fewer second searches but more work per block."""
FAISS_MIN_ELEMENTS: Final = 1 << 23
"""``auto`` uses faiss on the CPU for a support set of at least this many values (N x D), e.g.
65,536 x 128; below it numpy avoids faiss's import. The threshold is not measured: faiss is
optional, not installed in the project's environment, and no recorded run of
``benchmarks/vectors.py`` includes it. Results are the same either way."""

_QUERY_BLOCK: Final = 16384
# pairs whose exact distances are computed at once: 512 KB per float64 operand, in cache
_PAIR_CHUNK_ELEMENTS: Final = 1 << 16
_METRICS: Final = ("euclidean", "cosine")
_BACKENDS: Final = ("auto", "numpy", "torch", "faiss")


# --------------------------------------------------------------------------- normalisation


def l2_normalize(
    x: NDArray[Any],
    *,
    min_norm: float = 0.0,
    backend: Literal["numpy", "torch"] = "numpy",
    reuse_unit: bool = False,
) -> NDArray[np.float32]:
    """``(N, D)`` rows scaled to unit L2 norm, as a new C-contiguous float32 array.

    The rows are converted to float32 first, then divided by their norm. **Zero rows stay
    zero** (they have no direction; dividing by 0 would make NaN). With ``min_norm > 0`` every
    row is divided by ``max(norm, min_norm)`` instead, so rows shorter than ``min_norm`` are
    scaled by ``1 / min_norm`` and do not reach unit length (the rule of the run's
    ``normalized_embeddings.csv``, ``min_norm=1e-12``).

    Args:
        x: ``(N, D)`` array of any real dtype.
        min_norm: See above; 0 divides each non-zero row by its own norm.
        backend: Who computes the norms: ``"numpy"`` (``np.linalg.norm``) or ``"torch"``
            (``torch.linalg.vector_norm``, the selection engine's). The two sum in different
            orders, so about a third of the rows differ in the last bit; each caller keeps
            the one its files were written with.
        reuse_unit: Return ``x`` itself, not a copy, when it already is C-contiguous float32
            with every row norm within 1e-5 of 1 (a 1M x 128 selection then holds one 512 MB
            array, not two).

    Raises:
        ValueError: ``x`` is not 2-D, or ``backend`` is unknown.
    """
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"l2_normalize expects a 2-D (N, D) array, got shape {arr.shape}")
    if backend not in ("numpy", "torch"):
        raise ValueError(f"l2_normalize backend must be 'numpy' or 'torch', got {backend!r}")
    row_norms = _row_norms_torch if backend == "torch" else _row_norms_numpy
    unit_float32 = reuse_unit and arr.dtype == np.float32 and arr.flags.c_contiguous
    if unit_float32 and bool(np.all(np.abs(row_norms(arr) - 1.0) <= 1e-5)):
        return arr
    out = np.array(arr, dtype=np.float32, order="C", copy=True)
    norms = row_norms(out)[:, None]
    # IEEE division rounds the same in numpy and torch: only the norms depend on the back end
    out /= np.maximum(norms, min_norm) if min_norm > 0 else np.where(norms > 0, norms, 1.0)
    return out


def _row_norms_numpy(arr: NDArray[np.float32]) -> NDArray[np.float32]:
    norms: NDArray[np.float32] = np.linalg.norm(arr, axis=1)
    return norms


def _row_norms_torch(arr: NDArray[np.float32]) -> NDArray[np.float32]:
    import torch

    norms: NDArray[np.float32] = torch.linalg.vector_norm(torch.from_numpy(arr), dim=1).numpy()
    return norms


# --------------------------------------------------------------------------- distances


def _check_metric(metric: str) -> None:
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {', '.join(_METRICS)}; got {metric!r}")


def pairwise_distances(
    a: NDArray[Any], b: NDArray[Any] | None = None, *, metric: Metric = "euclidean"
) -> NDArray[np.float64]:
    """``(A, B)`` float64 distances between the rows of ``a`` and those of ``b`` (or ``a``).

    Computed in float64 from the Gram matrix: ``sqrt(max(|a|^2 + |b|^2 - 2 a.b, 0))`` for
    ``"euclidean"``, ``1 - cos(a, b)`` for ``"cosine"`` (a zero row has cosine 0 with
    everything). Without ``b`` the squared norms are the Gram matrix's diagonal, so the
    diagonal of the result is exactly 0. Memory ``A x B`` float64: for samples of points,
    not whole data sets (use :func:`knn` there).

    Args:
        a: ``(A, D)`` points.
        b: ``(B, D)`` points; ``None`` for ``a`` against itself.
        metric: ``"euclidean"`` or ``"cosine"``.
    """
    _check_metric(metric)
    x = np.asarray(a, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"pairwise_distances needs (A, D) points, got shape {x.shape}")
    if metric == "cosine":
        x = l2_normalize(x).astype(np.float64)
    if b is None:
        gram = x @ x.T
        sq_a = sq_b = np.diag(gram)
    else:
        y = np.asarray(b, dtype=np.float64)
        if metric == "cosine":
            y = l2_normalize(y).astype(np.float64)
        if y.ndim != 2 or x.shape[1] != y.shape[1]:
            raise ValueError(f"pairwise_distances: b must be (B, {x.shape[1]}), got {y.shape}")
        gram = x @ y.T
        sq_a, sq_b = (x * x).sum(axis=1), (y * y).sum(axis=1)
    if metric == "cosine":
        out: NDArray[np.float64] = 1.0 - gram
        return out
    d2 = np.maximum(sq_a[:, None] + sq_b[None, :] - 2.0 * gram, 0.0)
    dist: NDArray[np.float64] = np.sqrt(d2)
    return dist


# --------------------------------------------------------------------------- back ends


def faiss_available() -> bool:
    """Whether the optional ``faiss`` package can be imported (without importing it)."""
    return importlib.util.find_spec("faiss") is not None


def _is_cuda(device: object) -> bool:
    return device is not None and str(device).startswith("cuda")


def choose_backend(n: int, d: int, device: object = None) -> Literal["numpy", "torch", "faiss"]:
    """The kNN back end for a support set of ``n`` points of dimension ``d`` on ``device``.

    The rule: a CUDA ``device`` (``"cuda"``, ``"cuda:1"``, a ``torch.device``) -> ``"torch"``
    (the search runs on the GPU); otherwise ``"faiss"`` when ``n * d >= FAISS_MIN_ELEMENTS``
    and faiss is importable; otherwise ``"numpy"``. Small searches stay on numpy, which has
    no import cost and is as fast there.
    """
    if _is_cuda(device):
        return "torch"
    if n * d >= FAISS_MIN_ELEMENTS and faiss_available():
        return "faiss"
    return "numpy"


@dataclass(frozen=True)
class Neighbours:
    """Result of :func:`knn`.

    Attributes:
        indices: ``(Q, k)`` support rows, nearest first (equal distances: lower position in
            the searched list first); ``-1`` where fewer than ``k`` rows were available.
        distances: ``(Q, k)`` their distances (``distance_dtype``), ascending; ``inf`` for
            ``-1``.
    """

    indices: NDArray[np.intp]
    distances: NDArray[np.floating[Any]]


def _smallest(
    score: NDArray[np.float32], rows: NDArray[np.intp], m: int
) -> tuple[NDArray[np.float32], NDArray[np.intp]]:
    """Per query, the ``m`` smallest ``score`` values with their ``rows``, ties by lower row.

    Args:
        score: ``(Q, C)`` scores, ``inf`` for excluded pairs.
        rows: ``(Q, C)`` or ``(C,)`` support rows of the columns.
        m: How many to keep (``m < C``).

    Returns:
        ``(Q, m)`` scores and rows, in no particular order.
    """
    q, c = score.shape
    row_mat = np.broadcast_to(rows, (q, c))
    part = np.argpartition(score, m - 1, axis=1)[:, :m]
    kept = np.take_along_axis(score, part, axis=1)
    kth = kept.max(axis=1)
    # argpartition keeps an arbitrary subset of the values equal to the m-th: where more are
    # equal than fit, take those with the lowest rows instead (one pass to find out).
    n_equal = np.count_nonzero(score == kth[:, None], axis=1)
    n_equal_kept = np.count_nonzero(kept == kth[:, None], axis=1)
    for i in np.flatnonzero(n_equal > n_equal_kept):
        less = np.flatnonzero(score[i] < kth[i])
        equal = np.flatnonzero(score[i] == kth[i])
        equal = equal[np.argsort(row_mat[i, equal], kind="stable")[: m - less.size]]
        part[i] = np.concatenate([less, equal])
    return np.take_along_axis(score, part, axis=1), np.take_along_axis(row_mat, part, axis=1)


def _coarse_scores_numpy(
    q: NDArray[np.float32],
    block: NDArray[np.float32],
    b2: NDArray[np.float32] | None,
    unit: bool,
    cosine: bool,
) -> Any:
    """``(Q, C)`` float32 ranking scores of the support ``block`` for the queries ``q``.

    ``|b|^2 - 2 q.b`` (the order of ``|q - b|``, without the per-query ``|q|^2``), or
    ``-q.b`` for the cosine metric. With ``unit`` the block's rows count as normalised
    without copying them: ``q.b / |b|``, and ``|b|^2`` is 1 (0 for a zero row).

    Args:
        q: ``(Q, D)`` prepared queries (normalised when ``unit``).
        block: ``(C, D)`` float32 support rows as stored.
        b2: ``(C,)`` their squared norms; ``None`` for the cosine metric of rows that already
            have unit length (``unit`` False).
    """
    # in place on the (Q, C) product: each further pass over it costs as much as a row of D
    dots = q @ block.T
    if cosine and not unit:  # rows already of unit length (knn's unit_rows)
        return np.negative(dots, out=dots)
    if b2 is None:
        raise ValueError("the squared norms b2 are needed for this metric")
    if unit:
        scale = np.zeros_like(b2)
        # q.b / |b|, a zero row: cosine 0; times -1 (cosine) or -2 (|b_n|^2 - 2 q.b_n)
        np.divide(-1.0 if cosine else -2.0, np.sqrt(b2), out=scale, where=b2 > 0)
        dots *= scale
        if not cosine:
            dots += (b2 > 0).astype(np.float32)
        return dots
    dots *= np.float32(-2.0)
    dots += b2
    return dots


class _TorchScorer:
    """The block scores as torch matrix products on ``device``; ties resolved by row."""

    def __init__(self, q: NDArray[np.float32], device: object, cosine: bool) -> None:
        import torch

        self.torch = torch
        self.device = torch.device("cpu" if device is None else str(device))
        self.q = torch.from_numpy(q).to(self.device)
        self.cosine = cosine

    def smallest(
        self, block: NDArray[np.float32], rows: NDArray[np.intp], excluded: Any, m: int
    ) -> tuple[NDArray[np.float32], NDArray[np.intp]]:
        torch = self.torch
        b = torch.from_numpy(np.ascontiguousarray(block)).to(self.device)
        score = -(self.q @ b.T)
        if not self.cosine:
            score = score.mul_(2.0).add_((b * b).sum(1)[None, :])
        if excluded is not None:
            at = (torch.from_numpy(e).to(self.device) for e in excluded)
            score[tuple(at)] = math.inf
        c = score.shape[1]
        if m >= c:
            return score.cpu().numpy(), np.broadcast_to(rows, score.shape).copy()
        top = torch.topk(score, m + 1, dim=1, largest=False, sorted=True)
        values, cols = top.values, top.indices
        # a tie across the m-th place: the row's lowest-row members of the tie are wanted
        ambiguous = torch.nonzero(values[:, m] == values[:, m - 1]).squeeze(1).cpu().numpy()
        vals_np = values[:, :m].cpu().numpy()
        rows_np = rows[cols[:, :m].cpu().numpy()]
        if ambiguous.size:
            picked = torch.from_numpy(ambiguous).to(self.device)
            sub_v, sub_r = _smallest(score[picked].cpu().numpy(), rows, m)
            vals_np[ambiguous], rows_np[ambiguous] = sub_v, sub_r
        return vals_np, rows_np


def _faiss_smallest(
    q: NDArray[np.float32],
    block: NDArray[np.float32],
    rows: NDArray[np.intp],
    excluded: Any,
    m: int,
    cosine: bool,
) -> tuple[NDArray[np.float32], NDArray[np.intp]]:
    """:func:`_smallest` of the block's scores by faiss's brute-force search."""
    import faiss

    c = block.shape[0]
    n_ex = 0 if excluded is None else 1
    want = min(c, m + 1 + n_ex)
    metric = faiss.METRIC_INNER_PRODUCT if cosine else faiss.METRIC_L2
    dist, cols = faiss.knn(q, np.ascontiguousarray(block), want, metric=metric)
    # faiss's L2 is |q - b|^2; the shared scores leave out |q|^2 (constant per query)
    values = (-dist if cosine else dist - (q * q).sum(1)[:, None]).astype(np.float32)
    if excluded is not None:
        hit = np.zeros((q.shape[0], c), dtype=bool)
        hit[excluded] = True
        drop = np.take_along_axis(hit, np.maximum(cols, 0), axis=1)
        values[drop] = np.inf
        order = np.argsort(values, axis=1, kind="stable")
        values = np.take_along_axis(values, order, axis=1)
        cols = np.take_along_axis(cols, order, axis=1)
    if m >= c:
        return _smallest_all(values, cols, rows, c)
    # ties across the m-th place, or too few returned to know: numpy decides those queries
    ambiguous = np.flatnonzero((values[:, m] == values[:, m - 1]) | (cols[:, m - 1] < 0))
    vals_out = values[:, :m].copy()
    rows_out = rows[np.maximum(cols[:, :m], 0)]
    if ambiguous.size:
        b2 = np.einsum("ij,ij->i", block, block)
        score = _coarse_scores_numpy(q[ambiguous], block, b2, False, cosine)
        if excluded is not None:
            sel = np.isin(excluded[0], ambiguous)
            where = np.searchsorted(ambiguous, excluded[0][sel])
            score[where, excluded[1][sel]] = np.inf
        sub_v, sub_r = _smallest(score, rows, m)
        vals_out[ambiguous], rows_out[ambiguous] = sub_v, sub_r
    return vals_out, rows_out


def _smallest_all(
    values: NDArray[np.float32], cols: NDArray[np.int64], rows: NDArray[np.intp], c: int
) -> tuple[NDArray[np.float32], NDArray[np.intp]]:
    """All ``c`` columns of a block that fits whole (``-1`` columns padded as ``inf``)."""
    q = values.shape[0]
    out_v = np.full((q, c), np.inf, dtype=np.float32)
    out_r = np.broadcast_to(rows, (q, c)).copy()
    valid = cols[:, :c] >= 0
    qi, j = np.nonzero(valid)
    out_v[qi, cols[qi, j]] = values[qi, j]
    return out_v, out_r


# --------------------------------------------------------------------------- kNN


def knn(
    query: NDArray[Any],
    support: NDArray[Any],
    k: int,
    *,
    metric: Metric = "euclidean",
    normalize: bool = False,
    support_rows: NDArray[np.integer[Any]] | None = None,
    exclude_self: bool = False,
    query_ids: NDArray[np.integer[Any]] | None = None,
    backend: Backend = "auto",
    device: object = None,
    distance_dtype: DTypeLike = np.float64,
    unit_rows: bool = False,
) -> Neighbours:
    """The ``k`` rows of ``support`` nearest to each row of ``query``, exactly.

    Memory is bounded: queries are taken 16,384 at a time and support rows in blocks (``Q x
    block`` float32 scores, at most :data:`KNN_BLOCK_ELEMENTS`, never ``Q x N``), and
    normalised block by block when ``normalize`` is set, so ``support`` may be a memory map
    and is never copied whole. Cost ``Q x C x D`` multiply-adds.

    The search ranks by float32 scores, keeps the best ``k + KNN_MARGIN`` per query, then
    recomputes their distances in ``distance_dtype`` from the (normalised) rows and returns
    the ``k`` nearest. Ties, in both steps, go to the lower position in the searched list:
    the lower row of ``support``, or the earlier entry of ``support_rows``. The result does
    not depend on the back end.

    Args:
        query: ``(Q, D)`` points to search from.
        support: ``(N, D)`` points to search among.
        k: Neighbours per query.
        metric: ``"euclidean"`` (``|a - b|``) or ``"cosine"`` (``1 - cos(a, b)``; a zero row
            has cosine 0 with everything).
        normalize: L2-normalise the rows of both first (:func:`l2_normalize`, zero rows stay
            zero): ``"euclidean"`` then is the distance between directions, in [0, 2].
        support_rows: Search only these rows of ``support``, in this order for ties
            (``None``: all). Returned indices are rows of ``support`` either way.
        exclude_self: A query never finds the support row equal to its id (``query_ids``;
            by default its position, for ``knn(x, x, k, exclude_self=True)``). Another row
            with the same vector is still found, at distance 0.
        query_ids: ``(Q,)`` support row of each query, for ``exclude_self``.
        backend: ``"numpy"``, ``"torch"``, ``"faiss"`` or ``"auto"`` (:func:`choose_backend`).
        device: torch device for the torch back end (default CPU).
        distance_dtype: float64 (default): distances of float64 copies of the rows; float32:
            distances of the float32 rows.
        unit_rows: The rows of both already have unit length or are zero (as
            :func:`l2_normalize` returns them): ``normalize`` and ``"cosine"`` then use them
            as they are (``cos = a.b``) instead of normalising every block again.

    Returns:
        :class:`Neighbours`; ``-1`` at distance ``inf`` where fewer than ``k`` rows remain.

    Raises:
        ValueError: bad shapes, ``k < 0``, an unknown metric or back end, or faiss asked for
            but not installed.
    """
    _check_metric(metric)
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(_BACKENDS)}; got {backend!r}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    q_raw = np.asarray(query)
    if q_raw.ndim != 2 or support.ndim != 2 or q_raw.shape[1] != support.shape[1]:
        raise ValueError(
            f"knn needs query (Q, D) and support (N, D); got {q_raw.shape} and {support.shape}"
        )
    n_q = q_raw.shape[0]
    ids: NDArray[np.intp] | None = None
    if exclude_self:
        ids = (
            np.arange(n_q, dtype=np.intp)
            if query_ids is None
            else np.asarray(query_ids, dtype=np.intp).reshape(-1)
        )
        if ids.shape != (n_q,):
            raise ValueError(f"query_ids must have one id per query ({n_q}), got {ids.shape}")
    cand = None if support_rows is None else np.asarray(support_rows, dtype=np.intp).reshape(-1)
    n_cand = support.shape[0] if cand is None else cand.size
    dist_dtype = np.dtype(distance_dtype)
    if dist_dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"distance_dtype must be float32 or float64, got {dist_dtype}")
    if backend == "auto":
        backend = choose_backend(n_cand, support.shape[1], device)
    if backend == "faiss" and not faiss_available():
        raise ValueError("backend='faiss' needs the faiss-cpu package; use 'numpy' or 'torch'")
    indices = np.full((n_q, k), -1, dtype=np.intp)
    distances = np.full((n_q, k), np.inf, dtype=dist_dtype)
    if n_q == 0 or k == 0:
        return Neighbours(indices, distances)
    unit = (normalize or metric == "cosine") and not unit_rows
    for q0 in range(0, n_q, _QUERY_BLOCK):
        q1 = min(n_q, q0 + _QUERY_BLOCK)
        found_r, found_d = _knn_block(
            q_raw[q0:q1],
            support,
            cand,
            n_cand,
            None if ids is None else ids[q0:q1],
            k,
            unit=unit,
            cosine=metric == "cosine",
            backend=backend,
            device=device,
            dist_dtype=dist_dtype,
        )
        indices[q0:q1], distances[q0:q1] = found_r, found_d
    return Neighbours(indices, distances)


def _prepared(x: NDArray[Any], unit: bool) -> NDArray[np.float32]:
    """Rows as C-contiguous float32, L2-normalised when ``unit``."""
    if unit:
        return l2_normalize(x)
    return np.ascontiguousarray(x, dtype=np.float32)


def _exact_rows(x: NDArray[Any], unit: bool, dtype: np.dtype[Any]) -> NDArray[Any]:
    """Rows for the exact distances: L2-normalised in float32 then cast, or cast."""
    return l2_normalize(x).astype(dtype) if unit else np.asarray(x, dtype=dtype)


def _score_tolerance(backend: str, dim: int) -> float:
    """Relative error bound of the float32 ranking scores (of the scale ``(|q| + |b|)^2``).

    A float32 dot product of ``D`` terms is off by at most about ``D`` units of float32
    rounding (2^-24) of the scale, far less in practice (blocked sums); the score doubles
    it. torch set to TF32 matrix products (``set_float32_matmul_precision`` below "highest")
    keeps only 10 mantissa bits, hence the wide bound there.
    """
    if backend == "torch":
        import torch

        if torch.get_float32_matmul_precision() != "highest":
            return 1e-2
    return max(1e-5, 2.0 * dim * 2.0**-24)


def _knn_block(
    q_raw: NDArray[Any],
    support: NDArray[Any],
    cand: NDArray[np.intp] | None,
    n_cand: int,
    ids: NDArray[np.intp] | None,
    k: int,
    *,
    unit: bool,
    cosine: bool,
    backend: str,
    device: object,
    dist_dtype: np.dtype[Any],
) -> tuple[NDArray[np.intp], NDArray[np.floating[Any]]]:
    """:func:`knn` of one block of at most ``_QUERY_BLOCK`` queries.

    Pass 1 ranks every candidate by a float32 score and keeps the best ``m = k + KNN_MARGIN``
    per query (ties by position); their exact distances give the ``k`` nearest. The result
    is certified: a dropped candidate scored at least the kept ``m``-th score, so its
    distance is at least that score minus the float32 error bound. Queries whose ``k``-th
    exact distance reaches that bound (ties or near-ties across the margin, e.g. many copies
    of one embedding) get pass 2: every candidate whose score could be within the ``k``-th
    distance is collected and ranked by exact distance and position.
    """
    n_q, dim = q_raw.shape
    m = k + KNN_MARGIN
    q = _prepared(q_raw, unit)
    best_s = np.full((n_q, 0), np.inf, dtype=np.float32)
    best_p = np.full((n_q, 0), -1, dtype=np.intp)
    n_excluded = np.zeros(n_q, dtype=np.int64)
    # the largest |b|^2, for the float32 error bound (1 for normalised or unit rows)
    max_b2 = 1.0 if unit or cosine else 0.0
    torch_scorer = _TorchScorer(q, device, cosine) if backend == "torch" else None
    # A query that is also a candidate must not find itself: located by row, not distance.
    q_order = q_sorted = np.zeros(0, dtype=np.intp)
    if ids is not None:
        q_order = np.argsort(ids, kind="stable")
        q_sorted = ids[q_order]
    # Q x step scores and a step x D block (copied when gathered) both stay near the limit
    step = int(np.clip(KNN_BLOCK_ELEMENTS // n_q, 256, max(256, KNN_BLOCK_ELEMENTS // max(dim, 1))))

    def blocks() -> Any:
        """``(positions, float32 block rows as stored, squared norms, exclusions)``."""
        # a small first block gives every query m candidates, hence a threshold, early
        first = min(step, max(1024, 4 * m))
        bounds = [0, *range(first, n_cand, step), n_cand] if n_cand > first else [0, n_cand]
        for start, stop in itertools.pairwise(bounds):
            # candidates are ranked by position in the searched list (= row without cand)
            positions = np.arange(start, stop, dtype=np.intp)
            if cand is None:
                rows = positions
                block = np.ascontiguousarray(support[start:stop], dtype=np.float32)
            else:
                rows = cand[start:stop]
                block = np.ascontiguousarray(support[rows], dtype=np.float32)
            excluded = None
            if ids is not None and cand is None:
                # the block is the row range [start, stop): O(Q) instead of O(block)
                inside = (
                    (ids >= positions[0]) & (ids <= positions[-1]) if positions.size else ids < 0
                )
                excluded = (np.flatnonzero(inside), ids[inside] - start)
            elif ids is not None:
                pos = np.minimum(np.searchsorted(q_sorted, rows), n_q - 1)
                hit = np.flatnonzero(q_sorted[pos] == rows)
                excluded = (q_order[pos[hit]], hit)
            # one pass (einsum) for the norms, not needed for the dot products of unit rows
            b2 = None if cosine and not unit else np.einsum("ij,ij->i", block, block)
            yield positions, block, b2, excluded

    for positions, block, b2, excluded in blocks():
        if block.shape[0] and b2 is not None and not unit:
            max_b2 = max(max_b2, float(b2.max()))
        if unit and backend != "numpy":
            block = _prepared(block, True)
        if excluded is not None:
            n_excluded += np.bincount(excluded[0], minlength=n_q)
        if torch_scorer is not None:
            s, p = torch_scorer.smallest(block, positions, excluded, m)
        elif backend == "faiss":
            s, p = _faiss_smallest(q, block, positions, excluded, m, cosine)
        else:
            score = _coarse_scores_numpy(q, block, b2, unit, cosine)
            if excluded is not None:
                score[excluded] = np.inf
            if best_s.shape[1] == m:
                # only what beats a query's m-th best so far can enter (a tie loses: its
                # position is higher): one comparison per score instead of a partition
                thr = best_s.max(axis=1)
                hit = np.flatnonzero(score.min(axis=1) < thr)
                qi, cj = np.nonzero(score[hit] < thr[hit, None])
                qi = hit[qi]
                best_s, best_p = _merge(best_s, best_p, qi, score[qi, cj], positions[cj], m)
                continue
            if positions.size > m:
                s, p = _smallest(score, positions, m)
            else:
                s, p = score, np.broadcast_to(positions, score.shape)
        all_s = np.concatenate([best_s, s], axis=1)
        all_p = np.concatenate([best_p, p], axis=1)
        if all_s.shape[1] > m:
            best_s, best_p = _smallest(all_s, all_p, m)
        else:
            best_s, best_p = all_s, all_p

    found = (best_p >= 0) & np.isfinite(best_s)
    qi, kj = np.nonzero(found)
    exact = np.full(best_p.shape, np.inf, dtype=dist_dtype)
    if qi.size:
        exact[qi, kj] = _pair_distances(
            q_raw, support, cand, qi, best_p[qi, kj], unit, cosine, dist_dtype
        )
    out_p, out_d = _k_best(np.where(found, best_p, -1), exact, k)

    dropped = (n_cand - n_excluded) > best_p.shape[1]
    if k == 0 or not dropped.any():
        return _rows_of(out_p, cand), out_d
    # certify the queries that dropped candidates; the others hold every candidate
    q64 = q.astype(np.float64)
    q2 = (q64 * q64).sum(axis=1)
    s_m = np.where(found, best_s, -np.inf).max(axis=1).astype(np.float64)
    d_k = out_d[:, k - 1].astype(np.float64)
    tol = _score_tolerance(backend, dim) * (np.sqrt(q2) + math.sqrt(max_b2)) ** 2
    if cosine:
        bound, threshold = 1.0 + s_m - tol, d_k - 1.0 + tol
    else:
        bound, threshold = s_m + q2 - tol, d_k * d_k - q2 + tol
        d_k = d_k * d_k
    unsure = np.flatnonzero(dropped & ~(d_k < bound))
    if unsure.size == 0:
        return _rows_of(out_p, cand), out_d

    # pass 2: all candidates that may lie within the k-th distance, for the unsure queries
    slot = np.full(n_q, -1, dtype=np.intp)
    slot[unsure] = np.arange(unsure.size)
    got_q: list[NDArray[np.intp]] = []
    got_p: list[NDArray[np.intp]] = []
    for positions, block, b2, excluded in blocks():
        score = _coarse_scores_numpy(q[unsure], block, b2, unit, cosine)
        if excluded is not None:
            mine = slot[excluded[0]] >= 0
            score[slot[excluded[0][mine]], excluded[1][mine]] = np.inf
        a_i, c_j = np.nonzero(score <= threshold[unsure, None])
        got_q.append(a_i.astype(np.intp))
        got_p.append(positions[c_j])
    pq, pp = np.concatenate(got_q), np.concatenate(got_p)
    dist = _pair_distances(q_raw, support, cand, unsure[pq], pp, unit, cosine, dist_dtype)
    order = np.lexsort((pp, dist, pq))
    pq, pp, dist = pq[order], pp[order], dist[order]
    starts = np.searchsorted(pq, np.arange(unsure.size + 1))
    for a, query in enumerate(unsure):
        lo, hi = starts[a], min(starts[a + 1], starts[a] + k)
        out_p[query] = -1
        out_d[query] = np.inf
        out_p[query, : hi - lo] = pp[lo:hi]
        out_d[query, : hi - lo] = dist[lo:hi]
    return _rows_of(out_p, cand), out_d


def _merge(
    best_s: NDArray[np.float32],
    best_p: NDArray[np.intp],
    qi: NDArray[np.intp],
    s: NDArray[np.float32],
    p: NDArray[np.intp],
    m: int,
) -> tuple[NDArray[np.float32], NDArray[np.intp]]:
    """The ``m`` best per query of the kept ``(Q, m)`` and new ``(query, score, position)``
    triples, by (score, position); ``inf``/``-1`` where fewer.

    ``qi`` must be ascending (as ``np.nonzero`` gives it). Only the queries with new triples
    are sorted again, each in a row of its kept ``m`` and its new triples: once the first
    blocks have set the thresholds, most queries get none from a block, and sorting every
    query's ``m`` again was most of the search's time (2.6 of 6.2 s for 20,000 x 128).
    """
    if qi.size == 0:
        return best_s, best_p
    hit, first, counts = np.unique(qi, return_index=True, return_counts=True)
    width = m + int(counts.max())
    scores = np.full((hit.size, width), np.inf, dtype=np.float32)
    places = np.full((hit.size, width), -1, dtype=np.intp)
    scores[:, :m], places[:, :m] = best_s[hit], best_p[hit]
    row = np.repeat(np.arange(hit.size), counts)
    col = m + np.arange(qi.size) - np.repeat(first, counts)
    scores[row, col], places[row, col] = s, p
    order = np.lexsort((places, scores), axis=1)[:, :m]
    out_s, out_p = best_s.copy(), best_p.copy()
    out_s[hit] = np.take_along_axis(scores, order, axis=1)
    out_p[hit] = np.take_along_axis(places, order, axis=1)
    return out_s, out_p


def _pair_distances(
    q_raw: NDArray[Any],
    support: NDArray[Any],
    cand: NDArray[np.intp] | None,
    qi: NDArray[np.intp],
    positions: NDArray[np.intp],
    unit: bool,
    cosine: bool,
    dtype: np.dtype[Any],
) -> NDArray[np.floating[Any]]:
    """Exact distance of each pair (query ``qi[j]``, candidate at ``positions[j]``).

    Computed pair by pair (row norms of differences), so a pair's distance has the same bits
    whichever pass or back end found it. Each distinct row is converted (and normalised)
    once, and the pairs go through in chunks of :data:`_PAIR_CHUNK_ELEMENTS` values: a row's
    conversion and a pair's sum do not depend on the other rows, so the bits are those of
    one pair at a time, without ``(pairs, D)`` float64 copies of both sides (for 5,000 x
    784-d and k = 15, 0.6 GB each and 90 % of the search's time).
    """
    rows = positions if cand is None else cand[positions]
    q_ids, q_at = np.unique(qi, return_inverse=True)
    s_ids, s_at = np.unique(rows, return_inverse=True)
    a_rows = _exact_rows(q_raw[q_ids], unit, dtype)
    b_rows = _exact_rows(support[s_ids], unit, dtype)
    out: NDArray[np.floating[Any]] = np.empty(qi.size, dtype=dtype)
    step = max(1, _PAIR_CHUNK_ELEMENTS // max(1, a_rows.shape[1]))
    for start in range(0, qi.size, step):
        stop = min(qi.size, start + step)
        a = a_rows[q_at[start:stop]]
        b = b_rows[s_at[start:stop]]
        if cosine:
            out[start:stop] = 1.0 - (a * b).sum(axis=1)
        else:
            out[start:stop] = np.linalg.norm(a - b, axis=1)
    return out


def _k_best(
    positions: NDArray[np.intp], exact: NDArray[np.floating[Any]], k: int
) -> tuple[NDArray[np.intp], NDArray[np.floating[Any]]]:
    """Per query the ``k`` candidates of least (distance, position); ``-1``/``inf`` padding."""
    n_q, n_found = positions.shape
    ties = np.where(positions >= 0, positions, np.iinfo(np.intp).max)
    order = np.lexsort((ties, exact), axis=1)[:, :k]
    out_p = np.full((n_q, k), -1, dtype=np.intp)
    out_d = np.full((n_q, k), np.inf, dtype=exact.dtype)
    take = min(k, n_found)
    out_p[:, :take] = np.take_along_axis(positions, order, axis=1)
    out_d[:, :take] = np.take_along_axis(exact, order, axis=1)
    return out_p, out_d


def _rows_of(positions: NDArray[np.intp], cand: NDArray[np.intp] | None) -> NDArray[np.intp]:
    """Support rows of positions in the searched list (``-1`` stays ``-1``)."""
    if cand is None:
        return positions
    return np.where(positions >= 0, cand[np.maximum(positions, 0)], -1)


# --------------------------------------------------------------------------- PCA


@dataclass(frozen=True)
class PCAResult:
    """Result of :func:`pca`.

    Attributes:
        coords: ``(N, n_components)`` projections of all rows: float32 for the ``"svd"``
            solver, float64 for ``"sklearn"``.
        explained_variance_ratio: ``(n_components,)`` float64 share of the fit set's variance.
        components: ``(n_components, D)`` float64 unit directions, each with its largest
            loading (by absolute value) positive.
        mean: ``(D,)`` float64 mean of the fit set (the centre).
        n_fit: Rows the components were fitted on.
    """

    coords: NDArray[np.floating[Any]]
    explained_variance_ratio: NDArray[np.float64]
    components: NDArray[np.float64]
    mean: NDArray[np.float64]
    n_fit: int


def pca(
    x: NDArray[Any],
    n_components: int = 2,
    *,
    solver: Literal["svd", "sklearn"] = "svd",
    max_fit_rows: int | None = None,
    seed: int = 0,
) -> PCAResult:
    """Principal components of the rows of ``x`` (``N >= n_components + 1``, ``D >= n_components``).

    Both solvers centre on the fit set's mean and flip each component's sign so that its
    largest loading is positive (the same data always gives the same picture):

    * ``"svd"``: LAPACK SVD of the centred float64 fit set; the fit set is all rows, or a
      seeded subsample of ``max_fit_rows`` (``np.random.default_rng(seed)``, sorted) when
      there are more. Every row is projected in float32 (``x @ W - mean @ W``): the web app's
      map of up to millions of points.
    * ``"sklearn"``: :class:`sklearn.decomposition.PCA` (its automatic solver, seeded with
      ``seed``) on float64 rows, all fitted; float64 coordinates: the report's scatter plot.

    Raises:
        ValueError: too few rows or columns, an unknown solver, or ``max_fit_rows`` with the
            sklearn solver.
    """
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.shape[0] < n_components + 1 or arr.shape[1] < n_components:
        raise ValueError(
            f"pca of {n_components} components needs (N, D) with N > {n_components} and "
            f"D >= {n_components}; got shape {arr.shape}"
        )
    if solver == "sklearn":
        if max_fit_rows is not None:
            raise ValueError("pca: max_fit_rows is for solver='svd' only")
        from sklearn.decomposition import PCA

        model = PCA(n_components=n_components, random_state=seed)
        coords = np.asarray(model.fit_transform(np.asarray(arr, dtype=np.float64)), np.float64)
        return PCAResult(
            coords,
            np.asarray(model.explained_variance_ratio_, dtype=np.float64),
            np.asarray(model.components_, dtype=np.float64),
            np.asarray(model.mean_, dtype=np.float64),
            int(arr.shape[0]),
        )
    if solver != "svd":
        raise ValueError(f"pca solver must be 'svd' or 'sklearn', got {solver!r}")
    x32 = np.asarray(arr, dtype=np.float32)
    n = x32.shape[0]
    if max_fit_rows is not None and n > max_fit_rows:
        rng = np.random.default_rng(seed)
        fit = x32[np.sort(rng.choice(n, size=max_fit_rows, replace=False))].astype(np.float64)
    else:
        fit = x32.astype(np.float64)
    mean = fit.mean(axis=0)
    _, s, vt = np.linalg.svd(fit - mean, full_matrices=False)
    components = vt[:n_components]
    picks = np.argmax(np.abs(components), axis=1)
    signs = np.sign(components[np.arange(n_components), picks])
    components = components * np.where(signs == 0, 1.0, signs)[:, None]
    variance = s**2
    total = float(variance.sum())
    ratio = variance[:n_components] / total if total > 0 else np.zeros(n_components)
    comp32 = components.T.astype(np.float32)
    coords32 = (x32 @ comp32 - (mean @ components.T).astype(np.float32)).astype(np.float32)
    return PCAResult(
        coords32, np.asarray(ratio, dtype=np.float64), components, mean, int(fit.shape[0])
    )
