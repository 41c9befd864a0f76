"""``selfsup serve`` in a real browser: users, datasets, live run states, isolation, revocation.

A real server app (SQLite) is served by uvicorn on loopback. Alice schedules a run of a LOCAL
dataset with the API client and a worker executes it in process (tiny model, one epoch, no
UMAP), so the run page shows the outputs a worker really uploaded. A second job is driven by
hand through the worker API (claim, states, log lines) so the live updates are checked
deterministically, without waiting on a pipeline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from _web import OpenPage, WebPage, report_counts, write_small_images
from selfsup.api import ApiWorkflowClient
from selfsup.cli.apps import create_server_app
from selfsup.server.testing import LiveServer, ServerHarness

# Any test of this module alone takes > 5 s: the module's fixture trains a tiny model in a
# real worker run and starts a browser.
pytestmark = pytest.mark.slow

LIGHTLY_CONFIG: dict[str, Any] = {
    "model": {"name": "resnet-9", "width": 0.125},
    "collate": {"input_size": 32},
    "trainer": {"max_epochs": 1, "gpus": 0},
    "loader": {"num_workers": 0, "batch_size": 16},
}
WORKER_CONFIG: dict[str, Any] = {"stopping_condition": {"n_samples": 5}}
DATASET = "shapes"
#: Artifact name -> path in the run's output folder, of what the worker uploads.
UPLOADED_OUTPUTS: dict[str, str] = {
    "report.pdf": "report.pdf",
    "report.json": "report.json",
    "sampled_filenames_excluding_datapool.txt": (
        "filenames/sampled_filenames_excluding_datapool.txt"
    ),
    "corrupt_filenames.txt": "filenames/corrupt_filenames.txt",
    "embeddings.csv": "data/embeddings.csv",
}


@dataclass
class Server:
    """The live server and what the fixture made on it."""

    harness: ServerHarness
    url: str
    alice: str
    bob: str
    client: ApiWorkflowClient
    dataset_id: str
    job_id: str  # the completed job (scheduled run id: what the pages use)
    run_id: str  # its run (attempt) id, the folder name of its outputs
    outputs: Path

    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads((self.outputs / "report.json").read_text())
        return report


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from selfsup.openapi_generated.swagger_client.models.datasource_purpose import (
        DatasourcePurpose,
    )
    from selfsup.worker import Worker, WorkerSettings

    tmp = tmp_path_factory.mktemp("server")
    roots = tmp / "roots"
    images = roots / "input"
    write_small_images(images, n_per_class=4)
    (roots / "lightly").mkdir()
    harness = ServerHarness(
        f"sqlite:///{tmp / 'server.db'}", tmp / "data", (roots,), app_factory=create_server_app
    )
    alice, bob = harness.token("alice"), harness.token("bob", scope="user")
    client = harness.client(alice)
    dataset_id = client.create_dataset(DATASET)
    client.set_local_config(str(images), purpose=DatasourcePurpose.INPUT)
    client.set_local_config(str(roots / "lightly"), purpose=DatasourcePurpose.LIGHTLY)
    job_id = client.schedule_compute_worker_run(
        worker_config=WORKER_CONFIG, lightly_config=LIGHTLY_CONFIG
    )
    settings = WorkerSettings(
        token=alice, name="e2e", poll_interval=0.1, work_dir=tmp / "work", umap=False,
        num_workers=0,
    )  # fmt: skip
    worker = Worker(settings, api=harness.worker_client(alice))
    assert worker.run_once()
    worker.api.close()
    run = client.get_compute_worker_run_from_scheduled_run(job_id)
    assert run.state == "COMPLETED", run.message
    outputs = roots / "lightly" / "runs" / run.id
    assert (outputs / "report.json").is_file()
    try:
        with LiveServer(harness.app) as live:
            yield Server(harness, live.url, alice, bob, client, dataset_id, job_id, run.id, outputs)
    finally:
        client.close()
        harness.close()


def _state(tab: WebPage, job_id: str) -> str:
    return str(
        tab.page.locator(f"[data-testid=run-row][data-run-id='{job_id}']")
        .get_by_test_id("run-state")
        .get_attribute("data-state")
    )


def _wait_state(tab: WebPage, selector: str, state: str, timeout_ms: int = 10_000) -> None:
    """Wait until the state pill under ``selector`` shows ``state`` (set by polling)."""
    tab.page.wait_for_function(
        "([sel, state]) => { const el = document.querySelector(sel + ' [data-testid=run-state]');"
        " return el !== null && el.dataset.state === state; }",
        arg=[selector, state],
        timeout=timeout_ms,
    )


def test_alice_sees_her_dataset_and_completed_run(open_page: OpenPage, server: Server) -> None:
    tab = open_page(server.url)
    tab.login(server.alice)
    assert tab.page.get_by_test_id("viewer-name").inner_text() == "alice"
    datasets = tab.page.get_by_test_id("dataset-row")
    assert datasets.count() == 1
    assert datasets.first.get_by_test_id("dataset-name").inner_text() == DATASET
    assert datasets.first.get_attribute("data-dataset-id") == server.dataset_id
    assert _state(tab, server.job_id) == "COMPLETED"
    tab.shot()


def test_run_page_matches_report_json_and_downloads_artifacts(
    open_page: OpenPage, server: Server
) -> None:
    tab = open_page(server.url)
    tab.login(server.alice, next_path=f"/runs/{server.job_id}")
    report = server.report()
    counts = report_counts(report)
    assert tab.shown_counts() == counts
    assert counts["n_selected"] == WORKER_CONFIG["stopping_condition"]["n_samples"]
    assert "claimed run" in tab.page.get_by_test_id("run-log").inner_text()

    links = tab.download_report_pdf()
    hrefs = [str(link.get_attribute("href")) for link in links.all()]
    artifacts = {
        link.inner_text().strip(): str(link.get_attribute("href"))
        for link in links.all()
        if "/artifacts/" in str(link.get_attribute("href"))
    }
    for href in artifacts.values():
        assert tab.page.request.get(tab.url(href)).status == 200, href
    # The output files the worker uploads download byte for byte as they are in the run's
    # output folder (the server adds artifacts of its own, e.g. the run's config).
    for name, relative in UPLOADED_OUTPUTS.items():
        assert name in artifacts, (name, sorted(artifacts))
        body = tab.page.request.get(tab.url(artifacts[name])).body()
        assert body == (server.outputs / relative).read_bytes(), name
    json_file = f"/runs/{server.job_id}/files/report.json"
    assert json_file in hrefs
    assert json.loads(tab.page.request.get(tab.url(json_file)).body()) == report

    # The images of a server run: thumbnails come from the INPUT datasource.
    tab.goto(f"/runs/{server.job_id}/images?status=selected")
    tiles = tab.page.get_by_test_id("tile")
    assert tiles.count() == counts["n_selected"]
    tab.wait_images_loaded("[data-testid=tile] img")
    tab.shot("images")


def test_runs_list_and_run_page_follow_a_job_live(open_page: OpenPage, server: Server) -> None:
    job_id = server.client.schedule_compute_worker_run(
        worker_config=WORKER_CONFIG, lightly_config=LIGHTLY_CONFIG
    )
    runs = open_page(server.url)
    runs.login(server.alice)
    row = f"[data-testid=run-row][data-run-id='{job_id}']"
    assert _state(runs, job_id) == "OPEN"
    runs.page.evaluate("() => { window.__e2eNotReloaded = true; }")

    detail = open_page(server.url)
    detail.login(server.alice, next_path=f"/runs/{job_id}")
    detail.page.evaluate("() => { window.__e2eNotReloaded = true; }")

    worker = server.harness.worker_client(server.alice)
    try:
        worker_id = worker.register("e2e-live").id
        claim = worker.claim(worker_id)
        assert claim is not None
        assert claim.run.scheduled_id == job_id
        _wait_state(runs, row, "STARTED")
        worker.set_state(worker_id, claim.run.id, "EMBEDDING", "embedding 52 images")
        _wait_state(runs, row, "EMBEDDING")
        message = runs.page.locator(row).get_by_test_id("run-message")
        message.filter(has_text="embedding 52 images").wait_for()
        _wait_state(detail, "main", "EMBEDDING")
        worker.append_log(worker_id, claim.run.id, "first line from the worker\n")
        log = detail.page.get_by_test_id("run-log")
        log.filter(has_text="first line from the worker").wait_for()
        worker.append_log(worker_id, claim.run.id, "second line\n")
        log.filter(has_text="second line").wait_for()
        detail.shot("running")
        assert detail.page.evaluate("() => window.__e2eNotReloaded") is True
        # The run page reloads once when the job ends, to show what it left behind.
        with detail.page.expect_navigation():
            worker.set_state(worker_id, claim.run.id, "FAILED", "out of memory (e2e)")
        _wait_state(detail, "main", "FAILED")
        assert "out of memory (e2e)" in detail.page.get_by_test_id("run-message").inner_text()
        _wait_state(runs, row, "FAILED")
        message.filter(has_text="out of memory (e2e)").wait_for()
    finally:
        worker.close()
    log_text = detail.page.get_by_test_id("run-log").inner_text()
    assert log_text.count("first line from the worker") == 1
    assert "second line" in log_text
    assert runs.page.evaluate("() => window.__e2eNotReloaded") is True  # the list never reloads
    runs.shot("runs")


def test_bob_gets_404_for_alices_run(open_page: OpenPage, server: Server) -> None:
    tab = open_page(server.url)
    tab.login(server.bob)
    assert tab.page.get_by_test_id("run-row").count() == 0
    assert tab.page.get_by_test_id("dataset-row").count() == 0
    tab.allow_console_error(r"status of 404")
    tab.goto(f"/runs/{server.job_id}", expected_status=404)
    tab.shot("run-404")
    request = tab.page.request
    for path in (
        f"/runs/{server.run_id}",
        f"/runs/{server.job_id}/images",
        f"/runs/{server.job_id}/map",
        f"/runs/{server.job_id}/images/0",
        f"/runs/{server.job_id}/thumbs/0",
        f"/runs/{server.job_id}/preview/0",
        f"/runs/{server.job_id}/files/report.json",
        f"/ui-api/runs/{server.job_id}",
        f"/ui-api/runs/{server.job_id}/log",
        f"/ui-api/runs/{server.job_id}/projection",
    ):
        assert request.get(tab.url(path)).status == 404, path
    assert request.get(tab.url("/ui-api/runs")).json() == {"runs": []}


def test_a_revoked_token_logs_its_browser_out(open_page: OpenPage, server: Server) -> None:
    from selfsup.server.auth import split_token
    from selfsup.server.models import ApiToken

    token = server.harness.token("alice")
    # A job waiting for a worker keeps the runs list polling, so the page notices.
    server.client.schedule_compute_worker_run(
        worker_config=WORKER_CONFIG, lightly_config=LIGHTLY_CONFIG
    )
    tab = open_page(server.url)
    tab.login(token)
    tab.allow_console_error(r"status of 401")  # the poll after the revocation is refused
    thumb = tab.url(f"/runs/{server.job_id}/thumbs/0")
    assert tab.page.request.get(thumb).status == 200
    parts = split_token(token)
    assert parts is not None
    with server.harness.app.state.sessions() as session:
        row = session.get(ApiToken, parts[0])
        assert row is not None
        row.revoked_at = int(time.time() * 1000)
        session.commit()
    assert tab.page.request.get(thumb).status == 401
    # The open page notices at its next poll and goes to the login.
    tab.page.wait_for_url("**/login?next=*", timeout=10_000)
    tab.goto(f"/runs/{server.job_id}")
    assert urlsplit(tab.page.url).path == "/login"
    assert "revoked" in tab.refused_token(token)
