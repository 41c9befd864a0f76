"""The greedy engine: pick, one sample at a time, the one maximising the combined objective.

At every step the engine picks the candidate ``x`` maximising

    score(x) = static(x) + a/2 * log(d2(x)) + sum_b bal_b(x)

where ``static`` is the (fixed) sum of strength * log(objective) of WEIGHTS, TYPICALITY,
SIMILARITY and RANDOM, ``d2(x)`` the squared distance from ``x`` to the nearest chosen sample
(DIVERSITY with strength ``a``) and ``bal_b`` the term of each BALANCE strategy, which
depends on what was chosen so far. Ties go to the lowest index. With only DIVERSITY this is
exactly k-center greedy (farthest-point traversal, Gonzalez 1985), whose coverage radius is
at most twice the optimal one.

Two implementations return the same picks:

* :func:`_dense_greedy` keeps every score current: one pass over all ``N`` embeddings per
  pick, O(N D) time and memory traffic per step. It is the reference, and the engine for
  BALANCE on multi-label inputs (objects per image).
* :func:`_lazy_greedy` is the fast path. ``d2`` only ever decreases, so a stale ``d2`` is an
  upper bound, and so is the stale score. The engine keeps exact scores for a block of
  *candidates* and stale upper bounds ``u2`` for the rest, with a threshold ``tau`` per
  balance group such that every non-candidate's bound lies below it. A candidate whose exact
  score is at least every group's ``tau + bal`` is the true argmax. When that fails, the
  engine *refills*: it takes the next ``CANDIDATE_BLOCK`` samples by bound, brings their
  distances up to date against all centers added since their last update (one matrix
  product per block, so compute-bound instead of memory-bound), and lowers ``tau``. Samples
  far from the frontier are never touched again and the rest are updated in batches: for
  10,000 picks from 1M x 128 it takes about 100 refills and 15-40 % of the dense loop's
  arithmetic, instead of 10,000 passes over 512 MB.

Memory is bounded by blocks (``ROW_BLOCK x CENTER_BLOCK`` distances at a time, never N x N):
beyond the embeddings, about 25 bytes per sample plus the candidate block.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

import numpy as np
import torch
from numpy.typing import NDArray

from selfsup.selection.objectives import (
    OBJECTIVE_FLOOR,
    balance_objective,
    balance_quotients,
)

__all__ = [
    "DEVICE_ENV",
    "BalanceTerm",
    "GreedyResult",
    "StopReason",
    "greedy_select",
    "min_squared_distances",
    "resolve_device",
]

StopReason: TypeAlias = Literal["n_samples", "min_distance", "exhausted"]
Engine: TypeAlias = Literal["auto", "lazy", "dense"]

# Block sizes; module constants so that tests can shrink them to exercise the chunked paths.
ROW_BLOCK = 4096
"""Rows of embeddings per distance block."""
CENTER_BLOCK = 512
"""Centers per distance block: ``ROW_BLOCK x CENTER_BLOCK`` float32 are held at once (8 MB)."""
CANDIDATE_BLOCK = 32768
"""Samples brought up to date per refill of the lazy engine (doubled when one is not enough)."""
STREAM_BLOCK = 65536
"""Rows copied to a CUDA device at once."""
GPU_RESIDENT_FRACTION = 0.5
"""The embeddings move to the GPU whole when they take at most this share of its free memory."""
DEVICE_ENV: Final = "SELFSUP_SELECTION_DEVICE"
"""Environment variable naming the device of ``device="auto"``: ``cpu``, ``cuda``, ``cuda:1``."""

_FLOOR2: Final = OBJECTIVE_FLOOR * OBJECTIVE_FLOOR  # squared-distance floor: log(d) = log(d2)/2
_OUT: Final = 0
_CAND: Final = 1
_DEAD: Final = 2


@dataclass(frozen=True)
class BalanceTerm:
    """One BALANCE strategy as the engine sees it.

    Attributes:
        counts: ``(N, C)`` objects of each class per sample.
        shares: ``(C,)`` target shares summing to 1.
        strength: Exponent of the objective.
    """

    counts: NDArray[np.float32]
    shares: NDArray[np.float64]
    strength: float


@dataclass(frozen=True)
class GreedyResult:
    """Picks of the greedy engine.

    Attributes:
        indices: ``(k,)`` chosen samples in the order they were chosen.
        distances: ``(k,)`` distance from each pick to the nearest sample chosen before it
            (preselected included); ``inf`` for a first pick without preselected samples, NaN
            for every pick when DIVERSITY is off.
        scores: ``(k,)`` combined score (sum of strength * log objective) at pick time.
        stop_reason: ``"n_samples"`` (``max_new`` reached), ``"min_distance"`` (every remaining
            candidate is closer than ``min_distance`` to a chosen sample) or ``"exhausted"``.
        n_below_min_distance: Candidates dropped for being closer than ``min_distance``.
    """

    indices: NDArray[np.int64]
    distances: NDArray[np.float32]
    scores: NDArray[np.float64]
    stop_reason: StopReason
    n_below_min_distance: int


def _log_d2(d2: torch.Tensor) -> torch.Tensor:
    """``log(max(d2, floor))`` in float64: twice the log objective of DIVERSITY."""
    return torch.log(torch.clamp(d2.double(), min=_FLOOR2))


def _block_min_d2(
    rows: torch.Tensor, rows_x2: torch.Tensor, centers: torch.Tensor, centers_x2: torch.Tensor
) -> torch.Tensor:
    """``(R,)`` min over ``centers`` of squared distances, ``CENTER_BLOCK`` centers at a time."""
    best = torch.full((rows.shape[0],), math.inf, device=rows.device)
    for c0 in range(0, centers.shape[0], CENTER_BLOCK):
        c1 = min(centers.shape[0], c0 + CENTER_BLOCK)
        # ||x||^2 is added after the min: it is constant per row
        part = torch.addmm(centers_x2[c0:c1].unsqueeze(0), rows, centers[c0:c1].T, alpha=-2.0)
        best = torch.minimum(best, part.amin(dim=1))
    return (best + rows_x2).clamp_(min=0.0)


def _row_sq_norms(x: _Rows) -> torch.Tensor:
    """``(N,)`` squared row norms, ``ROW_BLOCK`` rows at a time (no ``N x D`` temporary)."""
    out = torch.empty(x.n, device=x.device)
    for r0 in range(0, x.n, ROW_BLOCK):
        rows = x.span(r0, r0 + ROW_BLOCK)
        out[r0 : r0 + ROW_BLOCK] = (rows * rows).sum(dim=1)
    return out


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The torch device the engine runs on.

    Args:
        device: ``"auto"`` or None (CUDA when available, else the CPU; the environment
            variable ``SELFSUP_SELECTION_DEVICE`` overrides ``auto``), ``"cpu"``, ``"cuda"``,
            ``"cuda:<i>"`` or a :class:`torch.device`.

    Raises:
        ValueError: an unknown device, or CUDA asked for where there is none.
    """
    if device is None or device == "auto":
        device = os.environ.get(DEVICE_ENV, "auto") or "auto"
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(
            f"selection device must be 'auto', 'cpu' or 'cuda[:i]', got {device!r}"
        ) from exc
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"selection device must be 'auto', 'cpu' or 'cuda[:i]', got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"selection device {device!r} asked for, but torch sees no CUDA device; use 'cpu' "
            f"or 'auto' (or unset {DEVICE_ENV})"
        )
    return dev


