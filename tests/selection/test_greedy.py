"""The greedy engine against brute-force references written here from the definitions."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from selfsup.selection import greedy
from selfsup.selection.greedy import BalanceTerm, greedy_select, min_squared_distances
from selfsup.selection.objectives import OBJECTIVE_FLOOR, l2_normalize


def unit_rows(n: int, d: int, seed: int) -> NDArray[np.float32]:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    out: NDArray[np.float32] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def brute_kcenter(x: NDArray[np.float32], k: int, preselected: list[int]) -> list[int]:
    """Farthest-point traversal with the full distance matrix (ties -> lowest index)."""
    xd = x.astype(np.float64)
    dist = np.sqrt(((xd[:, None, :] - xd[None, :, :]) ** 2).sum(-1))
    chosen = list(preselected)
    picks: list[int] = []
    for _ in range(k):
        if chosen:
            d = dist[:, chosen].min(axis=1)
            d[chosen] = -1.0
            p = int(np.argmax(d))
        else:
            p = 0
        picks.append(p)
        chosen.append(p)
    return picks


def run_diversity(
    x: NDArray[np.float32],
    k: int,
    engine: greedy.Engine,
    preselected: list[int] | None = None,
    min_distance: float | None = None,
    device: str = "auto",
) -> greedy.GreedyResult:
    pre = np.asarray(preselected or [], dtype=np.int64)
    cand = np.ones(x.shape[0], dtype=bool)
    cand[pre] = False
    return greedy_select(
        embeddings=x,
        diversity_strength=1.0,
        static_score=np.zeros(x.shape[0]),
        balance=[],
        candidates=cand,
        preselected=pre,
        max_new=k,
        min_distance=min_distance,
        engine=engine,
        device=device,
    )


@pytest.mark.parametrize("engine", ["lazy", "dense"])
@pytest.mark.parametrize("preselected", [[], [3], [7, 0, 11]])
def test_kcenter_matches_brute_force(engine: greedy.Engine, preselected: list[int]) -> None:
    x = unit_rows(60, 5, seed=1)
    want = brute_kcenter(x, 15, preselected)
    got = run_diversity(x, 15, engine, preselected)
    assert got.indices.tolist() == want
    assert not set(got.indices.tolist()) & set(preselected)
    assert got.stop_reason == "n_samples"


def test_lazy_with_tiny_blocks_matches_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    # blocks of a handful of rows/centers force many refills and partial refreshes
    monkeypatch.setattr(greedy, "ROW_BLOCK", 7)
    monkeypatch.setattr(greedy, "CENTER_BLOCK", 3)
    monkeypatch.setattr(greedy, "CANDIDATE_BLOCK", 5)
    x = unit_rows(150, 4, seed=2)
    assert run_diversity(x, 40, "lazy", [9]).indices.tolist() == brute_kcenter(x, 40, [9])


def test_distances_are_the_distance_to_the_nearest_earlier_pick() -> None:
    x = unit_rows(80, 6, seed=3)
    res = run_diversity(x, 10, "lazy", [5])
    chosen = [5]
    for p, d in zip(res.indices.tolist(), res.distances.tolist(), strict=True):
        want = min(float(np.linalg.norm(x[p].astype(np.float64) - x[c])) for c in chosen)
        assert d == pytest.approx(want, abs=1e-4)
        chosen.append(p)
    # farthest-point traversal: the pick distances never increase
    assert np.all(np.diff(res.distances) <= 1e-6)


def test_first_pick_without_preselected_has_infinite_distance() -> None:
    res = run_diversity(unit_rows(10, 3, seed=4), 3, "lazy")
    assert res.indices[0] == 0
    assert math.isinf(res.distances[0])


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(4, 9),
    k=st.integers(1, 3),
    dim=st.integers(1, 3),
)
def test_kcenter_is_a_two_approximation(seed: int, n: int, k: int, dim: int) -> None:
    """Gonzalez: the greedy coverage radius is at most twice the optimal one."""
    x = l2_normalize(np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32))
    xd = x.astype(np.float64)
    dist = np.sqrt(((xd[:, None, :] - xd[None, :, :]) ** 2).sum(-1))
    picks = run_diversity(x, k, "lazy").indices.tolist()
    greedy_radius = dist[:, picks].min(axis=1).max()
    optimal = min(dist[:, list(c)].min(axis=1).max() for c in itertools.combinations(range(n), k))
    assert greedy_radius <= 2.0 * optimal + 1e-5


def test_min_distance_stops_and_keeps_picks_apart() -> None:
    x = unit_rows(300, 3, seed=5)
    for engine in ("lazy", "dense"):
        res = run_diversity(x, 300, engine, [1], min_distance=0.5)
        assert res.stop_reason == "min_distance"
        chosen = np.r_[1, res.indices]
        xd = x.astype(np.float64)
        pair = np.sqrt(((xd[chosen, None] - xd[None, chosen]) ** 2).sum(-1))
        np.fill_diagonal(pair, np.inf)
        assert pair.min() >= 0.5 - 1e-5
        # every sample is covered: nothing farther than min_distance remains
        cover = np.sqrt(((xd[:, None] - xd[None, chosen]) ** 2).sum(-1)).min(axis=1)
        assert cover.max() < 0.5 + 1e-5
        assert res.n_below_min_distance == 300 - chosen.size


def test_stops_when_candidates_are_exhausted() -> None:
    x = unit_rows(12, 3, seed=6)
    res = run_diversity(x, 100, "lazy", [2, 3])
    assert res.stop_reason == "exhausted"
    assert sorted(res.indices.tolist()) == [i for i in range(12) if i not in (2, 3)]


def test_min_squared_distances_matches_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(greedy, "ROW_BLOCK", 9)
    monkeypatch.setattr(greedy, "CENTER_BLOCK", 4)
    x, c = unit_rows(50, 8, seed=7), unit_rows(11, 8, seed=8)
    want = ((x[:, None].astype(np.float64) - c[None]) ** 2).sum(-1).min(axis=1)
    np.testing.assert_allclose(min_squared_distances(x, c), want, atol=1e-5)
    assert np.all(np.isinf(min_squared_distances(x, c[:0])))


def reference_combined(
    x: NDArray[np.float32] | None,
    a: float,
    static: NDArray[np.float64],
    labels: NDArray[np.int64] | None,
    shares: NDArray[np.float64] | None,
    strength_b: float,
    cand: NDArray[np.bool_],
    pre: list[int],
    k: int,
    min_distance: float | None,
) -> list[int]:
    """The documented objective, evaluated naively in float64 for every sample at every step."""
    n = static.shape[0]
    alive = cand.copy()
    chosen = list(pre)
    picks: list[int] = []
    for _ in range(k):
        score = static.copy()
        if x is not None and chosen:
            xd = x.astype(np.float64)
            d2 = ((xd[:, None] - xd[None, chosen]) ** 2).sum(-1).min(axis=1)
            if min_distance is not None:
                alive &= d2 >= min_distance**2
            score += a / 2 * np.log(np.maximum(d2, OBJECTIVE_FLOOR**2))
        if labels is not None and shares is not None:
            got = np.bincount(labels[chosen], minlength=shares.size)
            q = shares / (got + 1.0)
            score += strength_b * np.log(np.maximum(q[labels], OBJECTIVE_FLOOR))
        score[~alive] = -np.inf
        if not np.isfinite(score.max()):
            break
        p = int(np.argmax(score))
        picks.append(p)
        chosen.append(p)
        alive[p] = False
    assert len(set(picks)) == len(picks) <= n
    return picks


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    use_div=st.booleans(),
    use_balance=st.booleans(),
    n_pre=st.integers(0, 3),
    min_distance=st.sampled_from([None, 0.6]),
    block=st.sampled_from([4, 32768]),
)
def test_lazy_and_dense_engines_match_the_reference(
    seed: int,
    use_div: bool,
    use_balance: bool,
    n_pre: int,
    min_distance: float | None,
    block: int,
) -> None:
    rng = np.random.default_rng(seed)
    n, k = 70, 25
    x = unit_rows(n, 3, seed)
    static = np.log(rng.uniform(0.05, 1.0, n)) * rng.uniform(0.1, 2.0)
    labels = rng.integers(0, 3, n)
    shares = np.array([0.6, 0.3, 0.1])
    pre = rng.choice(n, n_pre, replace=False).tolist()
    cand = rng.random(n) > 0.2
    cand[pre] = False
    md = min_distance if use_div else None
    want = reference_combined(
        x if use_div else None,
        1.5,
        static,
        labels if use_balance else None,
        shares,
        2.0,
        cand,
        pre,
        k,
        md,
    )
    onehot = np.eye(3, dtype=np.float32)[labels]
    balance = [BalanceTerm(onehot, shares, 2.0)] if use_balance else []
    old = greedy.CANDIDATE_BLOCK
    greedy.CANDIDATE_BLOCK = block
    try:
        for engine in ("lazy", "dense"):
            got = greedy_select(
                embeddings=x if use_div else None,
                diversity_strength=1.5 if use_div else 0.0,
                static_score=static,
                balance=balance,
                candidates=cand,
                preselected=np.asarray(pre, dtype=np.int64),
                max_new=k,
                min_distance=md,
                engine=engine,
            )
            assert got.indices.tolist() == want, engine
    finally:
        greedy.CANDIDATE_BLOCK = old


def test_lazy_engine_refuses_multi_label_balance() -> None:
    counts = np.array([[2, 0], [0, 1], [1, 1]], dtype=np.float32)
    term = BalanceTerm(counts, np.array([0.5, 0.5]), 1.0)
    kwargs = {
        "embeddings": None,
        "diversity_strength": 0.0,
        "static_score": np.zeros(3),
        "balance": [term],
        "candidates": np.ones(3, dtype=bool),
        "preselected": np.zeros(0, dtype=np.int64),
        "max_new": 2,
        "min_distance": None,
    }
    with pytest.raises(ValueError, match="single-label"):
        greedy_select(**kwargs, engine="lazy")  # type: ignore[arg-type]
    assert greedy_select(**kwargs).indices.size == 2  # type: ignore[arg-type]


def test_chunked_path_equals_unchunked_on_200k(monkeypatch: pytest.MonkeyPatch) -> None:
    """200,000 x 32: tiny blocks give the same picks as the default ones and as dense."""
    x = unit_rows(200_000, 32, seed=9)
    default = run_diversity(x, 60, "lazy", [17])
    monkeypatch.setattr(greedy, "ROW_BLOCK", 1000)
    monkeypatch.setattr(greedy, "CENTER_BLOCK", 7)
    monkeypatch.setattr(greedy, "CANDIDATE_BLOCK", 300)
    largest = [0]
    addmm = torch.addmm

    def recording_addmm(*args: Any, **kwargs: Any) -> torch.Tensor:
        out = addmm(*args, **kwargs)
        largest[0] = max(largest[0], out.numel())
        return out

    monkeypatch.setattr(torch, "addmm", recording_addmm)
    chunked = run_diversity(x, 60, "lazy", [17])
    # distance blocks stay ROW_BLOCK x CENTER_BLOCK: nothing close to N x N is ever built
    assert 0 < largest[0] <= 1000 * 7
    assert chunked.indices.tolist() == default.indices.tolist()
    np.testing.assert_allclose(chunked.distances, default.distances, rtol=1e-6)
    dense = run_diversity(x, 60, "dense", [17])
    assert dense.indices.tolist() == default.indices.tolist()


# ------------------------------------------------------------------ devices and memory maps


def tied_rows(seed: int) -> NDArray[np.float32]:
    """Unit rows where every fourth row repeats an earlier one: exact distance ties."""
    x = unit_rows(48, 4, seed)
    x[3::4] = x[0:12]
    return x


@pytest.mark.parametrize("engine", ["lazy", "dense"])
@pytest.mark.parametrize("seed", range(4))
def test_torch_cpu_device_matches_numpy_reference_with_ties(
    engine: greedy.Engine, seed: int
) -> None:
    x = tied_rows(seed)
    got = run_diversity(x, 40, engine, [5], device="cpu")
    # 40 picks from 48 rows of which 12 are copies: the last picks are ties at distance 0
    assert got.indices.tolist() == brute_kcenter(x, 40, [5])


@pytest.mark.parametrize("engine", ["lazy", "dense"])
def test_memory_mapped_and_streamed_rows_give_the_same_picks(
    engine: greedy.Engine, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(greedy, "ROW_BLOCK", 7)
    monkeypatch.setattr(greedy, "CANDIDATE_BLOCK", 5)
    x = tied_rows(9)
    want = run_diversity(x, 30, engine, [2]).indices.tolist()
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert run_diversity(mapped, 30, engine, [2]).indices.tolist() == want
    # the streaming path of a GPU too large for the matrix, exercised on the CPU
    monkeypatch.setattr(greedy._Rows, "_keep_whole", lambda self: False)
    assert run_diversity(mapped, 30, engine, [2]).indices.tolist() == want


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(greedy.DEVICE_ENV, raising=False)
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert greedy.resolve_device("auto").type == want
    assert greedy.resolve_device(None).type == want
    monkeypatch.setenv(greedy.DEVICE_ENV, "cpu")
    assert greedy.resolve_device("auto").type == "cpu"
    with pytest.raises(ValueError, match="'auto', 'cpu' or 'cuda"):
        greedy.resolve_device("tpu")
    with pytest.raises(ValueError, match="'auto', 'cpu' or 'cuda"):
        greedy.resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            greedy.resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("engine", ["lazy", "dense"])
def test_cuda_matches_cpu(engine: greedy.Engine) -> None:
    x = unit_rows(3000, 16, seed=4)
    x[1::7] = x[0 : len(x[1::7])]
    scores = np.random.default_rng(0).random(x.shape[0])

    def run(device: str) -> greedy.GreedyResult:
        return greedy_select(
            embeddings=x,
            diversity_strength=1.0,
            static_score=np.log(scores),
            balance=[],
            candidates=np.ones(x.shape[0], dtype=bool),
            preselected=np.asarray([10], dtype=np.int64),
            max_new=300,
            min_distance=None,
            engine=engine,
            device=device,
        )

    cpu, cuda = run("cpu"), run("cuda")
    assert cuda.indices.tolist() == cpu.indices.tolist()
    np.testing.assert_allclose(cuda.distances, cpu.distances, rtol=1e-4, atol=1e-5)
