"""One user can neither see nor touch another user's datasets, datasources, scheduled runs,
runs, workers or artifacts: every such access answers 404, exactly like a missing id."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selfsup.server.testing import ServerHarness


def test_another_users_resources_are_invisible_and_untouchable(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice, bob = make_actor("alice"), make_actor("bob")
    dataset_id = alice.ready_dataset("private")
    scheduled_id = alice.schedule(dataset_id)
    worker_id = alice.worker("alice-worker")
    claim = alice.claim(worker_id)
    assert claim is not None
    run_id = claim["run"]["id"]
    upload = server.http.post(
        f"{alice.run_path(worker_id, run_id)}/artifacts",
        files={"file": ("report.pdf", b"%PDF-1.4 secret")},
        data={"type": "REPORT_PDF"},
        headers=alice.h,
    )
    assert upload.status_code == 201
    artifact_id = upload.json()["id"]
    other_scheduled = alice.schedule(dataset_id)  # still OPEN

    h = bob.h
    ds = f"/v1/datasets/{dataset_id}"
    attempts = [
        ("GET", ds, None),
        ("DELETE", ds, None),
        ("GET", f"{ds}/datasources", None),
        ("POST", f"{ds}/datasources", {"type": "LOCAL", "full_path": "images"}),
        ("POST", f"{ds}/scheduled-runs", {"worker_config": {}}),
        ("GET", f"/v1/scheduled-runs/{scheduled_id}", None),
        ("POST", f"/v1/scheduled-runs/{other_scheduled}/cancel", None),
        ("GET", f"/v1/scheduled-runs/{scheduled_id}/run", None),
        ("GET", f"/v1/runs/{run_id}", None),
        ("GET", f"/v1/runs/{run_id}/artifacts/{artifact_id}", None),
        ("DELETE", f"/v1/workers/{worker_id}", None),
        ("POST", f"/v1/workers/{worker_id}/claim", None),
        ("GET", f"/v1/workers/{worker_id}/runs/{run_id}/job", None),
        ("POST", f"/v1/workers/{worker_id}/runs/{run_id}/heartbeat", None),
        ("POST", f"/v1/workers/{worker_id}/runs/{run_id}/state", {"state": "FAILED"}),
        ("POST", f"/v1/workers/{worker_id}/runs/{run_id}/log", {"text": "x"}),
    ]
    for method, path, body in attempts:
        r = server.http.request(method, path, json=body, headers=h)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
        assert r.json()["code"] == "NOT_FOUND"

    # Bob's own worker cannot reach Alice's run or claim Alice's open job.
    bob_worker = bob.worker("bob-worker")
    r = server.http.get(f"/v1/workers/{bob_worker}/runs/{run_id}/job", headers=h)
    assert r.status_code == 404
    assert bob.claim(bob_worker) is None

    # Listings show nothing of Alice's.
    for path in ("/v1/datasets", "/v1/scheduled-runs", "/v1/runs", "/v1/workers"):
        listed = server.http.get(path, headers=h).json()
        assert [x["id"] for x in listed] == ([bob_worker] if path == "/v1/workers" else [])

    # And nothing of Alice's changed.
    r = server.http.get(f"/v1/scheduled-runs/{other_scheduled}", headers=alice.h)
    assert r.json()["state"] == "OPEN"
    r = server.http.get(f"/v1/runs/{run_id}", headers=alice.h)
    assert r.json()["state"] == "STARTED"
    assert server.http.get(ds, headers=alice.h).status_code == 200


def test_same_dataset_name_for_two_users_is_fine_but_not_twice_for_one(
    make_actor: Callable[..., Any],
) -> None:
    alice, bob = make_actor("alice"), make_actor("bob")
    alice.dataset("shared-name")
    bob.dataset("shared-name")
    r = alice.http.post("/v1/datasets", json={"name": "shared-name"}, headers=alice.h)
    assert r.status_code == 409
    assert "shared-name" in r.json()["error"]
