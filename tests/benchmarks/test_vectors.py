"""benchmarks/vectors.py: a tiny run with ``--baseline`` times the other ``vectors.py`` as its
own arm and checks it finds the same neighbours; unknown back ends are refused."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import selfsup.utils.vectors as vectors
from _benchmarks import load_benchmark


def _run(monkeypatch: pytest.MonkeyPatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["vectors.py", *args])
    load_benchmark("vectors").main()


def test_baseline_is_an_interleaved_arm_with_the_same_result(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = Path(vectors.__file__)
    _run(
        monkeypatch,
        *("--sizes", "300", "--dim", "8", "--queries", "0", "--k", "4", "--rounds", "2"),
        *("--backends", "numpy", "--baseline", str(source)),
    )
    lines = capsys.readouterr().out.splitlines()
    assert "300 queries" in lines[1]  # --queries 0: every point
    rounds = [line.split(":")[0].split() for line in lines[2:]]
    assert rounds == [
        ["round", "0", "numpy"],
        ["round", "0", "baseline-numpy"],
        ["round", "1", "numpy"],
        ["round", "1", "baseline-numpy"],
    ]
    assert all("same result True" in line for line in lines[2:])


def test_a_baseline_that_finds_other_neighbours_is_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A stand-in vectors.py whose knn returns each query's neighbours in reverse order.
    other = tmp_path / "vectors.py"
    other.write_text(
        "from selfsup.utils.vectors import knn as _knn\n"
        "def knn(*args, **kwargs):\n"
        "    found = _knn(*args, **kwargs)\n"
        "    found.indices[:] = found.indices[:, ::-1].copy()\n"
        "    return found\n"
    )
    _run(monkeypatch, "--sizes", "200", "--dim", "8", "--k", "4", "--rounds", "1",
         "--backends", "numpy", "--baseline", str(other))  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert "same result True" in lines[2]  # numpy, the reference
    assert "baseline-numpy" in lines[3]
    assert "same result False" in lines[3]


def test_unknown_backend_and_unreadable_baseline_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(SystemExit, match="unknown back end 'annoy'"):
        _run(monkeypatch, "--sizes", "50", "--backends", "numpy", "annoy")
    for missing in ("notes.txt", "vectors.py"):
        with pytest.raises(SystemExit, match=f"--baseline .*{missing}: not a Python file"):
            _run(monkeypatch, "--sizes", "50", "--baseline", str(tmp_path / missing))
