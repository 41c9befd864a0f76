"""The method registry: names are torch-free, lookups are lazy, errors suggest a name."""

from __future__ import annotations

import pytest

from _imports import loaded_after
from selfsup.errors import ConfigError
from selfsup.methods import check_method_name, get_method, method_names, register_method


def test_names_are_listed_in_catalogue_order() -> None:
    names = method_names()
    assert names[:3] == ["simclr", "moco", "byol"]
    assert len(set(names)) == len(names)
    assert all(name == name.lower() for name in names)


def test_checking_a_name_does_not_import_torch() -> None:
    # The server validates configs naming a method and must never import torch.
    code = "import selfsup.methods as m; m.check_method_name('byol')"
    assert loaded_after(code, ["torch"]) == []


def test_unknown_name_suggests_and_lists() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown method 'simsam'; did you mean 'simsiam'\?"
    ) as e:
        check_method_name("simsam")
    assert "registered methods: simclr, moco" in str(e.value)
    with pytest.raises(ConfigError, match="unknown method"):
        get_method("nope")


@pytest.mark.parametrize("name", method_names())
def test_every_catalogue_entry_loads_its_own_method(name: str) -> None:
    method = get_method(name)
    assert method.name == name
    assert method.title
    assert method.optimizer.lr > 0
    assert get_method(name) is method


def test_register_refuses_a_taken_name() -> None:
    with pytest.raises(ConfigError, match="'simclr' is already registered"):
        register_method(get_method("simclr"))


def test_schedules_follow_the_run_and_hold_their_start_without_a_set_length() -> None:
    from selfsup.methods import TrainProgress

    assert TrainProgress(step=0, total_steps=11).cosine(0.99, 1.0) == pytest.approx(0.99)
    assert TrainProgress(step=5, total_steps=11).cosine(0.99, 1.0) == pytest.approx(0.995)
    assert TrainProgress(step=10, total_steps=11).cosine(0.99, 1.0) == pytest.approx(1.0)
    # max_epochs=-1: no last step, so a momentum encoder keeps moving (m < 1).
    assert TrainProgress(step=500, total_steps=0).cosine(0.99, 1.0) == pytest.approx(0.99)
