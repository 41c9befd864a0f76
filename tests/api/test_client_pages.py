"""ApiWorkflowClient's list methods follow the server's pages (``Link: rel="next"``), so a
user with more items than one page holds gets every one of them, in the server's order and
with the filters kept on every page."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from selfsup.api import ApiWorkflowClient
from selfsup.server.models import Dataset, User, Worker, new_id
from selfsup.server.pages import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from selfsup.server.testing import ServerHarness

WORKER_CONFIG = {"stopping_condition": {"n_samples": 0.1, "min_distance": -1}}


def _insert(harness: ServerHarness, user: str, n_datasets: int, n_workers: int) -> None:
    """Add datasets and workers straight into the database (thousands of API calls would
    only slow the test down)."""
    with harness.app.state.sessions() as session:
        user_id = session.scalars(select(User.id).where(User.name == user)).one()
        now = harness.clock()
        for i in range(n_datasets):
            session.add(
                Dataset(
                    id=new_id(),
                    user_id=user_id,
                    name=f"bulk-{i:05d}",
                    type="IMAGES",
                    created_at=now + i,
                    last_modified_at=now + i,
                )
            )
        for i in range(n_workers):
            session.add(
                Worker(
                    id=new_id(),
                    user_id=user_id,
                    name=f"w-{i:05d}",
                    labels=[],
                    created_at=now + i,
                    last_seen_at=now + i,
                )
            )
        session.commit()


def test_a_user_with_250_datasets_gets_all_250(harness: ServerHarness) -> None:
    token = harness.token("alice")
    client = harness.client(token)
    for i in range(250):
        harness.clock.advance(0.001)  # oldest first: a distinct creation time each
        client.create_dataset(f"ds-{i:03d}")
    assert DEFAULT_PAGE_SIZE < 250  # the server's default page alone would hold 100
    names = [d.name for d in client.get_datasets()]
    assert names == [f"ds-{i:03d}" for i in range(250)]
    fresh = harness.client(token)  # the default dataset is chosen among all of them
    with pytest.warns(UserWarning, match="'ds-249'"):
        assert fresh.dataset_id == client.dataset_id


def test_more_than_the_largest_page_follows_the_next_link(harness: ServerHarness) -> None:
    token = harness.token("alice")
    _insert(harness, "alice", n_datasets=MAX_PAGE_SIZE + 5, n_workers=MAX_PAGE_SIZE + 2)
    client = harness.client(token)
    datasets = client.get_datasets()
    assert len(datasets) == MAX_PAGE_SIZE + 5
    assert len({d.id for d in datasets}) == len(datasets)
    assert [d.name for d in datasets[-2:]] == [f"bulk-{MAX_PAGE_SIZE + 3:05d}", "bulk-01004"]
    assert len(client.get_compute_worker_ids()) == MAX_PAGE_SIZE + 2


def test_small_pages_keep_the_filters_and_the_order(
    harness: ServerHarness, local_root: Path
) -> None:
    token = harness.token("alice")
    client = ApiWorkflowClient(token=token, http_client=harness._httpx(), page_size=7)
    other = client.create_dataset("other")
    client.set_local_config(resource_path=str(local_root / "images"))
    in_other = [client.schedule_compute_worker_run(WORKER_CONFIG) for _ in range(3)]
    mine = client.create_dataset("mine")
    client.set_local_config(resource_path=str(local_root / "images"))
    scheduled = [client.schedule_compute_worker_run(WORKER_CONFIG) for _ in range(23)]
    for scheduled_id in scheduled[:9]:
        client.cancel_scheduled_compute_worker_run(scheduled_id)

    assert [s.id for s in client.get_scheduled_compute_worker_runs()] == scheduled
    assert [s.id for s in client.get_scheduled_compute_worker_runs("CANCELED")] == scheduled[:9]
    assert [s.id for s in client.get_scheduled_compute_worker_runs("OPEN")] == scheduled[9:]
    client.dataset_id = other
    assert [s.id for s in client.get_scheduled_compute_worker_runs()] == in_other

    worker = harness.worker_client(token)
    worker_id = worker.register("w").id
    for _ in range(15):
        harness.clock.advance(0.001)  # runs are listed by creation time
        claim = worker.claim(worker_id)
        assert claim is not None
        worker.set_state(worker_id, claim.run.id, "FAILED", "test")
    runs = client.get_compute_worker_runs()
    assert len(runs) == 15
    assert [r.scheduled_id for r in client.get_compute_worker_runs(dataset_id=mine)] == (
        scheduled[9:][: 15 - 3]
    )
    assert [r.scheduled_id for r in client.get_compute_worker_runs(dataset_id=other)] == in_other
    for i in range(8):
        client.register_compute_worker(f"more-{i}")
    assert len(client.get_compute_workers()) == 9


@pytest.mark.parametrize("size", [0, MAX_PAGE_SIZE + 1])
def test_page_size_out_of_range_is_refused(harness: ServerHarness, size: int) -> None:
    with pytest.raises(ValueError, match=rf"page_size must be 1 to {MAX_PAGE_SIZE}, got {size}"):
        ApiWorkflowClient(token="t", http_client=harness._httpx(), page_size=size)


def test_the_clients_largest_page_is_the_servers() -> None:
    from selfsup.api import api_workflow_client

    assert api_workflow_client.MAX_PAGE_SIZE == MAX_PAGE_SIZE


def test_a_next_link_that_does_not_move_forward_is_an_error_not_a_loop() -> None:
    import httpx

    def answer(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params.get("offset", "0"))
        link = '</v1/workers?offset=0&limit=1000>; rel="next"' if offset == 0 else ""
        return httpx.Response(200, json=[{"id": "a"}], headers={"Link": link} if link else {})

    http = httpx.Client(base_url="http://selfsup.test", transport=httpx.MockTransport(answer))
    client = ApiWorkflowClient(token="t", http_client=http, retry_give_up_after=0)
    with pytest.raises(ValueError, match=r"does not move past offset 0; the server's paging"):
        client.get_compute_workers()
