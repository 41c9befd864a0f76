"""The network between a worker and the server cut (a loopback TCP proxy resets every
connection) for less and for more than the lease.

Shorter than the lease: the run rides it out and completes in its first attempt. Longer:
the server marks the run CRASHED, the worker stops the run by itself (it uploads nothing and
overwrites nothing), and once the network is back the same worker claims the retry and
completes it, with the selected file names and outputs where they belong."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.faults, pytest.mark.slow]

RUNS_FOLDER = "runs"


@pytest.mark.timeout(90)
def test_a_cut_shorter_than_the_lease_is_ridden_out(
    tmp_path: Path,
    training_behind_proxy: Callable[..., Any],
    wait_for: Callable[[Callable[[], bool], float, str], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="selfsup.worker")
    # Lease 8 s; heartbeats every 0.5 s, so that several fall into the 3 s cut.
    job = training_behind_proxy(8.0, "short", heartbeat_interval=0.5)
    job.link.cut()
    time.sleep(3)
    job.link.restore()
    wait_for(job.done, 60, "the end")
    [run] = job.client.get_compute_worker_runs()
    assert (run.state, run.attempt) == ("COMPLETED", 1), run.message
    assert len(job.client.get_compute_worker_run_selected_filenames(run)) == 3
    assert (job.server.roots / "short" / "lightly" / RUNS_FOLDER / run.id / "report.json").is_file()
    assert job.worker.alive
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"heartbeat of run {run.id} failed (attempt" in m for m in messages)
    assert job.link.refused > 0  # the cut was real: connections were reset
    # The heartbeat thread outlived the cut and said so in the run's log.
    log = tmp_path / "log.txt"
    job.client.download_compute_worker_run_log(run, log)
    assert "heartbeat renewed the lease again after" in log.read_text()


@pytest.mark.timeout(120)
def test_a_cut_longer_than_the_lease_stops_the_run_which_is_retried_after(
    training_behind_proxy: Callable[..., Any],
    wait_for: Callable[[Callable[[], bool], float, str], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="selfsup.worker")
    job = training_behind_proxy(3.0, "long")
    lightly = job.server.roots / "long" / "lightly"
    [first] = job.client.get_compute_worker_runs()
    job.link.cut()
    # The server gives up on the run after its 3 s lease ...
    wait_for(lambda: job.latest_state() == "CRASHED", 10, "the server to crash the run")
    # ... and the worker, unable to learn it from the server, stops by itself.
    wait_for(
        lambda: any(f"run {first.id}: lease lost" in r.getMessage() for r in caplog.records),
        30,
        "the worker to see its lease expire",
    )
    assert not (lightly / RUNS_FOLDER / first.id).exists()
    job.link.restore()

    wait_for(job.done, 60, "the end")
    runs = sorted(job.client.get_compute_worker_runs(), key=lambda r: r.attempt)
    assert [(r.state, r.attempt) for r in runs] == [("CRASHED", 1), ("COMPLETED", 2)]
    crashed, retry = runs
    assert retry.worker_id == first.worker_id  # the same worker went back to claiming
    assert job.worker.alive
    # The stopped attempt uploaded nothing after the cut: no outputs in the datasource, no
    # result artifacts; the retry's outputs are complete.
    assert not (lightly / RUNS_FOLDER / crashed.id).exists()
    assert {a.file_name for a in crashed.artifacts} <= {"config.json", "log.txt"}
    assert (lightly / RUNS_FOLDER / retry.id / "report.json").is_file()
    assert len(job.client.get_compute_worker_run_selected_filenames(retry)) == 3
    assert [p.name for p in (lightly / RUNS_FOLDER).iterdir()] == [retry.id]
