"""LightlyConfig's checks across sections: a teacher exactly when the method distils one."""

from __future__ import annotations

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
