"""Tests of the DDP tests' process harness, tests/_ddp.run_workers, with plain worker scripts.

What it must tell apart: a worker whose Python code fails fails the test at once; a worker
that hangs or dies from a signal (how gloo's rare loopback failures show) gets one more try,
and fails the test when it happens again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from _ddp import run_workers

# Each script receives ``--worker RANK WORLD INIT_FILE OUT_DIR``, with a new INIT_FILE name
# (dist_init0, dist_init1) on each try, so a script can behave differently on the second; rank
# 0 counts its tries in the file "tries" of OUT_DIR.
_PRELUDE = """
import os, signal, sys, time
from pathlib import Path
rank, out_dir = int(sys.argv[2]), Path(sys.argv[5])
attempt = int(sys.argv[4][-1]) + 1
tries = out_dir / "tries"
if rank == 0:
    tries.write_text(str(int(tries.read_text()) + 1 if tries.exists() else 1))
"""


def _script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "worker.py"
    script.write_text(_PRELUDE + body)
    return script


def _tries(tmp_path: Path) -> int:
    return int((tmp_path / "tries").read_text())


def test_workers_that_exit_0_pass_in_one_try(tmp_path: Path) -> None:
    run_workers(
        _script(tmp_path, "(out_dir / f'rank{rank}.pt').write_text('ok')\n"), tmp_path, 2, 30
    )
    assert _tries(tmp_path) == 1
    assert (tmp_path / "rank1.pt").read_text() == "ok"


def test_a_python_error_fails_at_once_with_the_workers_output(tmp_path: Path) -> None:
    script = _script(tmp_path, "if rank == 1:\n    raise ValueError('bad gradient')\n")
    with pytest.raises(pytest.fail.Exception, match=r"(?s)worker 1 .*exited with 1.*bad gradient"):
        run_workers(script, tmp_path, 2, 30)
    assert _tries(tmp_path) == 1


def test_a_worker_killed_by_a_signal_once_gets_a_second_try(tmp_path: Path) -> None:
    body = (
        "if rank == 1 and attempt == 1:\n"
        "    os.kill(os.getpid(), signal.SIGABRT)\n"
        "(out_dir / f'rank{rank}.pt').write_text(str(attempt))\n"
    )
    run_workers(_script(tmp_path, body), tmp_path, 2, 30)
    assert _tries(tmp_path) == 2
    assert (tmp_path / "rank1.pt").read_text() == "2"


def test_a_worker_killed_by_a_signal_every_time_fails(tmp_path: Path) -> None:
    body = "if rank == 1:\n    os.kill(os.getpid(), signal.SIGABRT)\n"
    with pytest.raises(pytest.fail.Exception, match=r"twice.*worker 1 died from signal 6"):
        run_workers(_script(tmp_path, body), tmp_path, 2, 30)
    assert _tries(tmp_path) == 2


def test_a_hang_every_time_fails_after_two_deadlines(tmp_path: Path) -> None:
    body = "if rank == 0:\n    time.sleep(60)\n"
    with pytest.raises(pytest.fail.Exception, match=r"twice.*worker 0 was still running"):
        run_workers(_script(tmp_path, body), tmp_path, 2, timeout=1.0)
    assert _tries(tmp_path) == 2


def test_a_result_of_a_failed_first_try_is_not_kept(tmp_path: Path) -> None:
    # Rank 0 writes its result and then hangs the first time; the second time it crashes
    # before writing: no stale rank0.pt may remain for the test to read.
    body = (
        "if rank == 0 and attempt == 1:\n"
        "    (out_dir / 'rank0.pt').write_text('stale')\n"
        "    time.sleep(60)\n"
        "if rank == 0:\n"
        "    os.kill(os.getpid(), signal.SIGABRT)\n"
    )
    with pytest.raises(pytest.fail.Exception, match="signal"):
        run_workers(_script(tmp_path, body), tmp_path, 2, timeout=3.0)
    assert not (tmp_path / "rank0.pt").exists()
