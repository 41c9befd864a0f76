"""Is an embedding collapsed? Two figures and a verdict, as pure numpy functions.

A self-supervised model that collapsed maps every image to (nearly) the same vector: the
distances between samples are all about 0, selection picks at random and kNN is chance. It
happens quietly on a short run with a learning rate too high for a small batch, so the
curation report states two figures of the embeddings and warns below a threshold:

* :func:`std_of_l2_normalized` (the collapse monitor of SimSiam, Chen & He 2021, section
  4.1): the mean over the D dimensions of the standard deviation of the L2-normalised
  embeddings. It is 0 when every embedding points the same way and about ``1/sqrt(D)`` when
  they are spread uniformly over the unit sphere; the report also gives it times
  ``sqrt(D)`` so that 1 means "spread like a uniform sphere" whatever D is.
* :func:`effective_rank` (Roy & Vetterli 2007): how many dimensions the embeddings really
  use, 1 for embeddings on one line, up to D.

:func:`collapse_verdict` turns both into ``None`` (healthy) or a message saying what to try.
The web app reads the figures from report.json, so this module imports neither torch nor
anything above ``selfsup.utils``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "MAX_ROWS",
    "MIN_EFFECTIVE_RANK",
    "MIN_SCALED_STD",
    "EmbeddingStats",
    "collapse_verdict",
    "effective_rank",
    "embedding_stats",
    "std_of_l2_normalized",
]

#: Below this ``std_of_l2_normalized * sqrt(D)`` the embeddings are collapsed. Measured on
#: Fashion-MNIST with benchmarks/defaults.py (figures in benchmarks/README.md): lightly's CLI
#: defaults (ResNet-18, lr 1.0, batch 16) trained one epoch on 20 images (issue 11's "every
#: distance 0.000") give 0.025; the recipe's training on 200 and 1000 images 0.574 and
#: 0.683 (0.220 at the too-high lr 0.3); raw pixels 0.57; i.i.d. Gaussian vectors 1.0
#: (tests/utils/test_embedding_stats.py). 0.1 lies well between the two groups.
MIN_SCALED_STD: Final = 0.1

#: Below this effective rank the embeddings use essentially one direction. The collapsed
#: run above measures 1.35 of 32 dimensions; the recipe's healthy runs 7.03 and 5.96 of 32
#: (3.33 at lr 0.3). Either figure below its threshold flags the embeddings.
MIN_EFFECTIVE_RANK: Final = 1.5

#: The figures are computed on at most this many rows (an evenly spaced subsample): the
#: singular values of 4096 x D are cheap and estimate the spread of millions of rows well.
MAX_ROWS: Final = 4096


def _check(emb: NDArray[Any]) -> NDArray[np.float64]:
    arr = np.asarray(emb)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"embeddings must be a non-empty (N, D) array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"embeddings must be numeric, got dtype {arr.dtype}")
    out = arr.astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise ValueError("embeddings contain NaN or inf")
    return out


def _normalized(emb: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rows divided by their L2 norm; an all-zero row stays zero (it has no direction).

    Not :func:`selfsup.utils.vectors.l2_normalize`: that one returns float32, and the
    singular values of :func:`effective_rank` are taken in float64."""
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.where(norms > 0, norms, 1.0)


def std_of_l2_normalized(emb: NDArray[Any]) -> float:
    """Mean over dimensions of the standard deviation of the L2-normalised rows of ``emb``.

    ``z_i = e_i / ||e_i||`` for each row; the result is ``(1/D) sum_d std_i(z_{i,d})``
    (population std). Collapsed embeddings (all rows one direction) give 0; rows spread
    uniformly over the unit sphere give about ``1/sqrt(D)``, the largest value it can take
    on average when the spread is even across dimensions.

    Args:
        emb: ``(N, D)`` embeddings, any numeric dtype; N >= 1.
    """
    return _std_of_unit_rows(_normalized(_check(emb)))


def _std_of_unit_rows(z: NDArray[np.float64]) -> float:
    return float(z.std(axis=0).mean())


def effective_rank(emb: NDArray[Any]) -> float:
    """The effective rank of Roy & Vetterli (2007) of the L2-normalised rows of ``emb``.

    With ``sigma_1 >= ... >= sigma_Q`` the singular values of the ``(N, D)`` matrix
    (``Q = min(N, D)``) and ``p_k = sigma_k / ||sigma||_1`` (their distribution), it is
    ``erank = exp(H(p_1, ..., p_Q))`` with the Shannon entropy
    ``H = -sum_k p_k log p_k`` (``0 log 0 = 0``): 1 for a rank-one matrix, ``Q`` when every
    singular value is equal. The rows are normalised first so that the figure measures
    directions, not lengths, and not centred: rows that all equal one vector plus tiny noise
    (a collapsed model) then have rank about 1, where centring would leave only the noise.
    An all-zero matrix has no directions and rank 0.

    Args:
        emb: ``(N, D)`` embeddings, any numeric dtype; N >= 1.
    """
    return _effective_rank_of_unit_rows(_normalized(_check(emb)))


