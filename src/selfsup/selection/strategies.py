"""The built-in selection strategies: typed strategies (each with its objective) and their
config models.

``DIVERSITY``, ``TYPICALITY``, ``SIMILARITY``, ``WEIGHTS`` (``RANDOM`` on a RANDOM input),
``THRESHOLD`` and ``BALANCE``, registered in :mod:`selfsup.selection.registry`. A config model
validates the lightly ``strategy`` dict and builds the typed strategy
(:meth:`StrategyConfig.build`); the typed strategy computes its share of the greedy objective
(``term``). The objectives' math lives in :mod:`selfsup.selection.objectives`, imported only
when a selection runs, so validating a config loads no torch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, TypeAlias, get_args

from pydantic import Field, field_validator

from selfsup.selection.input_types import (
    CATEGORICAL_KINDS,
    DEFAULT_RANDOM_SEED,
    NUMERIC_KINDS,
    CategoricalInput,
    NumericInput,
    QuerySource,
    RandomInput,
    check_typed_input,
)
from selfsup.selection.registry import (
    DEFAULT_STRENGTH,
    InputKind,
    ObjectiveContext,
    StrategyConfig,
    StrategyType,
    StrengthConfig,
    Term,
    TypedStrategy,
    check_choice,
    check_int,
    check_min_distance,
    check_name,
    check_number,
    check_strength,
    check_target,
    register_strategy,
)

__all__ = [
    "DEFAULT_TYPICALITY_K",
    "THRESHOLD_OPERATIONS",
    "BalanceConfig",
    "BalanceStrategy",
    "DiversityConfig",
    "DiversityStrategy",
    "RandomStrategy",
    "SimilarityConfig",
    "SimilarityStrategy",
    "ThresholdConfig",
    "ThresholdOperation",
    "ThresholdStrategy",
    "TypicalityConfig",
    "TypicalityStrategy",
    "WeightsConfig",
    "WeightsStrategy",
]

ThresholdOperation: TypeAlias = Literal["BIGGER", "BIGGER_EQUAL", "SMALLER", "SMALLER_EQUAL"]
THRESHOLD_OPERATIONS: Final[tuple[str, ...]] = get_args(ThresholdOperation)

#: Neighbours of a TYPICALITY strategy that names no ``k``.
DEFAULT_TYPICALITY_K: Final = 20

KnnSetting: TypeAlias = Literal["auto", "exact", "approximate"]
"""TYPICALITY's ``knn``: how its k-nearest-neighbour search runs (see ``knn_index``)."""

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- typed strategies


@dataclass(frozen=True)
class DiversityStrategy:
    """k-center greedy on L2-normalised embeddings: objective = distance to nearest chosen."""

    strength: float = DEFAULT_STRENGTH

    name: ClassVar[str] = "DIVERSITY"
    needs_embeddings: ClassVar[bool] = True
    is_filter: ClassVar[bool] = False

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "strength",
            check_strength(self.strength, "DiversityStrategy.strength", positive=True),
        )

    def term(self, context: ObjectiveContext) -> Term:
        """The k-center distance term; the greedy engine updates it after each pick."""
        return Term(diversity_strength=self.strength)

    def to_dict(self) -> dict[str, Any]:
        """The lightly entry."""
        return {
            "input": {"type": "EMBEDDINGS"},
            "strategy": {"type": "DIVERSITY", "strength": self.strength},
        }


