"""Tests of selfsup.utils.vectors: normalisation, distances, kNN on every back end, PCA.

The references are written here with explicit loops over rows and pairs (float64), so they
share nothing with the vectorised code under test but the definitions.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from _imports import loaded_after
from selfsup.utils import vectors
from selfsup.utils.vectors import (
    choose_backend,
    faiss_available,
    knn,
    l2_normalize,
    pairwise_distances,
    pca,
)

BACKENDS = [
    "numpy",
    "torch",
    pytest.param(
        "faiss", marks=pytest.mark.skipif(not faiss_available(), reason="faiss not installed")
    ),
]


def _data(n: int, d: int, seed: int, *, dup: int = 0, zero: int = 0) -> NDArray[np.float32]:
    """Gaussian rows, ``dup`` of them overwritten by copies of others, ``zero`` set to 0."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    if dup:
        x[rng.integers(0, n, dup)] = x[rng.integers(0, n, dup)]
    if zero:
        x[rng.integers(0, n, zero)] = 0.0
    return x


def _ref_unit(row: NDArray[Any]) -> list[float]:
    """One row scaled to unit length by a loop in float64; a zero row stays zero."""
    norm = math.sqrt(sum(float(v) * float(v) for v in row))
    return [float(v) / norm if norm > 0 else 0.0 for v in row]


def _ref_distance(a: list[float], b: list[float], metric: str) -> float:
    if metric == "cosine":
        return 1.0 - sum(x * y for x, y in zip(a, b, strict=True))
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def _ref_knn(
    query: NDArray[Any],
    support: NDArray[Any],
    k: int,
    *,
    metric: str,
    normalize: bool,
    support_rows: NDArray[np.intp] | None,
    query_ids: NDArray[np.intp] | None,
) -> tuple[list[list[int]], list[list[float]]]:
    """The k nearest by explicit loops: every pair's distance, sorted by (distance, position).

    Rows are normalised as :func:`l2_normalize` does (float32 result) when the metric or
    ``normalize`` asks for it, so the reference sees the same points as the code under test.
    """
    unit = normalize or metric == "cosine"
    q_pts = l2_normalize(query) if unit else query.astype(np.float32)
    s_pts = l2_normalize(support) if unit else support.astype(np.float32)
    searched = list(range(len(support))) if support_rows is None else list(support_rows)
    rows_out, dist_out = [], []
    for i in range(len(query)):
        a = [float(v) for v in q_pts[i]]
        scored = []
        for pos, r in enumerate(searched):
            if query_ids is not None and r == query_ids[i]:
                continue
            scored.append((_ref_distance(a, [float(v) for v in s_pts[r]], metric), pos, r))
        scored.sort()
        best = scored[:k]
        rows_out.append([r for _, _, r in best] + [-1] * (k - len(best)))
        dist_out.append([d for d, _, _ in best] + [math.inf] * (k - len(best)))
    return rows_out, dist_out


# --------------------------------------------------------------------------- l2_normalize


def test_l2_normalize_matches_a_loop_and_keeps_zero_rows_zero() -> None:
    x = _data(50, 7, 0, zero=5).astype(np.float64)
    out = l2_normalize(x)
    assert out.dtype == np.float32
    assert out.flags.c_contiguous
    want = np.array([_ref_unit(row) for row in x.astype(np.float32)])
    np.testing.assert_allclose(out, want, atol=1e-6)
    zero = ~x.any(axis=1)
    assert zero.any()
    assert np.all(out[zero] == 0.0)
    np.testing.assert_allclose(np.linalg.norm(out[~zero], axis=1), 1.0, atol=1e-6)


def test_l2_normalize_min_norm_divides_by_at_least_min_norm() -> None:
    x = np.array([[3.0, 4.0], [1e-14, 0.0], [0.0, 0.0]], dtype=np.float32)
    out = l2_normalize(x, min_norm=1e-12)
    np.testing.assert_allclose(out[0], [0.6, 0.8], rtol=1e-6)
    # a row shorter than min_norm is divided by min_norm, not brought to unit length
    assert out[1, 0] == pytest.approx(np.float32(1e-14) / np.float32(1e-12), rel=1e-6)
    assert np.all(out[2] == 0.0)


def test_l2_normalize_does_not_modify_or_alias_its_input() -> None:
    x = _data(10, 4, 1)
    before = x.copy()
    out = l2_normalize(x)
    assert out is not x
    assert np.array_equal(x, before)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_l2_normalize_reuses_unit_float32_input_only_when_asked(backend: Any) -> None:
    unit = l2_normalize(_data(20, 6, 2))
    assert l2_normalize(unit, backend=backend, reuse_unit=True) is unit
    assert l2_normalize(unit, backend=backend) is not unit
    not_unit = _data(20, 6, 2)
    assert l2_normalize(not_unit, backend=backend, reuse_unit=True) is not not_unit


