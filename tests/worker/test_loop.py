"""End to end: a live server, two workers and the API client on loopback.

Runs over a LOCAL datasource and over S3 (moto's S3 server on 127.0.0.1) complete, each
exactly once, and the client downloads their report and selected file names; a scheduled run
with a config the pipeline refuses ends FAILED with the reason in its log.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _s3 import local_s3
from selfsup.api import ApiWorkflowClient
from selfsup.server.testing import LiveServer, ServerHarness
from selfsup.worker import Worker, WorkerSettings
from selfsup.worker.loop import RUNS_FOLDER

LIGHTLY_CONFIG: dict[str, Any] = {
    "model": {"name": "resnet-9", "width": 0.125},
    "collate": {"input_size": 32},
    "trainer": {"max_epochs": 1, "gpus": 0},
    "loader": {"num_workers": 0, "batch_size": 8},
}
WORKER_CONFIG: dict[str, Any] = {"stopping_condition": {"n_samples": 3}}


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[ServerHarness]:
    roots = tmp_path / "roots"
    roots.mkdir()
    h = ServerHarness(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "data", (roots,))
    yield h
    h.close()


def _settings(token: str, url: str, tmp: Path, name: str, **kw: Any) -> WorkerSettings:
    return WorkerSettings(
        token=token,
        server_url=url,
        name=name,
        poll_interval=0.1,
        work_dir=tmp / f"work_{name}",
        umap=False,
        num_workers=0,
        **kw,
    )


def _wait_done(client: ApiWorkflowClient, scheduled: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        infos = [client.get_compute_worker_run_info(s) for s in scheduled]
        if all(i.in_end_state() for i in infos):
            return
        time.sleep(0.1)
    raise AssertionError(f"runs did not end in {timeout} s: {infos}")


def _start_workers(workers: list[Worker]) -> list[threading.Thread]:
    threads = [threading.Thread(target=w.run_forever, daemon=True) for w in workers]
    for t in threads:
        t.start()
    return threads


@pytest.mark.slow
def test_two_workers_run_local_and_s3_datasources_once_each(
    harness: ServerHarness,
    tmp_path: Path,
    make_image_folder: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from selfsup.openapi_generated.swagger_client.models.datasource_purpose import (
        DatasourcePurpose,
    )

    roots = tmp_path / "roots"
    local_input = make_image_folder(n_classes=2, n_per_class=4, root=roots / "input")
    (roots / "lightly").mkdir()
    s3_images = make_image_folder(n_classes=2, n_per_class=4, seed=1)

    with local_s3(monkeypatch) as s3:
        for path in sorted(s3_images.rglob("*.png")):
            s3.upload_file(str(path), "bucket", f"input/{path.relative_to(s3_images).as_posix()}")

        token = harness.token()
        with LiveServer(harness.app) as live:
            client = ApiWorkflowClient(token=token, base_url=live.url)
            client.create_dataset("local-images")
            client.set_local_config(str(local_input), purpose=DatasourcePurpose.INPUT)
            client.set_local_config(str(roots / "lightly"), purpose=DatasourcePurpose.LIGHTLY)
            local_id = client.schedule_compute_worker_run(
                worker_config=WORKER_CONFIG, lightly_config=LIGHTLY_CONFIG
            )
            client.create_dataset("s3-images")
            for prefix, purpose in (("input", "INPUT"), ("lightly", "LIGHTLY")):
                client.set_s3_config(
                    f"s3://bucket/{prefix}/", "us-east-1", "testing", "testing", purpose=purpose
                )
            s3_id = client.schedule_compute_worker_run(
                worker_config=WORKER_CONFIG, lightly_config=LIGHTLY_CONFIG
            )
            workers = [Worker(_settings(token, live.url, tmp_path, name)) for name in ("w1", "w2")]
            started = time.monotonic()
            threads = _start_workers(workers)
            try:
                _wait_done(client, [local_id, s3_id], timeout=120)
            finally:
                for w in workers:
                    w.stop()
                for t in threads:
                    t.join(timeout=60)
            elapsed = time.monotonic() - started
            print(f"two runs on two workers: {elapsed:.1f} s")

            runs = client.get_compute_worker_runs()
            assert sorted(r.scheduled_id for r in runs) == sorted([local_id, s3_id])
            for scheduled_id in (local_id, s3_id):
                run = client.get_compute_worker_run_from_scheduled_run(scheduled_id)
                assert run.state == "COMPLETED", run.message
                pdf = tmp_path / f"{scheduled_id}.pdf"
                client.download_compute_worker_run_report_pdf(run, pdf)
                assert pdf.read_bytes().startswith(b"%PDF")
                selected = client.get_compute_worker_run_selected_filenames(run)
                assert len(selected) == 3
                assert all(name.startswith("class_") for name in selected)
                report = tmp_path / f"{scheduled_id}.json"
                client.download_compute_worker_run_report_json(run, report)
                assert json.loads(report.read_text())
                log = tmp_path / f"{scheduled_id}.log"
                client.download_compute_worker_run_log(run, log)
                text = log.read_text()
                assert "claimed run" in text
                assert "run finished in" in text  # the pipeline's own log reached the server
            # Outputs reached the LIGHTLY datasources, in the layout `selfsup run` writes.
            local_run = client.get_compute_worker_run_from_scheduled_run(local_id)
            out = roots / "lightly" / RUNS_FOLDER / local_run.id
            assert (out / "report.json").is_file()
            assert (out / "filenames" / "sampled_filenames_excluding_datapool.txt").is_file()
            s3_run = client.get_compute_worker_run_from_scheduled_run(s3_id)
            listed = s3.list_objects_v2(Bucket="bucket", Prefix=f"lightly/{RUNS_FOLDER}/")
            keys = {o["Key"] for o in listed.get("Contents", [])}
            assert f"lightly/{RUNS_FOLDER}/{s3_run.id}/report.pdf" in keys
            assert not any(f"/{RUNS_FOLDER}/{local_run.id}/" in k for k in keys)
            client.close()
            for w in workers:
                w.api.close()


def test_a_config_the_pipeline_refuses_ends_failed_with_the_reason_logged(
    harness: ServerHarness, tmp_path: Path, make_image_folder: Callable[..., Path]
) -> None:
    from selfsup.openapi_generated.swagger_client.models.datasource_purpose import (
        DatasourcePurpose,
    )

    roots = tmp_path / "roots"
    images = make_image_folder(n_classes=1, n_per_class=2, root=roots / "input")
    (roots / "lightly").mkdir()
    token = harness.token()
    client = harness.client(token)
    client.create_dataset("refused")
    client.set_local_config(str(images), purpose=DatasourcePurpose.INPUT)
    client.set_local_config(str(roots / "lightly"), purpose=DatasourcePurpose.LIGHTLY)
    # Structurally valid (the server accepts it) but missing from the LIGHTLY datasource.
    scheduled = client.schedule_compute_worker_run(
        worker_config={**WORKER_CONFIG, "relevant_filenames_file": "missing.txt"},
        lightly_config=LIGHTLY_CONFIG,
    )
    worker = Worker(_settings(token, "", tmp_path, "w"), api=harness.worker_client(token))
    assert worker.run_once()
    run = client.get_compute_worker_run_from_scheduled_run(scheduled)
    assert run.state == "FAILED"
    assert "relevant_filenames_file 'missing.txt' does not exist" in run.message
    log = tmp_path / "log.txt"
    client.download_compute_worker_run_log(run, log)
    assert "run failed: relevant_filenames_file 'missing.txt'" in log.read_text()
    assert not worker.run_once()  # a FAILED run is final: nothing is re-opened


def _one_run(
    harness: ServerHarness, tmp_path: Path, make_image_folder: Callable[..., Path]
) -> tuple[ApiWorkflowClient, str, str]:
    from selfsup.openapi_generated.swagger_client.models.datasource_purpose import (
        DatasourcePurpose,
    )

    roots = tmp_path / "roots"
    images = make_image_folder(n_classes=2, n_per_class=4, root=roots / "input")
    (roots / "lightly").mkdir()
    token = harness.token()
    client = harness.client(token)
    client.create_dataset("one")
    client.set_local_config(str(images), purpose=DatasourcePurpose.INPUT)
    client.set_local_config(str(roots / "lightly"), purpose=DatasourcePurpose.LIGHTLY)
    scheduled = client.schedule_compute_worker_run(
        worker_config=WORKER_CONFIG, lightly_config=LIGHTLY_CONFIG
    )
    return client, token, scheduled


def test_a_run_whose_lease_ran_out_is_dropped_without_further_reports(
    harness: ServerHarness, tmp_path: Path, make_image_folder: Callable[..., Path]
) -> None:
    client, token, scheduled = _one_run(harness, tmp_path, make_image_folder)
    worker = Worker(_settings(token, "", tmp_path, "late"), api=harness.worker_client(token))
    claim = worker.api.claim(worker.register())
    assert claim is not None
    harness.clock.advance(claim.lease_seconds + 1)
    assert harness.sweep() == [claim.run.id]
    assert worker.execute(claim) == "LOST"
    run = client.get_compute_worker_run(claim.run.id)
    assert run.state == "CRASHED"
    assert run.artifacts == []
    assert client.get_scheduled_compute_worker_run(scheduled).state == "OPEN"


@pytest.mark.slow
def test_cancelling_a_running_job_ends_it_aborted(
    harness: ServerHarness, tmp_path: Path, make_image_folder: Callable[..., Path]
) -> None:
    client, token, scheduled = _one_run(harness, tmp_path, make_image_folder)
    with LiveServer(harness.app) as live:
        worker = Worker(_settings(token, live.url, tmp_path, "w", heartbeat_interval=0.05))
        claim = worker.api.claim(worker.register())
        assert claim is not None
        client.cancel_scheduled_compute_worker_run(scheduled)  # LOCKED: abort_requested
        assert worker.execute(claim) == "ABORTED"
        worker.api.close()
    run = client.get_compute_worker_run(claim.run.id)
    assert run.state == "ABORTED"
    assert "SELECTED_FILENAMES" not in [a.type for a in run.artifacts]
