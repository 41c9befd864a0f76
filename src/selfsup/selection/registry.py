"""The registries of selection inputs and strategies, and the checks their configs share.

A *strategy type* (``DIVERSITY``, ``TYPICALITY``, ..., ``KMEANS``) is one registered
:class:`StrategyType`: the pydantic model of its ``strategy`` dict (one member of the
discriminated union on ``type``), the input kinds it reads, and how it becomes the typed
strategy that :func:`selfsup.selection.select` runs. The typed strategy carries its own
objective (:meth:`TypedStrategy.term`), so the engine asks each strategy for its term instead
of testing its class. An *input type* (``EMBEDDINGS``, ``SCORES``, ...) is one registered
:class:`InputType`: the pydantic model of its ``input`` dict, which resolves to a typed input
whose ``numeric``/``categorical`` methods load its values from
:class:`~selfsup.selection.SelectionInputs`.

Adding a strategy is one module (its config model, its typed strategy with ``term``) plus its
name in ``selfsup.selection.config.STRATEGY_MODULES``; the unions of the config models, the
``--help`` text, the error messages and the contract tests in
``tests/selection/test_registry.py`` pick it up from here.

This module imports neither torch nor numpy at import time: the server validates selection
configs without loading the selection engine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, NoReturn, Protocol, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, field_validator

from selfsup.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from selfsup.selection.greedy import BalanceTerm
    from selfsup.selection.inputs import SelectionInputs

__all__ = [
    "INPUTS",
    "STRATEGIES",
    "InputKind",
    "InputType",
    "ObjectiveContext",
    "SelectionConfigError",
    "StrategyType",
    "StrengthConfig",
    "Term",
    "register_input",
    "register_strategy",
]

#: What an input gives a strategy: embeddings, embeddings plus a query set, one number per
#: sample, one category (or class counts) per sample, or a metadata column that is either.
InputKind: TypeAlias = Literal[
    "EMBEDDINGS", "QUERY", "NUMERIC", "CATEGORICAL", "NUMERIC_OR_CATEGORICAL"
]

#: How an input kind is named in error messages.
KIND_TEXT: Final[dict[str, str]] = {
    "EMBEDDINGS": "EMBEDDINGS",
    "QUERY": "EMBEDDINGS with a query",
    "NUMERIC": "SCORES, METADATA, PREDICTIONS CATEGORY_COUNT or RANDOM",
    "CATEGORICAL": "METADATA or PREDICTIONS CLASS_DISTRIBUTION",
    "NUMERIC_OR_CATEGORICAL": "METADATA",
}

#: The exponent of a strategy's objective when a config gives none.
DEFAULT_STRENGTH: Final = 1.0
#: Largest ``|strength|``: strength multiplies log-objectives down to log(1e-30) ~ -69, and
#: the sums must stay finite.
MAX_STRENGTH: Final = 1e6


class SelectionConfigError(ConfigError):
    """A selection config key or value is invalid.

    Attributes:
        key_path: Dotted path of the offending key, e.g. ``selection_config.strategies[1].input``.
        reason: What is wrong and what would be accepted.
    """

    def __init__(self, key_path: str, reason: str) -> None:
        self.key_path = key_path
        self.reason = reason
        super().__init__(f"{key_path}: {reason}")


def fail(path: str, reason: str) -> NoReturn:
    """Raise :class:`SelectionConfigError` for ``path``.

    Inside a config model's validator ``path`` is the part *below* the field at fault ('' for
    the field itself, ``".Bus"`` for a key of a mapping field): the translation of pydantic's
    errors puts the location of the field in front.
    """
    raise SelectionConfigError(path, reason)


# ----------------------------------------------------------------------------- value checks
# Shared by the config models (pydantic validators) and the typed objects (``__post_init__``):
# one rule and one message per kind of value.


def check_choice(value: object, options: Sequence[str], path: str, what: str) -> str:
    """``value`` if it is one of ``options``, else an error suggesting the closest."""
    if not isinstance(value, str) or value not in options:
        hint = did_you_mean(value, options) if isinstance(value, str) else ""
        fail(path, f"unknown {what} {value!r}{hint or '.'} Accepted: {', '.join(options)}")
    return value


def check_number(value: object, path: str) -> float:
    """A finite int or float (never a bool) as float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        fail(path, f"expected a number, got {value!r} ({type(value).__name__})")
    out = float(value)
    if not math.isfinite(out):
        fail(path, f"expected a finite number, got {value!r}")
    return out


def check_strength(value: object, path: str, *, positive: bool = False) -> float:
    """A non-zero exponent in ``[-MAX_STRENGTH, MAX_STRENGTH]`` (``> 0`` if ``positive``)."""
    out = check_number(value, path)
    if abs(out) > MAX_STRENGTH:
        fail(path, f"must lie in [-{MAX_STRENGTH:g}, {MAX_STRENGTH:g}], got {value!r}")
    if positive and out <= 0:
        fail(
            path,
            f"must be > 0, got {value!r} (to prefer samples close to a set, use SIMILARITY)",
        )
    if out == 0:
        fail(path, "must be non-zero (remove the strategy to disable it)")
    return out


