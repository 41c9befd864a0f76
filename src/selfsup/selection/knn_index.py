"""k-nearest-neighbour distances of every sample, exact or approximate, for TYPICALITY.

Exact kNN over all ``N`` samples costs ``O(N^2 D)``: about 1.3e14 multiply-adds at 1,000,000 x
128, hours on a 2-core CPU (an estimate from the operation count; not timed). Above
:data:`EXACT_KNN_MAX_SAMPLES` samples (``knn="auto"``) the search is approximate instead:

* on a CUDA device up to :data:`GPU_EXACT_MAX_SAMPLES`: still exact, on the GPU;
* otherwise, with faiss installed (``pip install 'selfsup[faiss]'``): an inverted-file index
  (``IndexIVFFlat``, Jegou et al., "Product quantization for nearest neighbor search", 2011,
  without the quantisation): k-means splits the samples into ``nlist ~ 2 sqrt(N)`` lists and
  each query scans the ``nprobe`` lists whose centroids are nearest, so a query compares with
  about ``N nprobe / nlist`` samples instead of ``N``;
* without faiss: the exact search on torch in blocks, on the CUDA device when there is one,
  otherwise on the CPU (slow: the log says so).

Whatever runs is decided before the search and returned as a :class:`KnnRecord` (method,
``N``, the limit, the key that changes it and, for an approximate search, its recall@k against
the exact search on :data:`RECALL_SAMPLE` random samples), which the selection logs before it
starts and keeps in its result.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Final, get_args

import numpy as np
import torch
from numpy.typing import NDArray

from selfsup.selection.strategies import KnnSetting
from selfsup.utils.vectors import faiss_available, knn

__all__ = [
    "EXACT_KNN_MAX_SAMPLES",
    "RECALL_SAMPLE",
    "KnnRecord",
    "knn_distances",
    "plan_knn",
]

KNN_METHODS: Final = get_args(KnnSetting)

EXACT_KNN_MAX_SAMPLES = 100_000
"""``knn="auto"`` searches exactly up to this many samples, approximately above."""
RECALL_SAMPLE = 1000
"""Queries on which an approximate search is compared with the exact one."""
GPU_EXACT_MAX_SAMPLES = 2_000_000
"""On a CUDA device the search stays exact up to this many samples (O(N^2 D) on the GPU)."""
IVF_NPROBE = 8
"""Inverted lists scanned per query."""
IVF_TRAIN_PER_LIST = 40
"""Training samples per inverted list for the k-means of the IVF index."""


@dataclass(frozen=True)
class KnnRecord:
    """How the kNN distances of a strategy were computed.

    Attributes:
        strategy: The strategy, e.g. ``TYPICALITY``.
        method: ``"exact"`` (torch blocks), ``"faiss_ivf"`` (approximate).
        device: Where the search ran (``cpu``, ``cuda``).
        n: Samples searched.
        k: Neighbours per sample.
        limit: :data:`EXACT_KNN_MAX_SAMPLES`.
        requested: The ``knn`` setting (``auto``, ``exact``, ``approximate``).
        key: The config key that changes the choice.
        reason: One sentence: why this method.
        recall_at_k: Mean fraction of the exact k nearest neighbours the search found, over
            ``recall_queries`` random samples; 1.0 for an exact search, None when not measured.
        recall_queries: Samples the recall was measured on.
        params: Index parameters (``nlist``, ``nprobe``) of an approximate search.
    """

    strategy: str
    method: str
    device: str
    n: int
    k: int
    limit: int
    requested: str
    key: str
    reason: str
    recall_at_k: float | None = None
    recall_queries: int = 0
    params: dict[str, int] | None = None

    @property
    def approximate(self) -> bool:
        """Whether the distances are approximate."""
        return self.method != "exact"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (for report.json)."""
        return asdict(self)

    def message(self) -> str:
        """The log line: the strategy, N, the limit, what runs and the key that changes it."""
        text = (
            f"{self.strategy} over N={self.n} samples (exact limit {self.limit}, "
            f"knn={self.requested}): {self.method} kNN on {self.device}; {self.reason}. "
            f"Set {self.key} to change it."
        )
        if self.recall_at_k is not None and self.approximate:
            text += f" recall@{self.k} vs exact on {self.recall_queries}: {self.recall_at_k:.4f}"
        return text


