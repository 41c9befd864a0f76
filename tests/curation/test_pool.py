"""The crash-isolating process pool behind the parallel check."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

from selfsup.curation._pool import map_isolating_crashes


@pytest.fixture
def helpers(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # Worker processes import the function by module name, so the module must be importable
    # from sys.path (which workers inherit), not only through pytest's importlib loader.
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    return importlib.import_module("_curation_pool_helpers")


MESSAGES: dict[int, str] = {}


def _crash_value(item: int, message: str) -> int:
    MESSAGES[item] = message
    return -1000 + item


def test_results_in_order_and_crashes_pinned_on_their_item(helpers: ModuleType) -> None:
    items = [0, 1, 2, -1, 4, 5, 6, 7, -2, 9, 10, 11]
    done: list[int] = []
    results = map_isolating_crashes(
        helpers.square_or_die,
        items,
        num_workers=2,
        chunksize=2,
        on_crash=_crash_value,
        on_done=done.append,
    )
    expected = [-1001 if i == -1 else -1002 if i == -2 else i * i for i in items]
    assert results == expected
    assert sum(done) == len(items)
    assert "died (exit code 3)" in MESSAGES[-1]
    assert "killed by signal 9" in MESSAGES[-2]


def test_matches_serial_map_without_crashes(helpers: ModuleType) -> None:
    items = list(range(23))
    results = map_isolating_crashes(
        helpers.square_or_die, items, num_workers=2, chunksize=4, on_crash=_crash_value
    )
    assert results == [i * i for i in items]


def test_exceptions_of_the_function_propagate(helpers: ModuleType) -> None:
    with pytest.raises(ValueError, match="negative item -3"):
        map_isolating_crashes(
            helpers.raise_for_negative, [1, -3], num_workers=1, chunksize=1, on_crash=_crash_value
        )


def test_workers_that_cannot_start_raise_instead_of_blaming_items(helpers: ModuleType) -> None:
    with pytest.raises(RuntimeError, match="worker processes die on start-up"):
        map_isolating_crashes(
            helpers.square_or_die,
            [1, 2],
            num_workers=1,
            chunksize=1,
            on_crash=_crash_value,
            initializer=helpers.die_on_start,
        )


@pytest.mark.parametrize(("workers", "chunk"), [(0, 1), (1, 0)])
def test_bad_arguments(helpers: ModuleType, workers: int, chunk: int) -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        map_isolating_crashes(
            helpers.square_or_die, [1], num_workers=workers, chunksize=chunk, on_crash=_crash_value
        )


def _timeout_value(item: int, message: str) -> int:
    MESSAGES[item] = message
    return -2000 + item


def test_an_item_that_never_returns_is_stopped_and_reported(helpers: ModuleType) -> None:
    import time

    # -3 hangs in Python (the worker's alarm stops it), -4 cannot be interrupted (the
    # parent kills the worker once the chunk overruns, then retries items one by one).
    items = [0, 1, -3, 3, -4, 5]
    started = time.monotonic()
    results = map_isolating_crashes(
        helpers.square_or_hang_deaf,
        items,
        num_workers=2,
        chunksize=2,
        on_crash=_crash_value,
        timeout=0.5,
        on_timeout=_timeout_value,
    )
    assert time.monotonic() - started < 30
    assert results == [0, 1, -2003, 9, -2004, 25]
    assert "longer than 0.5 s" in MESSAGES[-3]
    assert "longer than 0.5 s" in MESSAGES[-4]


def test_timeout_needs_its_callback(helpers: ModuleType) -> None:
    with pytest.raises(ValueError, match="on_timeout"):
        map_isolating_crashes(
            helpers.square_or_hang,
            [1],
            num_workers=1,
            chunksize=1,
            on_crash=_crash_value,
            timeout=1.0,
        )