def test_l2_normalize_torch_backend_uses_torch_norms() -> None:
    # the selection engine's normalisation, bit for bit: torch.linalg.vector_norm
    x = _data(300, 33, 3, zero=3)
    out = l2_normalize(x, backend="torch")
    t = torch.from_numpy(x.copy())
    norms = torch.linalg.vector_norm(t, dim=1, keepdim=True)
    want = (t / torch.where(norms > 0, norms, torch.ones_like(norms))).numpy()
    assert out.tobytes() == want.tobytes()
    np.testing.assert_allclose(out, l2_normalize(x), atol=1e-6)


def test_l2_normalize_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="2-D"):
        l2_normalize(np.ones(3))
    with pytest.raises(ValueError, match="backend"):
        l2_normalize(np.ones((2, 2)), backend="faiss")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- pairwise


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_pairwise_distances_match_loops(metric: Any) -> None:
    a = _data(9, 5, 4, zero=1).astype(np.float64)
    b = _data(6, 5, 5).astype(np.float64)
    got = pairwise_distances(a, b, metric=metric)
    assert got.shape == (9, 6)
    assert got.dtype == np.float64
    if metric == "cosine":
        pa = [_ref_unit(r) for r in a]
        pb = [_ref_unit(r) for r in b]
    else:
        pa, pb = [list(map(float, r)) for r in a], [list(map(float, r)) for r in b]
    want = [[_ref_distance(x, y, metric) for y in pb] for x in pa]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_pairwise_distances_of_a_set_with_itself_has_an_exact_zero_diagonal() -> None:
    a = l2_normalize(_data(40, 8, 6)).astype(np.float64)
    got = pairwise_distances(a)
    assert np.all(np.diag(got) == 0.0)
    np.testing.assert_allclose(got, got.T, atol=1e-12)
    np.testing.assert_allclose(got, pairwise_distances(a, a), atol=1e-6)


def test_pairwise_distances_reject_bad_shapes_and_metrics() -> None:
    with pytest.raises(ValueError, match=r"\(A, D\)"):
        pairwise_distances(np.ones(3))
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        pairwise_distances(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="metric"):
        pairwise_distances(np.ones((2, 3)), metric="manhattan")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- kNN


