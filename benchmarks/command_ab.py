"""Wall time of one ``selfsup`` command at two checkouts of the source, interleaved.

    git worktree add /tmp/old 5bf1ca4
    python benchmarks/command_ab.py --baseline /tmp/old/src --rounds 2 -- \\
        train input_dir=/tmp/fm500 trainer.max_epochs=20

Runs ``python -m selfsup.cli.main ARGS...`` (what the ``selfsup`` command runs) once per arm
and round, A B A B: the baseline with ``--baseline`` (a ``src`` folder, e.g. of a ``git
worktree`` of an earlier commit) first on ``PYTHONPATH``, then this checkout's ``src``. Each
run starts in a fresh empty folder as its working directory, so outputs that default to
the working directory (``selfsup train``'s ``./selfsup_outputs``) never meet; give folders of
your own (``output_dir=...``) only where each run may overwrite the last. Prints each run's
wall time, exit status and the 1-minute load average, then the medians and their ratio. A
run that fails is reported with the end of its output and ends the benchmark: a time of a
failed command compares nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def run_once(src: Path, args: list[str], workdir: Path) -> tuple[float, int, str]:
    """``(seconds, exit status, output)`` of ``selfsup ARGS`` importing selfsup from ``src``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "selfsup.cli.main", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return time.perf_counter() - start, done.returncode, done.stdout + done.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout's src")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("args", nargs="+", help="the selfsup command and its keys, after --")
    a = parser.parse_args(argv)
    if not (a.baseline / "selfsup" / "__init__.py").is_file():
        parser.error(f"--baseline {a.baseline}: no selfsup package there; give a src folder")
    if a.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {a.rounds}")
    arms = {"baseline": a.baseline.resolve(), "this checkout": SRC}
    times: dict[str, list[float]] = {name: [] for name in arms}
    print(f"selfsup {' '.join(a.args)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="command_ab_") as tmp:
        for round_ in range(a.rounds):
            for name, src in arms.items():
                workdir = Path(tmp) / f"{round_}-{len(times[name])}-{name.replace(' ', '_')}"
                workdir.mkdir()
                seconds, status, output = run_once(src, a.args, workdir)
                print(
                    f"  round {round_} {name:>13}: {seconds:7.1f} s, exit {status}, "
                    f"load average {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
                if status != 0:
                    print(output[-3000:], file=sys.stderr)
                    return 1
                times[name].append(seconds)
    base, this = (statistics.median(times[name]) for name in arms)
    print(f"medians: baseline {base:.1f} s, this checkout {this:.1f} s ({base / this:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
