"""``selfsup.errors``: the error types and the one fuzzy match behind every did-you-mean."""

from __future__ import annotations

import pytest

from selfsup.errors import ConfigError, DataError, SelfsupError, closest, did_you_mean


def test_errors_are_value_errors_of_selfsup() -> None:
    for error in (ConfigError, DataError):
        assert issubclass(error, SelfsupError)
        assert issubclass(error, ValueError)


@pytest.mark.parametrize(
    ("word", "options", "expected"),
    [
        ("max_epoch", ["max_epochs", "min_epochs", "batch_size"], "max_epochs"),
        ("diversity", ["DIVERSITY", "TYPICALITY"], "DIVERSITY"),  # case-insensitive fallback
        ("zzz", ["alpha", "beta"], None),
        ("anything", [], None),
    ],
)
def test_closest(word: str, options: list[str], expected: str | None) -> None:
    assert closest(word, options) == expected


def test_closest_takes_any_iterable_and_respects_the_cutoff() -> None:
    keys = {"resnet-18": 1, "resnet-50": 2}
    assert closest("resnet18", keys) == "resnet-18"
    assert closest("resnt", ["resnet-18"], cutoff=0.5) == "resnet-18"
    assert closest("resnt", ["resnet-18"], cutoff=0.9) is None


def test_did_you_mean_is_a_suffix_for_a_message() -> None:
    assert did_you_mean("simclrr", ["simclr", "byol"]) == "; did you mean 'simclr'?"
    assert did_you_mean("qqqq", ["simclr", "byol"]) == ""
