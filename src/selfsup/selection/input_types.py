"""The built-in selection inputs: typed inputs (each its own loader) and their config models.

``EMBEDDINGS`` (optionally with a ``query`` set), ``SCORES``, ``METADATA``, ``PREDICTIONS`` and
``RANDOM``, registered in :mod:`selfsup.selection.registry`. A config model validates the
lightly ``input`` dict and resolves to a typed input (:meth:`InputConfig.resolve`); the typed
input loads its values from :class:`~selfsup.selection.SelectionInputs` (``numeric`` /
``categorical``). No torch or numpy is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, TypeAlias, get_args

from pydantic import Field, field_validator, model_validator

from selfsup.selection.registry import (
    InputConfig,
    InputKind,
    InputType,
    check_choice,
    check_int,
    check_name,
    fail,
    register_input,
)

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from selfsup.selection.inputs import ClassCounts, SelectionInputs

__all__ = [
    "CATEGORICAL_KINDS",
    "DEFAULT_RANDOM_SEED",
    "NUMERIC_KINDS",
    "CategoricalInput",
    "CategoryCountInput",
    "ClassDistributionInput",
    "EmbeddingsInputConfig",
    "MetadataInput",
    "MetadataInputConfig",
    "NumericInput",
    "PredictionName",
    "PredictionsInputConfig",
    "RandomInput",
    "RandomInputConfig",
    "ScoresInput",
    "ScoresInputConfig",
    "check_typed_input",
]

PredictionName: TypeAlias = Literal["CLASS_DISTRIBUTION", "CATEGORY_COUNT"]
PREDICTION_NAMES: Final[tuple[str, ...]] = get_args(PredictionName)

#: Seed of RANDOM inputs and of ``method=random``.
DEFAULT_RANDOM_SEED: Final = 0


# ----------------------------------------------------------------------------- typed inputs


@dataclass(frozen=True)
class ScoresInput:
    """Active-learning scores ``score`` computed for prediction task ``task`` (numeric)."""

    task: str
    score: str

    kind: ClassVar[InputKind] = "NUMERIC"

    def __post_init__(self) -> None:
        check_name(self.task, "ScoresInput.task")
        check_name(self.score, "ScoresInput.score")

    def describe(self) -> str:
        """``SCORES task/score``."""
        return f"SCORES {self.task}/{self.score}"

    def to_dict(self) -> dict[str, Any]:
        """The lightly ``input`` dict."""
        return {"type": "SCORES", "task": self.task, "score": self.score}

    def numeric(self, inputs: SelectionInputs) -> NDArray[np.float64]:
        """``(N,)`` scores; NaN marks a missing value."""
        return inputs.score_values(self.task, self.score)


@dataclass(frozen=True)
class MetadataInput:
    """The metadata column ``key``: numeric for WEIGHTS/THRESHOLD, any values for BALANCE."""

    key: str

    kind: ClassVar[InputKind] = "NUMERIC_OR_CATEGORICAL"

    def __post_init__(self) -> None:
        check_name(self.key, "MetadataInput.key")

    def describe(self) -> str:
        """``METADATA key``."""
        return f"METADATA {self.key}"

    def to_dict(self) -> dict[str, Any]:
        """The lightly ``input`` dict."""
        return {"type": "METADATA", "key": self.key}

    def numeric(self, inputs: SelectionInputs) -> NDArray[np.float64]:
        """``(N,)`` values as numbers; NaN marks a missing value."""
        return inputs.metadata_numbers(self.key)

    def categorical(self, inputs: SelectionInputs) -> ClassCounts:
        """One-hot class counts of the values (compared as strings)."""
        return inputs.metadata_categories(self.key)


@dataclass(frozen=True)
class CategoryCountInput:
    """Number of predicted objects of class ``category`` per sample in task ``task``."""

    task: str
    category: str

    kind: ClassVar[InputKind] = "NUMERIC"

    def __post_init__(self) -> None:
        check_name(self.task, "CategoryCountInput.task")
        check_name(self.category, "CategoryCountInput.category")

    def describe(self) -> str:
        """``PREDICTIONS task CATEGORY_COUNT category``."""
        return f"PREDICTIONS {self.task} CATEGORY_COUNT {self.category}"

    def to_dict(self) -> dict[str, Any]:
        """The lightly ``input`` dict."""
        return {
            "type": "PREDICTIONS",
            "task": self.task,
            "name": "CATEGORY_COUNT",
            "category": self.category,
        }

    def numeric(self, inputs: SelectionInputs) -> NDArray[np.float64]:
        """``(N,)`` objects of the class per sample."""
        return inputs.category_counts(self.task, self.category)


@dataclass(frozen=True)
class ClassDistributionInput:
    """Predicted classes (one per image, or objects per image) of task ``task``."""

    task: str

    kind: ClassVar[InputKind] = "CATEGORICAL"

    def __post_init__(self) -> None:
        check_name(self.task, "ClassDistributionInput.task")

    def describe(self) -> str:
        """``PREDICTIONS task CLASS_DISTRIBUTION``."""
        return f"PREDICTIONS {self.task} CLASS_DISTRIBUTION"

    def to_dict(self) -> dict[str, Any]:
        """The lightly ``input`` dict."""
        return {"type": "PREDICTIONS", "task": self.task, "name": "CLASS_DISTRIBUTION"}

    def categorical(self, inputs: SelectionInputs) -> ClassCounts:
        """The task's class counts."""
        return inputs.prediction_counts(self.task)


