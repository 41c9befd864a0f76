"""Run a test module as several gloo processes: the shared harness of the DDP tests.

A DDP test file doubles as its own worker script: run with ``--worker RANK WORLD INIT_FILE
OUT_DIR`` it joins a process group and saves its results to ``OUT_DIR/rank<RANK>.pt``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn


def run_workers(script: Path, out_dir: Path, world_size: int, timeout: float) -> None:
    """Run ``script --worker RANK WORLD INIT_FILE OUT_DIR`` in ``world_size`` processes.

    Fails the test with the worker's output if one exits with an error (a Python exception,
    exit code 1), or if the workers hang or are killed by a signal twice in a row; no process
    outlives the call. The second try is there for gloo itself on a loaded machine, seen in
    two full CI runs and never alone: a group on loopback that never formed (a worker silent
    for 120 s) and a worker aborted by C++ ``std::terminate`` ("terminate called without an
    active exception", exit -6). A worker whose Python code fails, or a test that hangs or
    crashes every time, still fails.
    """
    problem = ""
    for attempt in range(2):
        problem = _run_workers_once(script, out_dir, world_size, timeout, attempt)
        if not problem:
            return
    pytest.fail(f"{script.name}: twice; the second time {problem}")


def _run_workers_once(
    script: Path, out_dir: Path, world_size: int, timeout: float, attempt: int
) -> str:
    """One try of :func:`run_workers`: "" when every worker exited 0, else what went wrong
    when a worker hung past the deadline or died from a signal; fails the test at once for a
    worker that exited with an error."""
    for old in out_dir.glob("rank*.pt"):
        old.unlink()  # a result of a failed first try must not pass for the second's
    init_file = out_dir / f"dist_init{attempt}"
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
        killed = [p.poll() is None for p in procs]
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    for r, p in enumerate(procs):
        if p.returncode > 0 and not killed[r]:
            pytest.fail(
                f"worker {r} of {script.name} exited with {p.returncode}:\n"
                f"{logs[r].read_text(errors='replace')}"
            )
    for r, p in enumerate(procs):
        if killed[r]:
            return f"worker {r} was still running after {timeout} s:\n{_log(logs[r])}"
        if p.returncode < 0:
            return f"worker {r} died from signal {-p.returncode}:\n{_log(logs[r])}"
    return ""


def _log(path: Path) -> str:
    return path.read_text(errors="replace")


@contextlib.contextmanager
def gloo_group(argv: list[str]) -> Iterator[tuple[int, int, Path]]:
    """Join the gloo group named by a worker's ``argv`` (``--worker RANK WORLD INIT_FILE
    OUT_DIR``) for the body of the ``with``; yields ``(rank, world_size, out_dir)``.

    Leaving waits at a barrier before destroying the group, so no process tears down its
    connections while another is still in a collective (a teardown race is one way gloo
    aborts a process with ``std::terminate``); on an exception the barrier is skipped, since
    the other processes may never reach it.
    """
    import torch.distributed as torch_dist

    rank, world_size = int(argv[2]), int(argv[3])
    init_file, out_dir = Path(argv[4]), Path(argv[5])
    torch.set_num_threads(1)
    torch_dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=60),
    )
    try:
        yield rank, world_size, out_dir
        torch_dist.barrier()
    finally:
        torch_dist.destroy_process_group()


def two_view_loss_worker(
    argv: list[str],
    make_model: Callable[[], nn.Module],
    global_batch: Callable[[], tuple[Tensor, Tensor]],
    make_loss: Callable[[], nn.Module],
    n_local: int,
) -> None:
    """The body of a DDP worker script for a two-view loss.

    Joins the gloo group named by ``argv`` (``--worker RANK WORLD INIT_FILE OUT_DIR``), runs
    DDP's forward on this rank's ``n_local`` rows of both views of ``global_batch()``, the
    loss and a backward pass, and saves ``{"loss", "grad.<param>"...}`` for
    :func:`assert_ddp_matches_full_batch`.
    """
    with gloo_group(argv) as (rank, _, out_dir):
        local = slice(rank * n_local, (rank + 1) * n_local)
        model = nn.parallel.DistributedDataParallel(make_model())
        x_a, x_b = global_batch()
        # One forward call per backward, as DDP expects.
        out_a, out_b = model(torch.cat([x_a[local], x_b[local]])).chunk(2)
        loss = make_loss()(out_a, out_b)
        loss.backward()
        result: dict[str, Tensor] = {"loss": loss.detach()}
        for name, p in model.module.named_parameters():
            assert p.grad is not None
            result[f"grad.{name}"] = p.grad
        torch.save(result, out_dir / f"rank{rank}.pt")


def assert_ddp_matches_full_batch(
    script: Path,
    out_dir: Path,
    world_size: int,
    make_model: Callable[[], nn.Module],
    global_batch: Callable[[], tuple[Tensor, Tensor]],
    make_loss: Callable[[], nn.Module],
) -> None:
    """Run ``script`` as ``world_size`` workers and check that every process's loss and
    parameter gradients equal those of one process on the whole batch (for losses that
    gather the global batch and compute the global loss on every process)."""
    run_workers(script, out_dir, world_size, timeout=120.0)
    results = [torch.load(out_dir / f"rank{r}.pt") for r in range(world_size)]
    model = make_model()
    x_a, x_b = global_batch()
    out_a, out_b = model(torch.cat([x_a, x_b])).chunk(2)
    loss = make_loss()(out_a, out_b)
    loss.backward()
    for res in results:
        torch.testing.assert_close(res["loss"], loss.detach(), rtol=1e-12, atol=1e-12)
        for name, p in model.named_parameters():
            assert p.grad is not None
            torch.testing.assert_close(res[f"grad.{name}"], p.grad, rtol=1e-10, atol=1e-12)
