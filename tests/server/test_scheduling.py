"""Scheduled runs: configs validated with did-you-mean errors, priority and FIFO order,
labels, cancel, and the run state machine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from selfsup.server.testing import ServerHarness

SEED_LIGHTLY_CONFIG: dict[str, Any] = {
    "loader": {"batch_size": 16, "shuffle": True, "num_workers": -1, "drop_last": True},
    "model": {"name": "resnet-18", "out_dim": 128, "num_ftrs": 32, "width": 1},
    "trainer": {"gpus": 1, "max_epochs": 100, "precision": 32},
    "criterion": {"temperature": 0.5},
    "optimizer": {"lr": 1, "weight_decay": 0.00001},
    "collate": {
        "input_size": 64, "cj_prob": 0.8, "cj_bright": 0.7, "cj_contrast": 0.7, "cj_sat": 0.7,
        "cj_hue": 0.2, "min_scale": 0.15, "random_gray_scale": 0.2, "gaussian_blur": 0.5,
        "kernel_size": 0.1, "vf_prob": 0, "hf_prob": 0.5, "rr_prob": 0,
    },
}  # fmt: skip


def test_seed_configs_are_accepted_and_stored_resolved(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice = make_actor("alice")
    dataset_id = alice.ready_dataset()
    scheduled_id = alice.schedule(dataset_id, lightly_config=SEED_LIGHTLY_CONFIG)
    data = server.http.get(f"/v1/scheduled-runs/{scheduled_id}", headers=alice.h).json()
    assert data["state"] == "OPEN"
    assert data["priority"] == "MID"
    assert data["worker_config"]["stopping_condition"] == {"n_samples": 0.1, "min_distance": -1}
    assert data["worker_config"]["selected_sequence_length"] == 1  # a default, filled in
    assert data["lightly_config"]["collate"]["input_size"] == 64
    assert data["lightly_config"]["checkpoint_callback"]["save_last"] is True  # default


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"worker_config": {"stoping_condition": {}}}, "did you mean 'stopping_condition'"),
        (
            {"worker_config": {"stopping_condition": {"n_sample": 3}}},
            "did you mean 'stopping_condition.n_samples'",
        ),
        ({"lightly_config": {"trainer": {"max_epoch": 1}}}, "did you mean 'trainer.max_epochs'"),
        ({"lightly_config": {"loader": {"batch_size": 0}}}, "loader.batch_size"),
        ({"worker_config": {"method": "kmeans"}}, "method"),
        ({"lightly_config": {"input_dir": "/etc"}}, "lightly_config.input_dir cannot be set"),
        (
            {"worker_config": {"relevant_filenames_file": "../../etc/passwd"}},
            "must not contain '..'",
        ),
        (
            {"worker_config": {"relevant_filenames_file": "/etc/passwd"}},
            "not an absolute path",
        ),
        ({"worker_config": {"datapool": {"root": "/tmp/x"}}}, "datapool.root cannot be set"),
        ({"worker_config": {"method": "random"}}, "no stopping condition"),
        (
            {
                "worker_config": {
                    "selection_config": {
                        "n_samples": 3,
                        "strategies": [
                            {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSTY"}}
                        ],
                    }
                }
            },
            "did you mean 'DIVERSITY'",
        ),
    ],
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bad_configs_are_422_naming_the_key(
    server: ServerHarness, make_actor: Callable[..., Any], body: dict[str, Any], expected: str
) -> None:
    alice = make_actor("alice")
    dataset_id = alice.ready_dataset()
    r = server.http.post(f"/v1/datasets/{dataset_id}/scheduled-runs", json=body, headers=alice.h)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "INVALID_CONFIG"
    assert expected in r.json()["error"]
    assert server.http.get("/v1/scheduled-runs", headers=alice.h).json() == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_malformed_schedule_bodies_are_422(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice = make_actor("alice")
    dataset_id = alice.ready_dataset()
    url = f"/v1/datasets/{dataset_id}/scheduled-runs"
    for body, expected in [
        ({"priority": "URGENT"}, "priority"),
        ({"runs_on": "gpu"}, "runs_on"),
        ({"worker_config": [1, 2]}, "worker_config"),
        ({"wroker_config": {}}, "did you mean 'worker_config'"),
    ]:
        r = server.http.post(url, json=body, headers=alice.h)
        assert r.status_code == 422, (body, r.text)
        assert expected in r.json()["error"], (body, r.json())
    r = server.http.post(
        url, content=b"[not json", headers={**alice.h, "content-type": "application/json"}
    )
    assert r.status_code == 422
    assert "not valid JSON" in r.json()["error"]


def test_scheduling_needs_an_input_datasource(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice = make_actor("alice")
    dataset_id = alice.dataset()
    r = server.http.post(
        f"/v1/datasets/{dataset_id}/scheduled-runs",
        json={"worker_config": {"stopping_condition": {"n_samples": 5}}},
        headers=alice.h,
    )
    assert r.status_code == 400
    assert "no INPUT datasource" in r.json()["error"]
    alice.local_source(dataset_id, purpose="INPUT")
    r = server.http.post(
        f"/v1/datasets/{dataset_id}/scheduled-runs",
        json={
            "worker_config": {
                "relevant_filenames_file": ".selfsup/relevant.txt",
                "stopping_condition": {"n_samples": 5},
            }
        },
        headers=alice.h,
    )
    assert r.status_code == 400
    assert "LIGHTLY datasource" in r.json()["error"]


def test_claims_follow_priority_then_submission_order(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice = make_actor("alice")
    dataset_id = alice.ready_dataset()
    order = ["LOW", "MID", "CRITICAL", "HIGH", "MID", "LOW", "CRITICAL"]
    ids = [alice.schedule(dataset_id, priority=p) for p in order]
    # Submissions at the same clock tick still keep their order.
    worker_id = alice.worker()
    claimed = []
    while (claim := alice.claim(worker_id)) is not None:
        claimed.append(claim["scheduled_run"]["id"])
    rank = {"CRITICAL": 0, "HIGH": 1, "MID": 2, "LOW": 3}
    expected = [ids[i] for i in sorted(range(len(ids)), key=lambda i: (rank[order[i]], i))]
    assert claimed == expected


def test_runs_on_labels_must_all_be_on_the_worker(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice = make_actor("alice")
    dataset_id = alice.ready_dataset()
    gpu_only = alice.schedule(dataset_id, runs_on=["gpu"])
    gpu_big = alice.schedule(dataset_id, runs_on=["gpu", "big-disk"])
    anywhere = alice.schedule(dataset_id)
    plain, gpu, gpu_big_worker = (
        alice.worker("plain"),
        alice.worker("gpu", ["gpu"]),
        alice.worker("gpu-big", ["big-disk", "gpu", "extra"]),
    )
    first = alice.claim(plain)
    assert first is not None
    assert first["scheduled_run"]["id"] == anywhere
    assert alice.claim(plain) is None
    second = alice.claim(gpu)
    assert second is not None
    assert second["scheduled_run"]["id"] == gpu_only
    assert alice.claim(gpu) is None
    third = alice.claim(gpu_big_worker)
    assert third is not None
    assert third["scheduled_run"]["id"] == gpu_big


def test_registering_a_worker_again_keeps_its_id_and_updates_labels(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice = make_actor("alice")
    first = alice.worker("box", ["a"])
    again = alice.worker("box", ["b", "c"])
    assert first == again
    workers = server.http.get("/v1/workers", headers=alice.h).json()
    assert [(w["id"], w["labels"]) for w in workers] == [(first, ["b", "c"])]


def test_run_states_move_forward_and_an_end_state_finishes_the_job(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice = make_actor("alice")
    scheduled_id = alice.schedule(alice.ready_dataset())
    worker_id = alice.worker()
    claim = alice.claim(worker_id)
    assert claim is not None
    assert claim["run"]["state"] == "STARTED"
    assert claim["scheduled_run"]["state"] == "LOCKED"
    path = f"{alice.run_path(worker_id, claim['run']['id'])}/state"
    sequence = [
        "LOADING_DATASET", "CHECKING_CORRUPTNESS", "TRAINING", "EMBEDDING", "SAMPLING",
        "GENERATING_REPORT",
    ]  # fmt: skip
    for state in sequence:
        r = server.http.post(path, json={"state": state, "message": state.lower()}, headers=alice.h)
        assert r.status_code == 200
        assert r.json()["state"] == state
    r = server.http.post(path, json={"state": "TRAINING"}, headers=alice.h)
    assert r.status_code == 409
    assert "cannot go back" in r.json()["error"]
    r = server.http.post(path, json={"state": "DONE"}, headers=alice.h)
    assert r.status_code == 422  # not a run state
    r = server.http.post(path, json={"state": "COMPLETED", "message": "ok"}, headers=alice.h)
    assert r.status_code == 200
    assert r.json()["ended_at"] is not None
    r = server.http.post(path, json={"state": "FAILED"}, headers=alice.h)
    assert r.status_code == 409
    assert "already ended" in r.json()["error"]
    scheduled = server.http.get(f"/v1/scheduled-runs/{scheduled_id}", headers=alice.h).json()
    assert scheduled["state"] == "DONE"
    assert scheduled["worker_id"] is None
    run = server.http.get(f"/v1/scheduled-runs/{scheduled_id}/run", headers=alice.h).json()
    assert (run["state"], run["message"]) == ("COMPLETED", "ok")
    assert alice.claim(worker_id) is None


def test_cancel_withdraws_open_jobs_and_asks_running_ones_to_abort(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice = make_actor("alice")
    dataset_id = alice.ready_dataset()
    running = alice.schedule(dataset_id, priority="HIGH")
    waiting = alice.schedule(dataset_id)
    worker_id = alice.worker()
    claim = alice.claim(worker_id)
    assert claim is not None
    assert claim["scheduled_run"]["id"] == running
    run_path = alice.run_path(worker_id, claim["run"]["id"])

    r = server.http.post(f"/v1/scheduled-runs/{waiting}/cancel", headers=alice.h)
    assert r.status_code == 200
    assert r.json()["state"] == "CANCELED"
    r = server.http.post(f"/v1/scheduled-runs/{waiting}/cancel", headers=alice.h)
    assert r.status_code == 409

    beat = server.http.post(f"{run_path}/heartbeat", headers=alice.h).json()
    assert beat["abort_requested"] is False
    r = server.http.post(f"/v1/scheduled-runs/{running}/cancel", headers=alice.h)
    assert r.status_code == 200
    beat = server.http.post(f"{run_path}/heartbeat", headers=alice.h).json()
    assert beat["abort_requested"] is True
    r = server.http.post(f"{run_path}/state", json={"state": "ABORTED"}, headers=alice.h)
    assert r.status_code == 200
    states = {
        s["id"]: s["state"] for s in server.http.get("/v1/scheduled-runs", headers=alice.h).json()
    }
    assert states == {running: "CANCELED", waiting: "CANCELED"}
    assert alice.claim(worker_id) is None


def test_deleting_a_dataset_removes_its_records_and_files(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice = make_actor("alice")
    dataset_id = alice.ready_dataset()
    alice.schedule(dataset_id)
    worker_id = alice.worker()
    claim = alice.claim(worker_id)
    assert claim is not None
    run_path = alice.run_path(worker_id, claim["run"]["id"])
    server.http.post(f"{run_path}/log", json={"text": "hello\n"}, headers=alice.h)
    r = server.http.delete(f"/v1/datasets/{dataset_id}", headers=alice.h)
    assert r.status_code == 409
    assert "cancel" in r.json()["error"]
    server.http.post(f"{run_path}/state", json={"state": "FAILED"}, headers=alice.h)
    run_dir = server.settings.data_dir / "runs" / claim["run"]["id"]
    assert run_dir.is_dir()
    assert server.http.delete(f"/v1/datasets/{dataset_id}", headers=alice.h).status_code == 204
    assert not run_dir.exists()
    for path in ("/v1/datasets", "/v1/scheduled-runs", "/v1/runs"):
        assert server.http.get(path, headers=alice.h).json() == []