class _Rows:
    """The ``(N, D)`` embeddings as the engine reads them, on its device.

    On the CPU the rows are used in place: an in-memory array is not copied and a memory map
    (``np.memmap``) is read block by block as the engine gathers rows, so memory stays bounded
    by blocks. On a CUDA device the whole matrix is copied over (in blocks) when it takes at
    most :data:`GPU_RESIDENT_FRACTION` of the free device memory; otherwise rows are gathered
    on the host and sent over per block (streaming, slower but bounded).
    """

    def __init__(self, embeddings: NDArray[np.float32], device: torch.device) -> None:
        with warnings.catch_warnings():
            # a read-only memory map: the engine never writes to the rows
            warnings.simplefilter("ignore", UserWarning)
            self.host = torch.from_numpy(embeddings)
        self.n = int(self.host.shape[0])
        self.dim = int(self.host.shape[1])
        self.device = device
        self.resident: torch.Tensor | None = None
        if self._keep_whole():
            if device.type == "cpu":
                self.resident = self.host
            else:
                self.resident = torch.empty((self.n, self.dim), device=device)
                for r0 in range(0, self.n, STREAM_BLOCK):
                    self.resident[r0 : r0 + STREAM_BLOCK] = self.host[r0 : r0 + STREAM_BLOCK].to(
                        device
                    )

    def _keep_whole(self) -> bool:
        """Whether the whole matrix is used on the device (always on the CPU)."""
        if self.device.type == "cpu":
            return True
        free, _ = torch.cuda.mem_get_info(self.device)
        return self.host.numel() * 4 <= GPU_RESIDENT_FRACTION * free

    def span(self, r0: int, r1: int) -> torch.Tensor:
        """Rows ``r0:r1`` on the device."""
        if self.resident is not None:
            return self.resident[r0:r1]
        return self.host[r0:r1].to(self.device)

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx`` (a tensor of indices on the device) on the device."""
        if self.resident is not None:
            return self.resident[idx]
        return self.host[idx.cpu()].to(self.device)


def min_squared_distances(
    embeddings: NDArray[np.float32], centers: NDArray[np.float32]
) -> NDArray[np.float32]:
    """``(N,)`` squared distance from each embedding to its nearest center, block by block.

    Args:
        embeddings: ``(N, D)`` float32 embeddings.
        centers: ``(M, D)`` float32 centers; ``inf`` everywhere when ``M == 0``.
    """
    x = _Rows(np.ascontiguousarray(embeddings, dtype=np.float32), torch.device("cpu"))
    c = torch.from_numpy(np.ascontiguousarray(centers, dtype=np.float32))
    if c.shape[0] == 0:
        return np.full(x.n, np.inf, dtype=np.float32)
    return _min_d2(x, _row_sq_norms(x), c, (c * c).sum(dim=1)).numpy()


def _min_d2(x: _Rows, x2: torch.Tensor, c: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
    """``(N,)`` squared distance from each row of ``x`` (squared norms ``x2``) to its nearest
    center ``c`` (squared norms ``c2``), ``ROW_BLOCK`` rows at a time, on ``x``'s device."""
    out = torch.full((x.n,), math.inf, device=x.device)
    for r0 in range(0, x.n, ROW_BLOCK):
        out[r0 : r0 + ROW_BLOCK] = _block_min_d2(
            x.span(r0, r0 + ROW_BLOCK), x2[r0 : r0 + ROW_BLOCK], c, c2
        )
    return out