def plan_knn(
    n: int,
    k: int,
    requested: str,
    device: torch.device,
    strategy: str = "TYPICALITY",
    key: str = "selection_config TYPICALITY knn",
) -> KnnRecord:
    """Decide, before any work, how the kNN distances of ``n`` samples are computed.

    Raises:
        ValueError: ``requested`` is not ``auto``, ``exact`` or ``approximate``.
    """
    if requested not in KNN_METHODS:
        raise ValueError(f"{key} must be one of {', '.join(KNN_METHODS)}, got {requested!r}")
    limit = EXACT_KNN_MAX_SAMPLES

    def record(method: str, where: str, reason: str) -> KnnRecord:
        return KnnRecord(strategy, method, where, n, k, limit, requested, key, reason)

    approx = requested == "approximate" or (requested == "auto" and n > limit)
    if not approx:
        reason = (
            f"{n} <= {limit}" if requested == "auto" else "exact asked for"
        ) + ": exact search, O(N^2 D)"
        return record("exact", device.type, reason)
    why = f"{n} > {limit}" if requested == "auto" else "approximate asked for"
    if device.type == "cuda" and n <= GPU_EXACT_MAX_SAMPLES:
        # exact on a GPU beats approximate on the CPU: 1M x 1M x 128 is ~2.6e14 flops
        return record(
            "exact",
            device.type,
            f"{why}, but at most {GPU_EXACT_MAX_SAMPLES} on a GPU: exact blocked search there",
        )
    if faiss_available():
        return record("faiss_ivf", "cpu", f"{why}: faiss IVF index (approximate; recall measured)")
    where = "the GPU" if device.type == "cuda" else "the CPU (slow: install selfsup[faiss] for IVF)"
    return record(
        "exact", device.type, f"{why}, faiss not installed: exact blocked search on {where}"
    )


def knn_distances(
    embeddings: NDArray[np.float32], k: int, plan: KnnRecord, *, seed: int = 0
) -> tuple[NDArray[np.float32], KnnRecord]:
    """``(N, k)`` approximate distances from each sample to its ``k`` nearest other samples.

    The exact search of TYPICALITY is :func:`selfsup.selection.objectives.typicality`; this
    runs the approximate one a :func:`plan_knn` chose, then measures its recall@k against
    :func:`exact_knn` on :data:`RECALL_SAMPLE` random samples.

    Args:
        embeddings: ``(N, D)`` float32 rows (may be a memory map).
        k: Neighbours; ``1 <= k <= N - 1``.
        plan: From :func:`plan_knn`, with an approximate ``method``.
        seed: Seed of the recall sample.

    Returns:
        The distances and ``plan`` with the recall and index parameters filled in.

    Raises:
        ValueError: ``plan`` is an exact search.
    """
    if plan.method != "faiss_ivf":
        raise ValueError(f"knn_distances runs approximate searches, not {plan.method!r}")
    queries = np.random.default_rng(seed).choice(
        embeddings.shape[0], size=min(RECALL_SAMPLE, embeddings.shape[0]), replace=False
    )
    queries.sort()
    dists, found, params = _faiss_ivf(embeddings, k, queries)
    _, exact = exact_knn(embeddings, k, torch.device("cpu"), queries=queries)
    recall = recall_at_k(found, exact)
    return dists, _replace(plan, recall, int(queries.size), params)


def _replace(
    plan: KnnRecord, recall: float, n_queries: int, params: dict[str, int] | None
) -> KnnRecord:
    fields = plan.to_dict()
    fields.update(recall_at_k=recall, recall_queries=n_queries, params=params)
    return KnnRecord(**fields)


