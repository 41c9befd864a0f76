"""Tags kept by the server as inputs of a scheduled run (``selfsup.server.tag_inputs``): the
check when a run is scheduled and the tagged names in the worker's job, on the server's test
databases. The worker's side, end to end, is in tests/worker/test_loop.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select

from selfsup.apphelpers.web_backend import Viewer
from selfsup.server.models import SampleTag, ScheduledRun
from selfsup.server.testing import ServerHarness
from selfsup.server.web_backend import ServerBackend
from selfsup.web.backend import RunViewOpener


def _selection(*queries: dict[str, Any]) -> dict[str, Any]:
    return {
        "n_samples": 3,
        "strategies": [
            {"input": {"type": "EMBEDDINGS", "query": q}, "strategy": {"type": "SIMILARITY"}}
            for q in queries
        ],
    }


def _tag(server: ServerHarness, scheduled_id: str, tag: str, names: list[str]) -> None:
    with server.app.state.sessions() as session:
        user_id = session.scalars(
            select(ScheduledRun.user_id).where(ScheduledRun.id == scheduled_id)
        ).one()
    backend = ServerBackend(server.app.state.sessions, server.settings, RunViewOpener())
    backend.tag(Viewer(user_id, "u", "s"), scheduled_id, names, tag)


def _schedule(alice: Any, dataset: str, selection: dict[str, Any]) -> Any:
    return alice.http.post(
        f"/v1/datasets/{dataset}/scheduled-runs",
        json={"worker_config": {}, "selection_config": selection},
        headers=alice.h,
    )


def test_a_tag_query_is_checked_when_scheduled(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice = make_actor("alice", on=server)
    dataset = alice.ready_dataset()
    first = alice.schedule(dataset)
    _tag(server, first, "keep", ["a.png", "b.png"])
    _tag(server, first, "drop", ["c.png"])
    cases = [
        (
            {"tag": "cats", "run": first},
            f"run {first!r} has no sample tagged 'cats'; its tags: drop (1), keep (2)",
        ),
        ({"tag": "keep", "run": "0" * 24}, "is no run of yours on this server"),
        ({"tag": "keep"}, "names no run"),
    ]
    for query, expected in cases:
        r = _schedule(alice, dataset, _selection(query))
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "UNKNOWN_TAG"
        assert expected in r.json()["error"]
        assert "selection_config.strategies[0].input.query" in r.json()["error"]
    # Another user's run is no run of theirs, even with the tag.
    bob = make_actor("bob", on=server)
    r = _schedule(bob, bob.ready_dataset("b"), _selection({"tag": "keep", "run": first}))
    assert r.status_code == 400
    # A path stays a run folder on the worker's machine, as for selfsup run.
    r = _schedule(alice, dataset, _selection({"tag": "keep", "run": "./runs/first"}))
    assert r.status_code == 201, r.text


def test_the_job_carries_the_tagged_names_as_the_database_holds_them(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice = make_actor("alice", on=server)
    dataset = alice.ready_dataset()
    first = alice.schedule(dataset)
    _tag(server, first, "keep", ["b.png", "a.png"])
    worker_id = alice.worker()
    claim = alice.claim(worker_id)  # the first job; its run id names it too
    assert claim is not None
    first_run = str(claim["run"]["id"])
    r = alice.http.post(f"/v1/scheduled-runs/{first}/cancel", headers=alice.h)
    assert r.status_code == 200, r.text
    # Both ids name the job: the scheduled run's (web app URLs) and its run's (API).
    second = _schedule(
        alice, dataset, _selection({"tag": "keep", "run": first}, {"tag": "keep", "run": first_run})
    )
    assert second.status_code == 201, second.text
    _tag(server, first, "keep", ["c.png"])  # tagged after scheduling: the job sees it
    claim = None
    for _ in range(3):
        claim = alice.claim(worker_id)
        if claim is not None and claim["scheduled_run"]["id"] == second.json()["id"]:
            break
    assert claim is not None
    job = alice.http.get(f"{alice.run_path(worker_id, claim['run']['id'])}/job", headers=alice.h)
    assert job.status_code == 200, job.text
    tags = job.json()["tags"]
    assert [(t["run"], t["tag"], t["scheduled_run_id"]) for t in tags] == [
        (first, "keep", first),
        (first_run, "keep", first),
    ]
    assert tags[0]["names"] == ["a.png", "b.png", "c.png"]
    assert tags[0]["known_tags"] == ["keep"]

    # Untagged since: the job says so (the worker fails the run naming the run's tags).
    with server.app.state.sessions() as session:
        session.execute(delete(SampleTag).where(SampleTag.tag == "keep"))
        session.commit()
    job = alice.http.get(f"{alice.run_path(worker_id, claim['run']['id'])}/job", headers=alice.h)
    assert job.json()["tags"][0]["names"] == []


def test_tags_as_preselected_and_excluded_are_checked_when_scheduled(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    from selfsup.server.tag_inputs import tag_queries

    alice = make_actor("alice", on=server)
    dataset = alice.ready_dataset()
    first = alice.schedule(dataset)
    _tag(server, first, "keep", ["a.png"])
    diversity = {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}
    for key in ("preselected", "excluded"):
        selection = {
            "n_samples": 3,
            "strategies": [diversity],
            key: [{"tag": "cats", "run": first}],
        }
        r = _schedule(alice, dataset, selection)
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "UNKNOWN_TAG"
        assert (
            f"selection_config.{key}[0].tag: run {first!r} has no sample tagged 'cats'"
            in (r.json()["error"])
        )
    selection = {
        "n_samples": 3,
        "strategies": [diversity],
        "preselected": [{"samples": ["b.png"]}],
        "excluded": [{"tag": "keep", "run": first}],
    }
    assert list(tag_queries(selection)) == [("selection_config.excluded[0]", "keep", first)]
    r = _schedule(alice, dataset, selection)
    assert r.status_code == 201, r.text