@dataclass(frozen=True)
class TypicalityStrategy:
    """k-nearest-neighbour density: objective = 1 / mean distance to the ``k`` nearest samples."""

    k: int = DEFAULT_TYPICALITY_K
    strength: float = DEFAULT_STRENGTH
    knn: KnnSetting = "auto"
    """``"auto"``: exact kNN up to ``EXACT_KNN_MAX_SAMPLES`` samples, approximate above;
    ``"exact"`` or ``"approximate"`` whatever the size (:mod:`selfsup.selection.knn_index`)."""

    name: ClassVar[str] = "TYPICALITY"
    needs_embeddings: ClassVar[bool] = True
    is_filter: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_int(self.k, "TypicalityStrategy.k", 1)
        object.__setattr__(
            self, "strength", check_strength(self.strength, "TypicalityStrategy.strength")
        )
        check_choice(self.knn, get_args(KnnSetting), "TypicalityStrategy.knn", "kNN search")

    def term(self, context: ObjectiveContext) -> Term:
        """``strength * log typicality``, fixed for the whole selection.

        How the kNN search runs (exact or approximate) is decided first and logged before
        the search starts (a warning when the size, not the config, made it approximate or
        slow); the decision, with the recall of an approximate search, is the term's record.
        """
        import numpy as np
        import torch

        from selfsup.selection.knn_index import knn_distances, plan_knn
        from selfsup.selection.objectives import log_objective, typicality

        emb = context.embeddings
        assert emb is not None
        n = emb.shape[0]
        k_eff = min(self.k, n - 1)
        device = torch.device(context.device)
        plan = plan_knn(n, max(k_eff, 1), self.knn, device)
        if n > plan.limit:
            logger.warning(plan.message())
        else:
            logger.info(plan.message())
        if plan.method == "exact" or k_eff <= 0:
            values = typicality(emb, self.k, device=device)
            record = plan
        else:
            dists, record = knn_distances(emb, k_eff, plan)
            values = 1.0 / np.maximum(dists.astype(np.float64).mean(axis=1), 1e-12)
            logger.warning(record.message())
        return Term(static=log_objective(values, self.strength), record=record.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The lightly entry (``knn`` only when not ``"auto"``: lightly has no such key)."""
        strategy: dict[str, Any] = {"type": "TYPICALITY", "k": self.k, "strength": self.strength}
        if self.knn != "auto":
            strategy["knn"] = self.knn
        return {"input": {"type": "EMBEDDINGS"}, "strategy": strategy}


@dataclass(frozen=True)
class SimilarityStrategy:
    """Closeness to a query set: ``query`` names one of :class:`SelectionInputs.queries`, or
    is a :class:`QuerySource` whose set a curation run puts there under ``query_name``."""

    query: str | QuerySource
    strength: float = DEFAULT_STRENGTH

    name: ClassVar[str] = "SIMILARITY"
    needs_embeddings: ClassVar[bool] = True
    is_filter: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not isinstance(self.query, QuerySource):
            check_name(self.query, "SimilarityStrategy.query")
        object.__setattr__(
            self, "strength", check_strength(self.strength, "SimilarityStrategy.strength")
        )

    def term(self, context: ObjectiveContext) -> Term:
        """``strength * log similarity`` to the nearest query."""
        from selfsup.selection.objectives import log_objective, similarity

        assert context.embeddings is not None
        queries = context.inputs.query_embeddings(self.query_name)
        return Term(static=log_objective(similarity(context.embeddings, queries), self.strength))

    @property
    def query_name(self) -> str:
        """The key of the query set in :attr:`SelectionInputs.queries`."""
        return self.query.key if isinstance(self.query, QuerySource) else self.query

    def to_dict(self) -> dict[str, Any]:
        """The lightly entry."""
        query = self.query.to_dict() if isinstance(self.query, QuerySource) else self.query
        return {
            "input": {"type": "EMBEDDINGS", "query": query},
            "strategy": {"type": "SIMILARITY", "strength": self.strength},
        }


@dataclass(frozen=True)
class WeightsStrategy:
    """Prefer samples with large non-negative values of a numeric input (objective = value)."""

    input: NumericInput
    strength: float = DEFAULT_STRENGTH

    name: ClassVar[str] = "WEIGHTS"
    needs_embeddings: ClassVar[bool] = False
    is_filter: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_typed_input(self.input, "WeightsStrategy.input", NUMERIC_KINDS, "numeric")
        object.__setattr__(
            self, "strength", check_strength(self.strength, "WeightsStrategy.strength")
        )

    def term(self, context: ObjectiveContext) -> Term:
        """``strength * log value``; values must be finite and >= 0."""
        from selfsup.selection.objectives import log_objective, weights

        values = weights(self.input.numeric(context.inputs), self.input.describe())
        return Term(static=log_objective(values, self.strength))

    def to_dict(self) -> dict[str, Any]:
        """The lightly entry."""
        return {
            "input": self.input.to_dict(),
            "strategy": {"type": "WEIGHTS", "strength": self.strength},
        }


_OP_TEXT: Final[dict[str, str]] = {
    "BIGGER": ">",
    "BIGGER_EQUAL": ">=",
    "SMALLER": "<",
    "SMALLER_EQUAL": "<=",
}


@dataclass(frozen=True)
class ThresholdStrategy:
    """Keep only samples whose numeric input satisfies ``value <operation> threshold``.

    Thresholds are applied before every other strategy; a missing value (NaN) fails them.
    """

    input: NumericInput
    operation: ThresholdOperation
    threshold: float

    name: ClassVar[str] = "THRESHOLD"
    needs_embeddings: ClassVar[bool] = False
    is_filter: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_typed_input(self.input, "ThresholdStrategy.input", NUMERIC_KINDS, "numeric")
        check_choice(
            self.operation, THRESHOLD_OPERATIONS, "ThresholdStrategy.operation", "operation"
        )
        object.__setattr__(
            self, "threshold", check_number(self.threshold, "ThresholdStrategy.threshold")
        )

    def term(self, context: ObjectiveContext) -> Term:
        """The keep mask (a missing value is never kept) and its description."""
        from selfsup.selection.objectives import threshold_mask

        keep = threshold_mask(self.input.numeric(context.inputs), self.operation, self.threshold)
        text = (
            f"THRESHOLD {self.input.describe()}: keep value {_OP_TEXT[self.operation]} "
            f"{self.threshold:g} (missing values removed)"
        )
        return Term(keep=keep, description=text)

    def to_dict(self) -> dict[str, Any]:
        """The lightly entry."""
        return {
            "input": self.input.to_dict(),
            "strategy": {
                "type": "THRESHOLD",
                "operation": self.operation,
                "threshold": self.threshold,
            },
        }


@dataclass(frozen=True)
class BalanceStrategy:
    """Steer the class distribution of the chosen set toward ``target``.

    ``target`` maps category names to shares (summing to at most 1; any remainder is spread
    evenly over the categories not listed) or is ``"uniform"`` (every category present in the
    input gets the same share).
    """

    input: CategoricalInput
    target: Mapping[str, float] | Literal["uniform"] = "uniform"
    strength: float = DEFAULT_STRENGTH

    name: ClassVar[str] = "BALANCE"
    needs_embeddings: ClassVar[bool] = False
    is_filter: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_typed_input(self.input, "BalanceStrategy.input", CATEGORICAL_KINDS, "categorical")
        object.__setattr__(self, "target", check_target(self.target, "BalanceStrategy.target"))
        object.__setattr__(
            self, "strength", check_strength(self.strength, "BalanceStrategy.strength")
        )

    def term(self, context: ObjectiveContext) -> Term:
        """A D'Hondt balance term; the greedy engine updates it after each pick."""
        from selfsup.selection.greedy import BalanceTerm
        from selfsup.selection.objectives import balance_target_shares

        counts = self.input.categorical(context.inputs)
        present = counts.counts.sum(axis=0) > 0
        shares = balance_target_shares(counts.names, present, self.target)
        return Term(balance=BalanceTerm(counts.counts, shares, self.strength))

    def to_dict(self) -> dict[str, Any]:
        """The lightly entry."""
        target = self.target if self.target == "uniform" else dict(self.target)
        return {
            "input": self.input.to_dict(),
            "strategy": {"type": "BALANCE", "target": target, "strength": self.strength},
        }


@dataclass(frozen=True)
class RandomStrategy:
    """Random selection: WEIGHTS on uniform random numbers drawn from ``seed``."""

    seed: int = DEFAULT_RANDOM_SEED
    strength: float = DEFAULT_STRENGTH

    name: ClassVar[str] = "WEIGHTS"
    needs_embeddings: ClassVar[bool] = False
    is_filter: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_int(self.seed, "RandomStrategy.seed", 0)
        object.__setattr__(
            self, "strength", check_strength(self.strength, "RandomStrategy.strength")
        )

    def term(self, context: ObjectiveContext) -> Term:
        """``strength * log u`` of uniform numbers ``u`` in (0, 1] from the seed."""
        from selfsup.selection.objectives import log_objective

        values = RandomInput(self.seed).numeric(context.inputs)
        return Term(static=log_objective(values, self.strength))

    def to_dict(self) -> dict[str, Any]:
        """The lightly entry."""
        return {
            "input": {"type": "RANDOM", "random_seed": self.seed},
            "strategy": {"type": "WEIGHTS", "strength": self.strength},
        }


# ----------------------------------------------------------------------------- strategy models


class DiversityConfig(StrengthConfig):
    """``{"type": "DIVERSITY", "strength"?, "stopping_condition_minimum_distance"?}``."""

    positive_strength: ClassVar[bool] = True

    type: Literal["DIVERSITY"] = "DIVERSITY"
    stopping_condition_minimum_distance: float | None = Field(
        None, description="stop when every candidate is closer than this to a chosen sample"
    )

    @field_validator("stopping_condition_minimum_distance", mode="before")
    @classmethod
    def _min_distance(cls, value: object) -> float | None:
        # lightly writes -1 for "no minimum distance"
        if value is None or check_number(value, "") < 0:
            return None
        return check_min_distance(value, "")

    def build(self, kind: InputKind, value: Any) -> TypedStrategy:
        """A :class:`DiversityStrategy`."""
        return DiversityStrategy(self.strength)

    def min_distance(self) -> float | None:
        """``stopping_condition_minimum_distance`` (None for lightly's -1)."""
        return self.stopping_condition_minimum_distance


class TypicalityConfig(StrengthConfig):
    """``{"type": "TYPICALITY", "k"?, "strength"?}``."""

    type: Literal["TYPICALITY"] = "TYPICALITY"
    k: int = Field(DEFAULT_TYPICALITY_K, description="neighbours of the density estimate")
    knn: KnnSetting = Field(
        "auto",
        description="kNN search: auto (exact up to 100,000 samples, approximate above), "
        "exact or approximate",
    )

    @field_validator("k", mode="before")
    @classmethod
    def _k(cls, value: object) -> int:
        return check_int(value, "", 1)

    def build(self, kind: InputKind, value: Any) -> TypedStrategy:
        """A :class:`TypicalityStrategy`."""
        return TypicalityStrategy(k=self.k, strength=self.strength, knn=self.knn)


class SimilarityConfig(StrengthConfig):
    """``{"type": "SIMILARITY", "strength"?}`` on ``EMBEDDINGS`` with a ``query``."""

    type: Literal["SIMILARITY"] = "SIMILARITY"

    def build(self, kind: InputKind, value: Any) -> TypedStrategy:
        """A :class:`SimilarityStrategy` toward the input's query set."""
        return SimilarityStrategy(query=value, strength=self.strength)


class WeightsConfig(StrengthConfig):
    """``{"type": "WEIGHTS", "strength"?}`` on a numeric input (RANDOM: random selection)."""

    type: Literal["WEIGHTS"] = "WEIGHTS"

    def build(self, kind: InputKind, value: Any) -> TypedStrategy:
        """A :class:`WeightsStrategy`, or a :class:`RandomStrategy` on a RANDOM input."""
        if isinstance(value, RandomInput):
            return RandomStrategy(seed=value.random_seed, strength=self.strength)
        return WeightsStrategy(input=value, strength=self.strength)


class ThresholdConfig(StrategyConfig):
    """``{"type": "THRESHOLD", "operation", "threshold"}`` on a numeric input."""

    type: Literal["THRESHOLD"] = "THRESHOLD"
    operation: ThresholdOperation
    threshold: float

    @field_validator("operation", mode="before")
    @classmethod
    def _operation(cls, value: object) -> str:
        return check_choice(value, THRESHOLD_OPERATIONS, "", "operation")

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold(cls, value: object) -> float:
        return check_number(value, "")

    def build(self, kind: InputKind, value: Any) -> TypedStrategy:
        """A :class:`ThresholdStrategy`."""
        return ThresholdStrategy(value, self.operation, self.threshold)


class BalanceConfig(StrengthConfig):
    """``{"type": "BALANCE", "target"?, "strength"?}`` on a categorical input."""

    type: Literal["BALANCE"] = "BALANCE"
    target: dict[str, float] | Literal["uniform"] = Field(
        "uniform", description="'uniform' or category -> share (shares summing to <= 1)"
    )

    @field_validator("target", mode="before")
    @classmethod
    def _target(cls, value: object) -> dict[str, float] | Literal["uniform"]:
        return check_target(value, "")

    def build(self, kind: InputKind, value: Any) -> TypedStrategy:
        """A :class:`BalanceStrategy`."""
        return BalanceStrategy(value, self.target, self.strength)


_EMBEDDINGS: Final = {"input": {"type": "EMBEDDINGS"}}
register_strategy(
    StrategyType(
        "DIVERSITY",
        DiversityConfig,
        ("EMBEDDINGS",),
        (DiversityStrategy,),
        "distance to the nearest chosen sample (k-center greedy)",
        {**_EMBEDDINGS, "strategy": {"type": "DIVERSITY"}},
    )
)
register_strategy(
    StrategyType(
        "TYPICALITY",
        TypicalityConfig,
        ("EMBEDDINGS",),
        (TypicalityStrategy,),
        "1 / mean distance to the k nearest neighbours (density)",
        {**_EMBEDDINGS, "strategy": {"type": "TYPICALITY", "k": 3}},
    )
)
register_strategy(
    StrategyType(
        "SIMILARITY",
        SimilarityConfig,
        ("QUERY",),
        (SimilarityStrategy,),
        "closeness to the nearest sample of a query set",
        {"input": {"type": "EMBEDDINGS", "query": "q"}, "strategy": {"type": "SIMILARITY"}},
    )
)
register_strategy(
    StrategyType(
        "WEIGHTS",
        WeightsConfig,
        NUMERIC_KINDS,
        (WeightsStrategy, RandomStrategy),
        "the input value (>= 0)",
        {"input": {"type": "METADATA", "key": "w"}, "strategy": {"type": "WEIGHTS"}},
    )
)
register_strategy(
    StrategyType(
        "THRESHOLD",
        ThresholdConfig,
        NUMERIC_KINDS,
        (ThresholdStrategy,),
        "filter: keep value <operation> threshold",
        {
            "input": {"type": "METADATA", "key": "w"},
            "strategy": {"type": "THRESHOLD", "operation": "BIGGER", "threshold": 0.5},
        },
    )
)
register_strategy(
    StrategyType(
        "BALANCE",
        BalanceConfig,
        CATEGORICAL_KINDS,
        (BalanceStrategy,),
        "steer the class mix of the chosen set toward a target",
        {"input": {"type": "METADATA", "key": "cls"}, "strategy": {"type": "BALANCE"}},
    )
)
