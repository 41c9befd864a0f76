"""Typed configuration: the lightly_config sections and the resolve/validate machinery."""

from selfsup.config._base import (
    StrictModel,
    all_keys,
    deep_merge,
    describe,
    load_yaml_file,
    parse_overrides,
    resolve,
    suggest_key,
    to_yaml,
    validate,
)
from selfsup.config.lightly_config import (
    CheckpointCallbackConfig,
    CollateConfig,
    CriterionConfig,
    LightlyConfig,
    LoaderConfig,
    ModelConfig,
    OptimizerConfig,
    TrainerConfig,
)

__all__ = [
    "CheckpointCallbackConfig",
    "CollateConfig",
    "CriterionConfig",
    "LightlyConfig",
    "LoaderConfig",
    "ModelConfig",
    "OptimizerConfig",
    "StrictModel",
    "TrainerConfig",
    "all_keys",
    "deep_merge",
    "describe",
    "load_yaml_file",
    "parse_overrides",
    "resolve",
    "suggest_key",
    "to_yaml",
    "validate",
]

from selfsup.config.worker_config import (
    ActiveLearningConfig,
    DatapoolConfig,
    ObjectLevelConfig,
    RunConfig,
    ScorerConfig,
    StoppingCondition,
    WorkerConfig,
)

__all__ += [
    "ActiveLearningConfig",
    "DatapoolConfig",
    "ObjectLevelConfig",
    "RunConfig",
    "ScorerConfig",
    "StoppingCondition",
    "WorkerConfig",
]
