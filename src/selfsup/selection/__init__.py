"""Selection: choose the samples worth labelling, as pure functions over arrays.

* :func:`select` runs a :class:`SelectionConfig` (strategies + stopping conditions) over
  :class:`SelectionInputs` (embeddings, scores, metadata, predictions, query sets) and returns
  a :class:`SelectionResult`. It does no I/O.
* :func:`parse_selection_config` and :func:`selection_config_from_worker_config` read the
  lightly Worker dict forms (``selection_config``, or legacy ``method``/``stopping_condition``).
* :func:`coreset` (k-center greedy) and :func:`random_selection` are the legacy
  ``method=coreset`` / ``method=random``.
* :mod:`selfsup.selection.scorers` turns predictions into active-learning scores.

Example::

    from selfsup.selection import (
        DiversityStrategy, ScoresInput, SelectionConfig, SelectionInputs, WeightsStrategy, select,
    )
    inputs = SelectionInputs(embeddings=emb, scores={"cls": {"uncertainty_entropy": entropy}})
    entropy_weights = WeightsStrategy(ScoresInput("cls", "uncertainty_entropy"))
    config = SelectionConfig(strategies=(DiversityStrategy(), entropy_weights), n_samples=100)
    chosen = select(inputs, config).indices
"""

from selfsup.selection.config import (
    BalanceStrategy,
    CategoricalInput,
    CategoryCountInput,
    ClassDistributionInput,
    DiversityStrategy,
    MetadataInput,
    NumericInput,
    RandomInput,
    RandomStrategy,
    ScoresInput,
    SelectionConfig,
    SelectionConfigError,
    SimilarityStrategy,
    Strategy,
    ThresholdOperation,
    ThresholdStrategy,
    TypicalityStrategy,
    WeightsStrategy,
    parse_selection_config,
    selection_config_from_worker_config,
)
from selfsup.selection.greedy import StopReason, min_squared_distances
from selfsup.selection.inputs import ClassCounts, SelectionInputs
from selfsup.selection.scorers import (
    classification_scores,
    object_frequency,
    uncertainty_entropy,
    uncertainty_least_confidence,
    uncertainty_margin,
)
from selfsup.selection.select import SelectionResult, coreset, random_selection, select

__all__ = [
    "BalanceStrategy",
    "CategoricalInput",
    "CategoryCountInput",
    "ClassCounts",
    "ClassDistributionInput",
    "DiversityStrategy",
    "MetadataInput",
    "NumericInput",
    "RandomInput",
    "RandomStrategy",
    "ScoresInput",
    "SelectionConfig",
    "SelectionConfigError",
    "SelectionInputs",
    "SelectionResult",
    "SimilarityStrategy",
    "StopReason",
    "Strategy",
    "ThresholdOperation",
    "ThresholdStrategy",
    "TypicalityStrategy",
    "WeightsStrategy",
    "classification_scores",
    "coreset",
    "min_squared_distances",
    "object_frequency",
    "parse_selection_config",
    "random_selection",
    "select",
    "selection_config_from_worker_config",
    "uncertainty_entropy",
    "uncertainty_least_confidence",
    "uncertainty_margin",
]