def greedy_select(
    *,
    embeddings: NDArray[np.float32] | None,
    diversity_strength: float,
    static_score: NDArray[np.float64],
    balance: Sequence[BalanceTerm],
    candidates: NDArray[np.bool_],
    preselected: NDArray[np.int64],
    max_new: int,
    min_distance: float | None,
    engine: Engine = "auto",
    device: str | torch.device | None = "auto",
) -> GreedyResult:
    """Greedily pick up to ``max_new`` of the ``candidates``; see the module docstring.

    Args:
        embeddings: ``(N, D)`` L2-normalised float32 embeddings; needed when
            ``diversity_strength > 0``.
        diversity_strength: Exponent ``a`` of the DIVERSITY objective; 0 turns it off.
        static_score: ``(N,)`` fixed part of each sample's score.
        balance: BALANCE strategies.
        candidates: ``(N,)`` True for samples that may be picked (not filtered out, not
            preselected).
        preselected: Indices that count as already chosen: distances start from them and
            they count toward BALANCE; never picked again.
        max_new: Most samples to pick.
        min_distance: Pick a sample only if its distance to every chosen sample is at least
            this (needs DIVERSITY).
        engine: ``"lazy"``, ``"dense"`` or ``"auto"`` (lazy unless a BALANCE input has
            several objects per sample).
        device: Torch device of the arithmetic (:func:`resolve_device`; default ``"auto"``:
            CUDA when present). Every device runs the same code; on the CPU the picks are
            those of the dense reference, on a GPU they agree up to float32 rounding of the
            distances (exact near-ties may break differently).
    """
    if diversity_strength > 0 and embeddings is None:
        raise ValueError("diversity_strength > 0 needs embeddings")
    single_label = all(_is_single_label(term.counts) for term in balance)
    if engine == "auto":
        engine = "lazy" if single_label else "dense"
    if engine == "lazy" and not single_label:
        raise ValueError("the lazy engine needs single-label BALANCE inputs; use engine='dense'")
    if max_new <= 0 or not candidates.any():
        return GreedyResult(
            np.zeros(0, np.int64),
            np.zeros(0, np.float32),
            np.zeros(0, np.float64),
            "n_samples" if max_new <= 0 else "exhausted",
            0,
        )
    dev = resolve_device(device)
    run = _lazy_greedy if engine == "lazy" else _dense_greedy
    rows = _Rows(embeddings, dev) if diversity_strength > 0 and embeddings is not None else None
    return run(
        rows,
        diversity_strength,
        static_score,
        balance,
        candidates,
        preselected,
        max_new,
        min_distance,
        dev,
    )