@dataclass(frozen=True)
class RandomInput:
    """Uniform random numbers in (0, 1], one per sample, drawn from ``random_seed``."""

    random_seed: int = DEFAULT_RANDOM_SEED

    kind: ClassVar[InputKind] = "NUMERIC"

    def __post_init__(self) -> None:
        check_int(self.random_seed, "RandomInput.random_seed", 0)

    def describe(self) -> str:
        """``RANDOM seed S``."""
        return f"RANDOM seed {self.random_seed}"

    def to_dict(self) -> dict[str, Any]:
        """The lightly ``input`` dict."""
        return {"type": "RANDOM", "random_seed": self.random_seed}

    def numeric(self, inputs: SelectionInputs) -> NDArray[np.float64]:
        """``(N,)`` numbers ``1 - U[0, 1)`` from the seed: no sample gets a zero weight."""
        return inputs.random_values(self.random_seed)


NumericInput: TypeAlias = ScoresInput | MetadataInput | CategoryCountInput | RandomInput
CategoricalInput: TypeAlias = MetadataInput | ClassDistributionInput
#: Input kinds that give numbers (WEIGHTS, THRESHOLD).
NUMERIC_KINDS: Final[tuple[InputKind, ...]] = ("NUMERIC", "NUMERIC_OR_CATEGORICAL")
#: Input kinds that give categories (BALANCE).
CATEGORICAL_KINDS: Final[tuple[InputKind, ...]] = ("CATEGORICAL", "NUMERIC_OR_CATEGORICAL")


def check_typed_input(value: object, path: str, kinds: tuple[InputKind, ...], what: str) -> None:
    """Fail unless ``value`` is a typed input of one of ``kinds`` (a ``what`` input)."""
    if getattr(type(value), "kind", None) not in kinds or not hasattr(value, "to_dict"):
        fail(path, f"expected a {what} input, got {value!r}")


# ----------------------------------------------------------------------------- input models


def _optional_name(value: object) -> str | None:
    return None if value is None else check_name(value, "")


class EmbeddingsInputConfig(InputConfig):
    """``{"type": "EMBEDDINGS", "query"?}``: the embeddings, or closeness to a query set."""

    type: Literal["EMBEDDINGS"] = "EMBEDDINGS"
    query: str | None = Field(None, description="query set of SIMILARITY")

    @field_validator("query", mode="before")
    @classmethod
    def _query(cls, value: object) -> str | None:
        return _optional_name(value)

    def resolve(self) -> tuple[InputKind, Any]:
        """QUERY with the query set's name, else plain EMBEDDINGS."""
        return ("QUERY", self.query) if self.query is not None else ("EMBEDDINGS", None)


