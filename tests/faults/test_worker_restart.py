"""A server restarted under busy workers: a real server on SQLite is stopped while one
worker is in the middle of a run and another polls for work, and started again on the same
port and database a few seconds later. No worker exits, the run under way completes (or is
retried once if its lease ran out meanwhile), the idle worker takes the next job, no run is
left unfinished, and the workers' logs show their retries."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

pytestmark = [pytest.mark.faults, pytest.mark.slow]

MID_RUN = ("CHECKING_CORRUPTNESS", "TRAINING", "EMBEDDING", "SAMPLING")


@pytest.mark.timeout(150)
def test_workers_ride_out_a_server_restart(
    server: Callable[[float], Any],
    schedule_small_job: Callable[..., str],
    worker_settings: Callable[..., Any],
    start_worker: Callable[..., Any],
    wait_for: Callable[[Callable[[], bool], float, str], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="selfsup.worker")
    caplog.set_level(logging.WARNING, logger="selfsup.api.retry")
    srv = server(8.0)  # lease 8 s: the 3 s outage is shorter
    token = srv.harness.token()
    client = srv.client(token)
    first = schedule_small_job(client, srv.roots, "before")
    workers = [start_worker(worker_settings(token, srv.url, name)) for name in ("a", "b")]

    def under_way() -> bool:
        return any(r.state in MID_RUN for r in client.get_compute_worker_runs())

    wait_for(under_way, 60, "the first run to be under way")
    [run] = client.get_compute_worker_runs()
    busy = run.worker_id
    client.close()

    srv.stop()  # one worker mid-run, the other polling
    down = time.monotonic()
    time.sleep(3)
    assert all(w.alive for w in workers), [w.raised for w in workers]
    srv.start()
    print(f"server down for {time.monotonic() - down:.1f} s")
    client = srv.client(token)
    second = schedule_small_job(client, srv.roots, "after")

    def all_done() -> bool:
        return all(
            client.get_scheduled_compute_worker_run(s).state == "DONE" for s in (first, second)
        )

    wait_for(all_done, 100, "both scheduled runs to end")
    assert all(w.alive for w in workers), [w.raised for w in workers]  # nobody exited

    runs = client.get_compute_worker_runs()
    assert all(r.state in ("COMPLETED", "CRASHED") for r in runs), [(r.id, r.state) for r in runs]
    of_first = sorted((r for r in runs if r.scheduled_id == first), key=lambda r: r.attempt)
    # Completed in its first attempt, or (had the lease run out) retried exactly once.
    assert [r.state for r in of_first] in (["COMPLETED"], ["CRASHED", "COMPLETED"])
    [after] = [r for r in runs if r.scheduled_id == second]
    assert after.state == "COMPLETED"
    # The worker that was idle during the restart survived it and took the new job.
    assert after.worker_id != busy or len(of_first) == 2
    for r in (of_first[-1], after):
        assert len(client.get_compute_worker_run_selected_filenames(r)) == 3
    client.close()

    messages = [r.getMessage() for r in caplog.records]
    assert any("claim failed (attempt" in m for m in messages), "the idle worker's retries"
    busy_retries = [m for m in messages if f"of run {run.id} failed (attempt" in m]
    assert busy_retries, "the busy worker's heartbeat or state report retries are logged"
