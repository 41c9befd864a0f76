"""The KMEANS strategy: the sample nearest each k-means cluster centre of the embeddings.

``{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "KMEANS", "n_clusters"?, "seed"?,
"strength"?}}`` clusters the candidates' L2-normalised embeddings into ``n_clusters`` k-means
clusters (default: the number of samples to select) and prefers, for each cluster, the
candidate nearest its centre: one representative per mode of the data, the "cluster centres"
selection of e.g. Zhdanov, "Diverse mini-batch Active Learning" (2019) ("we select the samples
closest to the cluster centers"). Larger clusters come first: the objective of a
representative is its cluster's share of the candidates; every other sample has objective 0,
so after the representatives the remaining strategies (or the lowest index) decide.

The whole strategy is this module plus its name in
``selfsup.selection.config.STRATEGY_MODULES``. It imports scikit-learn and numpy only when a
selection runs, so validating a config stays light.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

from pydantic import Field, field_validator

from selfsup.selection.registry import (
    DEFAULT_STRENGTH,
    InputKind,
    ObjectiveContext,
    StrategyType,
    StrengthConfig,
    Term,
    TypedStrategy,
    check_int,
    check_strength,
    register_strategy,
)

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["KMeansConfig", "KMeansStrategy", "kmeans_representatives"]

#: Seed of the k-means initialisation when a config gives none (same seed, same picks).
DEFAULT_KMEANS_SEED: Final = 0


def kmeans_representatives(
    embeddings: NDArray[np.float32],
    candidates: NDArray[np.bool_],
    n_clusters: int,
    seed: int = DEFAULT_KMEANS_SEED,
) -> NDArray[np.float64]:
    """The KMEANS objective: cluster shares on the candidates nearest the k-means centres.

    Args:
        embeddings: ``(N, D)`` L2-normalised embeddings.
        candidates: ``(N,)`` bool, the samples that may be chosen; only they are clustered.
        n_clusters: Clusters wanted; ``min(n_clusters, number of candidates)`` are made.
        seed: Seed of the k-means++ initialisation.

    Returns:
        ``(N,)`` objective: for each cluster, the candidate nearest its centre (ties: the
        lowest index) gets ``cluster size / number of candidates``; every other sample 0.
    """
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    out = np.zeros(embeddings.shape[0], dtype=np.float64)
    index = np.flatnonzero(candidates)
    if index.size == 0:
        return out
    k = max(1, min(n_clusters, index.size))
    x = np.asarray(embeddings[index], dtype=np.float64)
    with warnings.catch_warnings():
        # Fewer distinct points than clusters (exact duplicates) only leaves clusters that
        # share a representative; the objective below stays well defined.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(x)
    labels = np.asarray(model.labels_, dtype=np.int64)
    centres = np.asarray(model.cluster_centers_, dtype=np.float64)
    dist = ((x - centres[labels]) ** 2).sum(axis=1)
    # Within each cluster (labels), nearest first (dist), ties to the lowest index.
    order = np.lexsort((np.arange(index.size), dist, labels))
    first = np.ones(order.size, dtype=bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    representatives = order[first]
    sizes = np.bincount(labels, minlength=k).astype(np.float64)
    out[index[representatives]] = sizes[labels[representatives]] / index.size
    return out


@dataclass(frozen=True)
class KMeansStrategy:
    """Prefer the candidate nearest each of ``n_clusters`` k-means centres (largest first).

    Attributes:
        n_clusters: Number of clusters; None means the number of samples to select.
        seed: Seed of the k-means initialisation.
        strength: Exponent of the objective.
    """

    n_clusters: int | None = None
    seed: int = DEFAULT_KMEANS_SEED
    strength: float = DEFAULT_STRENGTH

    name: ClassVar[str] = "KMEANS"
    needs_embeddings: ClassVar[bool] = True
    is_filter: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.n_clusters is not None:
            check_int(self.n_clusters, "KMeansStrategy.n_clusters", 1)
        check_int(self.seed, "KMeansStrategy.seed", 0)
        object.__setattr__(
            self, "strength", check_strength(self.strength, "KMeansStrategy.strength")
        )

    def term(self, context: ObjectiveContext) -> Term:
        """``strength * log objective`` of :func:`kmeans_representatives`."""
        from selfsup.selection.objectives import log_objective

        assert context.embeddings is not None
        n_clusters = self.n_clusters if self.n_clusters is not None else context.n_requested
        objective = kmeans_representatives(
            context.embeddings, context.candidates, n_clusters, self.seed
        )
        return Term(static=log_objective(objective, self.strength))

    def to_dict(self) -> dict[str, Any]:
        """The lightly-style entry."""
        strategy: dict[str, Any] = {"type": "KMEANS", "seed": self.seed, "strength": self.strength}
        if self.n_clusters is not None:
            strategy["n_clusters"] = self.n_clusters
        return {"input": {"type": "EMBEDDINGS"}, "strategy": strategy}


class KMeansConfig(StrengthConfig):
    """``{"type": "KMEANS", "n_clusters"?, "seed"?, "strength"?}`` on ``EMBEDDINGS``."""

    type: Literal["KMEANS"] = "KMEANS"
    n_clusters: int | None = Field(
        None, description="k-means clusters (null = the number of samples to select)"
    )
    seed: int = Field(DEFAULT_KMEANS_SEED, description="seed of the k-means initialisation")

    @field_validator("n_clusters", mode="before")
    @classmethod
    def _n_clusters(cls, value: object) -> int | None:
        return None if value is None else check_int(value, "", 1)

    @field_validator("seed", mode="before")
    @classmethod
    def _seed(cls, value: object) -> int:
        return check_int(value, "", 0)

    def build(self, kind: InputKind, value: Any) -> TypedStrategy:
        """A :class:`KMeansStrategy`."""
        return KMeansStrategy(self.n_clusters, self.seed, self.strength)


register_strategy(
    StrategyType(
        "KMEANS",
        KMeansConfig,
        ("EMBEDDINGS",),
        (KMeansStrategy,),
        "the sample nearest each k-means cluster centre (largest clusters first)",
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "KMEANS", "n_clusters": 3}},
    )
)
