"""Exactly-once claims under real concurrency: 4 workers, each with its own connection, race
for 50 scheduled runs on a uvicorn server (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import func, select

from selfsup.api import WorkerApiClient
from selfsup.server.models import Run
from selfsup.server.testing import ServerHarness

N_RUNS = 50
N_WORKERS = 4


def test_fifty_runs_four_concurrent_claimers_each_run_claimed_once(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice = make_actor("alice")
    dataset_id = alice.ready_dataset()
    priorities = ["LOW", "MID", "HIGH", "CRITICAL"]
    scheduled = {alice.schedule(dataset_id, priority=priorities[i % 4]) for i in range(N_RUNS)}
    barrier = threading.Barrier(N_WORKERS)

    with server.live() as live:

        def claimer(index: int) -> list[str]:
            api = WorkerApiClient(token=alice.token, base_url=live.url, timeout=60)
            got: list[str] = []
            try:
                worker = api.register(f"worker-{index}")
                barrier.wait(timeout=30)
                while (claim := api.claim(worker.id)) is not None:
                    got.append(claim.scheduled_run.id)
                    api.set_state(worker.id, claim.run.id, "COMPLETED")
            finally:
                api.close()
            return got

        with ThreadPoolExecutor(N_WORKERS) as pool:
            # result() re-raises any error of a claimer thread here.
            results = [
                f.result(timeout=120) for f in [pool.submit(claimer, i) for i in range(N_WORKERS)]
            ]
    claimed = dict(enumerate(results))
    # The claims really interleaved (a serial run would give everything to one worker).
    assert sum(1 for ids in claimed.values() if ids) >= 2
    everything = [s for ids in claimed.values() for s in ids]
    assert len(everything) == N_RUNS
    assert set(everything) == scheduled
    with server.app.state.sessions() as session:
        per_scheduled = session.execute(
            select(Run.scheduled_run_id, func.count()).group_by(Run.scheduled_run_id)
        ).all()
    assert len(per_scheduled) == N_RUNS
    assert all(n == 1 for _, n in per_scheduled)
    states = {s["state"] for s in server.http.get("/v1/scheduled-runs", headers=alice.h).json()}
    assert states == {"DONE"}


def test_fifty_concurrent_status_readers_all_get_answers(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    # Regression: with every transaction taking SQLite's write lock and a 15-connection
    # pool, 50 concurrent readers got 500s ("database is locked", pool timeouts).
    import httpx

    alice = make_actor("alice")
    alice.schedule(alice.ready_dataset())
    n_clients, n_requests = 50, 6
    barrier = threading.Barrier(n_clients)
    with server.live() as live:
        api = WorkerApiClient(token=alice.token, base_url=live.url, timeout=60)
        worker = api.register("w")
        claim = api.claim(worker.id)
        assert claim is not None
        run_id = claim.run.id
        api.close()

        def reader(_: int) -> list[int]:
            with httpx.Client(base_url=live.url, headers=alice.h, timeout=120) as http:
                barrier.wait(timeout=60)
                return [http.get(f"/v1/runs/{run_id}").status_code for _ in range(n_requests)]

        with ThreadPoolExecutor(n_clients) as pool:
            codes = [
                c
                for f in [pool.submit(reader, i) for i in range(n_clients)]
                for c in f.result(timeout=300)
            ]
    assert codes == [200] * (n_clients * n_requests)
