"""``selfsup.home``: the one ``$SELFSUP_HOME`` lookup and the timestamped default folders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from selfsup.home import selfsup_home, timestamped_output_dir


def test_home_is_the_variable_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SELFSUP_HOME", str(tmp_path / "h"))
    assert selfsup_home() == tmp_path / "h"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SELFSUP_HOME", "~/elsewhere")
    assert selfsup_home() == tmp_path / "elsewhere"


@pytest.mark.parametrize("value", [None, ""])
def test_home_defaults_to_dot_selfsup(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str | None
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    if value is None:
        monkeypatch.delenv("SELFSUP_HOME", raising=False)
    else:
        monkeypatch.setenv("SELFSUP_HOME", value)
    assert selfsup_home() == tmp_path / ".selfsup"


def test_output_dirs_are_stamped_under_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    flat = timestamped_output_dir("selfsup_runs")
    assert flat.parent == tmp_path / "selfsup_runs"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", flat.name)
    nested = timestamped_output_dir("selfsup_outputs", nested=True)
    assert nested.parent.parent == tmp_path / "selfsup_outputs"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", nested.parent.name)
    assert re.fullmatch(r"\d\d-\d\d-\d\d", nested.name)
    assert not flat.exists()  # named, not created: the command creates it