def check_int(value: object, path: str, minimum: int) -> int:
    """An int (never a bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        fail(path, f"expected an integer >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        fail(path, f"expected an integer >= {minimum}, got {value}")
    return value


def check_name(value: object, path: str) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        fail(path, f"expected a non-empty string, got {value!r}")
    return value


def check_fraction(value: object, path: str) -> float:
    """A number in (0, 1]."""
    out = check_number(value, path)
    if not 0.0 < out <= 1.0:
        fail(path, f"a fraction must be in (0, 1], got {value!r}")
    return out


def check_n_samples(value: object, path: str) -> int | float:
    """An int >= 1 (a count) or a float in (0, 1] (a fraction of all samples)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        fail(path, f"expected an int >= 1 or a fraction in (0, 1], got {value!r}")
    if isinstance(value, int):
        return check_int(value, path, 1)
    return check_fraction(value, path)


def check_min_distance(value: object, path: str) -> float:
    """A distance in (0, 2] between L2-normalised embeddings."""
    out = check_number(value, path)
    if not 0.0 < out <= 2.0:
        fail(
            path,
            f"must be in (0, 2] (distances of L2-normalised embeddings lie in [0, 2]), "
            f"got {value!r}",
        )
    return out


def check_target(value: object, path: str) -> dict[str, float] | Literal["uniform"]:
    """``"uniform"`` or a non-empty mapping category -> share >= 0, shares summing to <= 1."""
    if value == "uniform":
        return "uniform"
    if not isinstance(value, Mapping) or not value:
        fail(path, f"expected 'uniform' or a non-empty mapping category -> share, got {value!r}")
    out: dict[str, float] = {}
    for key, share in value.items():
        key_path = f"{path}.{key}"
        if not isinstance(key, str) or not key:
            fail(key_path, f"category names must be non-empty strings, got {key!r}")
        number = check_number(share, key_path)
        if number < 0:
            fail(key_path, f"a target share must be >= 0, got {share!r}")
        out[key] = number
    total = sum(out.values())
    if total > 1.0 + 1e-6:
        fail(path, f"target shares must sum to at most 1, got {total:g}")
    if total <= 0.0:
        fail(path, "target shares must not all be zero")
    return out


# ----------------------------------------------------------------------------- engine protocol


@dataclass(frozen=True)
class ObjectiveContext:
    """What a strategy may read to compute its term (see :meth:`TypedStrategy.term`).

    Attributes:
        inputs: The selection's arrays.
        embeddings: ``(N, D)`` L2-normalised float32 embeddings when any strategy of the
            config needs them, else None.
        candidates: ``(N,)`` bool, True for samples that may still be chosen (thresholds
            applied, preselected samples excluded).
        n_requested: Most new samples the stopping conditions allow.
        device: Torch device the selection runs on (``"cpu"``, ``"cuda"``, ...), for
            strategies whose term is heavy arithmetic (TYPICALITY's kNN search).
    """

    inputs: SelectionInputs
    embeddings: NDArray[np.float32] | None
    candidates: NDArray[np.bool_]
    n_requested: int
    device: str = "cpu"


@dataclass(frozen=True)
class Term:
    """One strategy's share of the greedy objective.

    Attributes:
        static: ``(N,)`` ``strength * log(objective)`` of an objective that never changes
            during the selection; added to the static sum.
        diversity_strength: Exponent of the k-center distance term (DIVERSITY); 0 for none.
        balance: A class-balance term whose objective changes with each pick.
        keep: ``(N,)`` bool of a filter (THRESHOLD): False removes the sample before any
            ranking.
        description: What a filter keeps, for ``data/selection.csv``.
        record: How the term was computed where the data's size chose the method (e.g.
            TYPICALITY's kNN search: exact or approximate, its recall), JSON-ready; kept in
            :attr:`SelectionResult.methods` and the run's report.json.
    """

    static: NDArray[np.float64] | None = None
    diversity_strength: float = 0.0
    balance: BalanceTerm | None = None
    keep: NDArray[np.bool_] | None = None
    description: str = ""
    record: Mapping[str, Any] | None = None