def recall_at_k(found: NDArray[np.int64], exact: NDArray[np.int64]) -> float:
    """Mean over rows of ``|found_i & exact_i| / k`` for ``(Q, k)`` neighbour indices."""
    if exact.size == 0:
        return 1.0
    hits = sum(len(set(f.tolist()) & set(e.tolist())) for f, e in zip(found, exact, strict=True))
    return hits / exact.size


def exact_knn(
    embeddings: NDArray[np.float32],
    k: int,
    device: torch.device,
    queries: NDArray[np.int64] | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Exact ``(Q, k)`` distances and indices of the nearest other samples.

    :func:`selfsup.utils.vectors.knn` of the query rows among all rows, each query's own row
    excluded (a duplicate row is still found, at distance 0): blocks of bounded memory, so the
    support may be a memory map; ties go to the lower index.

    Args:
        embeddings: ``(N, D)`` float32 rows.
        k: Neighbours per query.
        device: Torch device of the arithmetic (a CUDA device runs the torch back end).
        queries: Rows to search from (default: all).
    """
    n = embeddings.shape[0]
    q_idx = np.arange(n, dtype=np.int64) if queries is None else np.asarray(queries, np.int64)
    found = knn(
        embeddings[q_idx],
        embeddings,
        k,
        exclude_self=True,
        query_ids=q_idx,
        backend="torch" if device.type == "cuda" else "auto",
        device=device,
        distance_dtype=np.float32,
    )
    return found.distances.astype(np.float32), found.indices.astype(np.int64)


def _faiss_ivf(
    embeddings: NDArray[np.float32], k: int, keep_ids_of: NDArray[np.int64]
) -> tuple[NDArray[np.float32], NDArray[np.int64], dict[str, int]]:
    """Approximate kNN of every row among the others with a faiss IVF-Flat index.

    Returns the ``(N, k)`` distances, the ``(Q, k)`` neighbour indices of the rows
    ``keep_ids_of`` (sorted; all ``N x k`` indices would take 1.6 GB at 10M samples) and the
    index parameters. The index holds its own copy of the rows (``N x D`` float32).
    """
    import faiss

    n, dim = embeddings.shape
    # k-means costs ~ (IVF_TRAIN_PER_LIST nlist) nlist D per iteration, the search
    # N (N / nlist) nprobe D: 2 sqrt(N) lists keep both near N^1.5 D
    nlist = max(1, min(int(2 * math.sqrt(n)), n // IVF_TRAIN_PER_LIST))
    nprobe = min(IVF_NPROBE, nlist)
    rng = np.random.default_rng(0)
    train_ids = np.sort(rng.choice(n, size=min(n, nlist * IVF_TRAIN_PER_LIST), replace=False))
    quantizer = faiss.IndexFlatL2(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_L2)
    index.cp.seed = 0
    index.train(np.ascontiguousarray(embeddings[train_ids]))
    block = 65536
    for r0 in range(0, n, block):
        index.add(np.ascontiguousarray(embeddings[r0 : r0 + block]))
    index.nprobe = nprobe
    dists = np.empty((n, k), dtype=np.float32)
    found = np.empty((keep_ids_of.size, k), dtype=np.int64)
    for r0 in range(0, n, block):
        rows = np.ascontiguousarray(embeddings[r0 : r0 + block])
        d2, ids = index.search(rows, k + 1)
        own = np.arange(r0, r0 + rows.shape[0])[:, None]
        # drop the query itself; where it was not found (duplicates), drop the farthest
        is_self = ids == own
        drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
        keep = np.ones_like(is_self)
        keep[np.arange(rows.shape[0]), drop] = False
        d2 = d2[keep].reshape(-1, k)
        ids = ids[keep].reshape(-1, k)
        # lists holding fewer than k others give -1 at faiss's largest float: that sample
        # comes out as very atypical, which it is (its lists are nearly empty)
        dists[r0 : r0 + rows.shape[0]] = np.sqrt(np.maximum(d2, 0.0))
        lo, hi = np.searchsorted(keep_ids_of, [r0, r0 + rows.shape[0]])
        found[lo:hi] = ids[keep_ids_of[lo:hi] - r0]
    return dists, found, {"nlist": nlist, "nprobe": nprobe}