def _is_single_label(counts: NDArray[np.float32]) -> bool:
    return bool(np.all(counts.sum(axis=1) == 1) and np.all((counts == 0) | (counts == 1)))


class _Centers:
    """Growing float32 buffer of chosen embeddings (preselected first)."""

    def __init__(self, dim: int, capacity: int, device: torch.device) -> None:
        self.device = device
        self.x = torch.empty((max(capacity, 16), dim), device=self.device)
        self.x2 = torch.empty(max(capacity, 16), device=self.device)
        self.n = 0

    def add(self, rows: torch.Tensor) -> None:
        need = self.n + rows.shape[0]
        if need > self.x.shape[0]:
            size = max(need, 2 * self.x.shape[0])
            x = torch.empty((size, self.x.shape[1]), device=self.device)
            x[: self.n] = self.x[: self.n]
            x2 = torch.empty(size, device=self.device)
            x2[: self.n] = self.x2[: self.n]
            self.x, self.x2 = x, x2
        self.x[self.n : need] = rows
        self.x2[self.n : need] = (rows * rows).sum(dim=1)
        self.n = need


def _finish(
    picks: list[int],
    dists: list[float],
    scores: list[float],
    reason: StopReason,
    n_below: int,
) -> GreedyResult:
    return GreedyResult(
        np.asarray(picks, dtype=np.int64),
        np.asarray(dists, dtype=np.float32),
        np.asarray(scores, dtype=np.float64),
        reason,
        n_below,
    )