class TypedInput(Protocol):
    """What a typed input offers; it also has the loader of its kind: ``numeric(inputs)``
    (``(N,)`` float64, NaN for missing) and/or ``categorical(inputs)`` (``ClassCounts``)."""

    kind: ClassVar[InputKind]

    def describe(self) -> str:
        """How the input is named in filter descriptions, e.g. ``METADATA lightly.sharpness``."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """The lightly ``input`` dict."""
        ...


class TypedStrategy(Protocol):
    """What the engine needs from a typed strategy."""

    #: The registered strategy type (``"DIVERSITY"``, ...).
    name: ClassVar[str]
    #: True when the strategy reads the (L2-normalised) embeddings.
    needs_embeddings: ClassVar[bool]
    #: True for a filter (THRESHOLD): applied before every other strategy, ranks nothing.
    is_filter: ClassVar[bool]

    def term(self, context: ObjectiveContext) -> Term:
        """This strategy's share of the greedy objective (a filter: its ``keep`` mask).

        Filters are asked first, with ``context.embeddings`` None and the candidates before
        filtering; every other strategy afterwards, with the filtered candidates.
        """
        ...

    def to_dict(self) -> dict[str, Any]:
        """The lightly ``{"input": ..., "strategy": ...}`` entry."""
        ...


# ----------------------------------------------------------------------------- config models


class ConfigModel(BaseModel):
    """Base of the selection config models: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class InputConfig(ConfigModel):
    """Base of the ``input`` dict models; each subclass has ``type: Literal[NAME]``."""

    type: str

    def resolve(self) -> tuple[InputKind, Any]:
        """``(kind, typed input)``: the typed input object (for QUERY a query set's name or a
        :class:`~selfsup.selection.input_types.QuerySource`, None for plain EMBEDDINGS) that
        strategies receive."""
        raise NotImplementedError


class StrategyConfig(ConfigModel):
    """Base of the ``strategy`` dict models; each subclass has ``type: Literal[NAME]``."""

    type: str

    def build(self, kind: InputKind, value: Any) -> TypedStrategy:
        """The typed strategy reading the resolved input ``(kind, value)``."""
        raise NotImplementedError

    def min_distance(self) -> float | None:
        """A stopping distance this strategy sets (DIVERSITY's lightly key), else None."""
        return None


class StrengthConfig(StrategyConfig):
    """A strategy model with a ``strength``: the exponent of its objective in the product."""

    #: True where a negative strength makes no sense (DIVERSITY: it would pick the samples
    #: closest to the chosen set).
    positive_strength: ClassVar[bool] = False

    strength: float = Field(DEFAULT_STRENGTH, description="exponent of the objective")

    @field_validator("strength", mode="before")
    @classmethod
    def _strength(cls, value: object) -> float:
        return check_strength(value, "", positive=cls.positive_strength)


@dataclass(frozen=True)
class InputType:
    """A registered input type: the model of its ``input`` dict and its loader.

    Attributes:
        name: The ``type`` value, e.g. ``"SCORES"``.
        config: The pydantic model of the ``input`` dict; ``config.resolve()`` gives the typed
            input, a :class:`TypedInput` whose ``numeric`` / ``categorical`` loads its values.
        example: An ``input`` dict of it that validates, for the contract tests.
    """

    name: str
    config: type[InputConfig]
    example: Mapping[str, Any]


@dataclass(frozen=True)
class StrategyType:
    """A registered strategy type.

    Attributes:
        name: The ``type`` value, e.g. ``"TYPICALITY"``.
        config: The pydantic model of the ``strategy`` dict; ``config.build`` makes the typed
            strategy.
        accepts: Input kinds it reads.
        typed: The typed strategy classes it builds (for the contract tests and docs).
        objective: One line on its objective, for ``--help`` and the docs.
        example: A config entry ``{"input": ..., "strategy": ...}`` of it that validates, for
            the contract tests.
    """

    name: str
    config: type[StrategyConfig]
    accepts: tuple[InputKind, ...]
    typed: tuple[type[Any], ...]
    objective: str
    example: Mapping[str, Any]

    @property
    def accepts_text(self) -> str:
        """The inputs of ``accepts`` as named in error messages (METADATA, the input that is
        either kind, is already named in the NUMERIC and CATEGORICAL texts)."""
        kinds = [k for k in self.accepts if k != "NUMERIC_OR_CATEGORICAL"] or self.accepts
        return " or ".join(KIND_TEXT[k] for k in kinds)


#: Registered input types by name, in registration order.
INPUTS: dict[str, InputType] = {}
#: Registered strategy types by name, in registration order.
STRATEGIES: dict[str, StrategyType] = {}


def register_input(entry: InputType) -> InputType:
    """Add an input type; its ``type`` must be new."""
    if entry.name in INPUTS:
        raise ValueError(f"input type {entry.name!r} is registered twice")
    INPUTS[entry.name] = entry
    return entry


def register_strategy(entry: StrategyType) -> StrategyType:
    """Add a strategy type; its ``type`` must be new."""
    if entry.name in STRATEGIES:
        raise ValueError(f"strategy type {entry.name!r} is registered twice")
    STRATEGIES[entry.name] = entry
    return entry
