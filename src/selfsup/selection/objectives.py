"""Per-sample objectives of the selection strategies, as pure functions over arrays.

The greedy engine maximises the product of objectives raised to their strengths, i.e. the sum
``sum_i strength_i * log(objective_i)`` (see :mod:`selfsup.selection.engine`). Each function
below computes one objective; all are non-negative, and :func:`log_objective` turns one into
its term of the sum, mapping 0 to ``log(OBJECTIVE_FLOOR)`` so that a zero objective ranks a
sample behind every sample with a positive one without making the sum undefined.

Distances are between L2-normalised embeddings (so they lie in [0, 2]), computed as
``||x||^2 + ||y||^2 - 2 x.y`` in float32 blocks so that no ``N x N`` matrix is ever held.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any, Final, Literal

import numpy as np
import torch
from numpy.typing import NDArray

from selfsup.errors import DataError, did_you_mean
from selfsup.selection.config import ThresholdOperation
from selfsup.utils.vectors import l2_normalize as _l2_normalize

__all__ = [
    "OBJECTIVE_FLOOR",
    "balance_objective",
    "balance_quotients",
    "balance_target_shares",
    "l2_normalize",
    "log_objective",
    "similarity",
    "threshold_mask",
    "typicality",
    "weights",
]

OBJECTIVE_FLOOR: Final = 1e-30
"""Objectives below this count as this value, so ``log`` stays finite (``log(1e-30) ~ -69``)."""

# Block sizes of the O(N^2) k-nearest-neighbour search; module constants so tests can shrink them.
KNN_ROW_BLOCK = 1024
KNN_COL_BLOCK = 16384


def l2_normalize(embeddings: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
    """``(N, D)`` rows scaled to unit L2 norm, as a C-contiguous float32 array.

    Rows of zeros stay zero. The input is returned unchanged (not copied) when it already is
    C-contiguous float32 with unit rows, which keeps a 1M x 128 selection from holding two
    512 MB copies.
    """
    emb = np.asarray(embeddings)
    if emb.ndim != 2:
        raise DataError(f"embeddings must be 2-D (N, D), got shape {emb.shape}")
    # torch norms, as the selections so far were computed with (numpy's differ in last bits)
    return _l2_normalize(emb, backend="torch", reuse_unit=True)


def log_objective(objective: NDArray[np.floating[Any]], strength: float) -> NDArray[np.float64]:
    """``strength * log(max(objective, OBJECTIVE_FLOOR))`` as float64."""
    obj = np.asarray(objective, dtype=np.float64)
    return strength * np.log(np.maximum(obj, OBJECTIVE_FLOOR))


def weights(values: NDArray[np.float64], name: str) -> NDArray[np.float64]:
    """The WEIGHTS objective: the ``(N,)`` values themselves, checked finite and >= 0.

    Args:
        values: ``(N,)`` values of the input.
        name: The input as named in errors, e.g. ``METADATA lightly.sharpness``.

    Raises:
        DataError: a missing (NaN) or infinite value, or a negative one.
    """
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataError(
            f"WEIGHTS on {name}: sample {int(np.flatnonzero(bad)[0])} has no finite value; "
            "filter missing values with a THRESHOLD first"
        )
    if values.size and values.min() < 0:
        raise DataError(
            f"WEIGHTS on {name}: values must be >= 0, got {values.min():g} at sample "
            f"{int(np.argmin(values))}; shift them or use a negative strength on a positive column"
        )
    return values


def typicality(
    embeddings: NDArray[np.float32], k: int, device: torch.device | None = None
) -> NDArray[np.float64]:
    """k-nearest-neighbour density: ``1 / mean distance to the k nearest other samples``.

    The typicality of TypiClust (Hacohen et al., 2022, "Active Learning on a Budget"):
    "Typicality(x) = ( 1/K sum_{x_i in K-NN(x)} ||x - x_i||_2 )^-1". Exact, O(N^2 D) time and
    O(block) memory: fine up to a few hundred thousand samples on a CPU.

    Above a size limit the TYPICALITY strategy uses an approximate search instead (see
    :mod:`selfsup.selection.knn_index`).

    Args:
        embeddings: ``(N, D)`` L2-normalised embeddings (may be a memory map).
        k: Number of neighbours; ``min(k, N - 1)`` are used.
        device: Torch device of the search (default CPU); on a CUDA device the embeddings
            are copied there whole.

    Returns:
        ``(N,)`` typicality; a sample with k exact duplicates gets ``1 / 1e-12``.
    """
    with warnings.catch_warnings():
        # a read-only memory map: never written to
        warnings.simplefilter("ignore", UserWarning)
        x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
    if device is not None and device.type != "cpu":
        x = x.to(device)
    n = x.shape[0]
    k_eff = min(k, n - 1)
    if k_eff <= 0:
        return np.ones(n, dtype=np.float64)
    x2 = (x * x).sum(dim=1)
    out = np.empty(n, dtype=np.float64)
    for r0 in range(0, n, KNN_ROW_BLOCK):
        r1 = min(n, r0 + KNN_ROW_BLOCK)
        rows = x[r0:r1]
        best = torch.full((r1 - r0, k_eff), math.inf, device=x.device)
        for c0 in range(0, n, KNN_COL_BLOCK):
            c1 = min(n, c0 + KNN_COL_BLOCK)
            d2 = torch.addmm(x2[c0:c1].unsqueeze(0), rows, x[c0:c1].T, alpha=-2.0)
            d2.add_(x2[r0:r1].unsqueeze(1)).clamp_(min=0.0)
            # a sample is not its own neighbour
            lo, hi = max(r0, c0), min(r1, c1)
            if lo < hi:
                idx = torch.arange(lo, hi, device=x.device)
                d2[idx - r0, idx - c0] = math.inf
            merged = torch.cat([best, d2], dim=1)
            best = torch.topk(merged, k_eff, dim=1, largest=False, sorted=False).values
        mean_dist = best.sqrt().mean(dim=1).double()
        out[r0:r1] = (1.0 / mean_dist.clamp(min=1e-12)).cpu().numpy()
    return out


def similarity(
    embeddings: NDArray[np.float32], queries: NDArray[np.float32]
) -> NDArray[np.float64]:
    """Closeness to the nearest query: ``1 - min_q ||x - q||^2 / 4`` in [0, 1].

    For unit vectors this equals ``(1 + max_q cos(x, q)) / 2``: 1 on a query, 1/2 when
    orthogonal to every query, 0 only when opposite to all of them.

    Args:
        embeddings: ``(N, D)`` L2-normalised embeddings.
        queries: ``(M, D)`` query embeddings (normalised here).
    """
    x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
    q = torch.from_numpy(l2_normalize(queries))
    out = np.empty(x.shape[0], dtype=np.float64)
    for r0 in range(0, x.shape[0], KNN_COL_BLOCK):
        r1 = min(x.shape[0], r0 + KNN_COL_BLOCK)
        best = torch.full((r1 - r0,), -math.inf)
        for c0 in range(0, q.shape[0], KNN_ROW_BLOCK):
            cos = x[r0:r1] @ q[c0 : c0 + KNN_ROW_BLOCK].T
            best = torch.maximum(best, cos.amax(dim=1))
        # a zero embedding has cos 0 with everything
        out[r0:r1] = ((1.0 + best.double()) / 2.0).clamp(0.0, 1.0).numpy()
    return out


def threshold_mask(
    values: NDArray[np.floating[Any]], operation: ThresholdOperation, threshold: float
) -> NDArray[np.bool_]:
    """``(N,)`` True where ``value <operation> threshold``; NaN (missing) is always False."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        if operation == "BIGGER":
            return v > threshold
        if operation == "BIGGER_EQUAL":
            return v >= threshold
        if operation == "SMALLER":
            return v < threshold
        return v <= threshold


