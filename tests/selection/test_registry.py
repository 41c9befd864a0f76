"""Contract tests over the registries: every strategy and input type, by being registered."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from selfsup.config import RunConfig, describe
from selfsup.selection import SelectionInputs, select
from selfsup.selection.config import (
    SelectionConfig,
    SelectionConfigModel,
    parse_selection_config,
    parse_selection_model,
)
from selfsup.selection.registry import (
    INPUTS,
    KIND_TEXT,
    STRATEGIES,
    ObjectiveContext,
    SelectionConfigError,
    StrategyType,
    register_strategy,
)

N = 40

#: One input dict of each kind, to try every strategy on every kind.
INPUT_OF_KIND: dict[str, dict[str, Any]] = {
    "EMBEDDINGS": {"type": "EMBEDDINGS"},
    "QUERY": {"type": "EMBEDDINGS", "query": "q"},
    "NUMERIC": {"type": "SCORES", "task": "t", "score": "s"},
    "CATEGORICAL": {"type": "PREDICTIONS", "task": "t", "name": "CLASS_DISTRIBUTION"},
    "NUMERIC_OR_CATEGORICAL": {"type": "METADATA", "key": "w"},
}


def _inputs() -> SelectionInputs:
    from selfsup.selection.inputs import ClassCounts

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(N, 6)).astype(np.float32)
    return SelectionInputs(
        embeddings=emb,
        metadata={
            "w": rng.uniform(0.1, 1.0, N),
            "cls": np.array(["a", "b", "c", "d"] * (N // 4), dtype=object),
        },
        scores={"t": {"s": rng.uniform(0, 1, N)}},
        predictions={"t": ClassCounts.from_labels(rng.integers(0, 3, N), ["x", "y", "z"])},
        queries={"q": np.array([0, 1])},
    )


def _config(entry: StrategyType, n_samples: int = 5) -> dict[str, Any]:
    strategies = [copy.deepcopy(dict(entry.example))]
    if all(getattr(t, "is_filter", False) for t in entry.typed):
        # a filter alone ranks nothing: add a ranking strategy
        strategies.append({"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}})
    return {"n_samples": n_samples, "strategies": strategies}


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_the_example_builds_its_typed_strategy_and_round_trips(name: str) -> None:
    entry = STRATEGIES[name]
    raw = _config(entry)
    model = parse_selection_model(raw)
    config = model.to_selection()
    strategy = config.strategies[0]
    assert isinstance(strategy, entry.typed), (name, strategy)
    assert type(strategy).name in STRATEGIES
    # typed -> dict -> typed, and model -> dump -> model
    assert parse_selection_config(config.to_dict()) == config
    assert SelectionConfigModel.model_validate(model.model_dump()) == model
    assert parse_selection_model(model.model_dump(mode="json")) == model


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_selects_on_its_own_deterministically(name: str) -> None:
    inputs = _inputs()
    config = parse_selection_config(_config(STRATEGIES[name]))
    before = np.array(inputs.embeddings, copy=True)
    first = select(inputs, config).indices
    again = select(inputs, config).indices
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(inputs.embeddings, before)  # no input mutated
    assert first.size == 5
    assert np.unique(first).size == first.size
    assert first.min() >= 0
    assert first.max() < N


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_term_has_one_finite_value_per_sample(name: str) -> None:
    inputs = _inputs()
    strategy = parse_selection_config(_config(STRATEGIES[name])).strategies[0]
    from selfsup.selection.objectives import l2_normalize

    assert inputs.embeddings is not None
    context = ObjectiveContext(inputs, l2_normalize(inputs.embeddings), np.ones(N, bool), 5)
    term = strategy.term(context)
    if strategy.is_filter:
        assert term.keep is not None
        assert term.keep.shape == (N,)
        assert term.description
    elif term.static is not None:
        assert term.static.shape == (N,)
        assert np.all(np.isfinite(term.static))
    else:
        assert term.diversity_strength > 0 or term.balance is not None


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_refuses_the_inputs_it_does_not_accept(name: str) -> None:
    entry = STRATEGIES[name]
    for kind, inp in INPUT_OF_KIND.items():
        raw = _config(entry)
        raw["strategies"][0]["input"] = inp
        if kind in entry.accepts:
            parse_selection_config(raw)
            continue
        with pytest.raises(SelectionConfigError, match=f"{name} cannot use this input") as info:
            parse_selection_config(raw)
        assert info.value.key_path == "selection_config.strategies[0].input"
        assert KIND_TEXT[kind] in str(info.value)
        assert str(info.value).endswith(f"it accepts {entry.accepts_text}")


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_names_its_unknown_keys_and_its_type(name: str) -> None:
    raw = _config(STRATEGIES[name])
    raw["strategies"][0]["strategy"]["typ"] = 1
    with pytest.raises(SelectionConfigError, match="did you mean 'type'") as info:
        parse_selection_config(raw)
    assert info.value.key_path == "selection_config.strategies[0].strategy.typ"
    raw = _config(STRATEGIES[name])
    raw["strategies"][0]["strategy"]["type"] = name.lower()
    with pytest.raises(SelectionConfigError, match=f"did you mean '{name}'"):
        parse_selection_config(raw)


def test_help_and_errors_list_every_registered_type() -> None:
    help_text = describe(RunConfig)
    for name in [*STRATEGIES, *INPUTS]:
        assert name in help_text, name
    raw: dict[str, Any] = {"n_samples": 1, "strategies": [{"input": {}, "strategy": {}}]}
    with pytest.raises(SelectionConfigError) as info:
        parse_selection_config(raw)
    for name in INPUTS:
        assert name in str(info.value)


def test_a_type_is_registered_once() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register_strategy(STRATEGIES["DIVERSITY"])


def test_typed_selection_config_still_takes_typed_strategies() -> None:
    strategies = tuple(
        parse_selection_config(_config(e)).strategies[0] for e in STRATEGIES.values()
    )
    scoring = tuple(s for s in strategies if not s.is_filter)
    assert SelectionConfig(scoring, n_samples=3).strategies == scoring


@pytest.mark.parametrize("name", list(INPUTS))
def test_every_input_resolves_round_trips_and_loads(name: str) -> None:
    from selfsup.selection.input_types import CATEGORICAL_KINDS, NUMERIC_KINDS

    entry = INPUTS[name]
    model = entry.config.model_validate(dict(entry.example))
    assert model.type == name
    kind, typed = model.resolve()
    assert kind in KIND_TEXT
    inputs = _inputs()
    if kind in NUMERIC_KINDS or kind in CATEGORICAL_KINDS:
        assert entry.config.model_validate(typed.to_dict()) == model
        assert name in typed.describe()
    if kind in NUMERIC_KINDS:
        values = typed.numeric(inputs)
        assert values.shape == (N,)
        assert values.dtype == np.float64
    if kind in CATEGORICAL_KINDS:
        assert typed.categorical(inputs).counts.shape[0] == N
    with pytest.raises(SelectionConfigError, match="unknown key") as info:
        parse_selection_config(
            {
                "n_samples": 1,
                "strategies": [{"input": {**entry.example, "bogus": 1}, "strategy": {}}],
            }
        )
    assert "Accepted here: type" in str(info.value)
