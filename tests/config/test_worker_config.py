"""RunConfig / WorkerConfig values that used to be accepted and misread."""

from __future__ import annotations

import pytest

from selfsup.config import RunConfig, resolve
from selfsup.config.worker_config import DatapoolConfig, WorkerConfig
from selfsup.errors import ConfigError


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("stopping_condition.n_samples=true", "expected a number, got the boolean True"),
        ("stopping_condition.n_samples=false", "expected a number, got the boolean False"),
        ("stopping_condition.min_distance=true", "expected a number, got the boolean True"),
        ("stopping_condition.min_distance=5", r"-1 \(unset\) or in \(0, 2\]"),
        ("stopping_condition.min_distance=0", r"-1 \(unset\) or in \(0, 2\]"),
        ("stopping_condition.min_distance=-0.5", r"-1 \(unset\) or in \(0, 2\]"),
        ("datapool.name=../escape", "datapool name '../escape' is not valid"),
        ("datapool.name=a/b", "datapool name 'a/b' is not valid"),
        ("datapool.name=..", "datapool name '..' is not valid"),
        ("datapool.name=.hidden", "is not valid"),
        ("datapool.name='  '", "is not valid"),
        ("check_timeout_s=-1", "check_timeout_s"),
    ],
)
def test_values_outside_the_documented_range_are_rejected(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve(RunConfig, overrides=[override])


@pytest.mark.parametrize("name", ["tab\there", "new\nline", "nul\x00", "a" * 129, "x\\y"])
def test_datapool_names_with_control_characters_are_rejected(name: str) -> None:
    # The server validates submitted configs with the same model.
    with pytest.raises(ValueError, match="is not valid"):
        WorkerConfig.model_validate({"datapool": {"name": name}})
    with pytest.raises(ValueError, match="is not valid"):
        DatapoolConfig(name=name)


def test_valid_values_are_kept() -> None:
    cfg = resolve(
        RunConfig,
        overrides=[
            "stopping_condition.n_samples=5",
            "stopping_condition.min_distance=2",
            "datapool.name=street-scenes_v2.1",
            "check_timeout_s=0",
        ],
    )
    assert cfg.stopping_condition.n_samples == 5
    assert cfg.stopping_condition.min_distance == 2.0
    assert cfg.datapool.name == "street-scenes_v2.1"
    assert cfg.check_timeout_s == 0
    fraction = resolve(RunConfig, overrides=["stopping_condition.n_samples=0.25"])
    assert fraction.stopping_condition.n_samples == 0.25
    assert fraction.stopping_condition.min_distance == -1


# ----------------------------------------------------------------------------- the selection

_STRATEGIES = (
    "selection_config={n_samples: 4, strategies: ["
    "{input: {type: EMBEDDINGS}, strategy: {type: DIVERSITY}},"
    "{input: {type: METADATA, key: lightly.sharpness}, strategy: {type: WEIGHTS}}]}"
)


def test_selection_config_is_the_typed_model_resolved_once() -> None:
    from selfsup.selection import DiversityStrategy, MetadataInput, WeightsStrategy
    from selfsup.selection.config import SelectionConfigModel

    cfg = resolve(RunConfig, overrides=[_STRATEGIES])
    assert isinstance(cfg.selection_config, SelectionConfigModel)
    assert cfg.selection().strategies == (
        DiversityStrategy(),
        WeightsStrategy(MetadataInput("lightly.sharpness")),
    )
    # written with every default, and read back to the same config
    import yaml

    from selfsup.config import to_yaml, validate

    written = yaml.safe_load(to_yaml(cfg))
    assert written["selection_config"]["strategies"][1]["strategy"] == {
        "type": "WEIGHTS",
        "strength": 1.0,
    }
    assert validate(RunConfig, written) == cfg


def test_the_legacy_method_is_recorded_as_the_strategies_it_runs() -> None:
    import yaml

    from selfsup.config import to_yaml, validate

    cfg = resolve(RunConfig, overrides=["stopping_condition.n_samples=8"])
    assert cfg.selection_config is not None
    written = yaml.safe_load(to_yaml(cfg))
    kinds = [s["strategy"]["type"] for s in written["selection_config"]["strategies"]]
    assert kinds == ["DIVERSITY", "TYPICALITY"]
    assert written["selection_config"]["strategies"][1]["strategy"]["k"] == 50
    assert written["method"] == "typicality_coreset"
    # method and the selection_config it describes agree, so the file reads back
    assert validate(RunConfig, written) == cfg
    coral = resolve(
        RunConfig,
        overrides=[
            "method=coral",
            "stopping_condition.n_samples=3",
            "active_learning.task_name=cls",
        ],
    )
    assert coral.selection_config is not None
    last = coral.selection_config.strategies[-1].input
    assert last.model_dump() == {"type": "SCORES", "task": "cls", "score": "uncertainty_margin"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            [
                "selection_config={n_samples: 3, strategies: [{input: {type: EMBEDDINGS}, "
                "strategy: {type: DIVERSTY}}]}"
            ],
            r"selection_config.strategies\[0\].strategy.type: unknown strategy type 'DIVERSTY'; "
            r"did you mean 'DIVERSITY'\?",
        ),
        (
            [
                "selection_config={n_samples: 3, strategies: [{input: {type: EMBEDDINGS}, "
                "strategy: {type: KMEANS, n_cluster: 2}}]}"
            ],
            r"strategies\[0\].strategy.n_cluster: unknown key; did you mean 'n_clusters'\?",
        ),
        (["method=coreset", _STRATEGIES], "give either selection_config or the legacy"),
        (["selection_config=[1]"], r"selection_config: expected a mapping"),
        ([], "no stopping condition: set stopping_condition.n_samples"),
    ],
)
def test_selection_errors_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve(RunConfig, overrides=overrides)


def test_help_shows_the_shape_of_selection_config() -> None:
    from selfsup.config import describe

    line = next(x for x in describe(RunConfig).splitlines() if "selection_config" in x)
    assert "strategies: [{input: {type: EMBEDDINGS(query?) | SCORES(task, score) |" in line
    assert "strategy: {type: DIVERSITY(strength?, stopping_condition_minimum_distance?) |" in line
    assert "KMEANS(strength?, n_clusters?, seed?)" in line


def test_the_size_switch_is_a_resolved_config_that_says_so() -> None:
    from selfsup.selection import DiversityStrategy

    cfg = resolve(RunConfig, overrides=["stopping_condition.n_samples=5"])
    assert cfg.for_sample_count(100, 100) is cfg
    big = cfg.for_sample_count(101, 100)
    assert big.method == "coreset"
    assert big.selection().strategies == (DiversityStrategy(),)
    assert big.selection_note == (
        "101 samples exceed 100: the default typicality_coreset ran as coreset (pure diversity)"
    )
    assert cfg.method == "typicality_coreset"  # the original is not changed
    # a method or strategies the user chose are never switched
    chosen = resolve(RunConfig, overrides=["stopping_condition.n_samples=5", "method=coreset"])
    assert chosen.for_sample_count(10**6, 100) is chosen
    explicit = resolve(RunConfig, overrides=[_STRATEGIES])
    assert explicit.for_sample_count(10**6, 100) is explicit
