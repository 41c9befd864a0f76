"""The methods' declared ``criterion.*`` arguments: checking values, errors, help text."""

from __future__ import annotations

import pytest

from _imports import loaded_after
from selfsup.errors import ConfigError
from selfsup.methods import check_criterion_args, method_args, method_names
from selfsup.methods._args import CATALOG_ARGS, MethodArg, check_arg_values, describe_method_args
from selfsup.methods._registry import _CATALOG


def test_every_catalogue_method_declares_its_arguments_once() -> None:
    assert list(CATALOG_ARGS) == list(_CATALOG)
    for name, args in CATALOG_ARGS.items():
        names = [arg.name for arg in args]
        assert len(set(names)) == len(names), name
        assert all(arg.description for arg in args), name


def test_a_float_takes_ints_and_refuses_bools_strings_and_the_range() -> None:
    arg = MethodArg("beta", "float", "β", ge=0, le=1)
    assert arg.check(1, "tico") == 1.0
    assert isinstance(arg.check(1, "tico"), float)
    assert arg.check(0.25, "tico") == 0.25
    for bad in (True, "0.5", 1.5, -0.1, float("nan"), None, [0.5]):
        with pytest.raises(ConfigError, match=r"'criterion.beta' of method=tico: expected a float"):
            arg.check(bad, "tico")
    assert arg.accepted() == "a float >= 0 and <= 1"


def test_an_int_takes_whole_floats_only_and_nullable_takes_null() -> None:
    arg = MethodArg("d0", "int", "dims", ge=1, nullable=True)
    assert arg.check(3.0, "directclr") == 3
    assert isinstance(arg.check(3.0, "directclr"), int)
    assert arg.check(None, "directclr") is None
    with pytest.raises(ConfigError, match=r"invalid value 2.5 .* expected an int >= 1 or null"):
        arg.check(2.5, "directclr")
    with pytest.raises(ConfigError, match="invalid value 0 "):
        arg.check(0, "directclr")
    flag = MethodArg("norm_pix_loss", "bool", "flag")
    assert flag.check(False, "mae") is False
    with pytest.raises(ConfigError, match="expected a bool"):
        flag.check(1, "mae")
    assert MethodArg("t", "float", "t", gt=0, lt=1).accepted() == "a float > 0 and < 1"


def test_an_unknown_key_names_method_suggestion_and_the_keys_it_takes() -> None:
    with pytest.raises(ConfigError) as e:
        check_criterion_args("barlowtwins", {"lambda_parm": 0.01})
    message = str(e.value)
    assert "method=barlowtwins has no argument criterion.lambda_parm" in message
    assert "did you mean 'lambda_param'?" in message
    assert "(it takes criterion.lambda_param)" in message
    with pytest.raises(ConfigError, match=r"method=byol .* \(it takes no criterion keys\)"):
        check_criterion_args("byol", {"temperature": 0.1})
    assert check_arg_values("x", (), {}) == {}


def test_checking_arguments_does_not_import_torch() -> None:
    # The server checks scheduled runs' configs, criterion keys included, without torch.
    code = "from selfsup.methods import check_criterion_args as c; c('vicreg', {'mu_param': 10})"
    assert loaded_after(code, ["torch"]) == []


@pytest.mark.parametrize("name", method_names())
def test_method_args_are_the_catalogue_declarations(name: str) -> None:
    assert method_args(name) == CATALOG_ARGS[name]


def test_help_lists_every_argument_with_its_range() -> None:
    text = describe_method_args("lightly.criterion.")
    for name, args in CATALOG_ARGS.items():
        for arg in args:
            assert any(
                line.split()[:2] == [name, f"lightly.criterion.{arg.name}"]
                and arg.accepted() in line
                for line in text.splitlines()
            ), (name, arg.name)
