"""Selection configs: the lightly ``selection_config`` as one pydantic model, resolved once.

A selection is described by *strategies*, each reading one *input* (embeddings, scores,
metadata, predictions or random numbers), and by *stopping conditions*. Users write the dict
form of the lightly Worker::

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

:class:`SelectionConfigModel` validates it once (``input`` and ``strategy`` are discriminated
unions on ``type`` over the types registered in :mod:`selfsup.selection.registry`: the built-in
ones of :mod:`~selfsup.selection.input_types` and :mod:`~selfsup.selection.strategies`, and the
modules of ``STRATEGY_MODULES``) and is what ``RunConfig.selection_config`` holds;
:meth:`SelectionConfigModel.to_selection` gives the typed :class:`SelectionConfig` that
:func:`selfsup.selection.select` runs. :func:`legacy_selection_model` maps the legacy
``method`` / ``stopping_condition`` keys to the same model. Which strategy reads which input,
and every key with its default: ``docs/selection.md`` (and ``selfsup run --help``).

Every strategy except THRESHOLD takes an optional ``strength`` (default 1.0): the exponent of
its objective in the product that the greedy engine maximises (see
:mod:`selfsup.selection.engine`). Stopping conditions: ``n_samples`` (an int >= 1, or a float
in (0, 1] read as a fraction of all samples), ``proportion_samples`` (a fraction) and
``min_distance`` (only with DIVERSITY; also accepted as the DIVERSITY strategy's
``stopping_condition_minimum_distance``). Selection stops when any condition is met.

Errors are :class:`SelectionConfigError` (a :class:`~selfsup.errors.ConfigError`) whose message
starts with the dotted key path at fault and, for unknown names, suggests the closest valid one.
Every default lives once, in a ``DEFAULT_*`` constant beside the model that uses it.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, TypeAlias, Union, get_args

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import ErrorDetails

from selfsup.errors import did_you_mean

# The built-in inputs and strategies register themselves on import.
from selfsup.selection.input_types import (
    DEFAULT_RANDOM_SEED,
    CategoricalInput,
    CategoryCountInput,
    ClassDistributionInput,
    MetadataInput,
    NumericInput,
    QuerySource,
    RandomInput,
    ScoresInput,
)
from selfsup.selection.registry import (
    INPUTS,
    KIND_TEXT,
    MAX_STRENGTH,
    STRATEGIES,
    ConfigModel,
    InputConfig,
    InputType,
    SelectionConfigError,
    StrategyConfig,
    StrategyType,
    TypedStrategy,
    check_choice,
    check_fraction,
    check_min_distance,
    check_n_samples,
    check_name,
    check_number,
    fail,
)
from selfsup.selection.strategies import (
    DEFAULT_TYPICALITY_K,
    BalanceStrategy,
    DiversityStrategy,
    RandomStrategy,
    SimilarityStrategy,
    ThresholdOperation,
    ThresholdStrategy,
    TypicalityStrategy,
    WeightsStrategy,
)

__all__ = [
    "DEFAULT_METHOD",
    "DEFAULT_SCORE_NAME",
    "DEFAULT_TYPICALITY",
    "DEFAULT_TYPICALITY_K",
    "MAX_STRENGTH",
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
    "SelectionConfigModel",
    "SimilarityStrategy",
    "Strategy",
    "ThresholdOperation",
    "ThresholdStrategy",
    "TypicalityStrategy",
    "WeightsStrategy",
    "did_you_mean",
    "legacy_selection_model",
    "legacy_stopping_condition",
    "parse_selection_config",
    "parse_selection_model",
    "selection_config_from_worker_config",
    "selection_shape",
]

LegacyMethod: TypeAlias = Literal["typicality_coreset", "coreset", "random", "coral"]
LEGACY_METHODS: Final[tuple[str, ...]] = get_args(LegacyMethod)

#: What ``method`` selects when a config names none. Pure k-center greedy (``coreset``) picks
#: outliers first and lost to random selection at every labelling budget in
#: benchmarks/label_efficiency.py; weighting it by typicality beat random at every budget.
DEFAULT_METHOD: Final = "typicality_coreset"

#: The typicality term ``(k, strength)`` of ``typicality_coreset`` (measured best in
#: label_efficiency.py).
DEFAULT_TYPICALITY: Final[tuple[int, float]] = (50, 0.75)

#: The active-learning score of the legacy ``active_learning`` block when it names none.
DEFAULT_SCORE_NAME: Final = "uncertainty_margin"

#: Modules whose import registers further strategy types (one line per added strategy).
STRATEGY_MODULES: Final[tuple[str, ...]] = ("selfsup.selection.kmeans",)


#: Any typed strategy: the built-in ones and those of ``STRATEGY_MODULES``.
Strategy: TypeAlias = TypedStrategy


def _check_config(
    strategies: Sequence[object],
    n_samples: int | float | None,
    proportion_samples: float | None,
    min_distance: float | None,
    root: str,
) -> None:
    """Cross-field checks shared by :class:`SelectionConfig` and the config model."""
    if not strategies:
        fail(f"{root}.strategies", "at least one strategy is required, e.g. DIVERSITY")
    n_diversity = 0
    n_scoring = 0
    for i, strategy in enumerate(strategies):
        name = getattr(type(strategy), "name", None)
        if not callable(getattr(strategy, "term", None)) or not isinstance(name, str):
            fail(f"{root}.strategies[{i}]", f"not a strategy: {strategy!r}")
        if name == "DIVERSITY":
            n_diversity += 1
            if n_diversity > 1:
                fail(f"{root}.strategies[{i}]", "DIVERSITY may appear only once")
        if not getattr(strategy, "is_filter", False):
            n_scoring += 1
    if n_scoring == 0:
        fail(
            f"{root}.strategies",
            "only THRESHOLD strategies given; add one that ranks samples "
            "(DIVERSITY, WEIGHTS, RANDOM, ...)",
        )
    if min_distance is not None and n_diversity == 0:
        fail(f"{root}.min_distance", "min_distance needs a DIVERSITY strategy")
    if n_samples is None and proportion_samples is None and min_distance is None:
        fail(root, "no stopping condition: set n_samples, proportion_samples or min_distance")


@dataclass(frozen=True)
class SelectionConfig:
    """What to select and when to stop: the typed form :func:`~selfsup.selection.select` runs.

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
            fail(
                f"{root}.strategies", f"expected a sequence of strategies, got {self.strategies!r}"
            )
        object.__setattr__(self, "strategies", tuple(self.strategies))
        if self.n_samples is not None:
            object.__setattr__(
                self, "n_samples", check_n_samples(self.n_samples, f"{root}.n_samples")
            )
        if self.proportion_samples is not None:
            object.__setattr__(
                self,
                "proportion_samples",
                check_fraction(self.proportion_samples, f"{root}.proportion_samples"),
            )
        if self.min_distance is not None:
            object.__setattr__(
                self, "min_distance", check_min_distance(self.min_distance, f"{root}.min_distance")
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
        out["strategies"] = [s.to_dict() for s in self.strategies]
        return out


for _module in STRATEGY_MODULES:
    importlib.import_module(_module)


# ----------------------------------------------------------------------------- the config model


def _union(configs: Sequence[type[Any]]) -> Any:
    return Annotated[Union[tuple(configs)], Field(discriminator="type")]  # noqa: UP007


if TYPE_CHECKING:
    InputConfigUnion: TypeAlias = InputConfig
    StrategyConfigUnion: TypeAlias = StrategyConfig
else:
    InputConfigUnion = _union([entry.config for entry in INPUTS.values()])
    StrategyConfigUnion = _union([entry.config for entry in STRATEGIES.values()])


class StrategyEntryConfig(ConfigModel):
    """One ``{"input": {...}, "strategy": {...}}`` entry of ``strategies``."""

    input: InputConfigUnion
    strategy: StrategyConfigUnion

    @model_validator(mode="after")
    def _strategy_accepts_input(self) -> StrategyEntryConfig:
        entry = STRATEGIES[self.strategy.type]
        kind, _ = self.input.resolve()
        if kind not in entry.accepts:
            fail(
                ".input",
                f"strategy {entry.name} cannot use this input ({KIND_TEXT[kind]}); "
                f"it accepts {entry.accepts_text}",
            )
        return self

    def build(self) -> TypedStrategy:
        """The typed strategy of this entry."""
        kind, value = self.input.resolve()
        return self.strategy.build(kind, value)


#: The forms of a ``preselected`` / ``excluded`` source (those of a SIMILARITY query).
SAMPLE_SOURCES: Final = "{samples: [names]} | {samples_file: path} | {folder: path} | " + (
    "{tag: name, run?: folder}"
)


class SelectionConfigModel(ConfigModel):
    """The lightly ``selection_config``: strategies and stopping conditions, validated once."""

    n_samples: int | float | None = Field(
        None, description="new samples to choose: a count >= 1 or a fraction in (0, 1]"
    )
    proportion_samples: float | None = Field(
        None, description="new samples to choose as a fraction in (0, 1] of all samples"
    )
    min_distance: float | None = Field(
        None, description="stop when every candidate is closer than this to a chosen sample"
    )
    strategies: list[StrategyEntryConfig] = Field(
        description="[{input: {type: ...}, strategy: {type: ...}}, ...]"
    )
    preselected: tuple[QuerySource, ...] = Field(
        (),
        description="samples always selected, first (they count toward n_samples): "
        f"[{SAMPLE_SOURCES}, ...]; a curation run resolves them",
    )
    excluded: tuple[QuerySource, ...] = Field(
        (),
        description=f"samples never selected: [{SAMPLE_SOURCES}, ...]; a curation run resolves "
        "them",
    )

    @field_validator("preselected", "excluded", mode="plain")
    @classmethod
    def _sample_sources(cls, value: object) -> tuple[QuerySource, ...]:
        # The same source forms, and parser, as a SIMILARITY query (selfsup.curation.queries
        # resolves them in a run).
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
            fail("", f"expected a list of sources ({SAMPLE_SOURCES}), got {value!r}")
        return tuple(
            item if isinstance(item, QuerySource) else QuerySource.parse(item, f"[{i}]")
            for i, item in enumerate(value)
        )

    @field_serializer("preselected", "excluded")
    def _dump_sources(self, sources: tuple[QuerySource, ...]) -> list[dict[str, Any]]:
        # Sources dump in their config form.
        return [source.to_dict() for source in sources]

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> Any:
        # preselected/excluded appear in a dump only when given: the written config of a run
        # without them stays as it was.
        out = handler(self)
        if isinstance(out, dict):
            for key in ("preselected", "excluded"):
                if not out.get(key):
                    out.pop(key, None)
        return out

    @field_validator("n_samples", mode="before")
    @classmethod
    def _n_samples(cls, value: object) -> int | float | None:
        return None if value is None else check_n_samples(value, "")

    @field_validator("proportion_samples", mode="before")
    @classmethod
    def _proportion(cls, value: object) -> float | None:
        return None if value is None else check_fraction(value, "")

    @field_validator("min_distance", mode="before")
    @classmethod
    def _min_distance(cls, value: object) -> float | None:
        return None if value is None else check_min_distance(value, "")

    @field_validator("strategies", mode="before")
    @classmethod
    def _a_list(cls, value: object) -> object:
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
            fail("", f"expected a list of strategies, got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SelectionConfigModel:
        _check_config(
            [entry.build() for entry in self.strategies],
            self.n_samples,
            self.proportion_samples,
            self.stopping_min_distance(),
            "",
        )
        return self

    def stopping_min_distance(self) -> float | None:
        """``min_distance``, or the one the DIVERSITY strategy sets; both must agree."""
        min_distance = self.min_distance
        for i, entry in enumerate(self.strategies):
            md = entry.strategy.min_distance()
            if md is None:
                continue
            if min_distance is not None and md != min_distance:
                fail(
                    f".strategies[{i}].strategy.stopping_condition_minimum_distance",
                    f"{md} conflicts with min_distance={min_distance}; give it once",
                )
            min_distance = md
        return min_distance

    def to_selection(self) -> SelectionConfig:
        """The typed :class:`SelectionConfig` the engine runs."""
        return SelectionConfig(
            strategies=tuple(entry.build() for entry in self.strategies),
            n_samples=self.n_samples,
            proportion_samples=self.proportion_samples,
            min_distance=self.stopping_min_distance(),
        )


# ----------------------------------------------------------------------------- error messages


def _accepted_keys(model: type[ConfigModel]) -> list[str]:
    return list(model.model_fields)


def translate_error(exc: ValidationError, root: str) -> SelectionConfigError:
    """The first of pydantic's errors as a :class:`SelectionConfigError` naming its key path.

    Paths read like the config (``root.strategies[1].input.task``): list indices in
    brackets, the discriminator tags pydantic puts in its locations left out. Unknown names
    and keys get the closest valid one and the accepted ones.
    """
    err: ErrorDetails = exc.errors()[0]
    path = root
    model: type[ConfigModel] | None = SelectionConfigModel
    registry: Mapping[str, InputType] | Mapping[str, StrategyType] | None = None
    loc = list(err["loc"])
    last_key = ""
    tag = ""
    for part in loc[:-1] if err["type"] == "extra_forbidden" else loc:
        if registry is not None and isinstance(part, str) and part in registry:
            model = registry[part].config
            registry = None
            tag = part
            continue
        registry = None
        if isinstance(part, int):
            path += f"[{part}]"
            model = StrategyEntryConfig
            continue
        path += f".{part}"
        last_key = part
        if part == "input" and model is StrategyEntryConfig:
            registry = INPUTS
        elif part == "strategy" and model is StrategyEntryConfig:
            registry = STRATEGIES
        else:
            model = None
    given = err.get("input")
    kind = err["type"]
    ctx = err.get("ctx") or {}
    error = ctx.get("error")
    if isinstance(error, SelectionConfigError):
        return SelectionConfigError(path + error.key_path, error.reason)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        options = list(INPUTS if last_key == "input" else STRATEGIES)
        what = "input type" if last_key == "input" else "strategy type"
        if kind == "union_tag_not_found":
            return SelectionConfigError(
                f"{path}.type", f"required key is missing; accepted: {', '.join(options)}"
            )
        given_tag = ctx.get("tag")
        hint = did_you_mean(given_tag, options) if isinstance(given_tag, str) else ""
        return SelectionConfigError(
            f"{path}.type",
            f"unknown {what} {given_tag!r}{hint or '.'} Accepted: {', '.join(options)}",
        )
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _accepted_keys(model) if model is not None else []
        hint = did_you_mean(key, allowed)
        return SelectionConfigError(
            f"{path}.{key}", f"unknown key{hint or '.'} Accepted here: {', '.join(allowed)}"
        )
    if kind == "missing":
        return SelectionConfigError(path, f"required key is missing{f' for {tag}' * bool(tag)}")
    if kind in ("model_type", "model_attributes_type", "dict_type") or (
        kind.startswith("union_") and not isinstance(given, Mapping)
    ):
        return SelectionConfigError(
            path, f"expected a mapping, got {given!r} ({type(given).__name__})"
        )
    msg = str(err["msg"]).removeprefix("Value error, ")
    return SelectionConfigError(path, f"{msg}, got {given!r}")


def parse_selection_model(
    raw: Mapping[str, Any] | SelectionConfigModel, root: str = "selection_config"
) -> SelectionConfigModel:
    """Validate lightly's ``selection_config`` dict into a :class:`SelectionConfigModel`.

    Raises:
        SelectionConfigError: naming the key path at fault, e.g.
            ``selection_config.strategies[0].strategy.type: unknown strategy type 'DIVERSTY';
            did you mean 'DIVERSITY'?``.
    """
    if isinstance(raw, SelectionConfigModel):
        return raw
    if not isinstance(raw, Mapping):
        fail(root, f"expected a mapping, got {raw!r} ({type(raw).__name__})")
    try:
        return SelectionConfigModel.model_validate(dict(raw))
    except ValidationError as exc:
        raise translate_error(exc, root) from None


def parse_selection_config(
    raw: Mapping[str, Any], root: str = "selection_config"
) -> SelectionConfig:
    """The typed :class:`SelectionConfig` of lightly's ``selection_config`` dict form.

    Args:
        raw: ``{"n_samples"?, "proportion_samples"?, "min_distance"?, "strategies": [...]}``.
        root: Name of ``raw`` in error messages.

    Raises:
        SelectionConfigError: naming the key path at fault.
    """
    return parse_selection_model(raw, root).to_selection()


def legacy_stopping_condition(
    n_samples: object, min_distance: object, path: str
) -> tuple[int | float | None, float | None]:
    """``(n_samples, min_distance)`` of the legacy ``stopping_condition`` at ``path``, checked;
    None where unset (not given, or lightly's -1: any negative number)."""
    n: int | float | None = None
    if n_samples is not None and check_number(n_samples, f"{path}.n_samples") >= 0:
        n = check_n_samples(n_samples, f"{path}.n_samples")
    md: float | None = None
    if min_distance is not None and check_number(min_distance, f"{path}.min_distance") >= 0:
        md = check_min_distance(min_distance, f"{path}.min_distance")
    return n, md


def legacy_selection_model(
    method: str,
    n_samples: int | float | None,
    min_distance: float | None,
    task_name: str = "",
    score_name: str = DEFAULT_SCORE_NAME,
    root: str = "worker_config",
) -> SelectionConfigModel:
    """The ``selection_config`` a legacy ``method`` / ``stopping_condition`` describes.

    ``typicality_coreset`` (the default) is DIVERSITY x TYPICALITY(k=50, strength 0.75),
    ``coreset`` DIVERSITY, ``random`` WEIGHTS on RANDOM (seed 0), ``coral`` DIVERSITY + WEIGHTS
    on the active-learning score. A non-empty ``task_name`` adds that WEIGHTS strategy to every
    method. ``n_samples`` and ``min_distance`` are already checked, None when unset.
    """
    stop_path = f"{root}.stopping_condition"
    al_path = f"{root}.active_learning"
    check_choice(method, LEGACY_METHODS, f"{root}.method", "method")
    entries: list[dict[str, Any]] = []
    if method in ("coreset", "coral", "typicality_coreset"):
        entries.append({"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}})
        if method == "typicality_coreset":
            k, strength = DEFAULT_TYPICALITY
            strategy = {"type": "TYPICALITY", "k": k, "strength": strength}
            entries.append({"input": {"type": "EMBEDDINGS"}, "strategy": strategy})
    else:
        if min_distance is not None:
            fail(
                f"{stop_path}.min_distance",
                "min_distance needs method 'typicality_coreset', 'coreset' or 'coral'",
            )
        seed = {"type": "RANDOM", "random_seed": DEFAULT_RANDOM_SEED}
        entries.append({"input": seed, "strategy": {"type": "WEIGHTS"}})
    if task_name:
        check_name(score_name, f"{al_path}.score_name")
        scores = {"type": "SCORES", "task": task_name, "score": score_name}
        entries.append({"input": scores, "strategy": {"type": "WEIGHTS"}})
    elif method == "coral":
        fail(f"{al_path}.task_name", "method 'coral' needs an active-learning task_name")
    raw: dict[str, Any] = {"strategies": entries}
    if n_samples is not None:
        raw["n_samples"] = n_samples
    if min_distance is not None:
        raw["min_distance"] = min_distance
    # without n_samples and min_distance, the model's cross-field check names the missing
    # stopping condition at ``root``
    return parse_selection_model(raw, root)


def _mapping(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        fail(path, f"expected a mapping, got {value!r} ({type(value).__name__})")
    return value


def _check_keys(value: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
    for key in value:
        if key not in allowed:
            hint = did_you_mean(str(key), allowed)
            fail(f"{path}.{key}", f"unknown key{hint or '.'} Accepted here: {', '.join(allowed)}")


def selection_config_from_worker_config(
    worker_config: Mapping[str, Any], root: str = "worker_config"
) -> SelectionConfig:
    """The selection part of a lightly Worker config dict, new or legacy form.

    * ``{"selection_config": {...}}`` is parsed by :func:`parse_selection_config`.
    * Legacy ``{"method", "stopping_condition": {"n_samples", "min_distance"},
      "active_learning": {"task_name", "score_name"}}`` maps through
      :func:`legacy_selection_model`; ``n_samples`` or ``min_distance`` of -1 (lightly's
      "unset") are ignored.

    Keys of other pipeline steps (``enable_corruptness_check``, ``scorer``, ...) are left alone.
    """
    data = _mapping(worker_config, root)
    if "selection_config" in data:
        for legacy in ("method", "stopping_condition"):
            if legacy in data:
                fail(
                    f"{root}.{legacy}",
                    "give either selection_config or the legacy method/stopping_condition",
                )
        return parse_selection_config(
            _mapping(data["selection_config"], f"{root}.selection_config"),
            root=f"{root}.selection_config",
        )
    method = check_choice(
        data.get("method", DEFAULT_METHOD), LEGACY_METHODS, f"{root}.method", "method"
    )
    stop_path = f"{root}.stopping_condition"
    stop = _mapping(data.get("stopping_condition", {}), stop_path)
    _check_keys(stop, ("n_samples", "min_distance"), stop_path)
    n_samples, min_distance = legacy_stopping_condition(
        stop.get("n_samples"), stop.get("min_distance"), stop_path
    )
    al_path = f"{root}.active_learning"
    al = _mapping(data.get("active_learning", {}), al_path)
    _check_keys(al, ("task_name", "score_name"), al_path)
    task = al.get("task_name", "")
    if not isinstance(task, str):
        fail(f"{al_path}.task_name", f"expected a string, got {task!r}")
    score = al.get("score_name", DEFAULT_SCORE_NAME)
    model = legacy_selection_model(method, n_samples, min_distance, task, score, root)
    return model.to_selection()


def _with_keys(name: str, model: type[ConfigModel]) -> str:
    keys = [
        key + ("" if field.is_required() else "?")
        for key, field in model.model_fields.items()
        if key != "type"
    ]
    return f"{name}({', '.join(keys)})" if keys else name


def selection_shape() -> str:
    """The shape of ``selection_config`` with every registered type and its keys (``?``:
    optional), for ``--help``."""
    inputs = " | ".join(_with_keys(name, entry.config) for name, entry in INPUTS.items())
    strategies = " | ".join(_with_keys(name, entry.config) for name, entry in STRATEGIES.items())
    return (
        "strategies and stopping conditions, replacing method/stopping_condition "
        "(docs/selection.md): {n_samples?, proportion_samples?, min_distance?, strategies: "
        f"[{{input: {{type: {inputs}}}, strategy: {{type: {strategies}}}}}, ...], "
        f"preselected?: [{SAMPLE_SOURCES}, ...] (always selected, first), "
        "excluded?: [the same forms] (never selected)}"
    )
