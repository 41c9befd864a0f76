"""ApiWorkflowClient against a real app: lightly's methods, local validation, monitoring,
downloads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from _imports import loaded_after
from selfsup.api import (
    STATE_SCHEDULED_ID_NOT_FOUND,
    ApiException,
    ApiWorkflowClient,
    ArtifactNotExist,
    ComputeWorkerRunInfo,
    WorkerApiClient,
)
from selfsup.api import api_workflow_client as client_module
from selfsup.errors import ConfigError
from selfsup.openapi_generated.swagger_client.models import (
    DatasetCreateRequest,
    DatasetType,
    DatasourcePurpose,
    DockerRunArtifactType,
)
from selfsup.server.testing import ServerHarness

WORKER_CONFIG: dict[str, Any] = {"stopping_condition": {"n_samples": 0.1, "min_distance": -1}}


def _client(harness: ServerHarness, local_root: Path) -> ApiWorkflowClient:
    client = harness.client(harness.token("alice"))
    client.create_dataset("ds")
    client.set_local_config(resource_path=str(local_root / "images"))
    return client


def test_token_comes_from_the_argument_or_the_environment(
    harness: ServerHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SELFSUP_TOKEN", raising=False)
    with pytest.raises(ValueError, match="SELFSUP_TOKEN"):
        ApiWorkflowClient()
    monkeypatch.setenv("SELFSUP_TOKEN", harness.token("alice"))
    client = harness.client(token="")  # empty: falls back to the environment
    assert client.get_datasets() == []
    assert "selfsup_" not in repr(client)
    bad = harness.client(token="selfsup_000000000000_nope")
    with pytest.raises(ApiException) as info:
        bad.get_datasets()
    assert (info.value.status, info.value.code) == (401, "UNAUTHORIZED")


def test_seed_low_level_create_and_dataset_defaults(harness: ServerHarness) -> None:
    client = harness.client(harness.token("alice"))
    response = client._datasets_api.create_dataset(
        DatasetCreateRequest(name="dataset-name", type=DatasetType.VIDEOS)
    )
    assert len(response.id) == 24
    with pytest.warns(UserWarning, match="last modified dataset 'dataset-name'"):
        assert client.dataset_id == response.id
    assert client.get_dataset_by_id(response.id).type == DatasetType.VIDEOS
    second = client.create_dataset("other")
    assert client.dataset_id == second
    with pytest.raises(ValueError, match="already exists"):
        client.create_dataset("other")
    client.delete_dataset_by_id(second)
    assert [d.name for d in client.get_datasets()] == ["dataset-name"]
    empty = harness.client(harness.token("bob"))
    with pytest.raises(ValueError, match="no datasets"):
        _ = empty.dataset_id


def test_datasource_setters_store_configs_without_returning_credentials(
    harness: ServerHarness, local_root: Path
) -> None:
    client = harness.client(harness.token("alice"))
    client.create_dataset("ds")
    client.set_s3_config(
        resource_path="s3://bucket/input/",
        region="eu-central-1",
        access_key="AK-SECRET",
        secret_access_key="SK-SECRET",
        purpose=DatasourcePurpose.INPUT,
    )
    client.set_local_config(resource_path=str(local_root / "images"), purpose="LIGHTLY")
    sources = {s.purpose: s for s in client.get_datasources()}
    assert sources[DatasourcePurpose.INPUT].options == {"s3_region": "eu-central-1"}
    assert sources[DatasourcePurpose.INPUT].has_credentials
    assert sources[DatasourcePurpose.LIGHTLY].full_path == str((local_root / "images").resolve())
    assert "SECRET" not in repr(client.get_datasources())
    with pytest.raises(ApiException) as info:
        client.set_local_config(resource_path="/etc")
    assert (info.value.status, info.value.code) == (403, "PATH_OUTSIDE_ROOTS")


def test_configs_are_validated_before_sending(harness: ServerHarness, local_root: Path) -> None:
    client = _client(harness, local_root)
    with pytest.raises(ConfigError, match="did you mean 'stopping_condition'"):
        client.schedule_compute_worker_run(worker_config={"stoping_condition": {"n_samples": 3}})
    with pytest.raises(ConfigError, match=re.escape("did you mean 'trainer.max_epochs'")):
        client.schedule_compute_worker_run(
            worker_config=WORKER_CONFIG, lightly_config={"trainer": {"max_epoch": 3}}
        )
    # Selection strategies are checked in full on the client (the server checks structure).
    with pytest.raises(ConfigError, match="DIVERSTY"):
        client.schedule_compute_worker_run(
            selection_config={
                "n_samples": 10,
                "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSTY"}}],
            }
        )
    with pytest.raises(ValueError, match="not both"):
        client.schedule_compute_worker_run(
            worker_config=WORKER_CONFIG, lightly_config={}, selfsup_config={}
        )
    assert client.get_scheduled_compute_worker_runs() == []


def test_schedule_monitor_and_download_everything(
    harness: ServerHarness, local_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _client(harness, local_root)
    selection = {
        "n_samples": 2,
        "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}],
    }
    scheduled_id = client.schedule_compute_worker_run(
        selfsup_config={"trainer": {"max_epochs": 1}},
        selection_config=selection,
        priority="HIGH",
        runs_on=["gpu"],
    )
    scheduled = client.get_scheduled_compute_worker_runs(state="OPEN")
    assert [s.id for s in scheduled] == [scheduled_id]
    assert scheduled[0].selection_config == selection
    assert scheduled[0].runs_on == ["gpu"]
    assert scheduled[0].lightly_config["trainer"]["max_epochs"] == 1

    # A scripted worker advances one step each time the generator waits between polls.
    worker = harness.worker_client(harness.token("alice", scope="worker"))
    worker_id = worker.register("w", labels=["gpu"]).id
    files = {
        DockerRunArtifactType.REPORT_PDF: ("report.pdf", b"%PDF-1.4"),
        DockerRunArtifactType.REPORT_JSON: ("report.json", b'{"selected": 2}'),
        DockerRunArtifactType.CHECKPOINT: ("selfsup_epoch_1.ckpt", b"\x00ckpt"),
        DockerRunArtifactType.MEMLOG: ("memlog.txt", b"mem"),
        DockerRunArtifactType.CORRUPTNESS_CHECK_INFORMATION: ("corrupt.json", b"{}"),
        DockerRunArtifactType.SEQUENCE_INFORMATION: ("sequences.json", b"[]"),
        DockerRunArtifactType.SELECTED_FILENAMES: ("selected.txt", b"a.png\nsub/b.png\n"),
    }
    run_id = ""

    def claim() -> None:
        nonlocal run_id
        claimed = worker.claim(worker_id)
        assert claimed is not None
        run_id = claimed.run.id

    def upload_all() -> None:
        for kind, (name, content) in files.items():
            path = tmp_path / "worker_out" / name
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(content)
            worker.upload_artifact(worker_id, run_id, path, kind)
        worker.append_log(worker_id, run_id, "step 1\nstep 2\n")

    steps = [
        claim,
        lambda: worker.set_state(worker_id, run_id, "TRAINING", "epoch 1/1"),
        lambda: worker.set_state(worker_id, run_id, "SAMPLING", "selecting"),
        upload_all,
        lambda: worker.set_state(worker_id, run_id, "COMPLETED", "selected 2 samples"),
    ]
    monkeypatch.setattr(client_module.time, "sleep", lambda _s: steps.pop(0)())
    infos = list(client.compute_worker_run_info_generator(scheduled_id, poll_interval=0))
    assert [(i.state, i.message) for i in infos] == [
        ("OPEN", infos[0].message),
        ("STARTED", "claimed by worker 'w'"),
        ("TRAINING", "epoch 1/1"),
        ("SAMPLING", "selecting"),
        ("COMPLETED", "selected 2 samples"),
    ]  # the upload step changed nothing visible, so nothing was yielded for it
    assert "Waiting for pickup" in infos[0].message
    assert infos[-1].ended_successfully()

    run = client.get_compute_worker_run_from_scheduled_run(scheduled_id)
    assert run.report_available
    assert [r.id for r in client.get_compute_worker_runs()] == [run.id]
    assert client.get_compute_worker_run(run.id) == run
    out = tmp_path / "downloads"
    client.download_compute_worker_run_report_pdf(run, out / "r.pdf")
    client.download_compute_worker_run_report_json(run, out / "r.json")
    client.download_compute_worker_run_checkpoint(run, out / "c.ckpt")
    client.download_compute_worker_run_log(run, out / "log.txt")
    client.download_compute_worker_run_memory_log(run, out / "mem.txt")
    client.download_compute_worker_run_corruptness_check_information(run, out / "cc.json")
    client.download_compute_worker_run_sequence_information(run, out / "seq.json")
    client.download_compute_worker_run_selected_filenames(run, out / "sel.txt")
    assert (out / "r.pdf").read_bytes() == b"%PDF-1.4"
    assert json.loads((out / "r.json").read_text()) == {"selected": 2}
    assert (out / "c.ckpt").read_bytes() == b"\x00ckpt"
    assert (out / "log.txt").read_text() == "step 1\nstep 2\n"
    assert (out / "sel.txt").read_bytes() == files[DockerRunArtifactType.SELECTED_FILENAMES][1]
    assert client.get_compute_worker_run_selected_filenames(run) == ["a.png", "sub/b.png"]
    client.download_compute_worker_run_artifacts(run, out / "all")
    assert sorted(p.name for p in (out / "all").iterdir()) == sorted(
        [name for name, _ in files.values()] + ["log.txt"]
    )
    assert client.get_compute_worker_run_checkpoint_url(run).endswith(
        f"/v1/runs/{run.id}/artifacts/{run.artifacts[2].id}"
    )


def test_run_info_covers_retries_cancel_and_unknown_ids(
    harness: ServerHarness, local_root: Path
) -> None:
    client = _client(harness, local_root)
    assert client.get_compute_worker_run_info("0" * 24).state == STATE_SCHEDULED_ID_NOT_FOUND
    waiting = client.schedule_compute_worker_run(worker_config=WORKER_CONFIG)
    client.cancel_scheduled_compute_worker_run(waiting)
    info = client.get_compute_worker_run_info(waiting)
    assert info == ComputeWorkerRunInfo(STATE_SCHEDULED_ID_NOT_FOUND, info.message)
    assert info.in_end_state()
    assert not info.ended_successfully()

    crashing = client.schedule_compute_worker_run(worker_config=WORKER_CONFIG)
    worker: WorkerApiClient = harness.worker_client(harness.token("alice"))
    worker_id = worker.register("w").id
    assert worker.claim(worker_id) is not None
    running = client.get_compute_worker_run_info(crashing)
    assert running.state == "STARTED"
    with pytest.raises(ValueError, match="still running"):
        running.ended_successfully()
    harness.clock.advance(harness.settings.lease_seconds + 1)
    harness.sweep()
    retry = client.get_compute_worker_run_info(crashing)
    assert retry.state == "OPEN"
    assert "Attempt 1 of 3 crashed" in retry.message
    with pytest.raises(ArtifactNotExist, match="no REPORT_PDF"):
        client.download_compute_worker_run_report_pdf(
            client.get_compute_worker_run_from_scheduled_run(crashing), "never.pdf"
        )
    with pytest.raises(ApiException) as exc_info:
        client.get_compute_worker_run("f" * 24)
    assert exc_info.value.status == 404
    assert "not found" in exc_info.value.message


def test_workers_are_registered_listed_and_deleted(harness: ServerHarness) -> None:
    client = harness.client(harness.token("alice"))
    worker_id = client.register_compute_worker("box", labels=["gpu"])
    assert client.register_compute_worker("box", labels=["cpu"]) == worker_id
    assert client.get_compute_worker_ids() == [worker_id]
    assert client.get_compute_workers()[0].labels == ["cpu"]
    client.delete_compute_worker(worker_id)
    assert client.get_compute_worker_ids() == []


def test_importing_the_client_does_not_import_torch() -> None:
    code = (
        "import selfsup.api\n"
        "from selfsup.openapi_generated.swagger_client.models.dataset_create_request "
        "import DatasetCreateRequest"
    )
    assert loaded_after(code, ["torch"]) == []