def _dense_greedy(
    x: _Rows | None,
    a: float,
    static_score: NDArray[np.float64],
    balance: Sequence[BalanceTerm],
    candidates: NDArray[np.bool_],
    preselected: NDArray[np.int64],
    max_new: int,
    min_distance: float | None,
    dev: torch.device,
) -> GreedyResult:
    """Reference engine: every score recomputed for every sample at every step."""
    n = candidates.shape[0]
    alive = torch.from_numpy(candidates.copy()).to(dev)
    static = torch.from_numpy(np.asarray(static_score, dtype=np.float64)).to(dev)
    chosen = [term.counts[preselected].sum(axis=0, dtype=np.float64) for term in balance]
    use_div = x is not None
    d2 = torch.full((n,), math.inf, device=dev)
    x2 = None
    if x is not None:
        x2 = _row_sq_norms(x)
        if preselected.size:
            pre_idx = torch.from_numpy(preselected).to(dev)
            d2 = _min_d2(x, x2, x.take(pre_idx), x2[pre_idx])
    n_centers = int(preselected.size)
    min_d2 = None if min_distance is None else min_distance * min_distance
    picks: list[int] = []
    dists: list[float] = []
    scores: list[float] = []
    n_below = 0
    while len(picks) < max_new:
        if min_d2 is not None and n_centers > 0:
            below = alive & (d2 < min_d2)
            n_below += int(below.sum())
            alive &= ~below
        score = static.clone()
        if use_div and n_centers > 0:
            score += (a / 2.0) * _log_d2(d2)
        for term, got in zip(balance, chosen, strict=True):
            q = balance_quotients(term.shares, got)
            obj = balance_objective(term.counts, q, term.shares)
            term_score = term.strength * np.log(np.maximum(obj, OBJECTIVE_FLOOR))
            score += torch.from_numpy(term_score).to(dev)
        score[~alive] = -math.inf
        p = int(torch.argmax(score))
        if float(score[p]) == -math.inf:
            return _finish(
                picks, dists, scores, "min_distance" if n_below else "exhausted", n_below
            )
        picks.append(p)
        scores.append(float(score[p]))
        dists.append(math.sqrt(float(d2[p])) if use_div else math.nan)
        alive[p] = False
        for i, term in enumerate(balance):
            chosen[i] = chosen[i] + term.counts[p]
        if x is not None and x2 is not None:
            c = x.take(torch.tensor([p], device=dev))[0]
            for r0 in range(0, n, ROW_BLOCK):
                rows = slice(r0, r0 + ROW_BLOCK)
                part = (x2[rows] + x2[p] - 2.0 * (x.span(r0, r0 + ROW_BLOCK) @ c)).clamp_(min=0.0)
                torch.minimum(d2[rows], part, out=d2[rows])
            n_centers += 1
    return _finish(picks, dists, scores, "n_samples", n_below)


