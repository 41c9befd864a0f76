"""Typed selection configs, the lightly dict parser and its error messages."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from selfsup.errors import ConfigError
from selfsup.selection import (
    BalanceStrategy,
    CategoryCountInput,
    ClassDistributionInput,
    DiversityStrategy,
    MetadataInput,
    RandomInput,
    RandomStrategy,
    ScoresInput,
    SelectionConfig,
    SelectionConfigError,
    SimilarityStrategy,
    ThresholdStrategy,
    TypicalityStrategy,
    WeightsStrategy,
    parse_selection_config,
    selection_config_from_worker_config,
)

LIGHTLY_EXAMPLE: dict[str, Any] = {
    "n_samples": 100,
    "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
        {
            "input": {"type": "SCORES", "task": "my-task", "score": "uncertainty_entropy"},
            "strategy": {"type": "WEIGHTS"},
        },
        {
            "input": {"type": "METADATA", "key": "lightly.sharpness"},
            "strategy": {"type": "THRESHOLD", "threshold": 20, "operation": "BIGGER"},
        },
        {
            "input": {"type": "PREDICTIONS", "task": "my-task", "name": "CLASS_DISTRIBUTION"},
            "strategy": {"type": "BALANCE", "target": {"Ambulance": 0.2, "Bus": 0.4}},
        },
    ],
}


def test_parses_the_lightly_example() -> None:
    config = parse_selection_config(LIGHTLY_EXAMPLE)
    assert config == SelectionConfig(
        strategies=(
            DiversityStrategy(),
            WeightsStrategy(ScoresInput("my-task", "uncertainty_entropy")),
            ThresholdStrategy(MetadataInput("lightly.sharpness"), "BIGGER", 20.0),
            BalanceStrategy(ClassDistributionInput("my-task"), {"Ambulance": 0.2, "Bus": 0.4}),
        ),
        n_samples=100,
    )


def test_every_strategy_round_trips_through_the_dict_form() -> None:
    config = SelectionConfig(
        strategies=(
            DiversityStrategy(strength=0.6),
            TypicalityStrategy(k=7, strength=0.5),
            SimilarityStrategy("needles", strength=2.0),
            WeightsStrategy(CategoryCountInput("det", "car"), strength=-1.0),
            ThresholdStrategy(RandomInput(3), "SMALLER_EQUAL", 0.25),
            BalanceStrategy(MetadataInput("weather"), "uniform", 3.0),
            RandomStrategy(seed=9, strength=0.1),
        ),
        n_samples=0.25,
        proportion_samples=0.5,
        min_distance=0.2,
    )
    assert parse_selection_config(config.to_dict()) == config


def test_random_input_with_weights_is_a_random_strategy() -> None:
    raw = {
        "proportion_samples": 0.1,
        "strategies": [
            {"input": {"type": "RANDOM", "random_seed": 42}, "strategy": {"type": "WEIGHTS"}}
        ],
    }
    assert parse_selection_config(raw).strategies == (RandomStrategy(seed=42),)


def test_min_distance_in_the_diversity_strategy() -> None:
    raw = {
        "strategies": [
            {
                "input": {"type": "EMBEDDINGS"},
                "strategy": {"type": "DIVERSITY", "stopping_condition_minimum_distance": 0.3},
            }
        ]
    }
    config = parse_selection_config(raw)
    assert config.min_distance == 0.3
    assert config.n_samples is None
    assert config.resolve_n_new(50) == 50


def test_resolve_n_new() -> None:
    div = (DiversityStrategy(),)
    assert SelectionConfig(div, n_samples=0.1).resolve_n_new(1005) == 101
    assert SelectionConfig(div, n_samples=7).resolve_n_new(5) == 5
    assert SelectionConfig(div, n_samples=7, proportion_samples=0.5).resolve_n_new(10) == 5


def with_change(path: list[Any], value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    raw = copy.deepcopy(base if base is not None else LIGHTLY_EXAMPLE)
    node: Any = raw
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return raw


_DELETE = object()

BAD_CONFIGS = [
    # (path to change, new value, expected key path, expected text in the message)
    (
        ["strategies", 0, "strategy", "type"],
        "DIVERSTY",
        "selection_config.strategies[0].strategy.type",
        "did you mean 'DIVERSITY'?",
    ),
    (
        ["strategies", 1, "input", "type"],
        "SCORE",
        "selection_config.strategies[1].input.type",
        "did you mean 'SCORES'?",
    ),
    (
        ["strategies", 2, "strategy", "operation"],
        "BIGER",
        "selection_config.strategies[2].strategy.operation",
        "did you mean 'BIGGER'?",
    ),
    (
        ["strategies", 0, "strategy", "strenght"],
        1.0,
        "selection_config.strategies[0].strategy.strenght",
        "did you mean 'strength'?",
    ),
    (
        ["strategies", 1, "input", "scroe"],
        "x",
        "selection_config.strategies[1].input.scroe",
        "did you mean 'score'?",
    ),
    (["n_sample"], 3, "selection_config.n_sample", "did you mean 'n_samples'?"),
    (["n_samples"], 0, "selection_config.n_samples", "integer >= 1"),
    (["n_samples"], 1.5, "selection_config.n_samples", "(0, 1]"),
    (["n_samples"], True, "selection_config.n_samples", "int >= 1"),
    (["n_samples"], "100", "selection_config.n_samples", "int >= 1"),
    (["proportion_samples"], 0.0, "selection_config.proportion_samples", "(0, 1]"),
    (["min_distance"], -0.2, "selection_config.min_distance", "must be in (0, 2]"),
    (["min_distance"], 5, "selection_config.min_distance", "must be in (0, 2]"),
    (["min_distance"], True, "selection_config.min_distance", "expected a number"),
    (["strategies", 0, "strategy", "strength"], -1.0, "strategies[0].strategy.strength", "> 0"),
    (["strategies", 1, "strategy", "strength"], 0, "strategies[1].strategy.strength", "non-zero"),
    (
        ["strategies", 1, "strategy", "strength"],
        "high",
        "strategies[1].strategy.strength",
        "number",
    ),
    (
        ["strategies", 2, "strategy", "operation"],
        _DELETE,
        "selection_config.strategies[2].strategy.operation",
        "required",
    ),
    (
        ["strategies", 3, "strategy", "target"],
        {"Ambulance": 0.7, "Bus": 0.4},
        "selection_config.strategies[3].strategy.target",
        "sum to at most 1",
    ),
    (
        ["strategies", 3, "strategy", "target", "Bus"],
        -0.1,
        "selection_config.strategies[3].strategy.target.Bus",
        ">= 0",
    ),
    (
        ["strategies", 1, "input", "task"],
        _DELETE,
        "selection_config.strategies[1].input.task",
        "required",
    ),
    (
        ["strategies", 0, "input"],
        {"type": "METADATA", "key": "x"},
        "selection_config.strategies[0].input",
        "DIVERSITY cannot use this input",
    ),
    (
        ["strategies", 3, "input"],
        {"type": "SCORES", "task": "t", "score": "s"},
        "selection_config.strategies[3].input",
        "BALANCE cannot use this input",
    ),
    (
        ["strategies", 3, "input", "name"],
        "CLASS_DISTRIBUTON",
        "selection_config.strategies[3].input.name",
        "did you mean 'CLASS_DISTRIBUTION'?",
    ),
    (
        ["strategies", 3, "input", "name"],
        "CATEGORY_COUNT",
        "selection_config.strategies[3].input.category",
        "required with name CATEGORY_COUNT",
    ),
    (["strategies", 1], "WEIGHTS", "selection_config.strategies[1]", "expected a mapping"),
    (["strategies"], [], "selection_config.strategies", "at least one strategy"),
    (["strategies"], "DIVERSITY", "selection_config.strategies", "list of strategies"),
    (["strategies", 0, "extra"], 1, "selection_config.strategies[0].extra", "unknown key"),
    (["strategies", 1, "input", "random_seed"], 1, "strategies[1].input.random_seed", "unknown"),
]


@pytest.mark.parametrize(("path", "value", "key_path", "text"), BAD_CONFIGS)
def test_bad_config_names_the_key_path(
    path: list[Any], value: Any, key_path: str, text: str
) -> None:
    with pytest.raises(SelectionConfigError) as info:
        parse_selection_config(with_change(path, value))
    assert info.value.key_path.endswith(key_path), str(info.value)
    assert text in str(info.value)
    assert isinstance(info.value, ConfigError)


def test_cross_field_errors() -> None:
    no_stop = with_change(["n_samples"], _DELETE)
    with pytest.raises(SelectionConfigError, match=r"^selection_config: no stopping condition"):
        parse_selection_config(no_stop)
    only_threshold = {"n_samples": 3, "strategies": [LIGHTLY_EXAMPLE["strategies"][2]]}
    with pytest.raises(SelectionConfigError, match="only THRESHOLD"):
        parse_selection_config(only_threshold)
    two_div = {"n_samples": 3, "strategies": [LIGHTLY_EXAMPLE["strategies"][0]] * 2}
    with pytest.raises(SelectionConfigError, match=r"strategies\[1\]: DIVERSITY may appear only"):
        parse_selection_config(two_div)
    no_div = {"min_distance": 0.2, "strategies": [LIGHTLY_EXAMPLE["strategies"][1]]}
    with pytest.raises(SelectionConfigError, match=r"min_distance: min_distance needs a DIVERSITY"):
        parse_selection_config(no_div)
    conflict = with_change(
        ["strategies", 0, "strategy", "stopping_condition_minimum_distance"],
        0.5,
        with_change(["min_distance"], 0.2),
    )
    with pytest.raises(SelectionConfigError, match="conflicts"):
        parse_selection_config(conflict)


def test_typed_constructors_validate_too() -> None:
    with pytest.raises(SelectionConfigError, match=r"^DiversityStrategy.strength"):
        DiversityStrategy(strength=0.0)
    with pytest.raises(SelectionConfigError, match=r"^TypicalityStrategy.k"):
        TypicalityStrategy(k=0)
    with pytest.raises(SelectionConfigError, match="did you mean 'SMALLER'"):
        ThresholdStrategy(MetadataInput("a"), "SMALER", 1.0)  # type: ignore[arg-type]
    with pytest.raises(SelectionConfigError, match=r"^WeightsStrategy.input"):
        WeightsStrategy(ClassDistributionInput("t"))  # type: ignore[arg-type]
    with pytest.raises(SelectionConfigError, match=r"^SelectionConfig: no stopping"):
        SelectionConfig((DiversityStrategy(),))
    with pytest.raises(SelectionConfigError, match=r"^SelectionConfig.strategies"):
        SelectionConfig(DiversityStrategy(), n_samples=3)  # type: ignore[arg-type]
    with pytest.raises(SelectionConfigError, match=r"^RandomInput.random_seed"):
        RandomInput(-1)
    with pytest.raises(SelectionConfigError, match=r"^BalanceStrategy.target"):
        BalanceStrategy(MetadataInput("a"), {"x": 0.0})


def test_legacy_worker_config() -> None:
    worker = {
        "enable_corruptness_check": True,
        "method": "coreset",
        "stopping_condition": {"n_samples": 0.1, "min_distance": -1},
        "scorer": "object-frequency",
        "active_learning": {"task_name": "", "score_name": "uncertainty_margin"},
    }
    assert selection_config_from_worker_config(worker) == SelectionConfig(
        (DiversityStrategy(),), n_samples=0.1
    )
    random_cfg = selection_config_from_worker_config(
        {"method": "random", "stopping_condition": {"n_samples": 50}}
    )
    assert random_cfg == SelectionConfig((RandomStrategy(),), n_samples=50)
    coral = selection_config_from_worker_config(
        {
            "method": "coral",
            "stopping_condition": {"n_samples": -1, "min_distance": 0.2},
            "active_learning": {"task_name": "cls", "score_name": "uncertainty_entropy"},
        }
    )
    assert coral == SelectionConfig(
        (DiversityStrategy(), WeightsStrategy(ScoresInput("cls", "uncertainty_entropy"))),
        min_distance=0.2,
    )
    new_style = selection_config_from_worker_config({"selection_config": LIGHTLY_EXAMPLE})
    assert new_style == parse_selection_config(LIGHTLY_EXAMPLE)


@pytest.mark.parametrize(
    ("worker", "key_path", "text"),
    [
        ({"method": "corset"}, "worker_config.method", "did you mean 'coreset'?"),
        (
            {"method": "coreset", "stopping_condition": {"n_sample": 3}},
            "worker_config.stopping_condition.n_sample",
            "did you mean 'n_samples'?",
        ),
        ({"method": "coral", "stopping_condition": {"n_samples": 3}}, "task_name", "needs"),
        ({"method": "coreset"}, "worker_config", "no stopping condition"),
        (
            {"method": "random", "stopping_condition": {"n_samples": 3, "min_distance": 0.1}},
            "worker_config.stopping_condition.min_distance",
            "needs method",
        ),
        (
            {"selection_config": LIGHTLY_EXAMPLE, "method": "coreset"},
            "worker_config.method",
            "either",
        ),
        (
            {"selection_config": with_change(["strategies", 0, "strategy", "type"], "DIV")},
            "worker_config.selection_config.strategies[0].strategy.type",
            "unknown strategy type",
        ),
    ],
)
def test_legacy_worker_config_errors(worker: dict[str, Any], key_path: str, text: str) -> None:
    with pytest.raises(SelectionConfigError) as info:
        selection_config_from_worker_config(worker)
    assert info.value.key_path.endswith(key_path), str(info.value)
    assert text in str(info.value)


def test_default_method_is_coreset_weighted_by_typicality() -> None:
    # benchmarks/label_efficiency.py: pure coreset lost to random at every budget; this won.
    from selfsup.selection import TypicalityStrategy, selection_config_from_worker_config

    default = selection_config_from_worker_config({"stopping_condition": {"n_samples": 10}})
    assert default.strategies == (DiversityStrategy(), TypicalityStrategy(k=50, strength=0.75))
    coreset = selection_config_from_worker_config(
        {"method": "coreset", "stopping_condition": {"n_samples": 10}}
    )
    assert coreset.strategies == (DiversityStrategy(),)


def test_preselected_and_excluded_parse_dump_only_when_given_and_name_bad_sources() -> None:
    from selfsup.selection.config import parse_selection_model
    from selfsup.selection.input_types import QuerySource

    base: dict[str, Any] = {
        "n_samples": 3,
        "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}],
    }
    given = {
        **base,
        "preselected": [{"tag": "keep", "run": "./r"}, {"samples": ["a.png"]}],
        "excluded": [{"folder": "junk"}],
    }
    model = parse_selection_model(given)
    assert model.preselected == (
        QuerySource(tag="keep", run="./r"),
        QuerySource(samples=("a.png",)),
    )
    assert model.excluded == (QuerySource(folder="junk"),)
    dumped = model.model_dump(mode="json")
    assert dumped["preselected"] == given["preselected"]
    assert parse_selection_model(dumped) == model
    # Not given: not in the dump (written configs of other runs stay as they were).
    assert "preselected" not in parse_selection_model(base).model_dump(mode="json")
    assert "excluded" not in parse_selection_model(base).model_dump()
    with pytest.raises(ConfigError, match=r"selection_config\.excluded\[0\]: give exactly one"):
        parse_selection_model({**base, "excluded": [{"tag": "a", "folder": "b"}]})
    with pytest.raises(ConfigError, match=r"selection_config\.preselected: expected a list"):
        parse_selection_model({**base, "preselected": {"tag": "a"}})
