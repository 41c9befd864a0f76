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