def balance_target_shares(
    names: tuple[str, ...],
    present: NDArray[np.bool_],
    target: Mapping[str, float] | Literal["uniform"],
) -> NDArray[np.float64]:
    """Target share of each class in ``names``, summing to 1.

    ``"uniform"`` gives every class that occurs in the data (``present``) the same share. For a
    mapping, listed classes get their share; if the shares sum to less than 1, the remainder
    is split evenly over present classes that are not listed (or, if all are listed, the
    shares are rescaled to sum to 1). A listed class must be one of ``names``.
    """
    shares = np.zeros(len(names), dtype=np.float64)
    if target == "uniform":
        if not present.any():
            raise DataError("BALANCE: the input has no samples with a class")
        shares[present] = 1.0 / present.sum()
        return shares
    for name, share in target.items():
        if name not in names:
            raise DataError(
                f"BALANCE target class {name!r} is not a class of the input"
                f"{did_you_mean(name, names) or '.'} Classes: {list(names)}"
            )
        shares[names.index(name)] = share
    listed = np.array([n in target for n in names])
    rest = 1.0 - shares.sum()
    free = present & ~listed
    if rest > 1e-9 and free.any():
        shares[free] = rest / free.sum()
    total = shares.sum()
    if total <= 0:
        raise DataError("BALANCE target gives every class of the input a share of 0")
    normalised: NDArray[np.float64] = shares / total
    return normalised


def balance_quotients(
    shares: NDArray[np.float64], chosen: NDArray[np.floating[Any]]
) -> NDArray[np.float64]:
    """D'Hondt quotient per class: ``share_c / (chosen_c + 1)``.

    The quotient of a class falls as it gets chosen; always picking the class with the largest
    quotient reproduces the target shares as closely as whole counts allow (the D'Hondt
    apportionment). Only ratios of quotients matter to the product objective.

    Args:
        shares: ``(C,)`` target shares.
        chosen: ``(C,)`` objects of each class in the chosen set so far.
    """
    return shares / (np.asarray(chosen, dtype=np.float64) + 1.0)


def balance_objective(
    counts: NDArray[np.floating[Any]], quotients: NDArray[np.float64], shares: NDArray[np.float64]
) -> NDArray[np.float64]:
    """BALANCE objective of each sample: the object-weighted mean quotient of its classes.

    ``objective(x) = sum_c counts[x, c] * q_c / sum_c counts[x, c]``; a single-label sample gets
    the quotient of its class. A sample without objects gets the target-weighted mean quotient
    ``sum_c share_c * q_c``: it neither helps nor hurts the balance.

    Args:
        counts: ``(N, C)`` objects per class per sample.
        quotients: ``(C,)`` from :func:`balance_quotients`.
        shares: ``(C,)`` target shares.
    """
    c = np.asarray(counts, dtype=np.float64)
    totals = c.sum(axis=1)
    weighted = c @ quotients
    neutral = float(shares @ quotients)
    return np.where(totals > 0, weighted / np.where(totals > 0, totals, 1.0), neutral)
