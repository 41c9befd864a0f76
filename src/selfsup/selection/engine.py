"""``select``: run a :class:`SelectionConfig` over :class:`SelectionInputs`.

How strategies combine (as in the lightly Worker): THRESHOLD strategies filter first; then
one greedy loop picks, one sample at a time, the candidate with the largest

    product_i objective_i(x) ** strength_i   ==   exp( sum_i strength_i * log objective_i(x) )

Because it is a product, the scale of each objective is irrelevant (doubling every weight
doubles every product), so strategies need no normalisation against each other; ``strength``
sets their relative importance, and a negative strength inverts a static objective (prefer
low weights, atypical samples, samples far from a query). Each strategy computes its own term
(``strategy.term``, see :mod:`selfsup.selection.registry`); the objectives of the built-in
ones (every registered one: ``docs/selection.md``):

================  =============================================================  =========
strategy          objective of sample x                                          changes
================  =============================================================  =========
DIVERSITY         distance to the nearest chosen sample (L2-normalised);          each pick
                  ignored for the very first pick when nothing is chosen yet
TYPICALITY        1 / mean distance to its k nearest neighbours                   never
SIMILARITY        1 - (distance to the nearest query)^2 / 4, in [0, 1]            never
WEIGHTS           the input value (must be >= 0)                                  never
RANDOM            a uniform random number in (0, 1] from the seed                 never
BALANCE           D'Hondt quotient share_c / (chosen_c + 1) of its class          each pick
                  (object-weighted mean over its classes for detections)
================  =============================================================  =========

An objective of 0 counts as 1e-30, so such a sample comes after all others but the order
among such samples is still decided by the remaining strategies. Ties go to the lowest index.
With DIVERSITY alone this is exact k-center greedy; see :mod:`selfsup.selection.greedy`.

Preselected samples (a datapool's earlier selection) count as already chosen: diversity is
measured from them, they count toward BALANCE, they are never returned, and THRESHOLD does not
apply to them. ``n_samples`` counts new samples only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from selfsup.errors import DataError
from selfsup.selection.config import (
    DiversityStrategy,
    RandomStrategy,
    SelectionConfig,
)
from selfsup.selection.greedy import (
    BalanceTerm,
    Engine,
    StopReason,
    greedy_select,
    resolve_device,
)
from selfsup.selection.inputs import SelectionInputs
from selfsup.selection.objectives import l2_normalize
from selfsup.selection.registry import ObjectiveContext

__all__ = ["SelectionResult", "coreset", "random_selection", "select"]


@dataclass(frozen=True)
class SelectionResult:
    """What :func:`select` chose and why.

    Attributes:
        indices: ``(k,)`` chosen sample indices in selection order (preselected excluded).
        distances: ``(k,)`` distance from each pick to the nearest sample chosen before it
            (preselected included) at the time it was picked: the coverage radius of the
            selection so far. ``inf`` for a first pick with nothing preselected, NaN without
            DIVERSITY.
        scores: ``(k,)`` combined score ``sum_i strength_i * log objective_i`` at pick time.
        removed_by: ``(N,)`` index into ``filters`` of the first THRESHOLD that removed each
            sample, -1 for samples no filter removed.
        filters: One description per THRESHOLD strategy, in config order.
        n_candidates: Samples left to choose from after filtering (preselected excluded).
        n_requested: Most new samples the stopping conditions allowed.
        stop_reason: ``"n_samples"``, ``"min_distance"`` or ``"exhausted"``.
        n_below_min_distance: Candidates dropped for being closer than ``min_distance`` to a
            chosen sample.
        methods: How terms whose method depends on the data's size were computed (e.g.
            TYPICALITY's kNN search: exact or approximate, N, the limit, the key that changes
            it, the recall), one JSON-ready mapping per such strategy, in config order.
        device: Torch device the greedy engine ran on.
    """

    indices: NDArray[np.int64]
    distances: NDArray[np.float32]
    scores: NDArray[np.float64]
    removed_by: NDArray[np.int16]
    filters: tuple[str, ...]
    n_candidates: int
    n_requested: int
    stop_reason: StopReason
    n_below_min_distance: int
    methods: tuple[Mapping[str, Any], ...] = ()
    device: str = "cpu"


def _check_unit_memmap(embeddings: NDArray[np.floating[Any]]) -> None:
    """A memory-mapped matrix must hold unit rows: normalising it would copy it into memory."""
    if not isinstance(embeddings, np.memmap):
        return
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only map, only read
        rows = torch.from_numpy(np.asarray(embeddings))
    for r0 in range(0, rows.shape[0], 1 << 20):
        norms = torch.linalg.vector_norm(rows[r0 : r0 + (1 << 20)].float(), dim=1)
        off = (norms - 1.0).abs() > 1e-5
        if bool(off.any()):
            bad = r0 + int(torch.nonzero(off)[0, 0])
            raise DataError(
                f"memory-mapped embeddings ({embeddings.filename}) must be L2-normalised: row "
                f"{bad} has norm {float(norms[bad - r0]):.6g}; write them normalised "
                "(selfsup.selection.matrix.save_embedding_matrix of l2_normalize'd blocks)"
            )


def _unit_rows(embeddings: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
    """The ``(N, D)`` embeddings L2-normalised, a unit float32 memory map as it is.

    A memory map's norms are measured once, by :func:`_check_unit_memmap`: once it has passed,
    :func:`l2_normalize` would only measure every norm again (a second pass over a file of up
    to several GB) to return the same rows uncopied.
    """
    if isinstance(embeddings, np.memmap):
        _check_unit_memmap(embeddings)
        if embeddings.dtype == np.float32 and embeddings.flags.c_contiguous:
            return embeddings
    return l2_normalize(embeddings)


def _check_preselected(
    preselected: Sequence[int] | NDArray[np.integer[Any]], n: int
) -> NDArray[np.int64]:
    pre = np.asarray(preselected)
    if pre.size == 0:
        return np.zeros(0, dtype=np.int64)
    if pre.ndim != 1 or not np.issubdtype(pre.dtype, np.integer):
        raise DataError(
            f"preselected must be a 1-D sequence of sample indices, got {pre.dtype} {pre.shape}"
        )
    if pre.min() < 0 or pre.max() >= n:
        raise DataError(f"preselected indices must lie in [0, {n}), got [{pre.min()}, {pre.max()}]")
    if np.unique(pre).size != pre.size:
        raise DataError("preselected has duplicate indices")
    return pre.astype(np.int64)


def select(
    inputs: SelectionInputs,
    config: SelectionConfig,
    preselected: Sequence[int] | NDArray[np.integer[Any]] = (),
    *,
    engine: Engine = "auto",
    device: str | None = "auto",
) -> SelectionResult:
    """Choose samples according to ``config``; pure: reads arrays, writes nothing.

    Args:
        inputs: Embeddings, scores, metadata, predictions and query sets, one row per sample.
        config: Strategies and stopping conditions.
        preselected: Indices of samples chosen earlier (e.g. a datapool); see module docstring.
        engine: ``"auto"`` (fast lazy engine where possible), ``"lazy"`` or ``"dense"`` (the
            straightforward reference; same picks).
        device: Torch device of the greedy engine and the kNN search: ``"auto"`` (CUDA when
            present; the environment variable ``SELFSUP_SELECTION_DEVICE`` overrides it),
            ``"cpu"`` or ``"cuda[:i]"``. Embeddings may be a memory map (``np.memmap``, unit
            rows): they are then read block by block, never copied whole.

    Returns:
        The picks in order with per-pick and per-sample diagnostics.

    Raises:
        DataError: an input a strategy names is missing or unusable (message names it).
    """
    n = inputs.n
    pre = _check_preselected(preselected, n)
    candidates = np.ones(n, dtype=bool)
    candidates[pre] = False
    removed_by = np.full(n, -1, dtype=np.int16)
    filters: list[str] = []
    n_requested = config.resolve_n_new(n)
    unfiltered = ObjectiveContext(inputs, None, candidates.copy(), n_requested)
    for strategy in config.strategies:
        if strategy.is_filter:
            term = strategy.term(unfiltered)
            assert term.keep is not None, f"filter {type(strategy).name} gave no keep mask"
            newly = ~term.keep & (removed_by == -1) & candidates
            removed_by[newly] = len(filters)
            filters.append(term.description)
    candidates &= removed_by == -1

    embeddings = None
    readers = [type(s).name for s in config.strategies if s.needs_embeddings]
    if readers:
        if inputs.embeddings is None:
            names = list(dict.fromkeys(readers))
            raise DataError(
                f"strateg{'ies' if len(names) > 1 else 'y'} {', '.join(names)} "
                f"need{'' if len(names) > 1 else 's'} SelectionInputs.embeddings"
            )
        embeddings = _unit_rows(inputs.embeddings)

    dev = resolve_device(device)
    context = ObjectiveContext(inputs, embeddings, candidates, n_requested, device=str(dev))
    methods: list[Mapping[str, Any]] = []
    static = np.zeros(n, dtype=np.float64)
    diversity_strength = 0.0
    balance: list[BalanceTerm] = []
    for strategy in config.strategies:
        if strategy.is_filter:
            continue
        # Each strategy computes its own term (objective); the engine only adds them up.
        term = strategy.term(context)
        if term.static is not None:
            static += term.static
        if term.diversity_strength:
            diversity_strength = term.diversity_strength
        if term.balance is not None:
            balance.append(term.balance)
        if term.record is not None:
            methods.append(term.record)

    result = greedy_select(
        embeddings=embeddings,
        diversity_strength=diversity_strength,
        static_score=static,
        balance=balance,
        candidates=candidates,
        preselected=pre,
        max_new=n_requested,
        min_distance=config.min_distance,
        engine=engine,
        device=dev,
    )
    return SelectionResult(
        indices=result.indices,
        distances=result.distances,
        scores=result.scores,
        removed_by=removed_by,
        filters=tuple(filters),
        n_candidates=int(candidates.sum()),
        n_requested=n_requested,
        stop_reason=result.stop_reason,
        n_below_min_distance=result.n_below_min_distance,
        methods=tuple(methods),
        device=str(dev),
    )


def coreset(
    embeddings: NDArray[np.floating[Any]],
    n_samples: int | float,
    min_distance: float | None = None,
    preselected: Sequence[int] | NDArray[np.integer[Any]] = (),
) -> NDArray[np.int64]:
    """k-center greedy (``method=coreset``) on L2-normalised ``(N, D)`` embeddings.

    Args:
        embeddings: ``(N, D)`` embeddings (normalised here; not modified).
        n_samples: New samples to choose: an int >= 1 or a fraction in (0, 1] of N.
        min_distance: Stop when every remaining sample is closer than this to a chosen one.
            lightly's ``-1`` (or None) means no minimum distance.
        preselected: Indices already chosen; never returned.

    Returns:
        ``(k,)`` chosen indices in selection order. Without preselected samples the first is
        sample 0 (every distance is infinite, so the lowest index wins).
    """
    md = None if min_distance is None or min_distance < 0 else min_distance
    config = SelectionConfig((DiversityStrategy(),), n_samples=n_samples, min_distance=md)
    return select(SelectionInputs(embeddings=embeddings), config, preselected).indices


def random_selection(
    n: int,
    n_samples: int | float,
    seed: int = 0,
    preselected: Sequence[int] | NDArray[np.integer[Any]] = (),
) -> NDArray[np.int64]:
    """Uniform random choice without replacement (``method=random``).

    Equals ``select`` with ``RandomStrategy(seed)``: samples sorted by descending
    ``1 - default_rng(seed).random(n)``, preselected skipped.

    Args:
        n: Number of samples.
        n_samples: New samples to choose: an int >= 1 or a fraction in (0, 1] of ``n``.
        seed: Seed of the random numbers.
        preselected: Indices already chosen; never returned.
    """
    config = SelectionConfig((RandomStrategy(seed=seed),), n_samples=n_samples)
    pre = _check_preselected(preselected, n)
    values = 1.0 - np.random.default_rng(seed).random(n)
    values[pre] = -math.inf
    order = np.argsort(-values, kind="stable")
    k = min(config.resolve_n_new(n), n - pre.size)
    return order[:k].astype(np.int64)
