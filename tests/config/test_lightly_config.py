"""LightlyConfig's checks across sections: a teacher exactly when the method distils one."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfsup.config import LightlyConfig, resolve
from selfsup.errors import ConfigError
from selfsup.methods import get_method, method_names, method_takes_teacher


def test_distillation_without_a_teacher_names_the_missing_keys() -> None:
    with pytest.raises(ConfigError, match=r"needs teacher\.name and teacher\.weights") as e:
        resolve(LightlyConfig, data={"method": "distillation"})
    # The message says what each key accepts.
    assert "timm/<name>" in str(e.value)
    assert "zoo:<name>" in str(e.value)
    with pytest.raises(ConfigError, match=r"needs teacher\.weights:"):
        resolve(LightlyConfig, data={"method": "distillation", "teacher": {"name": "resnet-18"}})


def test_a_teacher_for_a_method_without_one_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"teacher\.weights is set but method=simclr takes no"):
        resolve(LightlyConfig, data={"teacher": {"weights": "teacher.pt"}})


def test_distillation_with_a_teacher_resolves() -> None:
    teacher = {"name": "resnet-18", "weights": "teacher.pt", "input_size": 56}
    cfg = resolve(LightlyConfig, data={"method": "distillation", "teacher": teacher})
    assert cfg.teacher.name == "resnet-18"
    assert cfg.teacher.weights == "teacher.pt"
    assert cfg.teacher.input_size == 56
    assert cfg.teacher.weights_strict


@pytest.mark.parametrize("name", method_names())
def test_the_torch_free_teacher_list_agrees_with_the_methods(name: str) -> None:
    assert method_takes_teacher(name) == get_method(name).takes_teacher


def test_a_method_argument_is_a_criterion_key_typed_as_the_argument() -> None:
    cfg = resolve(LightlyConfig, overrides=["method=barlowtwins", "criterion.lambda_param=1"])
    assert cfg.criterion.method_values() == {"lambda_param": 1.0}
    assert isinstance(cfg.criterion.model_extra["lambda_param"], float)  # type: ignore[index]
    # Python keyword arguments (train_embedding_model) and YAML files take the same keys.
    cfg = resolve(LightlyConfig, data={"method": "dino", "criterion": {"teacher_temp": 0.07}})
    assert cfg.criterion.method_values() == {"teacher_temp": 0.07}


def test_method_arguments_survive_the_round_trip_through_yaml(tmp_path: Path) -> None:
    # The resolved config is written as it ran and read again by the worker.
    from selfsup.config import to_yaml

    cfg = resolve(LightlyConfig, overrides=["method=vicreg", "criterion.mu_param=10"])
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(cfg), encoding="utf-8")
    again = resolve(LightlyConfig, file=path)
    assert again.criterion.method_values() == {"mu_param": 10.0}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["method=barlowtwins", "criterion.lambda=0.01"],
            r"method=barlowtwins has no argument criterion.lambda; did you mean 'lambda_param'\?"
            r" \(it takes criterion.lambda_param\)",
        ),
        (
            ["method=byol", "criterion.temperature=0.1"],
            r"method=byol has no argument criterion.temperature .*it takes no criterion keys",
        ),
        (
            ["method=tico", "criterion.beta=2"],
            r"invalid value 2 for 'criterion.beta' of method=tico: expected a float >= 0 and <= 1",
        ),
        (
            ["method=dino", "criterion.warmup_teacher_temp_epochs=2.5"],
            r"invalid value 2.5 .* expected an int >= 0",
        ),
        (["method=mae", "criterion.norm_pix_loss=maybe"], r"'maybe' .* expected a bool"),
    ],
)
def test_a_criterion_key_the_method_does_not_take_or_a_bad_value_is_refused_at_resolve(
    overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve(LightlyConfig, overrides=overrides)


def test_scheduled_and_curation_runs_take_method_arguments_under_lightly() -> None:
    from selfsup.config import RunConfig

    cfg = resolve(
        RunConfig,
        overrides=[
            "input_dir=x",
            "stopping_condition.n_samples=5",
            "lightly.method=swav",
            "lightly.criterion.sinkhorn_epsilon=0.1",
        ],
    )
    assert cfg.lightly.criterion.method_values() == {"sinkhorn_epsilon": 0.1}
    with pytest.raises(ConfigError, match="did you mean 'sinkhorn_epsilon'"):
        resolve(RunConfig, overrides=["lightly.method=swav", "lightly.criterion.sinkhorn_eps=1"])