class ScoresInputConfig(InputConfig):
    """``{"type": "SCORES", "task", "score"}``: active-learning scores of a prediction task."""

    type: Literal["SCORES"] = "SCORES"
    task: str
    score: str

    @field_validator("task", "score", mode="before")
    @classmethod
    def _names(cls, value: object) -> str:
        return check_name(value, "")

    def resolve(self) -> tuple[InputKind, Any]:
        """A numeric :class:`ScoresInput`."""
        return "NUMERIC", ScoresInput(self.task, self.score)


class MetadataInputConfig(InputConfig):
    """``{"type": "METADATA", "key"}``: a metadata column (numbers or categories)."""

    type: Literal["METADATA"] = "METADATA"
    key: str

    @field_validator("key", mode="before")
    @classmethod
    def _key(cls, value: object) -> str:
        return check_name(value, "")

    def resolve(self) -> tuple[InputKind, Any]:
        """A :class:`MetadataInput`, numeric or categorical."""
        return "NUMERIC_OR_CATEGORICAL", MetadataInput(self.key)


class PredictionsInputConfig(InputConfig):
    """``{"type": "PREDICTIONS", "task", "name", "category"?}``: predicted classes."""

    type: Literal["PREDICTIONS"] = "PREDICTIONS"
    task: str
    name: PredictionName
    category: str | None = Field(None, description="the class to count (CATEGORY_COUNT)")

    @field_validator("task", mode="before")
    @classmethod
    def _task(cls, value: object) -> str:
        return check_name(value, "")

    @field_validator("category", mode="before")
    @classmethod
    def _category(cls, value: object) -> str | None:
        return _optional_name(value)

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: object) -> str:
        return check_choice(value, PREDICTION_NAMES, "", "prediction name")

    @model_validator(mode="after")
    def _category_with_count(self) -> PredictionsInputConfig:
        if self.name == "CATEGORY_COUNT" and self.category is None:
            fail(".category", "required with name CATEGORY_COUNT (the class to count)")
        if self.name != "CATEGORY_COUNT" and self.category is not None:
            fail(".category", "only used with name CATEGORY_COUNT")
        return self

    def resolve(self) -> tuple[InputKind, Any]:
        """A numeric :class:`CategoryCountInput` or categorical :class:`ClassDistributionInput`."""
        if self.name == "CATEGORY_COUNT":
            assert self.category is not None
            return "NUMERIC", CategoryCountInput(self.task, self.category)
        return "CATEGORICAL", ClassDistributionInput(self.task)


class RandomInputConfig(InputConfig):
    """``{"type": "RANDOM", "random_seed"?}``: uniform random numbers in (0, 1]."""

    type: Literal["RANDOM"] = "RANDOM"
    random_seed: int = DEFAULT_RANDOM_SEED

    @field_validator("random_seed", mode="before")
    @classmethod
    def _seed(cls, value: object) -> int:
        return check_int(value, "", 0)

    def resolve(self) -> tuple[InputKind, Any]:
        """A numeric :class:`RandomInput`."""
        return "NUMERIC", RandomInput(self.random_seed)


register_input(InputType("EMBEDDINGS", EmbeddingsInputConfig, {"type": "EMBEDDINGS"}))
register_input(
    InputType("SCORES", ScoresInputConfig, {"type": "SCORES", "task": "t", "score": "s"})
)
register_input(InputType("METADATA", MetadataInputConfig, {"type": "METADATA", "key": "w"}))
register_input(
    InputType(
        "PREDICTIONS",
        PredictionsInputConfig,
        {"type": "PREDICTIONS", "task": "t", "name": "CATEGORY_COUNT", "category": "x"},
    )
)
register_input(InputType("RANDOM", RandomInputConfig, {"type": "RANDOM", "random_seed": 3}))
