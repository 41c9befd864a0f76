"""Selection: choose the samples worth labelling, as pure functions over arrays.

* :func:`select` runs a :class:`SelectionConfig` (strategies + stopping conditions) over
  :class:`SelectionInputs` (embeddings, scores, metadata, predictions, query sets) and returns
  a :class:`SelectionResult`. It does no I/O.
* :class:`SelectionConfigModel` (pydantic) validates the lightly Worker ``selection_config``;
  :func:`parse_selection_config` and :func:`selection_config_from_worker_config` read the dict
  forms (``selection_config``, or legacy ``method``/``stopping_condition``). Strategy and input
  types are registered in :mod:`selfsup.selection.registry`; registered strategies' typed
  classes (e.g. ``KMeansStrategy``) are importable from here too.
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

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names load on first access: the config parsers (selfsup.selection.config) import no torch,
# so the server can validate selection configs without loading the selection engine.
_EXPORTS: dict[str, str] = {
    "BalanceStrategy": "selfsup.selection.config",
    "CategoricalInput": "selfsup.selection.config",
    "CategoryCountInput": "selfsup.selection.config",
    "ClassCounts": "selfsup.selection.inputs",
    "ClassDistributionInput": "selfsup.selection.config",
    "DiversityStrategy": "selfsup.selection.config",
    "MetadataInput": "selfsup.selection.config",
    "NumericInput": "selfsup.selection.config",
    "RandomInput": "selfsup.selection.config",
    "RandomStrategy": "selfsup.selection.config",
    "ScoresInput": "selfsup.selection.config",
    "SelectionConfig": "selfsup.selection.config",
    "SelectionConfigError": "selfsup.selection.config",
    "SelectionConfigModel": "selfsup.selection.config",
    "SelectionInputs": "selfsup.selection.inputs",
    "SelectionResult": "selfsup.selection.engine",
    "SimilarityStrategy": "selfsup.selection.config",
    "StopReason": "selfsup.selection.greedy",
    "Strategy": "selfsup.selection.config",
    "ThresholdOperation": "selfsup.selection.config",
    "ThresholdStrategy": "selfsup.selection.config",
    "TypicalityStrategy": "selfsup.selection.config",
    "WeightsStrategy": "selfsup.selection.config",
    "classification_scores": "selfsup.selection.scorers",
    "coreset": "selfsup.selection.engine",
    "load_embedding_matrix": "selfsup.selection.matrix",
    "min_squared_distances": "selfsup.selection.greedy",
    "object_frequency": "selfsup.selection.scorers",
    "parse_selection_config": "selfsup.selection.config",
    "random_selection": "selfsup.selection.engine",
    "resolve_device": "selfsup.selection.greedy",
    "save_embedding_matrix": "selfsup.selection.matrix",
    "select": "selfsup.selection.engine",
    "selection_config_from_worker_config": "selfsup.selection.config",
    "uncertainty_entropy": "selfsup.selection.scorers",
    "uncertainty_least_confidence": "selfsup.selection.scorers",
    "uncertainty_margin": "selfsup.selection.scorers",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        # The typed strategy classes of registered strategies (e.g. KMeansStrategy) too.
        import selfsup.selection.config  # noqa: F401  (registers every strategy type)
        from selfsup.selection.registry import STRATEGIES

        for entry in STRATEGIES.values():
            for typed in entry.typed:
                if typed.__name__ == name:
                    return typed
        raise AttributeError(f"module 'selfsup.selection' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


if TYPE_CHECKING:
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
        SelectionConfigModel,
        SimilarityStrategy,
        Strategy,
        ThresholdOperation,
        ThresholdStrategy,
        TypicalityStrategy,
        WeightsStrategy,
        parse_selection_config,
        selection_config_from_worker_config,
    )
    from selfsup.selection.engine import SelectionResult, coreset, random_selection, select
    from selfsup.selection.greedy import StopReason, min_squared_distances, resolve_device
    from selfsup.selection.inputs import ClassCounts, SelectionInputs
    from selfsup.selection.matrix import load_embedding_matrix, save_embedding_matrix
    from selfsup.selection.scorers import (
        classification_scores,
        object_frequency,
        uncertainty_entropy,
        uncertainty_least_confidence,
        uncertainty_margin,
    )

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
    "SelectionConfigModel",
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
    "load_embedding_matrix",
    "min_squared_distances",
    "object_frequency",
    "parse_selection_config",
    "random_selection",
    "resolve_device",
    "save_embedding_matrix",
    "select",
    "selection_config_from_worker_config",
    "uncertainty_entropy",
    "uncertainty_least_confidence",
    "uncertainty_margin",
]
