"""A restarted server (a new app on the same database and data folder) loses nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selfsup.server.testing import ServerHarness


def test_restart_keeps_every_record_and_file(
    make_server: Callable[..., ServerHarness], make_actor: Callable[..., Any]
) -> None:
    first = make_server()
    alice = make_actor("alice", on=first)
    dataset_id = alice.ready_dataset()
    waiting = [alice.schedule(dataset_id, priority=p) for p in ("LOW", "HIGH", "MID")]
    worker_id = alice.worker("w", ["gpu"])
    claim = alice.claim(worker_id)
    assert claim is not None
    assert claim["scheduled_run"]["id"] == waiting[1]
    run_path = alice.run_path(worker_id, claim["run"]["id"])
    first.http.post(f"{run_path}/state", json={"state": "EMBEDDING"}, headers=alice.h)
    first.http.post(
        f"{run_path}/artifacts",
        files={"file": ("report.json", b'{"n": 1}')},
        data={"type": "REPORT_JSON"},
        headers=alice.h,
    )
    before = {
        path: first.http.get(path, headers=alice.h).json()
        for path in ("/v1/datasets", "/v1/scheduled-runs", "/v1/runs", "/v1/workers")
    }
    first.close()

    second = make_server(clock=first.clock)
    alice = alice.moved_to(second)
    for path, expected in before.items():
        assert second.http.get(path, headers=alice.h).json() == expected, path
    run = second.http.get(f"/v1/runs/{claim['run']['id']}", headers=alice.h).json()
    artifact_id = run["artifacts"][0]["id"]
    r = second.http.get(f"/v1/runs/{run['id']}/artifacts/{artifact_id}", headers=alice.h)
    assert r.content == b'{"n": 1}'
    # The run continues on the new process: same worker, same lease rules.
    r = second.http.post(f"{run_path}/state", json={"state": "COMPLETED"}, headers=alice.h)
    assert r.status_code == 200
    order = []
    while (c := alice.claim(worker_id)) is not None:
        order.append(c["scheduled_run"]["id"])
    assert order == [waiting[2], waiting[0]]  # MID before LOW, as before the restart