def _lazy_greedy(
    x: _Rows | None,
    a: float,
    static_score: NDArray[np.float64],
    balance: Sequence[BalanceTerm],
    candidates: NDArray[np.bool_],
    preselected: NDArray[np.int64],
    max_new: int,
    min_distance: float | None,
    dev: torch.device,
) -> GreedyResult:
    """Fast engine: exact scores for a candidate block, upper bounds for the rest."""
    n = candidates.shape[0]
    use_div = x is not None
    half_a = a / 2.0
    static = torch.from_numpy(np.asarray(static_score, dtype=np.float64)).to(dev)
    min_d2 = None if min_distance is None else min_distance * min_distance

    # Balance groups: samples sharing the class of every BALANCE input share a balance term.
    codes = [np.argmax(term.counts, axis=1) for term in balance]
    if codes:
        combos, group_np = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
        group_np = group_np.reshape(-1)
    else:
        combos, group_np = np.zeros((1, 0), np.int64), np.zeros(n, np.int64)
    n_groups = combos.shape[0]
    group = torch.from_numpy(group_np.astype(np.int64)).to(dev)
    chosen = [term.counts[preselected].sum(axis=0, dtype=np.float64) for term in balance]

    def group_balance() -> torch.Tensor:
        out = torch.zeros(n_groups, dtype=torch.float64, device=dev)
        for b, (term, got) in enumerate(zip(balance, chosen, strict=True)):
            q = balance_quotients(term.shares, got)
            logq = term.strength * np.log(np.maximum(q, OBJECTIVE_FLOOR))
            out += torch.from_numpy(logq[combos[:, b]]).to(dev)
        return out

    state = torch.full((n,), _DEAD, dtype=torch.int8, device=dev)
    state[torch.from_numpy(candidates).to(dev)] = _OUT
    by_group = torch.argsort(group, stable=True)
    members = list(torch.split(by_group, torch.bincount(group, minlength=n_groups).tolist()))
    out_count = torch.zeros(n_groups, dtype=torch.int64, device=dev)
    out_count.index_add_(0, group, (state == _OUT).long())
    tau = torch.full((n_groups,), math.inf, dtype=torch.float64, device=dev)
    key = static.clone()
    u2 = torch.full((n,), math.inf, device=dev)
    # centers[:seen[i]] are accounted for in u2[i]
    seen = torch.zeros(n, dtype=torch.int64, device=dev)
    x2 = None
    centers = None
    if x is not None:
        x2 = _row_sq_norms(x)
        # grows by doubling; a min_distance-only run may allow up to N picks
        centers = _Centers(x.dim, int(preselected.size) + min(max_new, 65536) + 1, dev)
        if preselected.size:
            centers.add(x.take(torch.from_numpy(preselected).to(dev)))

    picks: list[int] = []
    dists: list[float] = []
    scores: list[float] = []
    n_below = 0

    def refresh(idx: torch.Tensor) -> torch.Tensor:
        """Bring ``u2``, ``seen``, ``key`` of ``idx`` up to date; return those below min_d2."""
        if x is None or x2 is None or centers is None or idx.numel() == 0:
            return idx[:0]
        t = centers.n
        idx = idx[torch.argsort(seen[idx], stable=True)]
        for r0 in range(0, idx.numel(), ROW_BLOCK):
            rows = idx[r0 : r0 + ROW_BLOCK]
            first = int(seen[rows[0]])  # smallest in this block: rows are sorted by seen
            if first < t:
                # by index within the block: a memory map then reads its pages in order
                rows = torch.sort(rows).values
                # centers a row has already seen are harmless: min() is idempotent
                d2 = _block_min_d2(x.take(rows), x2[rows], centers.x[first:t], centers.x2[first:t])
                u2[rows] = torch.minimum(u2[rows], d2)
                seen[rows] = t
        key[idx] = static[idx] + half_a * _log_d2(u2[idx])
        if min_d2 is None:
            return idx[:0]
        # u2 bounds the distance from above, so these can never be picked
        return idx[u2[idx] < min_d2]

    # Candidate block: compact arrays sorted by sample index (argmax -> lowest index on ties).
    # Block entries hold exact values; u2/key/seen of a block entry are stale until synced.
    dim = x.dim if x is not None else 0
    c_idx = torch.zeros(0, dtype=torch.int64, device=dev)
    c_group = torch.zeros(0, dtype=torch.int64, device=dev)
    c_x = torch.zeros((0, dim), device=dev)
    c_x2 = torch.zeros(0, device=dev)
    c_d2 = torch.zeros(0, device=dev)
    c_key = torch.zeros(0, dtype=torch.float64, device=dev)
    c_static = torch.zeros(0, dtype=torch.float64, device=dev)
    c_alive = torch.zeros(0, dtype=torch.bool, device=dev)

    def sync_block(mask: torch.Tensor) -> torch.Tensor:
        """Write the exact values of block entries ``mask`` back; return their indices."""
        idx = c_idx[mask]
        u2[idx] = c_d2[mask]
        key[idx] = c_key[mask]
        if centers is not None:
            seen[idx] = centers.n
        return idx

    def set_block(new: torch.Tensor) -> None:
        """Make the block the alive entries plus ``new`` (already up to date)."""
        nonlocal c_idx, c_group, c_x, c_x2, c_d2, c_key, c_static, c_alive
        c_idx = torch.sort(torch.cat([sync_block(c_alive), new])).values
        state[c_idx] = _CAND
        c_group = group[c_idx]
        if x is not None and x2 is not None:
            c_x = x.take(c_idx)
            c_x2 = x2[c_idx]
        c_d2 = u2[c_idx]
        c_key = key[c_idx]
        c_static = static[c_idx]
        c_alive = torch.ones(c_idx.numel(), dtype=torch.bool, device=dev)

    def demote(mask: torch.Tensor) -> None:
        """Move block entries ``mask`` back to the pool of bounded samples."""
        idx = sync_block(mask)
        state[idx] = _OUT
        out_count.index_add_(0, c_group[mask], torch.ones_like(idx))
        c_alive[mask] = False

    block = CANDIDATE_BLOCK
    refilled_since_pick = False

    def refill(g: int) -> None:
        """Lower ``tau[g]`` so that the next ``block`` samples of group g enter the block."""
        nonlocal n_below, block, refilled_since_pick
        if refilled_since_pick:
            # bounds far above the true distances (early on, or on flat data) make one block
            # not enough; grow geometrically so the number of O(N) refills stays logarithmic
            block *= 2
        refilled_since_pick = True
        pool = members[g][state[members[g]] == _OUT]
        if pool.numel() <= block:
            new_tau = -math.inf
            admitted = pool
        else:
            new_tau = float(torch.topk(key[pool], block, sorted=False).values.min())
            admitted = pool[key[pool] >= new_tau]
        below = refresh(admitted)
        state[below] = _DEAD
        n_below += int(below.numel())
        admitted = admitted[state[admitted] == _OUT]
        # samples whose refreshed bound fell under the new threshold stay in the pool
        admitted = admitted[key[admitted] >= new_tau]
        tau[g] = new_tau
        demote(c_alive & (c_group == g) & (c_key < new_tau))
        set_block(admitted)
        out_count[g] = int((state[members[g]] == _OUT).sum())

    def choose(p: int) -> None:
        state[p] = _DEAD
        for i, term in enumerate(balance):
            chosen[i] = chosen[i] + term.counts[p]

    def add_center(p: int) -> None:
        nonlocal c_d2, c_key
        if x is None or x2 is None or centers is None:
            return
        row = x.take(torch.tensor([p], device=dev))
        centers.add(row)
        if c_idx.numel():
            d2 = (c_x2 + x2[p] - 2.0 * (c_x @ row[0])).clamp_(min=0.0)
            c_d2 = torch.minimum(c_d2, d2)
            c_key = c_static + half_a * _log_d2(c_d2)

    if use_div and centers is not None and centers.n == 0:
        # With nothing chosen the distance term is the same for all: the other terms decide.
        first_score = static + group_balance()[group]
        first_score[state != _OUT] = -math.inf
        p = int(torch.argmax(first_score))
        picks.append(p)
        dists.append(math.inf)
        scores.append(float(first_score[p]))
        choose(p)
        add_center(p)
    if use_div:
        below = refresh(torch.nonzero(state == _OUT).squeeze(1))
        state[below] = _DEAD
        n_below += int(below.numel())
    out_count.zero_()
    out_count.index_add_(0, group, (state == _OUT).long())

    bal = group_balance()
    reason: StopReason = "n_samples"
    while len(picks) < max_new:
        if c_idx.numel():
            score = c_key + bal[c_group]
            score[~c_alive] = -math.inf
            j = int(torch.argmax(score))
            best = float(score[j])
        else:
            j, best = -1, -math.inf
        bound = torch.where(out_count > 0, tau + bal, torch.full_like(tau, -math.inf))
        g = int(torch.argmax(bound))
        if best == -math.inf and float(bound[g]) == -math.inf:
            reason = "min_distance" if n_below else "exhausted"
            break
        if best < float(bound[g]):
            refill(g)
            continue
        p = int(c_idx[j])
        refilled_since_pick = False
        picks.append(p)
        scores.append(best)
        dists.append(math.sqrt(float(c_d2[j])) if use_div else math.nan)
        c_alive[j] = False
        choose(p)
        if balance:
            bal = group_balance()
        add_center(p)
        if use_div:
            if min_d2 is not None:
                below_mask = c_alive & (c_d2 < min_d2)
                if bool(below_mask.any()):
                    n_below += int(below_mask.sum())
                    state[c_idx[below_mask]] = _DEAD
                    c_alive &= ~below_mask
            # entries now under their group's tau cannot win before the next refill
            low = c_alive & (c_key < tau[c_group])
            if bool(low.any()):
                demote(low)
            if int(c_alive.sum()) * 2 < c_idx.numel():
                set_block(c_idx[:0])
    return _finish(picks, dists, scores, reason, n_below)
