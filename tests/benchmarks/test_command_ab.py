"""benchmarks/command_ab.py: both arms run interleaved from their own source folders and
fresh working folders; a failing command ends the benchmark with its output."""

from __future__ import annotations

from pathlib import Path

import pytest

import selfsup
from _benchmarks import load_benchmark

SRC = Path(selfsup.__file__).resolve().parents[1]


def test_arms_alternate_and_import_their_own_source(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_benchmark("command_ab")
    assert bench.main(["--baseline", str(SRC), "--rounds", "2", "--", "--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "selfsup --version"
    arms = [line.split(":")[0].split()[2:] for line in lines[1:5]]
    assert arms == [["baseline"], ["this", "checkout"]] * 2
    assert all("exit 0" in line for line in lines[1:5])
    assert lines[5].startswith("medians: baseline ")
    # each arm imports selfsup from the src folder it was given
    seconds, status, output = bench.run_once(
        SRC, ["--version"], Path(bench.__file__).resolve().parent
    )
    assert status == 0
    assert seconds > 0
    assert selfsup.__version__ in output


def test_a_failing_command_ends_the_benchmark_with_its_output(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bench = load_benchmark("command_ab")
    missing = tmp_path / "no_such_folder"
    assert bench.main(["--baseline", str(SRC), "--", "train", f"input_dir={missing}"]) == 1
    captured = capsys.readouterr()
    assert "exit 0" not in captured.out
    assert "no_such_folder" in captured.err
    with pytest.raises(SystemExit):
        bench.main(["--baseline", str(tmp_path), "--", "--version"])
    assert "no selfsup package there" in capsys.readouterr().err
