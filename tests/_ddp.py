"""Run a test module as several gloo processes: the shared harness of the DDP tests.

A DDP test file doubles as its own worker script: run with ``--worker RANK WORLD INIT_FILE
OUT_DIR`` it joins a process group and saves its results to ``OUT_DIR/rank<RANK>.pt``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


def run_workers(script: Path, out_dir: Path, world_size: int, timeout: float) -> None:
    """Run ``script --worker RANK WORLD INIT_FILE OUT_DIR`` in ``world_size`` processes.

    Fails the test with the worker's output if one exits non-zero or all do not finish in
    ``timeout`` seconds; no process outlives the call.
    """
    init_file = out_dir / "dist_init"
    # The worker scripts import this module too: put the tests folder on their path.
    paths = [str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH", "")]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "GLOO_SOCKET_IFNAME": "lo",
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
    }
    logs = [out_dir / f"worker{r}.log" for r in range(world_size)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for r in range(world_size):
            with open(logs[r], "wb") as log:
                cmd = [sys.executable, str(script), "--worker", str(r), str(world_size)]
                cmd += [str(init_file), str(out_dir)]
                procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
        deadline = time.monotonic() + timeout
        while True:
            codes = [p.poll() for p in procs]
            # Stop at once when one worker failed: the others would wait for it until the
            # process group times out.
            if all(c is not None for c in codes) or any(c not in (None, 0) for c in codes):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    for r, p in enumerate(procs):
        if p.returncode != 0:
            pytest.fail(
                f"worker {r} of {script.name} exited with {p.returncode} (killed after "
                f"{timeout} s if negative):\n{logs[r].read_text(errors='replace')}"
            )
