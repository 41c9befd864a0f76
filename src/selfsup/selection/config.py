"""Typed selection configs and their parser from the lightly Worker ``selection_config`` dict.

A selection is described by *strategies*, each reading one *input* (embeddings, scores,
metadata, predictions or random numbers), and by *stopping conditions*. The typed objects
below are what :func:`selfsup.selection.select` consumes; :func:`parse_selection_config`
builds them from the dict form lightly users already write::

    {
        "n_samples": 100,
        "strategies": [
            {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
            {"input": {"type": "SCORES", "task": "my-task", "score": "uncertainty_entropy"},
             "strategy": {"type": "WEIGHTS"}},
            {"input": {"type": "METADATA", "key": "lightly.sharpness"},
             "strategy": {"type": "THRESHOLD", "threshold": 20, "operation": "BIGGER"}},
            {"input": {"type": "PREDICTIONS", "task": "my-task", "name": "CLASS_DISTRIBUTION"},
             "strategy": {"type": "BALANCE", "target": {"Ambulance": 0.2, "Bus": 0.4}}},
        ],
    }

Accepted input/strategy pairs (as in lightly):

============================================  =========================================
input                                         strategies
============================================  =========================================
``EMBEDDINGS``                                ``DIVERSITY``, ``TYPICALITY``
``EMBEDDINGS`` with ``query``                 ``SIMILARITY``
``SCORES`` (``task``, ``score``)              ``WEIGHTS``, ``THRESHOLD``
``METADATA`` (``key``)                        ``WEIGHTS``, ``THRESHOLD`` (numbers), ``BALANCE``
``PREDICTIONS`` ``name=CATEGORY_COUNT``       ``WEIGHTS``, ``THRESHOLD``
``PREDICTIONS`` ``name=CLASS_DISTRIBUTION``   ``BALANCE``
``RANDOM`` (``random_seed``)                  ``WEIGHTS`` (= :class:`RandomStrategy`), ``THRESHOLD``
============================================  =========================================

Every strategy except THRESHOLD takes an optional ``strength`` (default 1.0): the exponent of
its objective in the product that the greedy engine maximises (see
:mod:`selfsup.selection.engine`). Stopping conditions: ``n_samples`` (an int >= 1, or a float
in (0, 1] read as a fraction of all samples), ``proportion_samples`` (a fraction) and
``min_distance`` (only with DIVERSITY; also accepted as the DIVERSITY strategy's
``stopping_condition_minimum_distance``). Selection stops when any condition is met.

Errors are :class:`SelectionConfigError` (a :class:`~selfsup.errors.ConfigError`) whose message
starts with the dotted key path at fault and, for unknown names, suggests the closest valid one.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NoReturn, TypeAlias, cast, get_args

from selfsup.errors import ConfigError

__all__ = [
    "BalanceStrategy",
    "CategoricalInput",
    "CategoryCountInput",
    "ClassDistributionInput",
    "DiversityStrategy",
    "MetadataInput",
    "NumericInput",
    "RandomInput",
    "RandomStrategy",
    "ScoresInput",
    "SelectionConfig",
    "SelectionConfigError",
    "SimilarityStrategy",
    "Strategy",
    "ThresholdOperation",
    "ThresholdStrategy",
    "TypicalityStrategy",
    "WeightsStrategy",
    "parse_selection_config",
    "selection_config_from_worker_config",
]

ThresholdOperation: TypeAlias = Literal["BIGGER", "BIGGER_EQUAL", "SMALLER", "SMALLER_EQUAL"]
THRESHOLD_OPERATIONS: Final[tuple[str, ...]] = get_args(ThresholdOperation)
INPUT_TYPES: Final[tuple[str, ...]] = ("EMBEDDINGS", "SCORES", "METADATA", "PREDICTIONS", "RANDOM")
STRATEGY_TYPES: Final[tuple[str, ...]] = (
    "DIVERSITY",
    "TYPICALITY",
    "SIMILARITY",
    "WEIGHTS",
    "THRESHOLD",
    "BALANCE",
)
PREDICTION_NAMES: Final[tuple[str, ...]] = ("CLASS_DISTRIBUTION", "CATEGORY_COUNT")
LEGACY_METHODS: Final[tuple[str, ...]] = ("typicality_coreset", "coreset", "random", "coral")

#: What ``method`` selects when a config names none. Pure k-center greedy (``coreset``) picks
#: outliers first and lost to random selection at every labelling budget in
#: benchmarks/label_efficiency.py; weighting it by typicality beat random at every budget.
DEFAULT_METHOD: Final[str] = "typicality_coreset"

#: The typicality term of ``typicality_coreset`` (measured best in label_efficiency.py).
DEFAULT_TYPICALITY: Final[tuple[int, float]] = (50, 0.75)


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


def _fail(path: str, reason: str) -> NoReturn:
    raise SelectionConfigError(path, reason)


def did_you_mean(word: str, options: Sequence[str]) -> str:
    """``"; did you mean 'X'?"`` for the closest of ``options`` to ``word``, else ``""``."""
    exact = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    if exact:
        return f"; did you mean {exact[0]!r}?"
    # case-insensitive second try: 'diversity' -> 'DIVERSITY', 'A' -> 'a'
    lowered = {option.lower(): option for option in options}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.5)
    return f"; did you mean {lowered[close[0]]!r}?" if close else ""


def _choice(value: object, options: Sequence[str], path: str, what: str) -> str:
    if not isinstance(value, str) or value not in options:
        hint = did_you_mean(value, options) if isinstance(value, str) else ""
        _fail(path, f"unknown {what} {value!r}{hint or '.'} Accepted: {', '.join(options)}")
    return value


def _number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(path, f"expected a number, got {value!r} ({type(value).__name__})")
    out = float(value)
    if not math.isfinite(out):
        _fail(path, f"expected a finite number, got {value!r}")
    return out


MAX_STRENGTH: Final = 1e6


def _strength(value: object, path: str, *, positive: bool = False) -> float:
    out = _number(value, path)
    if abs(out) > MAX_STRENGTH:
        # strength multiplies log-objectives down to log(1e-30) ~ -69; keep sums finite
        _fail(path, f"must lie in [-{MAX_STRENGTH:g}, {MAX_STRENGTH:g}], got {value!r}")
    if positive and out <= 0:
        _fail(
            path,
            f"must be > 0, got {value!r} (to prefer samples close to a set, use SIMILARITY)",
        )
    if out == 0:
        _fail(path, "must be non-zero (remove the strategy to disable it)")
    return out


def _int(value: object, path: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, f"expected an integer >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        _fail(path, f"expected an integer >= {minimum}, got {value}")
    return value


def _name(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        _fail(path, f"expected a non-empty string, got {value!r}")
    return value


def _fraction(value: object, path: str) -> float:
    out = _number(value, path)
    if not 0.0 < out <= 1.0:
        _fail(path, f"a fraction must be in (0, 1], got {value!r}")
    return out


def _n_samples(value: object, path: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(path, f"expected an int >= 1 or a fraction in (0, 1], got {value!r}")
    if isinstance(value, int):
        return _int(value, path, 1)
    return _fraction(value, path)


def _min_distance(value: object, path: str) -> float:
    out = _number(value, path)
    if not 0.0 < out <= 2.0:
        _fail(
            path,
            f"must be in (0, 2] (distances of L2-normalised embeddings lie in [0, 2]), "
            f"got {value!r}",
        )
    return out


def _target(value: object, path: str) -> dict[str, float] | Literal["uniform"]:
    if value == "uniform":
        return "uniform"
    if not isinstance(value, Mapping) or not value:
        _fail(path, f"expected 'uniform' or a non-empty mapping category -> share, got {value!r}")
    out: dict[str, float] = {}
    for key, share in value.items():
        key_path = f"{path}.{key}"
        if not isinstance(key, str) or not key:
            _fail(key_path, f"category names must be non-empty strings, got {key!r}")
        number = _number(share, key_path)
        if number < 0:
            _fail(key_path, f"a target share must be >= 0, got {share!r}")
        out[key] = number
    total = sum(out.values())
    if total > 1.0 + 1e-6:
        _fail(path, f"target shares must sum to at most 1, got {total:g}")
    if total <= 0.0:
        _fail(path, "target shares must not all be zero")
    return out


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ScoresInput:
    """Active-learning scores ``score`` computed for prediction task ``task`` (numeric)."""

    task: str
    score: str

    def __post_init__(self) -> None:
        _name(self.task, "ScoresInput.task")
        _name(self.score, "ScoresInput.score")


@dataclass(frozen=True)
class MetadataInput:
    """The metadata column ``key``: numeric for WEIGHTS/THRESHOLD, any values for BALANCE."""

    key: str

    def __post_init__(self) -> None:
        _name(self.key, "MetadataInput.key")


@dataclass(frozen=True)
class CategoryCountInput:
    """Number of predicted objects of class ``category`` per sample in task ``task``."""

    task: str
    category: str

    def __post_init__(self) -> None:
        _name(self.task, "CategoryCountInput.task")
        _name(self.category, "CategoryCountInput.category")


@dataclass(frozen=True)
class ClassDistributionInput:
    """Predicted classes (one per image, or objects per image) of task ``task``."""

    task: str

    def __post_init__(self) -> None:
        _name(self.task, "ClassDistributionInput.task")


@dataclass(frozen=True)
class RandomInput:
    """Uniform random numbers in (0, 1], one per sample, drawn from ``random_seed``."""

    random_seed: int = 0

    def __post_init__(self) -> None:
        _int(self.random_seed, "RandomInput.random_seed", 0)


NumericInput: TypeAlias = ScoresInput | MetadataInput | CategoryCountInput | RandomInput
CategoricalInput: TypeAlias = MetadataInput | ClassDistributionInput
_NUMERIC_INPUTS = (ScoresInput, MetadataInput, CategoryCountInput, RandomInput)
_CATEGORICAL_INPUTS = (MetadataInput, ClassDistributionInput)


# ----------------------------------------------------------------------------- strategies


@dataclass(frozen=True)
class DiversityStrategy:
    """k-center greedy on L2-normalised embeddings: objective = distance to nearest chosen."""

    strength: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "strength", _strength(self.strength, "DiversityStrategy.strength", positive=True)
        )


@dataclass(frozen=True)
class TypicalityStrategy:
    """k-nearest-neighbour density: objective = 1 / mean distance to the ``k`` nearest samples."""

    k: int = 20
    strength: float = 1.0

    def __post_init__(self) -> None:
        _int(self.k, "TypicalityStrategy.k", 1)
        object.__setattr__(
            self, "strength", _strength(self.strength, "TypicalityStrategy.strength")
        )


@dataclass(frozen=True)
class SimilarityStrategy:
    """Closeness to the query set named ``query`` in :class:`SelectionInputs.queries`."""

    query: str
    strength: float = 1.0

    def __post_init__(self) -> None:
        _name(self.query, "SimilarityStrategy.query")
        object.__setattr__(
            self, "strength", _strength(self.strength, "SimilarityStrategy.strength")
        )


@dataclass(frozen=True)
class WeightsStrategy:
    """Prefer samples with large non-negative values of a numeric input (objective = value)."""

    input: NumericInput
    strength: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.input, _NUMERIC_INPUTS):
            _fail("WeightsStrategy.input", f"expected a numeric input, got {self.input!r}")
        object.__setattr__(self, "strength", _strength(self.strength, "WeightsStrategy.strength"))


@dataclass(frozen=True)
class ThresholdStrategy:
    """Keep only samples whose numeric input satisfies ``value <operation> threshold``.

    Thresholds are applied before every other strategy; a missing value (NaN) fails them.
    """

    input: NumericInput
    operation: ThresholdOperation
    threshold: float

    def __post_init__(self) -> None:
        if not isinstance(self.input, _NUMERIC_INPUTS):
            _fail("ThresholdStrategy.input", f"expected a numeric input, got {self.input!r}")
        _choice(self.operation, THRESHOLD_OPERATIONS, "ThresholdStrategy.operation", "operation")
        object.__setattr__(
            self, "threshold", _number(self.threshold, "ThresholdStrategy.threshold")
        )


@dataclass(frozen=True)
class BalanceStrategy:
    """Steer the class distribution of the chosen set toward ``target``.

    ``target`` maps category names to shares (summing to at most 1; any remainder is spread
    evenly over the categories not listed) or is ``"uniform"`` (every category present in the
    input gets the same share).
    """

    input: CategoricalInput
    target: Mapping[str, float] | Literal["uniform"] = "uniform"
    strength: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.input, _CATEGORICAL_INPUTS):
            _fail("BalanceStrategy.input", f"expected a categorical input, got {self.input!r}")
        object.__setattr__(self, "target", _target(self.target, "BalanceStrategy.target"))
        object.__setattr__(self, "strength", _strength(self.strength, "BalanceStrategy.strength"))


@dataclass(frozen=True)
class RandomStrategy:
    """Random selection: WEIGHTS on uniform random numbers drawn from ``seed``."""

    seed: int = 0
    strength: float = 1.0

    def __post_init__(self) -> None:
        _int(self.seed, "RandomStrategy.seed", 0)
        object.__setattr__(self, "strength", _strength(self.strength, "RandomStrategy.strength"))


Strategy: TypeAlias = (
    DiversityStrategy
    | TypicalityStrategy
    | SimilarityStrategy
    | WeightsStrategy
    | ThresholdStrategy
    | BalanceStrategy
    | RandomStrategy
)
_STRATEGY_CLASSES = (
    DiversityStrategy,
    TypicalityStrategy,
    SimilarityStrategy,
    WeightsStrategy,
    ThresholdStrategy,
    BalanceStrategy,
    RandomStrategy,
)


def _check_config(
    strategies: Sequence[object],
    n_samples: int | float | None,
    proportion_samples: float | None,
    min_distance: float | None,
    root: str,
) -> None:
    """Cross-field checks shared by :class:`SelectionConfig` and the dict parser."""
    if not strategies:
        _fail(f"{root}.strategies", "at least one strategy is required, e.g. DIVERSITY")
    n_diversity = 0
    n_scoring = 0
    for i, strategy in enumerate(strategies):
        if not isinstance(strategy, _STRATEGY_CLASSES):
            _fail(f"{root}.strategies[{i}]", f"not a strategy: {strategy!r}")
        if isinstance(strategy, DiversityStrategy):
            n_diversity += 1
            if n_diversity > 1:
                _fail(f"{root}.strategies[{i}]", "DIVERSITY may appear only once")
        if not isinstance(strategy, ThresholdStrategy):
            n_scoring += 1
    if n_scoring == 0:
        _fail(
            f"{root}.strategies",
            "only THRESHOLD strategies given; add one that ranks samples "
            "(DIVERSITY, WEIGHTS, RANDOM, ...)",
        )
    if min_distance is not None and n_diversity == 0:
        _fail(f"{root}.min_distance", "min_distance needs a DIVERSITY strategy")
    if n_samples is None and proportion_samples is None and min_distance is None:
        _fail(
            root,
            "no stopping condition: set n_samples, proportion_samples or min_distance",
        )


@dataclass(frozen=True)
class SelectionConfig:
    """What to select and when to stop.

    Attributes:
        strategies: The strategies, combined in one greedy loop (thresholds filter first).
        n_samples: Number of *new* samples to choose (int >= 1), or a fraction in (0, 1] of
            all samples (``0.1`` -> ``round(0.1 * N)``). Preselected samples do not count.
        proportion_samples: A fraction in (0, 1] of all samples, like a float ``n_samples``.
        min_distance: Choose a sample only if its distance (between L2-normalised embeddings)
            to every chosen sample is at least this; needs DIVERSITY.
    """

    strategies: tuple[Strategy, ...]
    n_samples: int | float | None = None
    proportion_samples: float | None = None
    min_distance: float | None = None

    def __post_init__(self) -> None:
        root = "SelectionConfig"
        if isinstance(self.strategies, str) or not isinstance(self.strategies, Sequence):
            _fail(
                f"{root}.strategies", f"expected a sequence of strategies, got {self.strategies!r}"
            )
        object.__setattr__(self, "strategies", tuple(self.strategies))
        if self.n_samples is not None:
            object.__setattr__(self, "n_samples", _n_samples(self.n_samples, f"{root}.n_samples"))
        if self.proportion_samples is not None:
            object.__setattr__(
                self,
                "proportion_samples",
                _fraction(self.proportion_samples, f"{root}.proportion_samples"),
            )
        if self.min_distance is not None:
            object.__setattr__(
                self, "min_distance", _min_distance(self.min_distance, f"{root}.min_distance")
            )
        _check_config(
            self.strategies, self.n_samples, self.proportion_samples, self.min_distance, root
        )

    def resolve_n_new(self, n_total: int) -> int:
        """Upper bound on new samples for a dataset of ``n_total`` samples (``n_total`` if none).

        A fraction ``f`` means ``floor(f * n_total + 0.5)`` samples.
        """
        limits = [n_total]
        for value in (self.n_samples, self.proportion_samples):
            if isinstance(value, int):
                limits.append(value)
            elif isinstance(value, float):
                limits.append(math.floor(value * n_total + 0.5))
        return max(0, min(limits))

    def to_dict(self) -> dict[str, Any]:
        """The lightly-shaped dict form; ``parse_selection_config(c.to_dict()) == c``."""
        out: dict[str, Any] = {}
        if self.n_samples is not None:
            out["n_samples"] = self.n_samples
        if self.proportion_samples is not None:
            out["proportion_samples"] = self.proportion_samples
        if self.min_distance is not None:
            out["min_distance"] = self.min_distance
        out["strategies"] = [_strategy_to_dict(s) for s in self.strategies]
        return out


# ----------------------------------------------------------------------------- dict form


def _input_to_dict(inp: NumericInput | CategoricalInput) -> dict[str, Any]:
    if isinstance(inp, ScoresInput):
        return {"type": "SCORES", "task": inp.task, "score": inp.score}
    if isinstance(inp, MetadataInput):
        return {"type": "METADATA", "key": inp.key}
    if isinstance(inp, CategoryCountInput):
        return {
            "type": "PREDICTIONS",
            "task": inp.task,
            "name": "CATEGORY_COUNT",
            "category": inp.category,
        }
    if isinstance(inp, ClassDistributionInput):
        return {"type": "PREDICTIONS", "task": inp.task, "name": "CLASS_DISTRIBUTION"}
    return {"type": "RANDOM", "random_seed": inp.random_seed}


def _strategy_to_dict(strategy: Strategy) -> dict[str, Any]:
    if isinstance(strategy, DiversityStrategy):
        return {
            "input": {"type": "EMBEDDINGS"},
            "strategy": {"type": "DIVERSITY", "strength": strategy.strength},
        }
    if isinstance(strategy, TypicalityStrategy):
        return {
            "input": {"type": "EMBEDDINGS"},
            "strategy": {"type": "TYPICALITY", "k": strategy.k, "strength": strategy.strength},
        }
    if isinstance(strategy, SimilarityStrategy):
        return {
            "input": {"type": "EMBEDDINGS", "query": strategy.query},
            "strategy": {"type": "SIMILARITY", "strength": strategy.strength},
        }
    if isinstance(strategy, WeightsStrategy):
        return {
            "input": _input_to_dict(strategy.input),
            "strategy": {"type": "WEIGHTS", "strength": strategy.strength},
        }
    if isinstance(strategy, ThresholdStrategy):
        return {
            "input": _input_to_dict(strategy.input),
            "strategy": {
                "type": "THRESHOLD",
                "operation": strategy.operation,
                "threshold": strategy.threshold,
            },
        }
    if isinstance(strategy, BalanceStrategy):
        target = strategy.target if strategy.target == "uniform" else dict(strategy.target)
        return {
            "input": _input_to_dict(strategy.input),
            "strategy": {"type": "BALANCE", "target": target, "strength": strategy.strength},
        }
    return {
        "input": {"type": "RANDOM", "random_seed": strategy.seed},
        "strategy": {"type": "WEIGHTS", "strength": strategy.strength},
    }


def _mapping(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(path, f"expected a mapping, got {value!r} ({type(value).__name__})")
    return value


def _check_keys(
    value: Mapping[str, Any], allowed: Sequence[str], required: Sequence[str], path: str
) -> None:
    for key in value:
        if key not in allowed:
            hint = did_you_mean(str(key), allowed)
            _fail(f"{path}.{key}", f"unknown key{hint or '.'} Accepted here: {', '.join(allowed)}")
    for key in required:
        if key not in value:
            _fail(f"{path}.{key}", "required key is missing")


_INPUT_KEYS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    # type -> (allowed keys, required keys)
    "EMBEDDINGS": (("type", "query"), ("type",)),
    "SCORES": (("type", "task", "score"), ("type", "task", "score")),
    "METADATA": (("type", "key"), ("type", "key")),
    "PREDICTIONS": (("type", "task", "name", "category"), ("type", "task", "name")),
    "RANDOM": (("type", "random_seed"), ("type",)),
}
_STRATEGY_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "DIVERSITY": ("type", "strength", "stopping_condition_minimum_distance"),
    "TYPICALITY": ("type", "k", "strength"),
    "SIMILARITY": ("type", "strength"),
    "WEIGHTS": ("type", "strength"),
    "THRESHOLD": ("type", "operation", "threshold"),
    "BALANCE": ("type", "target", "strength"),
}


@dataclass(frozen=True)
class _ParsedInput:
    kind: Literal["EMBEDDINGS", "QUERY", "NUMERIC", "CATEGORICAL", "NUMERIC_OR_CATEGORICAL"]
    value: NumericInput | CategoricalInput | str | None


def _parse_input(raw: object, path: str) -> _ParsedInput:
    data = _mapping(raw, path)
    if "type" not in data:
        _fail(f"{path}.type", f"required key is missing; accepted: {', '.join(INPUT_TYPES)}")
    kind = _choice(data["type"], INPUT_TYPES, f"{path}.type", "input type")
    allowed, required = _INPUT_KEYS[kind]
    _check_keys(data, allowed, required, path)
    if kind == "EMBEDDINGS":
        if "query" in data:
            return _ParsedInput("QUERY", _name(data["query"], f"{path}.query"))
        return _ParsedInput("EMBEDDINGS", None)
    if kind == "SCORES":
        task = _name(data["task"], f"{path}.task")
        return _ParsedInput("NUMERIC", ScoresInput(task, _name(data["score"], f"{path}.score")))
    if kind == "METADATA":
        return _ParsedInput(
            "NUMERIC_OR_CATEGORICAL", MetadataInput(_name(data["key"], f"{path}.key"))
        )
    if kind == "RANDOM":
        seed = _int(data.get("random_seed", 0), f"{path}.random_seed", 0)
        return _ParsedInput("NUMERIC", RandomInput(seed))
    task = _name(data["task"], f"{path}.task")
    name = _choice(data["name"], PREDICTION_NAMES, f"{path}.name", "prediction name")
    if name == "CATEGORY_COUNT":
        if "category" not in data:
            _fail(f"{path}.category", "required with name CATEGORY_COUNT (the class to count)")
        return _ParsedInput(
            "NUMERIC", CategoryCountInput(task, _name(data["category"], f"{path}.category"))
        )
    if "category" in data:
        _fail(f"{path}.category", "only used with name CATEGORY_COUNT")
    return _ParsedInput("CATEGORICAL", ClassDistributionInput(task))


_ACCEPTS: Final[dict[str, tuple[str, ...]]] = {
    # strategy -> input kinds it works on
    "DIVERSITY": ("EMBEDDINGS",),
    "TYPICALITY": ("EMBEDDINGS",),
    "SIMILARITY": ("QUERY",),
    "WEIGHTS": ("NUMERIC", "NUMERIC_OR_CATEGORICAL"),
    "THRESHOLD": ("NUMERIC", "NUMERIC_OR_CATEGORICAL"),
    "BALANCE": ("CATEGORICAL", "NUMERIC_OR_CATEGORICAL"),
}
_ACCEPTS_TEXT: Final[dict[str, str]] = {
    "DIVERSITY": "EMBEDDINGS",
    "TYPICALITY": "EMBEDDINGS",
    "SIMILARITY": "EMBEDDINGS with a query",
    "WEIGHTS": "SCORES, METADATA, PREDICTIONS CATEGORY_COUNT or RANDOM",
    "THRESHOLD": "SCORES, METADATA, PREDICTIONS CATEGORY_COUNT or RANDOM",
    "BALANCE": "METADATA or PREDICTIONS CLASS_DISTRIBUTION",
}
_KIND_TEXT: Final[dict[str, str]] = {
    "EMBEDDINGS": "EMBEDDINGS",
    "QUERY": "EMBEDDINGS with a query",
    "NUMERIC": "SCORES, METADATA, PREDICTIONS CATEGORY_COUNT or RANDOM",
    "CATEGORICAL": "METADATA or PREDICTIONS CLASS_DISTRIBUTION",
    "NUMERIC_OR_CATEGORICAL": "METADATA",
}


def _parse_strategy(raw: object, path: str) -> tuple[Strategy, float | None]:
    """One ``{"input": ..., "strategy": ...}`` entry -> (strategy, min distance or None)."""
    entry = _mapping(raw, path)
    _check_keys(entry, ("input", "strategy"), ("input", "strategy"), path)
    spath = f"{path}.strategy"
    sdata = _mapping(entry["strategy"], spath)
    if "type" not in sdata:
        _fail(f"{spath}.type", f"required key is missing; accepted: {', '.join(STRATEGY_TYPES)}")
    stype = _choice(sdata["type"], STRATEGY_TYPES, f"{spath}.type", "strategy type")
    _check_keys(sdata, _STRATEGY_KEYS[stype], ("type",), spath)
    parsed = _parse_input(entry["input"], f"{path}.input")
    if parsed.kind not in _ACCEPTS[stype]:
        _fail(
            f"{path}.input",
            f"strategy {stype} cannot use this input ({_KIND_TEXT[parsed.kind]}); "
            f"it accepts {_ACCEPTS_TEXT[stype]}",
        )
    strength = _strength(
        sdata.get("strength", 1.0), f"{spath}.strength", positive=stype == "DIVERSITY"
    )
    if stype == "DIVERSITY":
        min_distance = None
        if "stopping_condition_minimum_distance" in sdata:
            raw_md = sdata["stopping_condition_minimum_distance"]
            md_path = f"{spath}.stopping_condition_minimum_distance"
            # lightly writes -1 for "no minimum distance"
            if _number(raw_md, md_path) >= 0:
                min_distance = _min_distance(raw_md, md_path)
        return DiversityStrategy(strength), min_distance
    if stype == "TYPICALITY":
        k = _int(sdata.get("k", 20), f"{spath}.k", 1)
        return TypicalityStrategy(k=k, strength=strength), None
    if stype == "SIMILARITY":
        assert isinstance(parsed.value, str)
        return SimilarityStrategy(query=parsed.value, strength=strength), None
    if stype == "WEIGHTS":
        assert isinstance(parsed.value, _NUMERIC_INPUTS)
        if isinstance(parsed.value, RandomInput):
            return RandomStrategy(seed=parsed.value.random_seed, strength=strength), None
        return WeightsStrategy(input=parsed.value, strength=strength), None
    if stype == "THRESHOLD":
        assert isinstance(parsed.value, _NUMERIC_INPUTS)
        for key in ("operation", "threshold"):
            if key not in sdata:
                _fail(f"{spath}.{key}", "required key is missing for THRESHOLD")
        operation = cast(
            ThresholdOperation,
            _choice(sdata["operation"], THRESHOLD_OPERATIONS, f"{spath}.operation", "operation"),
        )
        threshold = _number(sdata["threshold"], f"{spath}.threshold")
        return ThresholdStrategy(parsed.value, operation, threshold), None
    assert isinstance(parsed.value, _CATEGORICAL_INPUTS)
    target = _target(sdata.get("target", "uniform"), f"{spath}.target")
    return BalanceStrategy(parsed.value, target, strength), None


def parse_selection_config(
    raw: Mapping[str, Any], root: str = "selection_config"
) -> SelectionConfig:
    """Build a :class:`SelectionConfig` from lightly's ``selection_config`` dict form.

    Args:
        raw: ``{"n_samples"?, "proportion_samples"?, "min_distance"?, "strategies": [...]}``.
        root: Name of ``raw`` in error messages.

    Raises:
        SelectionConfigError: naming the key path at fault, e.g.
            ``selection_config.strategies[0].strategy.type: unknown strategy type 'DIVERSTY';
            did you mean 'DIVERSITY'?``.
    """
    data = _mapping(raw, root)
    _check_keys(
        data,
        ("n_samples", "proportion_samples", "min_distance", "strategies"),
        ("strategies",),
        root,
    )
    n_samples = None
    if data.get("n_samples") is not None:
        n_samples = _n_samples(data["n_samples"], f"{root}.n_samples")
    proportion = None
    if data.get("proportion_samples") is not None:
        proportion = _fraction(data["proportion_samples"], f"{root}.proportion_samples")
    min_distance = None
    if data.get("min_distance") is not None:
        min_distance = _min_distance(data["min_distance"], f"{root}.min_distance")
    raw_strategies = data["strategies"]
    if isinstance(raw_strategies, str | bytes | Mapping) or not isinstance(
        raw_strategies, Sequence
    ):
        _fail(f"{root}.strategies", f"expected a list of strategies, got {raw_strategies!r}")
    strategies: list[Strategy] = []
    for i, item in enumerate(raw_strategies):
        path = f"{root}.strategies[{i}]"
        strategy, md = _parse_strategy(item, path)
        if md is not None:
            if min_distance is not None and md != min_distance:
                _fail(
                    f"{path}.strategy.stopping_condition_minimum_distance",
                    f"{md} conflicts with {root}.min_distance={min_distance}; give it once",
                )
            min_distance = md
        strategies.append(strategy)
    _check_config(strategies, n_samples, proportion, min_distance, root)
    return SelectionConfig(
        strategies=tuple(strategies),
        n_samples=n_samples,
        proportion_samples=proportion,
        min_distance=min_distance,
    )


def selection_config_from_worker_config(
    worker_config: Mapping[str, Any], root: str = "worker_config"
) -> SelectionConfig:
    """The selection part of a lightly Worker config, new or legacy form.

    * ``{"selection_config": {...}}`` is parsed by :func:`parse_selection_config`.
    * Legacy ``{"method": "typicality_coreset" | "coreset" | "random" | "coral",
      "stopping_condition": {"n_samples", "min_distance"}, "active_learning": {"task_name",
      "score_name"}}`` maps to DIVERSITY x TYPICALITY(k=50, strength 0.75)
      (``typicality_coreset``, the default), DIVERSITY (coreset), RANDOM (random) or
      DIVERSITY + WEIGHTS on the active-learning score (coral).
      A non-empty ``active_learning.task_name`` adds that WEIGHTS strategy to coreset and random
      too. ``n_samples`` or ``min_distance`` of -1 (lightly's "unset") are ignored.

    Keys of other pipeline steps (``enable_corruptness_check``, ``scorer``, ...) are left alone.
    """
    data = _mapping(worker_config, root)
    if "selection_config" in data:
        for legacy in ("method", "stopping_condition"):
            if legacy in data:
                _fail(
                    f"{root}.{legacy}",
                    "give either selection_config or the legacy method/stopping_condition",
                )
        return parse_selection_config(
            _mapping(data["selection_config"], f"{root}.selection_config"),
            root=f"{root}.selection_config",
        )
    method = _choice(data.get("method", DEFAULT_METHOD), LEGACY_METHODS, f"{root}.method", "method")
    stop_path = f"{root}.stopping_condition"
    stop = _mapping(data.get("stopping_condition", {}), stop_path)
    _check_keys(stop, ("n_samples", "min_distance"), (), stop_path)
    n_samples: int | float | None = None
    raw_n = stop.get("n_samples")
    if raw_n is not None and not (_number(raw_n, f"{stop_path}.n_samples") < 0):
        n_samples = _n_samples(raw_n, f"{stop_path}.n_samples")
    min_distance: float | None = None
    raw_md = stop.get("min_distance")
    if raw_md is not None and _number(raw_md, f"{stop_path}.min_distance") >= 0:
        min_distance = _min_distance(raw_md, f"{stop_path}.min_distance")
    al_path = f"{root}.active_learning"
    al = _mapping(data.get("active_learning", {}), al_path)
    _check_keys(al, ("task_name", "score_name"), (), al_path)
    task = al.get("task_name", "")
    if not isinstance(task, str):
        _fail(f"{al_path}.task_name", f"expected a string, got {task!r}")
    strategies: list[Strategy] = []
    if method in ("coreset", "coral", "typicality_coreset"):
        strategies.append(DiversityStrategy())
        if method == "typicality_coreset":
            k, strength = DEFAULT_TYPICALITY
            strategies.append(TypicalityStrategy(k=k, strength=strength))
    else:
        if min_distance is not None:
            _fail(
                f"{stop_path}.min_distance",
                "min_distance needs method 'typicality_coreset', 'coreset' or 'coral'",
            )
        strategies.append(RandomStrategy(seed=0))
    if task:
        score = _name(al.get("score_name", "uncertainty_margin"), f"{al_path}.score_name")
        strategies.append(WeightsStrategy(ScoresInput(task=task, score=score)))
    elif method == "coral":
        _fail(f"{al_path}.task_name", "method 'coral' needs an active-learning task_name")
    _check_config(strategies, n_samples, None, min_distance, root)
    return SelectionConfig(
        strategies=tuple(strategies), n_samples=n_samples, min_distance=min_distance
    )
