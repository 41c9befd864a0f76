"""The ``worker_config``: what a curation run does, as the seed's scheduling examples show.

``selfsup run`` takes these keys at the top level (``stopping_condition.n_samples=0.1``), the
training/embedding settings under ``lightly.`` (``lightly.trainer.max_epochs=10``), and an
optional ``selection_config`` of strategies. The same model validates configs sent to the
server, so a scheduled run fails at submission, not on the worker.

The selection is resolved once, here: ``selection_config`` holds the typed
:class:`~selfsup.selection.config.SelectionConfigModel`, validated when the config is; a config
that gives the legacy ``method``/``stopping_condition`` instead gets the ``selection_config``
they describe filled in, so ``config/config.yaml`` records the strategies that ran. A change
the run makes for the data's size (:meth:`WorkerConfig.for_sample_count`) is a new resolved
config with ``selection_note`` saying why.
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal, Self

from pydantic import (
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from selfsup.config._base import StrictModel
from selfsup.config.lightly_config import LightlyConfig
from selfsup.errors import ConfigError
from selfsup.selection.config import (
    DEFAULT_METHOD,
    DEFAULT_SCORE_NAME,
    LegacyMethod,
    SelectionConfig,
    SelectionConfigModel,
    legacy_selection_model,
    legacy_stopping_condition,
    parse_selection_model,
    selection_shape,
    translate_error,
)

ScoreName = Literal[
    "uncertainty_margin",
    "uncertainty_least_confidence",
    "uncertainty_entropy",
    "object_frequency",
    "objectness_least_confidence",
]


class StoppingCondition(StrictModel):
    """When selection stops (legacy form; ``selection_config`` has its own).

    Both keys are numbers, never booleans: ``n_samples=true`` would otherwise read as 1.
    """

    n_samples: StrictInt | StrictFloat = Field(
        -1, description="samples to select: a count >= 1, a fraction in (0, 1], or -1 (unset)"
    )
    min_distance: StrictFloat | StrictInt = Field(
        -1, description="stop when the closest selected pair is nearer (0..2), or -1 (unset)"
    )

    @field_validator("n_samples", "min_distance", mode="before")
    @classmethod
    def _not_a_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got the boolean {value!r}")
        return value

    @field_validator("min_distance")
    @classmethod
    def _distance_range(cls, value: float) -> float:
        # Distances between L2-normalised embeddings lie in [0, 2].
        if value != -1 and not 0 < value <= 2:
            raise ValueError(
                f"min_distance must be -1 (unset) or in (0, 2] (distances between "
                f"L2-normalised embeddings), got {value!r}"
            )
        return float(value)


class ScorerConfig(StrictModel):
    """Settings of the object-frequency scorer."""

    frequency_penalty: float = Field(
        0.25, ge=0, le=1, description="discount on repeated objects of one class in an image"
    )
    min_score: float = Field(0.9, ge=0, le=1, description="score of the image with fewest objects")


class ActiveLearningConfig(StrictModel):
    """Which prediction task and uncertainty score weight the selection."""

    task_name: str = Field("", description="prediction task whose scores are used ('' = none)")
    score_name: ScoreName = Field(DEFAULT_SCORE_NAME, description="active-learning score")


class ObjectLevelConfig(StrictModel):
    """Object-level selection: embed and select crops of detected objects."""

    task_name: str = Field("", description="object-detection task whose boxes are cropped")
    crop_padding: float = Field(0.1, ge=0, description="padding around boxes, fraction of size")


#: Image-quality issues the check step flags (:mod:`selfsup.curation.quality`).
QualityIssue = Literal[
    "dark",
    "overexposed",
    "blurry",
    "low_information",
    "small",
    "odd_aspect_ratio",
    "grayscale",
]


class QualityConfig(StrictModel):
    """Image-quality issues (:mod:`selfsup.curation.quality`): thresholds and exclusion.

    Each ``<issue>_threshold`` left at ``null`` is computed from the run's own samples (median
    and MAD, bounded; the rule is in :mod:`selfsup.curation.quality`); a number replaces it in
    the issue's score units. Samples flagged with an issue in ``exclude`` are removed before
    selection (``selection.csv`` names them in ``removed_by`` as ``QUALITY <issue>``).
    """

    exclude: list[QualityIssue] = Field(
        default_factory=list,
        description="issues whose samples are removed before selection, e.g. [dark, blurry]",
    )
    dark_threshold: float | None = Field(
        None, description="flag brightness (mean luma, 0-255) below this (null = from the data)"
    )
    overexposed_threshold: float | None = Field(
        None, description="flag a near-white pixel fraction (0-1) above this (null = from the data)"
    )
    blurry_threshold: float | None = Field(
        None, description="flag blur (Laplacian/luma variance) below this (null = from the data)"
    )
    low_information_threshold: float | None = Field(
        None, description="flag luma entropy (bits, 0-8) below this (null = from the data)"
    )
    small_threshold: float | None = Field(
        None, description="flag a short side (pixels) below this (null = from the data)"
    )
    odd_aspect_ratio_threshold: float | None = Field(
        None, description="flag long/short side above this (null = from the data)"
    )
    grayscale_threshold: float | None = Field(
        None, description="flag mean max-min channel spread (0-255) below this (null = from data)"
    )


class NearDuplicatesConfig(StrictModel):
    """Near-duplicate groups (:mod:`selfsup.curation.near_duplicates`).

    The check step groups samples whose perceptual hashes differ in at most
    ``hash_distance`` of 64 bits; after the embed step, pairs within ``embedding_distance``
    (L2 between L2-normalised embeddings) join the groups. The groups are reported in
    ``filenames/near_duplicate_filenames.txt`` and report.json; with ``remove`` the members
    other than the kept one are removed before selection (``selection.csv`` names them in
    ``removed_by`` as ``NEAR_DUPLICATE``).
    """

    hash_distance: int = Field(
        10, ge=0, le=64, description="largest Hamming distance (of 64 bits) of near duplicates"
    )
    embedding_distance: float | None = Field(
        None,
        ge=0,
        le=2,
        description="largest embedding distance of near duplicates (null = the suggestion "
        "from the nearest-neighbour distances, none when there is no low mode; 0 = off)",
    )
    remove: bool = Field(
        False, description="remove near duplicates but the kept one of each group before selection"
    )


#: What a datapool name may be: it names a folder under the datapool root.
DATAPOOL_NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


#: Seconds one file may take to be read and decoded (the check, and every read after it).
DEFAULT_FILE_TIMEOUT_S: Final = 60.0


def validate_datapool_name(name: str) -> str:
    """Return ``name`` if it can name a datapool folder, else raise :class:`ConfigError`.

    Accepted: 1 to 128 letters, digits, ``-``, ``_`` and ``.``, not starting with ``.`` (so
    no hidden folder, ``.`` or ``..``).
    """
    if not isinstance(name, str) or DATAPOOL_NAME_PATTERN.fullmatch(name) is None:
        raise ConfigError(
            f"datapool name {name!r} is not valid: use 1 to 128 letters, digits, '-', '_' or "
            "'.', not starting with '.' (e.g. 'street-scenes_v2')"
        )
    return name


class DatapoolConfig(StrictModel):
    """A named datapool remembers earlier selections; later runs fill the gaps.

    The name becomes a folder name under ``root``, so it is checked here, where both
    ``selfsup run`` and the server validate configs: 1 to 128 letters, digits, ``-``, ``_``
    and ``.``, not starting with ``.`` (no path separator, ``..``, hidden folder, control
    character or blank name); ``''`` means no datapool.
    """

    name: str = Field("", description="datapool name ('' = no datapool)")
    root: str = Field("", description="folder of datapools ('' = $SELFSUP_HOME/datapools)")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return validate_datapool_name(value) if value else value


class WorkerConfig(StrictModel):
    """Every ``worker_config`` key of the seed, with its documented meaning."""

    enable_corruptness_check: bool = Field(True, description="decode every file, drop corrupt")
    remove_exact_duplicates: bool = Field(True, description="drop all but one identical image")
    enable_training: bool = Field(False, description="train a self-supervised model first")
    pretagging: bool = Field(False, description="tag images with a detector (needs a detector)")
    pretagging_debug: bool = Field(False, description="write pretagging debug images")
    method: LegacyMethod = Field(
        DEFAULT_METHOD,
        description="selection method: typicality_coreset (diverse and typical, the default), "
        "coreset (k-center greedy), random, coral (coreset x active-learning scores)",
    )
    stopping_condition: StoppingCondition = Field(default_factory=StoppingCondition)
    scorer: Literal["object-frequency"] = Field(
        "object-frequency", description="scorer of object predictions"
    )
    scorer_config: ScorerConfig = Field(default_factory=ScorerConfig)
    active_learning: ActiveLearningConfig = Field(default_factory=ActiveLearningConfig)
    object_level: ObjectLevelConfig = Field(default_factory=ObjectLevelConfig)
    relevant_filenames_file: str = Field("", description="file listing the files to consider")
    selected_sequence_length: int = Field(
        1, ge=1, description="select runs of this many consecutive video frames"
    )
    datapool: DatapoolConfig = Field(default_factory=DatapoolConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    selection_config: SelectionConfigModel | None = Field(None, description=selection_shape())
    selection_note: str = Field(
        "",
        description="set by the run: why the selection that ran differs from the one asked "
        "for (e.g. a size limit); '' = it does not",
    )

    @field_validator("selection_config", mode="wrap")
    @classmethod
    def _selection_errors(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # pydantic's own messages for the discriminated unions become the selection config's
        # (key path, did-you-mean, accepted values).
        try:
            return handler(value)
        except ValidationError as exc:
            raise translate_error(exc, "selection_config") from None

    @model_validator(mode="after")
    def _selection_is_valid(self) -> WorkerConfig:
        # Resolve the selection now, once, so a bad strategy fails before any work starts and
        # the written config shows the strategies that run.
        if self.selection_config is None:
            object.__setattr__(self, "selection_config", self._legacy_selection())
        else:
            self._check_one_form(self.selection_config)
        return self

    def _check_one_form(self, model: SelectionConfigModel) -> None:
        """Legacy keys next to ``selection_config`` must describe the same selection (as in
        the ``config/config.yaml`` a run writes); otherwise one of the two would be ignored."""
        if self._legacy_keys_given() and model != self._legacy_or_none():
            raise ConfigError(
                "give either selection_config or the legacy method/stopping_condition keys"
            )

    def _legacy_keys_given(self) -> bool:
        default_method = type(self).model_fields["method"].default
        return self.method != default_method or self.stopping_condition != StoppingCondition()

    def _legacy_selection(self) -> SelectionConfigModel:
        """The selection ``method``, ``stopping_condition`` and ``active_learning`` describe."""
        stop = self.stopping_condition
        n_samples, min_distance = legacy_stopping_condition(
            stop.n_samples, stop.min_distance, "worker_config.stopping_condition"
        )
        if n_samples is None and min_distance is None:
            raise ConfigError(
                "no stopping condition: set stopping_condition.n_samples (a count, or a "
                "fraction such as 0.1) or stopping_condition.min_distance, or give a "
                "selection_config with n_samples"
            )
        return legacy_selection_model(
            self.method,
            n_samples,
            min_distance,
            self.active_learning.task_name,
            self.active_learning.score_name,
        )

    def _legacy_or_none(self) -> SelectionConfigModel | None:
        try:
            return self._legacy_selection()
        except ConfigError:
            return None

    def selection(self) -> SelectionConfig:
        """The typed :class:`~selfsup.selection.SelectionConfig` this config describes.

        A cheap conversion of the validated ``selection_config``; nothing is parsed again.
        """
        model = self.selection_config
        if model is None:
            # Subclasses that skip the resolution (the server's structural check).
            model = self._legacy_selection()
        elif not isinstance(model, SelectionConfigModel):
            # The server's structural check keeps the dict as submitted.
            model = parse_selection_model(model, "worker_config.selection_config")
            self._check_one_form(model)
        return model.to_selection()

    def for_sample_count(self, n_samples: int, max_typicality_samples: int) -> Self:
        """This config as it runs on ``n_samples`` samples.

        Exact typicality costs O(N^2 D): past ``max_typicality_samples`` samples the default
        method (``typicality_coreset``, when the selection came from it) would take hours, so
        it runs as ``coreset``. The returned config says so: ``method`` and
        ``selection_config`` are those that run, ``selection_note`` why. Any other config is
        returned unchanged (the same object).
        """
        if (
            n_samples <= max_typicality_samples
            or self.method != DEFAULT_METHOD
            or self.selection_config != self._legacy_or_none()
        ):
            return self
        coreset = self.model_copy(update={"method": "coreset"})._legacy_selection()
        note = (
            f"{n_samples} samples exceed {max_typicality_samples}: the default "
            "typicality_coreset ran as coreset (pure diversity)"
        )
        return self.model_copy(
            update={"method": "coreset", "selection_config": coreset, "selection_note": note}
        )


class RunConfig(WorkerConfig):
    """Everything ``selfsup run`` accepts: worker keys, paths and the lightly_config."""

    input_dir: str = Field("", description="folder of images and videos to curate")
    output_dir: str = Field("", description="folder of the run's outputs")
    allowed_roots: list[str] = Field(
        default_factory=list,
        description="folders that symlinks inside input_dir may point into; a link leading "
        "elsewhere is skipped and reported ([] = anywhere this user can read; the worker sets "
        "the datasource's allowed roots)",
    )
    checkpoint: str = Field("", description="model checkpoint to embed with (skips training)")
    embeddings: str = Field("", description="precomputed embeddings.csv (skips embedding)")
    predictions_dir: str = Field(
        "", description="folder of prediction tasks for active learning and object-level runs"
    )
    num_workers: int = Field(-1, ge=-1, description="processes for the checks; -1 = all cores")
    check_timeout_s: float = Field(
        DEFAULT_FILE_TIMEOUT_S,
        ge=0,
        description="seconds reading and decoding one file may take in the check; a file "
        "taking longer is reported corrupt (reason 'timeout') and the run goes on (0 = no limit)",
    )
    extract_frames: bool = Field(False, description="write selected video frames as images")
    frames_dir: str = Field("", description="where extracted frames go ('' = data/frames)")
    frames_format: Literal["png", "jpg", "webp", "bmp", "tif"] = Field(
        "png", description="image format of extracted frames"
    )
    umap: bool = Field(True, description="draw UMAP scatter plots in the report")
    near_duplicates: NearDuplicatesConfig = Field(default_factory=NearDuplicatesConfig)
    lightly: LightlyConfig = Field(default_factory=LightlyConfig)
