"""Leases: a worker that stops sending heartbeats loses its run (CRASHED) and the job is
re-opened for another attempt, until max_attempts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selfsup.server.leases import sweep_expired_leases
from selfsup.server.testing import ServerHarness


def test_expired_lease_crashes_the_run_and_reopens_the_job(
    make_server: Callable[..., ServerHarness], make_actor: Callable[..., Any]
) -> None:
    server = make_server(lease_seconds=60, max_attempts=2)
    alice = make_actor("alice", on=server)
    scheduled_id = alice.schedule(alice.ready_dataset())
    worker_id = alice.worker()
    first = alice.claim(worker_id)
    assert first is not None
    run_path = alice.run_path(worker_id, first["run"]["id"])
    assert first["lease_expires_at"] == server.clock() + 60_000

    # Heartbeats keep it alive past the original lease.
    for _ in range(3):
        server.clock.advance(50)
        assert server.http.post(f"{run_path}/heartbeat", headers=alice.h).status_code == 200
        assert server.sweep() == []
    # Silence: the sweeper (called directly with the injected time) crashes it.
    server.clock.advance(59)
    assert server.sweep() == []
    server.clock.advance(2)
    assert sweep_expired_leases(server.app.state.sessions, server.clock()) == [first["run"]["id"]]
    run = server.http.get(f"/v1/runs/{first['run']['id']}", headers=alice.h).json()
    assert run["state"] == "CRASHED"
    assert "lease" in run["message"]
    scheduled = server.http.get(f"/v1/scheduled-runs/{scheduled_id}", headers=alice.h).json()
    assert (scheduled["state"], scheduled["attempts"]) == ("OPEN", 1)

    # The late worker learns it must stop.
    r = server.http.post(f"{run_path}/heartbeat", headers=alice.h)
    assert r.status_code == 409
    r = server.http.post(f"{run_path}/state", json={"state": "COMPLETED"}, headers=alice.h)
    assert r.status_code == 409

    # Second (last) attempt crashes as well: the job is closed as DONE.
    second = alice.claim(worker_id)
    assert second is not None
    assert second["run"]["attempt"] == 2
    assert second["scheduled_run"]["id"] == scheduled_id
    server.clock.advance(61)
    assert server.sweep() == [second["run"]["id"]]
    scheduled = server.http.get(f"/v1/scheduled-runs/{scheduled_id}", headers=alice.h).json()
    assert (scheduled["state"], scheduled["attempts"]) == ("DONE", 2)
    assert alice.claim(worker_id) is None
    runs = server.http.get("/v1/runs", headers=alice.h).json()
    assert [r["state"] for r in runs] == ["CRASHED", "CRASHED"]


def test_a_worker_call_after_expiry_crashes_the_run_even_without_the_sweeper(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice = make_actor("alice")
    scheduled_id = alice.schedule(alice.ready_dataset())
    worker_id = alice.worker()
    claim = alice.claim(worker_id)
    assert claim is not None
    server.clock.advance(server.settings.lease_seconds + 1)
    r = server.http.post(
        f"{alice.run_path(worker_id, claim['run']['id'])}/log", json={"text": "x"}, headers=alice.h
    )
    assert r.status_code == 409
    assert "lease" in r.json()["error"]
    scheduled = server.http.get(f"/v1/scheduled-runs/{scheduled_id}", headers=alice.h).json()
    assert scheduled["state"] == "OPEN"
    # A claim also releases what crashed workers left: the job is handed out again at once.
    again = alice.claim(worker_id)
    assert again is not None
    assert again["scheduled_run"]["id"] == scheduled_id


def test_state_reports_renew_the_lease(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice = make_actor("alice")
    alice.schedule(alice.ready_dataset())
    worker_id = alice.worker()
    claim = alice.claim(worker_id)
    assert claim is not None
    path = f"{alice.run_path(worker_id, claim['run']['id'])}/state"
    lease = server.settings.lease_seconds
    for state in ("LOADING_DATASET", "EMBEDDING", "SAMPLING"):
        server.clock.advance(lease * 0.9)
        assert server.http.post(path, json={"state": state}, headers=alice.h).status_code == 200
        assert server.sweep() == []


def test_canceled_job_is_not_reopened_when_its_worker_dies(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice = make_actor("alice")
    scheduled_id = alice.schedule(alice.ready_dataset())
    worker_id = alice.worker()
    assert alice.claim(worker_id) is not None
    server.http.post(f"/v1/scheduled-runs/{scheduled_id}/cancel", headers=alice.h)
    server.clock.advance(server.settings.lease_seconds + 1)
    assert len(server.sweep()) == 1
    scheduled = server.http.get(f"/v1/scheduled-runs/{scheduled_id}", headers=alice.h).json()
    assert scheduled["state"] == "CANCELED"
    assert alice.claim(worker_id) is None


def test_a_heartbeat_racing_the_runs_end_answers_its_new_lease_not_500(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    """The run ends (here: its own worker reports COMPLETED from another thread) right after
    the heartbeat's UPDATE committed: the answer is the lease that UPDATE granted, not a
    500 from re-reading a row whose lease is gone."""
    from sqlalchemy import event

    from selfsup.openapi_generated.swagger_client.models import DockerRunState
    from selfsup.server.leases import change_state
    from selfsup.server.models import Run

    alice = make_actor("alice")
    alice.schedule(alice.ready_dataset())
    worker_id = alice.worker()
    claim = alice.claim(worker_id)
    assert claim is not None
    run_id = claim["run"]["id"]
    server.clock.advance(10)
    renewed_to = server.clock() + int(server.settings.lease_seconds * 1000)
    sessions = server.app.state.sessions
    ended: list[str] = []

    def end_the_run_after_the_renewal(_session: Any) -> None:
        if ended:  # this hook's own commit, or a later one
            return
        with sessions() as other:
            run = other.get(Run, run_id)
            assert run is not None
            if run.lease_expires_at != renewed_to:  # an earlier commit (e.g. the token's)
                return
            ended.append(run.state)
            change_state(other, run, DockerRunState.COMPLETED, "done", server.settings)

    event.listen(sessions, "after_commit", end_the_run_after_the_renewal)
    try:
        r = server.http.post(f"{alice.run_path(worker_id, run_id)}/heartbeat", headers=alice.h)
    finally:
        event.remove(sessions, "after_commit", end_the_run_after_the_renewal)
    assert ended == ["STARTED"], "the hook ended the run between the renewal and the answer"
    assert r.status_code == 200, r.text
    assert r.json() == {"lease_expires_at": renewed_to, "abort_requested": False}
    run_now = server.http.get(f"/v1/runs/{run_id}", headers=alice.h).json()
    assert run_now["state"] == "COMPLETED"


def test_calls_for_an_ended_run_answer_run_ended_with_its_state(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    """409 ``RUN_ENDED`` with ``state``: the worker tells "my own end report got through"
    from "the server took the run back" without reading the message."""
    alice = make_actor("alice")
    alice.schedule(alice.ready_dataset())
    worker_id = alice.worker()
    ended = alice.claim(worker_id)
    assert ended is not None
    path = alice.run_path(worker_id, ended["run"]["id"])
    r = server.http.post(f"{path}/state", json={"state": "FAILED", "message": "x"}, headers=alice.h)
    assert r.status_code == 200, r.text
    for method, tail, body in (
        ("POST", "heartbeat", None),
        ("POST", "state", {"state": "FAILED"}),
        ("POST", "log", {"text": "late\n"}),
        ("GET", "job", None),
    ):
        r = server.http.request(method, f"{path}/{tail}", json=body, headers=alice.h)
        assert r.status_code == 409, (tail, r.text)
        assert r.json()["code"] == "RUN_ENDED", (tail, r.text)
        assert r.json()["state"] == "FAILED", (tail, r.text)
        assert "already ended in state FAILED" in r.json()["error"]

    # A lease that ran out ends the run as CRASHED on the spot: the same code, that state.
    alice.schedule(alice.ready_dataset("second"))
    expired = alice.claim(worker_id)
    assert expired is not None
    server.clock.advance(server.settings.lease_seconds + 1)
    r = server.http.post(
        f"{alice.run_path(worker_id, expired['run']['id'])}/heartbeat", headers=alice.h
    )
    assert r.status_code == 409, r.text
    assert (r.json()["code"], r.json()["state"]) == ("RUN_ENDED", "CRASHED")
    assert "lease" in r.json()["error"]