def _effective_rank_of_unit_rows(z: NDArray[np.float64]) -> float:
    sigma = np.linalg.svd(z, compute_uv=False)
    total = float(sigma.sum())
    if total <= 0:
        return 0.0
    p = sigma[sigma > 0] / total
    return float(math.exp(-float(np.sum(p * np.log(p)))))


@dataclass(frozen=True)
class EmbeddingStats:
    """The collapse figures of one set of embeddings (the ``embedding_health`` of report.json).

    Attributes:
        n_samples: Rows the figures were computed on (at most :data:`MAX_ROWS`).
        dim: D, the embedding dimension.
        std_of_l2_normalized: :func:`std_of_l2_normalized`.
        effective_rank: :func:`effective_rank`.
    """

    n_samples: int
    dim: int
    std_of_l2_normalized: float
    effective_rank: float

    @property
    def scaled_std(self) -> float:
        """``std_of_l2_normalized * sqrt(D)``: 0 collapsed, about 1 uniform on the sphere."""
        return self.std_of_l2_normalized * math.sqrt(self.dim)

    def to_json(self) -> dict[str, Any]:
        """The figures, the verdict (``collapsed``, ``warning``) and the thresholds used."""
        verdict = collapse_verdict(self)
        return {
            "n_samples": self.n_samples,
            "dim": self.dim,
            "std_of_l2_normalized": self.std_of_l2_normalized,
            "std_of_l2_normalized_times_sqrt_dim": self.scaled_std,
            "effective_rank": self.effective_rank,
            "collapsed": verdict is not None,
            "warning": verdict,
            "thresholds": {
                "std_of_l2_normalized_times_sqrt_dim": MIN_SCALED_STD,
                "effective_rank": MIN_EFFECTIVE_RANK,
            },
        }


def embedding_stats(emb: NDArray[Any], max_rows: int = MAX_ROWS) -> EmbeddingStats:
    """Both figures of ``emb`` (``(N, D)``), on at most ``max_rows`` evenly spaced rows."""
    arr = np.asarray(emb)
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    if arr.ndim == 2 and arr.shape[0] > max_rows:
        arr = arr[np.linspace(0, arr.shape[0] - 1, max_rows).astype(np.intp)]
    # Checked, converted and normalised once for both figures.
    z = _normalized(_check(arr))
    return EmbeddingStats(
        n_samples=int(z.shape[0]),
        dim=int(z.shape[1]),
        std_of_l2_normalized=_std_of_unit_rows(z),
        effective_rank=_effective_rank_of_unit_rows(z),
    )


#: What a user whose model collapsed can try, in the order most likely to help.
ADVICE: Final = (
    "try fewer epochs with a lower learning rate (e.g. lightly.optimizer.lr=0.05), "
    "leave the training keys unset so that selfsup chooses a recipe for the data and the "
    "machine, or embed with a pretrained backbone (model.weights=<file>, see "
    "docs/pretrained.md)"
)


def collapse_verdict(stats: EmbeddingStats) -> str | None:
    """``None`` for healthy embeddings, else a warning saying what is wrong and what to try.

    Collapsed means ``std_of_l2_normalized * sqrt(D) <`` :data:`MIN_SCALED_STD` or an
    effective rank below :data:`MIN_EFFECTIVE_RANK` (thresholds and their measurements are
    documented there). One sample cannot show a spread, so it is never called collapsed.
    """
    if stats.n_samples < 2:
        return None
    reasons = []
    if stats.scaled_std < MIN_SCALED_STD:
        reasons.append(
            f"std of the L2-normalised embeddings x sqrt(D) is {stats.scaled_std:.3g} "
            f"(< {MIN_SCALED_STD}; 1 = spread over the sphere)"
        )
    if stats.effective_rank < MIN_EFFECTIVE_RANK:
        reasons.append(
            f"effective rank is {stats.effective_rank:.3g} of {stats.dim} dimensions "
            f"(< {MIN_EFFECTIVE_RANK})"
        )
    if not reasons:
        return None
    return (
        "the embeddings are collapsed (every sample maps to nearly the same vector, so "
        f"distances, selection and neighbours are meaningless): {'; '.join(reasons)}. "
        f"To fix it, {ADVICE}."
    )
