"""The built-in selection inputs: typed inputs (each its own loader) and their config models.

``EMBEDDINGS`` (optionally with a ``query`` set), ``SCORES``, ``METADATA``, ``PREDICTIONS`` and
``RANDOM``, registered in :mod:`selfsup.selection.registry`. A ``query`` is either the name of a
query set the caller puts in :attr:`SelectionInputs.queries` (Python API) or a
:class:`QuerySource` that a curation run resolves (:mod:`selfsup.curation.queries`): names of
samples, a file of names, or a folder of images inside or outside the input. A config model
validates the lightly ``input`` dict and resolves to a typed input
(:meth:`InputConfig.resolve`); the typed input loads its values from
:class:`~selfsup.selection.SelectionInputs` (``numeric`` / ``categorical``). No torch or numpy
is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, TypeAlias, get_args

from pydantic import Field, field_serializer, field_validator, model_validator

from selfsup.errors import did_you_mean
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
    "QUERY_KEYS",
    "QUERY_SOURCE_KEYS",
    "CategoricalInput",
    "CategoryCountInput",
    "ClassDistributionInput",
    "EmbeddingsInputConfig",
    "MetadataInput",
    "MetadataInputConfig",
    "NumericInput",
    "PredictionName",
    "PredictionsInputConfig",
    "QuerySource",
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

#: The keys of a ``query`` mapping; exactly one is given (``run`` may come with ``tag``).
QUERY_SOURCE_KEYS: Final[tuple[str, ...]] = ("samples", "samples_file", "folder", "tag")
#: Every key a ``query`` mapping accepts.
QUERY_KEYS: Final[tuple[str, ...]] = (*QUERY_SOURCE_KEYS, "run")


# ----------------------------------------------------------------------------- typed inputs


@dataclass(frozen=True)
class QuerySource:
    """Where the query images of SIMILARITY come from; exactly one of the first four is set.

    Attributes:
        samples: Names of samples of the input (paths relative to ``input_dir``, as in
            ``filenames/sampled_filenames_excluding_datapool.txt``).
        samples_file: A text file with one such name per line (blank lines and lines starting
            with ``#`` are skipped); a relative path is relative to ``input_dir``.
        folder: A folder of query images. Inside the input (a path relative to ``input_dir``,
            or an absolute one under it) its samples are the queries; outside the input its
            images are checked and embedded with the run's model but never become candidates.
        tag: A tag given to samples in the web app (``tags.json`` of a run folder): its
            samples are the queries.
        run: With ``tag``: the run folder whose tags to read; empty means the run's own
            ``output_dir`` (a rerun into the folder ``selfsup view`` tagged).
    """

    samples: tuple[str, ...] = ()
    samples_file: str = ""
    folder: str = ""
    tag: str = ""
    run: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "samples", tuple(self.samples))
        given = [key for key in QUERY_SOURCE_KEYS if getattr(self, key)]
        _check_one_source(given, bool(self.run), "QuerySource")
        for i, name in enumerate(self.samples):
            check_name(name, f"QuerySource.samples[{i}]")

    @property
    def key(self) -> str:
        """The name of this query set in :attr:`SelectionInputs.queries` (unique per source)."""
        if self.samples:
            return "samples:" + "\n".join(self.samples)
        if self.tag:
            return f"tag:{self.tag}@{self.run}"
        if self.samples_file:
            return f"samples_file:{self.samples_file}"
        return f"folder:{self.folder}"

    def describe(self) -> str:
        """``3 samples``, ``samples_file q.txt``, ``folder /data/queries`` or ``tag cats``."""
        if self.samples:
            return f"{len(self.samples)} sample{'s' * (len(self.samples) != 1)}"
        if self.tag:
            return f"tag {self.tag}" + (f" of run {self.run}" if self.run else "")
        if self.samples_file:
            return f"samples_file {self.samples_file}"
        return f"folder {self.folder}"

    def to_dict(self) -> dict[str, Any]:
        """The ``query`` mapping of the lightly-shaped ``input`` dict."""
        if self.samples:
            return {"samples": list(self.samples)}
        if self.tag:
            return {"tag": self.tag, **({"run": self.run} if self.run else {})}
        if self.samples_file:
            return {"samples_file": self.samples_file}
        return {"folder": self.folder}

    @classmethod
    def parse(cls, value: object, path: str) -> QuerySource:
        """The source of a ``query`` mapping: ``{samples: [...]}``, ``{samples_file: ...}``,
        ``{folder: ...}`` or ``{tag: ..., run?: ...}``. Keys set to None count as not given
        (a dumped config's form).

        Raises:
            SelectionConfigError: naming ``path`` and the key at fault.
        """
        if not isinstance(value, Mapping):
            fail(path, f"expected a query mapping, got {value!r}")
        for key in value:
            if key not in QUERY_KEYS:
                hint = did_you_mean(str(key), QUERY_KEYS)
                fail(
                    f"{path}.{key}",
                    f"unknown query key{hint or '.'} Accepted: {', '.join(QUERY_KEYS)}",
                )
        given = {k: v for k, v in value.items() if v is not None and k != "run"}
        run = value.get("run")
        _check_one_source(sorted(given), run is not None, path)
        ((key, raw),) = given.items()
        if key == "samples":
            if isinstance(raw, str | bytes) or not isinstance(raw, Sequence) or not raw:
                fail(f"{path}.samples", f"expected a non-empty list of sample names, got {raw!r}")
            names = tuple(check_name(n, f"{path}.samples[{i}]") for i, n in enumerate(raw))
            return cls(samples=names)
        text = check_name(raw, f"{path}.{key}")
        if key == "tag":
            return cls(tag=text, run="" if run is None else check_name(run, f"{path}.run"))
        return cls(samples_file=text) if key == "samples_file" else cls(folder=text)


def _check_one_source(given: list[str], run: bool, path: str) -> None:
    """The rules of a query source, for :class:`QuerySource` and its ``parse``: exactly one of
    ``QUERY_SOURCE_KEYS`` (``given``), and ``run`` only with ``tag``."""
    if len(given) != 1:
        fail(
            path,
            f"give exactly one of {', '.join(QUERY_SOURCE_KEYS)} (sample names, a file "
            f"of names, a folder of images, a tag), got {given or 'none'}",
        )
    if run and given != ["tag"]:
        fail(f"{path}.run", "only used with tag (the run folder holding the tag)")


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
    """``{"type": "EMBEDDINGS", "query"?}``: the embeddings, or closeness to a query set.

    ``query`` is a mapping (:class:`QuerySource`: ``{samples: [names]}``,
    ``{samples_file: path}``, ``{folder: path}`` or ``{tag: name, run?: folder}``), or a string
    naming a query set of
    :attr:`SelectionInputs.queries` (Python API only: a curation run has no named sets).
    """

    type: Literal["EMBEDDINGS"] = "EMBEDDINGS"
    query: str | QuerySource | None = Field(
        None,
        description="query set of SIMILARITY: {samples: [names]} | {samples_file: path} | "
        "{folder: path} | {tag: name, run?: run folder}",
    )

    @field_validator("query", mode="plain")
    @classmethod
    def _query(cls, value: object) -> str | QuerySource | None:
        if value is None or isinstance(value, QuerySource):
            return value
        if isinstance(value, Mapping):
            return QuerySource.parse(value, "")
        return _optional_name(value)

    @field_serializer("query")
    def _dump_query(self, query: str | QuerySource | None) -> Any:
        # The lightly-shaped form, so a dumped config parses back to the same one.
        return query.to_dict() if isinstance(query, QuerySource) else query

    def resolve(self) -> tuple[InputKind, Any]:
        """QUERY with the query source (or set name), else plain EMBEDDINGS."""
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
