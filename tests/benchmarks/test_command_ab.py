"""benchmarks/command_ab.py: both arms run interleaved from their own source folders and
fresh working folders; a failing command ends the benchmark with its output."""

from __future__ import annotations

from pathlib import Path

import pytest

import selfsup
from _benchmarks import load_benchmark

SRC = Path(selfsup.__file__).resolve().parents[1]


def test_an_arm_imports_selfsup_from_the_source_it_is_given(tmp_path: Path) -> None:
    # A stand-in package whose command prints where it came from and its arguments: the
    # installed selfsup would print neither.
    fake = tmp_path / "src" / "selfsup"
    (fake / "cli").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "cli" / "__init__.py").write_text("")
    (fake / "cli" / "main.py").write_text(
        "import sys\nprint('stand-in', sys.argv[1:])\nsys.exit(3)\n"
    )
    seconds, status, output = load_benchmark("command_ab").run_once(
        tmp_path / "src", ["train", "x=1"], tmp_path
    )
    assert status == 3
    assert "stand-in ['train', 'x=1']" in output
    assert seconds > 0


def test_arms_alternate_and_report_medians(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_benchmark("command_ab")
    assert bench.main(["--baseline", str(SRC), "--rounds", "2", "--", "--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "selfsup --version"
    arms = [line.split(":")[0].split()[2:] for line in lines[1:5]]
    assert arms == [["baseline"], ["this", "checkout"]] * 2
    assert all("exit 0" in line for line in lines[1:5])
    assert lines[5].startswith("medians: baseline ")


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