CASES = [
    # name, n, d, dup, zero, k, metric, normalize, exclude, subset
    ("plain", 300, 8, 0, 0, 5, "euclidean", False, False, None),
    ("normalised self", 300, 8, 60, 4, 6, "euclidean", True, True, None),
    ("cosine subset", 400, 5, 80, 3, 4, "cosine", False, False, "sorted"),
    ("unsorted subset", 400, 6, 120, 0, 7, "euclidean", True, True, "shuffled"),
    ("k beyond n", 12, 3, 4, 1, 20, "euclidean", True, True, None),
    ("one dim", 200, 1, 50, 0, 3, "euclidean", False, True, None),
    # six support blocks of 256: queries merge new candidates (and copies) five times
    ("many blocks", 1500, 4, 300, 0, 8, "euclidean", False, True, None),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_knn_matches_the_loop_reference_on_every_backend(
    case: tuple[Any, ...], backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, n, d, dup, zero, k, metric, normalize, exclude, subset = case
    # small blocks: several support blocks (256 rows) and query blocks (16 queries)
    monkeypatch.setattr(vectors, "KNN_BLOCK_ELEMENTS", 1)
    monkeypatch.setattr(vectors, "_QUERY_BLOCK", 16)
    # and exact distances a few pairs at a time
    monkeypatch.setattr(vectors, "_PAIR_CHUNK_ELEMENTS", 20)
    # crc32, not hash(): str hashes change per process, and a failure must reproduce
    x = _data(n, d, zlib.crc32(name.encode()) % 1000, dup=dup, zero=zero)
    rng = np.random.default_rng(7)
    # zero rows among the queries too: from one, every unit row is at distance 1 up to
    # rounding, a near-tie of all rows that the float32 ranking cannot order
    zero_rows = np.flatnonzero(~x.any(axis=1))[:2]
    q_ids = np.union1d(rng.choice(n, min(n, 40), replace=False), zero_rows).astype(np.intp)
    rows: NDArray[np.intp] | None = None
    if subset is not None:
        rows = np.sort(rng.choice(n, n * 2 // 3, replace=False)).astype(np.intp)
        if subset == "shuffled":
            rows = rng.permutation(rows)
    got = knn(
        x[q_ids],
        x,
        k,
        metric=metric,
        normalize=normalize,
        support_rows=rows,
        exclude_self=exclude,
        query_ids=q_ids,
        backend=backend,
    )
    want_rows, want_d = _ref_knn(
        x[q_ids],
        x,
        k,
        metric=metric,
        normalize=normalize,
        support_rows=rows,
        query_ids=q_ids if exclude else None,
    )
    assert got.indices.shape == (q_ids.size, k)
    assert got.distances.dtype == np.float64
    np.testing.assert_array_equal(got.indices, want_rows)
    np.testing.assert_allclose(got.distances, want_d, atol=1e-6)


def test_knn_breaks_exact_ties_by_row_on_every_backend() -> None:
    # 20 points, 30 copies each: every query has 29 neighbours at distance 0, and the k
    # returned must be the lowest rows among them whatever the back end ranks first
    base = _data(20, 16, 8)
    x = np.tile(base, (30, 1))  # row r is a copy of row r % 20
    results = []
    for backend in ["numpy", "torch"] + (["faiss"] if faiss_available() else []):
        got = knn(x, x, 5, exclude_self=True, backend=backend)  # type: ignore[arg-type]
        results.append(got)
        for i in range(x.shape[0]):
            copies = [r for r in range(i % 20, x.shape[0], 20) if r != i]
            assert got.indices[i].tolist() == copies[:5], (backend, i)
        assert np.all(got.distances == 0.0)
    for other in results[1:]:
        np.testing.assert_array_equal(other.indices, results[0].indices)
        assert other.distances.tobytes() == results[0].distances.tobytes()


def test_knn_exclude_self_excludes_by_id_not_by_distance() -> None:
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    got = knn(x, x, 2, exclude_self=True)
    assert got.indices.tolist() == [[1, 2], [0, 2], [0, 1]]
    assert got.distances[0, 0] == 0.0  # the other copy is found, at distance 0
    kept = knn(x, x, 1)
    assert kept.indices[:, 0].tolist() == [0, 0, 2]  # itself (or the lower copy) when allowed


def test_knn_pads_missing_neighbours_and_handles_empty_input() -> None:
    x = _data(3, 2, 9)
    got = knn(x[:1], x, 5, exclude_self=True, support_rows=np.array([0, 2]))
    assert got.indices.tolist() == [[2, -1, -1, -1, -1]]
    assert np.all(np.isinf(got.distances[0, 1:]))
    empty = knn(x[:0], x, 3)
    assert empty.indices.shape == (0, 3)
    assert knn(x, x, 0).indices.shape == (3, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_unit_rows_skips_normalising_but_finds_the_same(backend: Any) -> None:
    x = l2_normalize(_data(500, 9, 14, dup=50))
    for metric in ("cosine", "euclidean"):
        plain = knn(x, x, 4, metric=metric, normalize=True, exclude_self=True, backend=backend)
        fast = knn(
            x, x, 4, metric=metric, normalize=True, exclude_self=True, backend=backend,
            unit_rows=True,
        )  # fmt: skip
        np.testing.assert_array_equal(fast.indices, plain.indices)
        np.testing.assert_allclose(fast.distances, plain.distances, atol=1e-6)


def test_knn_float32_distances_are_the_float32_norms() -> None:
    x = l2_normalize(_data(100, 12, 10))
    got = knn(x[:5], x, 3, exclude_self=True, distance_dtype=np.float32)
    assert got.distances.dtype == np.float32
    for i in range(5):
        want = np.linalg.norm(x[got.indices[i]] - x[i], axis=1)
        assert got.distances[i].tobytes() == want.tobytes()


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_knn_distances_have_the_bits_of_each_pair_alone(
    metric: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rows are normalised once each and pairs summed 3 at a time: neither may change a
    # pair's bits, which must not depend on which search or back end found the pair
    monkeypatch.setattr(vectors, "_PAIR_CHUNK_ELEMENTS", 3 * 24)
    x = _data(200, 24, 15, dup=20)
    got = knn(x, x, 6, metric=metric, normalize=True, exclude_self=True)
    for i in range(0, 200, 7):
        a = l2_normalize(x[i : i + 1]).astype(np.float64)
        for j, found in zip(got.indices[i], got.distances[i], strict=True):
            b = l2_normalize(x[j : j + 1]).astype(np.float64)
            cos = 1.0 - (a * b).sum(axis=1)
            alone = cos if metric == "cosine" else np.linalg.norm(a - b, axis=1)
            assert np.float64(found).tobytes() == alone[0].tobytes(), (i, j)


def test_knn_rejects_bad_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    x = _data(10, 3, 11)
    with pytest.raises(ValueError, match="metric"):
        knn(x, x, 1, metric="l1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backend"):
        knn(x, x, 1, backend="annoy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be"):
        knn(x, x, -1)
    with pytest.raises(ValueError, match=r"\(Q, D\)"):
        knn(x[:, :2], x, 1)
    with pytest.raises(ValueError, match="query_ids"):
        knn(x, x, 1, exclude_self=True, query_ids=np.arange(3))
    with pytest.raises(ValueError, match="distance_dtype"):
        knn(x, x, 1, distance_dtype=np.int32)
    monkeypatch.setattr(vectors, "faiss_available", lambda: False)
    with pytest.raises(ValueError, match="faiss-cpu"):
        knn(x, x, 1, backend="faiss")


def test_choose_backend_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    big = vectors.FAISS_MIN_ELEMENTS // 128
    assert choose_backend(10, 128, "cuda") == "torch"
    assert choose_backend(10, 128, torch.device("cuda", 1)) == "torch"
    assert choose_backend(10, 128) == "numpy"
    monkeypatch.setattr(vectors, "faiss_available", lambda: True)
    assert choose_backend(big, 128) == "faiss"
    assert choose_backend(big - 1, 128, "cpu") == "numpy"
    monkeypatch.setattr(vectors, "faiss_available", lambda: False)
    assert choose_backend(big, 128) == "numpy"


def test_importing_vectors_imports_neither_torch_nor_faiss() -> None:
    code = (
        "import selfsup.utils.vectors as v\n"
        "import numpy as np\n"
        "v.knn(np.ones((3, 2)), np.ones((3, 2)), 1, backend='numpy')\n"
        "v.pca(np.random.default_rng(0).normal(size=(5, 3)))"
    )
    assert loaded_after(code, ["torch", "faiss", "sklearn"]) == []


# --------------------------------------------------------------------------- PCA


def _ref_pca(x: NDArray[Any], n_components: int) -> tuple[NDArray[Any], NDArray[Any]]:
    """Components and variance ratios from the covariance matrix built by loops."""
    rows = [[float(v) for v in r] for r in x]
    n, d = len(rows), len(rows[0])
    mean = [sum(r[j] for r in rows) / n for j in range(d)]
    cov = [
        [sum((r[a] - mean[a]) * (r[b] - mean[b]) for r in rows) / (n - 1) for b in range(d)]
        for a in range(d)
    ]
    values, vectors_ = np.linalg.eigh(np.array(cov))
    order = np.argsort(values)[::-1][:n_components]
    comps = vectors_[:, order].T
    for c in comps:  # the sign convention: largest loading positive
        c *= np.sign(c[np.argmax(np.abs(c))])
    return comps, values[order] / values.sum()


@pytest.mark.parametrize("solver", ["svd", "sklearn"])
def test_pca_matches_the_covariance_reference(solver: Any) -> None:
    rng = np.random.default_rng(12)
    x = (rng.standard_normal((60, 5)) * [5.0, 3.0, 1.0, 0.5, 0.1]).astype(np.float32)
    got = pca(x, 3, solver=solver)
    comps, ratio = _ref_pca(x, 3)
    np.testing.assert_allclose(got.components, comps, atol=1e-6)
    np.testing.assert_allclose(got.explained_variance_ratio, ratio, atol=1e-9)
    np.testing.assert_allclose(got.mean, x.astype(np.float64).mean(axis=0), atol=1e-9)
    want = (x.astype(np.float64) - x.astype(np.float64).mean(axis=0)) @ comps.T
    np.testing.assert_allclose(got.coords, want, atol=1e-4)
    assert got.coords.dtype == (np.float32 if solver == "svd" else np.float64)
    assert got.n_fit == 60


def test_pca_fits_on_a_seeded_subsample_and_projects_every_row() -> None:
    x = _data(500, 6, 13)
    a = pca(x, 2, max_fit_rows=100, seed=3)
    b = pca(x, 2, max_fit_rows=100, seed=3)
    assert a.n_fit == 100
    assert a.coords.shape == (500, 2)
    assert a.coords.tobytes() == b.coords.tobytes()
    assert pca(x, 2, max_fit_rows=100, seed=4).coords.tobytes() != a.coords.tobytes()
    assert pca(x, 2, max_fit_rows=1000).n_fit == 500


def test_pca_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="N > 2"):
        pca(np.ones((2, 4)))
    with pytest.raises(ValueError, match="solver"):
        pca(np.ones((5, 4)), solver="eigh")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_fit_rows"):
        pca(np.ones((5, 4)), solver="sklearn", max_fit_rows=3)
