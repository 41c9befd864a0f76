"""End to end: a live server, two workers and the API client on loopback.

Runs over a LOCAL datasource and over S3 (moto's S3 server on 127.0.0.1) complete, each
exactly once, and the client downloads their report and selected file names; a scheduled run
with a config the pipeline refuses ends FAILED with the reason in its log. Outages of the
API (every call failing with a connection error for a while) are ridden out while idle and
while a run holds its lease; a run whose lease ran out by the worker's own count is dropped.
The fault-injection suite (tests/faults/) does the same over real sockets.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from _s3 import local_s3
from selfsup.api import ApiWorkflowClient, WorkerApiClient
from selfsup.server.testing import LiveServer, ServerHarness
from selfsup.worker import Worker, WorkerSettings
from selfsup.worker.loop import RUNS_FOLDER
from worker._tiny import LIGHTLY_CONFIG, WORKER_CONFIG, job_data, local_dataset


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
            local_dataset(client, "local-images", local_input, roots / "lightly")
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

    roots = tmp_path / "roots"
    images = make_image_folder(n_classes=1, n_per_class=2, root=roots / "input")
    (roots / "lightly").mkdir()
    token = harness.token()
    client = harness.client(token)
    local_dataset(client, "refused", images, roots / "lightly")
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
    harness: ServerHarness,
    tmp_path: Path,
    make_image_folder: Callable[..., Path],
    roots: Path | None = None,
) -> tuple[ApiWorkflowClient, str, str]:
    """A scheduled run of alice over ``roots/input`` (8 images) into ``roots/lightly``
    (``roots`` defaults to ``tmp_path/roots``)."""

    roots = roots or tmp_path / "roots"
    images = make_image_folder(n_classes=2, n_per_class=4, root=roots / "input")
    (roots / "lightly").mkdir()
    token = harness.token()
    client = harness.client(token)
    local_dataset(client, "one", images, roots / "lightly")
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


def test_a_worker_the_server_forgot_registers_again(
    harness: ServerHarness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = harness.token()
    worker = Worker(_settings(token, "", tmp_path, "gpu-1"), api=harness.worker_client(token))
    old = worker.register()
    client = harness.client(token)
    client.delete_compute_worker(old)  # as after a server started on a new database
    with caplog.at_level(logging.WARNING, logger="selfsup.worker.loop"):
        assert not worker.run_once()
    assert worker.worker_id not in ("", old)
    assert client.get_compute_worker_ids() == [worker.worker_id]
    assert "registering 'gpu-1' again" in caplog.text


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


class OutageApi(WorkerApiClient):
    """The worker API in-process, with an outage: from the first call for which
    ``starts(name, detail)`` is true, every call fails with a connection error for ``seconds``
    (as ``selfsup.api._http`` reports a refused or reset connection). Records every call."""

    def __init__(
        self,
        harness: ServerHarness,
        token: str,
        starts: Callable[[str, str], bool],
        seconds: float,
    ) -> None:
        super().__init__(token=token, http_client=cast(httpx.Client, harness.http))
        self._starts = starts
        self._seconds = seconds
        self._lock = threading.Lock()
        self.down_from: float | None = None
        self.calls: list[tuple[str, str, bool, float]] = []  # name, detail, answered, when

    def _gate(self, name: str, detail: str = "") -> None:
        with self._lock:
            now = time.monotonic()
            if self.down_from is None and self._starts(name, detail):
                self.down_from = now
            down = self.down_from is not None and now < self.down_from + self._seconds
            self.calls.append((name, detail, not down, now))
        if down:
            raise ConnectionError(f"cannot reach the selfsup server (test outage): {name}")

    def succeeded(self, name: str, after: float) -> list[str]:
        """Details of the answered calls of ``name`` made after monotonic time ``after``."""
        return [d for n, d, ok, t in self.calls if n == name and ok and t > after]

    def failed(self, name: str) -> int:
        return sum(1 for n, _, ok, _ in self.calls if n == name and not ok)

    def register(self, name: str = "Default", labels: Any = None) -> Any:
        self._gate("register")
        return super().register(name, labels)

    def claim(self, worker_id: str) -> Any:
        self._gate("claim")
        return super().claim(worker_id)

    def get_job(self, worker_id: str, run_id: str) -> Any:
        self._gate("get_job")
        return super().get_job(worker_id, run_id)

    def set_state(self, worker_id: str, run_id: str, state: Any, message: str = "") -> Any:
        self._gate("set_state", str(state))
        return super().set_state(worker_id, run_id, state, message)

    def append_log(self, worker_id: str, run_id: str, text: str) -> None:
        self._gate("append_log")
        super().append_log(worker_id, run_id, text)

    def heartbeat(self, worker_id: str, run_id: str, timeout: float | None = None) -> Any:
        self._gate("heartbeat")
        return super().heartbeat(worker_id, run_id, timeout=timeout)

    def upload_artifact(self, worker_id: str, run_id: str, path: Any, *args: Any) -> Any:
        self._gate("upload_artifact", str(path))
        return super().upload_artifact(worker_id, run_id, path, *args)


def _fast_retries(**kw: Any) -> dict[str, Any]:
    return {"retry_base": 0.02, "retry_cap": 0.2, **kw}


def test_an_idle_worker_rides_out_a_server_it_cannot_reach(
    harness: ServerHarness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = harness.token()
    api = OutageApi(harness, token, starts=lambda name, _: name == "claim", seconds=0.5)
    settings = _settings(token, "", tmp_path, "idle", max_idle_seconds=1.0, **_fast_retries())
    worker = Worker(settings, api=api)
    with caplog.at_level(logging.WARNING, logger="selfsup.worker.loop"):
        assert worker.run_forever() == 0  # no exception: it waited for the server
    assert api.failed("claim") >= 2
    assert api.down_from is not None
    assert api.succeeded("claim", after=api.down_from + 0.5)
    retries = [r.getMessage() for r in caplog.records if "claim failed (attempt" in r.getMessage()]
    assert len(retries) == api.failed("claim")
    assert "ConnectionError: cannot reach the selfsup server" in retries[0]


def test_give_up_after_ends_an_idle_worker_with_the_last_error(
    harness: ServerHarness, tmp_path: Path
) -> None:
    from selfsup.api.retry import GaveUpError

    token = harness.token()
    api = OutageApi(harness, token, starts=lambda name, _: name == "register", seconds=60)
    settings = _settings(token, "", tmp_path, "gives-up", give_up_after=0.4, **_fast_retries())
    started = time.monotonic()
    with pytest.raises(GaveUpError, match=r"register: gave up after 0\.4 s .*test outage"):
        Worker(settings, api=api).run_forever()
    assert time.monotonic() - started < 5
    assert api.failed("register") >= 2


def test_stop_ends_the_wait_for_the_server_without_claiming(
    harness: ServerHarness, tmp_path: Path
) -> None:
    token = harness.token()
    api = OutageApi(harness, token, starts=lambda name, _: name == "claim", seconds=60)
    worker = Worker(_settings(token, "", tmp_path, "stopped", **_fast_retries()), api=api)
    returned: list[int] = []
    thread = threading.Thread(target=lambda: returned.append(worker.run_forever()))
    thread.start()
    deadline = time.monotonic() + 10
    while api.failed("claim") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert thread.is_alive()  # still waiting for the server
    worker.stop()
    thread.join(timeout=5)
    assert returned == [0]  # a normal end, not an exception
    assert api.failed("claim") >= 2
    assert api.succeeded("claim", after=0) == []


class QuickPipeline:
    """Stands in for the curation pipeline in tests of the worker's side: reports the steps
    through ``on_step``, spends ``pause[state]`` seconds (default 0.2) in each, runs
    ``hooks[state]`` inside it, and writes a small output folder. The fault-injection suite
    runs the real pipeline."""

    STATES = ("CHECKING_CORRUPTNESS", "TRAINING", "EMBEDDING", "SAMPLING", "GENERATING_REPORT")

    def __init__(self) -> None:
        self.started: list[str] = []
        self.pause: dict[str, float] = {}
        self.hooks: dict[str, Callable[[], None]] = {}

    def __call__(
        self, cfg: Any, overrides: Any = (), progress: bool = True, on_step: Any = None
    ) -> Any:
        from selfsup.curation.pipeline import RunResult

        out = Path(cfg.output_dir)
        for state in self.STATES:
            on_step(state)
            self.started.append(state)
            self.hooks.get(state, lambda: None)()
            time.sleep(self.pause.get(state, 0.2))
        (out / "filenames").mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text("{}")
        selected = out / "filenames" / "sampled_filenames_excluding_datapool.txt"
        selected.write_text("class_0/img_0_0.png\n")
        return RunResult(output_dir=out, selected=["class_0/img_0_0.png"], report={})


@pytest.fixture
def quick_pipeline(monkeypatch: pytest.MonkeyPatch) -> QuickPipeline:
    from selfsup.curation import pipeline

    fake = QuickPipeline()
    monkeypatch.setattr(pipeline, "run", fake)
    return fake


@pytest.fixture
def leased_harness(tmp_path: Path) -> Iterator[Callable[[float], ServerHarness]]:
    """``leased_harness(lease_seconds)``: a harness granting leases of that length."""
    made: list[ServerHarness] = []

    def make(lease_seconds: float) -> ServerHarness:
        roots = tmp_path / "roots"
        roots.mkdir()
        made.append(
            ServerHarness(
                f"sqlite:///{tmp_path / 'server.db'}",
                tmp_path / "data",
                (roots,),
                lease_seconds=lease_seconds,
            )
        )
        return made[-1]

    yield make
    for h in made:
        h.close()


def test_a_run_rides_out_an_outage_shorter_than_its_lease(
    tmp_path: Path,
    make_image_folder: Callable[..., Path],
    leased_harness: Callable[[float], ServerHarness],
    quick_pipeline: QuickPipeline,
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness = leased_harness(3)
    client, token, scheduled = _one_run(harness, tmp_path, make_image_folder)
    # The outage starts when the worker reports TRAINING (so that report must wait) and
    # lasts 1 s: heartbeats every 0.1 s fail meanwhile, a third of the 3 s lease.
    api = OutageApi(harness, token, lambda name, d: d == "TRAINING", seconds=1.0)
    settings = _settings(token, "", tmp_path, "w", heartbeat_interval=0.1, **_fast_retries())
    worker = Worker(settings, api=api)
    with caplog.at_level(logging.INFO, logger="selfsup.worker.loop"):
        assert worker.run_once()
    run = client.get_compute_worker_run_from_scheduled_run(scheduled)
    assert (run.state, run.attempt) == ("COMPLETED", 1), run.message
    assert quick_pipeline.started == list(QuickPipeline.STATES)
    assert api.down_from is not None
    back = api.down_from + 1.0
    assert api.failed("set_state") >= 2
    assert "TRAINING" in api.succeeded("set_state", after=back)
    assert api.failed("heartbeat") >= 2
    assert api.succeeded("heartbeat", after=back)  # the heartbeat thread lived on
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "heartbeat of run" in messages
    assert "state TRAINING of run" in messages
    log = tmp_path / "log.txt"
    client.download_compute_worker_run_log(run, log)
    assert "heartbeat renewed the lease again after" in log.read_text()


def _no_outputs_and_retried(
    harness: ServerHarness,
    client: ApiWorkflowClient,
    token: str,
    tmp_path: Path,
    scheduled: str,
    lost_run: str,
) -> None:
    """The lost run left nothing in the LIGHTLY datasource but its config artifact; once the
    server's lease ran out too, another worker completes the retry."""
    assert not (tmp_path / "roots" / "lightly" / RUNS_FOLDER).exists()
    names = {a.file_name for a in client.get_compute_worker_run(lost_run).artifacts}
    assert "config.json" in names
    assert names <= {"config.json", "log.txt"}
    harness.clock.advance(60)
    assert harness.sweep() == [lost_run]
    assert client.get_scheduled_compute_worker_run(scheduled).state == "OPEN"
    rescuer = Worker(
        _settings(token, "", tmp_path, "rescuer"),
        api=_PatientClaims(harness.worker_client(token)),  # type: ignore[arg-type]
    )
    assert rescuer.run_once()
    retry = client.get_compute_worker_run_from_scheduled_run(scheduled)
    assert (retry.state, retry.attempt) == ("COMPLETED", 2), retry.message


class _PatientClaims:
    """A worker client whose claims grant 60 s instead of the harness's 1 s lease.

    The server's clock is the harness's fake one, so its short lease never runs out while
    the rescuer works; only the worker's own count of real seconds could, when a busy
    machine (a full test run) starves its heartbeat thread for a second.
    """

    def __init__(self, api: Any) -> None:
        self._api = api

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    def claim(self, worker_id: str) -> Any:
        claim = self._api.claim(worker_id)
        return None if claim is None else claim.model_copy(update={"lease_seconds": 60.0})


def test_a_state_report_cut_off_for_longer_than_the_lease_stops_the_run(
    tmp_path: Path,
    make_image_folder: Callable[..., Path],
    leased_harness: Callable[[float], ServerHarness],
    quick_pipeline: QuickPipeline,
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness = leased_harness(1.5)
    client, token, scheduled = _one_run(harness, tmp_path, make_image_folder)
    api = OutageApi(harness, token, lambda name, d: d == "TRAINING", seconds=3600)
    settings = _settings(token, "", tmp_path, "cut", heartbeat_interval=0.1, **_fast_retries())
    worker = Worker(settings, api=api)
    claim = worker.api.claim(worker.register())
    assert claim is not None
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="selfsup.worker.loop"):
        assert worker.execute(claim) == "LOST"
    # It stopped on its own once the lease ran out by its count: the server (on a fake
    # clock here) never told it.
    assert time.monotonic() - started < 10
    assert "lease lost: no" in " ".join(r.getMessage() for r in caplog.records)
    assert quick_pipeline.started == ["CHECKING_CORRUPTNESS"]  # TRAINING never began
    _no_outputs_and_retried(harness, client, token, tmp_path, scheduled, claim.run.id)


@pytest.mark.slow
def test_heartbeats_cut_off_for_longer_than_the_lease_stop_the_run_at_the_next_step(
    tmp_path: Path,
    make_image_folder: Callable[..., Path],
    leased_harness: Callable[[float], ServerHarness],
    quick_pipeline: QuickPipeline,
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness = leased_harness(1.0)
    client, token, scheduled = _one_run(harness, tmp_path, make_image_folder)
    # The network goes while TRAINING runs (2 s, longer than the 1 s lease): only the
    # heartbeat thread sees it; the run must stop at the next step boundary.
    quick_pipeline.pause["TRAINING"] = 2.0
    api = OutageApi(
        harness,
        token,
        lambda name, _: name == "heartbeat" and quick_pipeline.started[-1:] == ["TRAINING"],
        seconds=3600,
    )
    settings = _settings(token, "", tmp_path, "cut", heartbeat_interval=0.1, **_fast_retries())
    worker = Worker(settings, api=api)
    with caplog.at_level(logging.WARNING, logger="selfsup.worker.loop"):
        assert worker.run_once()
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "lease lost: no heartbeat reached the server for 1 s" in messages
    assert quick_pipeline.started == ["CHECKING_CORRUPTNESS", "TRAINING"]
    assert "EMBEDDING" not in [d for n, d, _, _ in api.calls if n == "set_state"]
    lost = client.get_compute_worker_run_from_scheduled_run(scheduled)
    _no_outputs_and_retried(harness, client, token, tmp_path, scheduled, lost.id)


def test_the_pipeline_may_follow_links_only_into_the_datasource_roots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selfsup.openapi_generated.swagger_client.models import DockerRunJobData
    from selfsup.worker import storage

    roots = tmp_path / "roots"
    (roots / "input").mkdir(parents=True)

    def job(input_source: dict[str, Any]) -> DockerRunJobData:
        output = {
            "type": "LOCAL",
            "purpose": "LIGHTLY",
            "full_path": str(roots / "out"),
            "allowed_roots": [str(roots)],
        }
        return job_data(
            worker_config=WORKER_CONFIG,
            lightly_config=LIGHTLY_CONFIG,
            datasources=[input_source, output],
        )

    worker = Worker(_settings("t", "http://127.0.0.1:9", tmp_path, "prep"))
    local = {
        "type": "LOCAL",
        "purpose": "INPUT",
        "full_path": str(roots / "input"),
        "allowed_roots": [str(roots)],
    }
    cfg, _ = worker._prepare(job(local), tmp_path / "work")
    assert cfg.allowed_roots == [str(roots)]
    assert cfg.input_dir == str((roots / "input").resolve())

    cache = tmp_path / "work_prep" / "cache" / "abc"
    cache.mkdir(parents=True)
    monkeypatch.setattr(storage, "materialise_input", lambda access, cache_dir: cache)
    s3 = {"type": "S3", "purpose": "INPUT", "full_path": "s3://bucket/in/"}
    cfg, _ = worker._prepare(job(s3), tmp_path / "work")
    assert cfg.allowed_roots == [str(cache.resolve())]
    worker.api.close()


def test_a_full_disk_fails_the_run_with_the_file_and_no_traceback(
    harness: ServerHarness,
    tmp_path: Path,
    make_image_folder: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full (or read-only) work folder ends the run FAILED with the message `selfsup run`
    prints: the file that could not be written and the problem, without a traceback."""
    import errno

    import selfsup.curation.pipeline as pipeline

    def full_disk(*args: object, **kwargs: object) -> object:
        raise OSError(errno.ENOSPC, "No space left on device", "/work/out/report.json")

    monkeypatch.setattr(pipeline, "run", full_disk)
    roots = tmp_path / "roots"
    images = make_image_folder(n_classes=1, n_per_class=2, root=roots / "input")
    (roots / "lightly").mkdir()
    token = harness.token()
    client = harness.client(token)
    local_dataset(client, "full", images, roots / "lightly")
    scheduled = client.schedule_compute_worker_run(
        worker_config=WORKER_CONFIG, lightly_config=LIGHTLY_CONFIG
    )
    worker = Worker(_settings(token, "", tmp_path, "w"), api=harness.worker_client(token))
    assert worker.run_once()
    run = client.get_compute_worker_run_from_scheduled_run(scheduled)
    assert run.state == "FAILED"
    assert run.message.startswith(
        "cannot write /work/out/report.json: No space left on device (ENOSPC)"
    ), run.message
    log = tmp_path / "log.txt"
    client.download_compute_worker_run_log(run, log)
    assert "Traceback" not in log.read_text()


def test_a_job_refused_for_a_removed_root_fails_with_the_servers_message(
    tmp_path: Path, make_image_folder: Callable[..., Path]
) -> None:
    """The admin removed the user's LOCAL root after the job was scheduled: fetching the
    job answers 403 PATH_OUTSIDE_ROOTS, and the run ends FAILED with the server's message
    alone (no exception class, no traceback in the log), like a bad config."""
    from selfsup.server.roots import change_roots

    home = tmp_path / "home"
    harness = ServerHarness(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "data", ())
    try:

        def roots(add: tuple[Path, ...] = (), remove: tuple[Path, ...] = ()) -> None:
            with harness.app.state.sessions() as session:
                change_roots(session, "alice", [str(p) for p in add], [str(p) for p in remove], 0)
                session.commit()

        harness.token("alice")  # creates the user
        other = tmp_path / "other"
        other.mkdir()
        roots(add=(home, other))
        client, token, scheduled = _one_run(harness, tmp_path, make_image_folder, roots=home)
        roots(remove=(home,))
        worker = Worker(_settings(token, "", tmp_path, "w"), api=harness.worker_client(token))
        assert worker.run_once()
        run = client.get_compute_worker_run_from_scheduled_run(scheduled)
        assert run.state == "FAILED"
        input_dir = (home / "input").resolve()
        assert run.message.startswith(f"local path {str(input_dir)!r}"), run.message
        assert "is outside the allowed roots" in run.message
        assert "ApiException" not in run.message
        assert "403" not in run.message
        log = tmp_path / "log.txt"
        client.download_compute_worker_run_log(run, log)
        text = log.read_text()
        assert f"run failed: {run.message}" in text
        assert "Traceback" not in text
        assert not worker.run_once()  # FAILED is final: nothing is re-opened
    finally:
        harness.close()


class LostEndAnswerApi(WorkerApiClient):
    """The server commits the first end-state report but its answer never arrives (a
    connection error after the fact); the repeated report's 409 comes back with ``message``
    in place of the server's text and, if given, ``state`` as its end state."""

    def __init__(self, harness: ServerHarness, token: str, message: str, state: str = "") -> None:
        super().__init__(token=token, http_client=cast(httpx.Client, harness.http))
        self._message = message
        self._state = state
        self.lost: list[str] = []
        self.refused: list[tuple[int, str, dict[str, str]]] = []

    def set_state(self, worker_id: str, run_id: str, state: Any, message: str = "") -> Any:
        from selfsup.api._http import ServerApiException

        if state in ("COMPLETED", "FAILED", "ABORTED") and not self.lost:
            super().set_state(worker_id, run_id, state, message)
            self.lost.append(state)
            raise ConnectionError("the answer was lost (test)")
        try:
            return super().set_state(worker_id, run_id, state, message)
        except ServerApiException as exc:
            details = {**exc.details, **({"state": self._state} if self._state else {})}
            self.refused.append((exc.status, exc.code, details))
            raise ServerApiException(exc.status, exc.code, self._message, details) from None


@pytest.mark.parametrize(
    ("state", "end"),
    [("", "COMPLETED"), ("CRASHED", "LOST")],
    ids=["own-end-report", "ended-otherwise"],
)
def test_a_repeated_end_report_is_recognised_by_code_and_state_not_by_message(
    harness: ServerHarness,
    tmp_path: Path,
    make_image_folder: Callable[..., Path],
    quick_pipeline: QuickPipeline,
    state: str,
    end: str,
) -> None:
    client, token, scheduled = _one_run(harness, tmp_path, make_image_folder)
    api = LostEndAnswerApi(harness, token, message="the run is over", state=state)
    worker = Worker(_settings(token, "", tmp_path, "w", **_fast_retries()), api=api)
    claim = worker.api.claim(worker.register())
    assert claim is not None
    assert worker.execute(claim) == end
    assert api.lost == ["COMPLETED"]
    assert api.refused == [(409, "RUN_ENDED", {"state": state or "COMPLETED"})]
    run = client.get_compute_worker_run_from_scheduled_run(scheduled)
    assert run.state == "COMPLETED"  # the first report did get through


class PieceRecordingApi(OutageApi):
    """:class:`OutageApi` that also records the UTF-8 size of every log text the server
    accepted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.appended: list[int] = []

    def append_log(self, worker_id: str, run_id: str, text: str) -> None:
        super().append_log(worker_id, run_id, text)
        self.appended.append(len(text.encode("utf-8")))


def test_a_log_grown_past_the_body_limit_in_an_outage_arrives_in_pieces(
    tmp_path: Path,
    make_image_folder: Callable[..., Path],
    leased_harness: Callable[[float], ServerHarness],
    quick_pipeline: QuickPipeline,
) -> None:
    """An outage from the first log append on; meanwhile the run logs over 2 MiB (lines of
    multi-byte text, a 600 KiB line, a file name with an undecodable byte). Afterwards all
    of it reaches the server in order, in appends of at most 256 KiB: the server's body
    limit (1 MiB) never refuses one."""
    from selfsup.api.worker_client import LOG_PIECE_BYTES

    harness = leased_harness(3)
    client, token, scheduled = _one_run(harness, tmp_path, make_image_folder)
    flood = logging.getLogger("selfsup.curation.flood")
    line_text = "0123456789 ab € 😀 " * 50  # 1,150 bytes of UTF-8 a line
    long_line = "€😀x" * (600 * 1024 // 8)  # 600 KiB in one line
    n_lines = 2 * 1024 * 1024 // len(line_text.encode()) + 10

    def log_a_lot() -> None:
        for i in range(n_lines):
            flood.info("flood %06d %s", i, line_text)
        flood.info("long %s end", long_line)
        flood.info("odd name caf\udce9.png")

    quick_pipeline.hooks["CHECKING_CORRUPTNESS"] = log_a_lot
    api = PieceRecordingApi(harness, token, lambda name, _: name == "append_log", seconds=1.0)
    settings = _settings(token, "", tmp_path, "w", heartbeat_interval=0.1, **_fast_retries())
    assert Worker(settings, api=api).run_once()
    run = client.get_compute_worker_run_from_scheduled_run(scheduled)
    assert run.state == "COMPLETED", run.message
    assert api.failed("append_log") >= 1  # the outage held the log back
    assert sum(api.appended) > 2 * 1024 * 1024
    assert max(api.appended) <= LOG_PIECE_BYTES
    log = tmp_path / "log.txt"
    client.download_compute_worker_run_log(run, log)
    text = log.read_text(encoding="utf-8")
    numbers = [int(line.split("flood ")[1][:6]) for line in text.splitlines() if "flood " in line]
    assert numbers == list(range(n_lines))  # every line once, in order
    assert all(line.endswith(line_text) for line in text.splitlines() if "flood " in line)
    assert f"long {long_line} end\n" in text
    assert "odd name caf\\xe9.png" in text
    assert text.index("odd name") > text.index("long ") > text.index(f"flood {n_lines - 1:06d}")


class SlowHeartbeatAppendApi(WorkerApiClient):
    """Log appends from the heartbeat thread take ``delay`` seconds each (a slow link), so
    the run thread reaches its final log flush while the heartbeat is still sending."""

    def __init__(self, harness: ServerHarness, token: str, delay: float) -> None:
        super().__init__(token=token, http_client=cast(httpx.Client, harness.http))
        self._delay = delay

    def append_log(self, worker_id: str, run_id: str, text: str) -> None:
        if threading.current_thread().name.startswith("selfsup-heartbeat"):
            time.sleep(self._delay)
        super().append_log(worker_id, run_id, text)


def test_log_pieces_keep_their_order_when_the_final_flush_meets_a_slow_heartbeat(
    harness: ServerHarness,
    tmp_path: Path,
    make_image_folder: Callable[..., Path],
    quick_pipeline: QuickPipeline,
) -> None:
    client, token, scheduled = _one_run(harness, tmp_path, make_image_folder)
    flood = logging.getLogger("selfsup.curation.flood")
    quick_pipeline.pause["GENERATING_REPORT"] = 0.3  # the heartbeat drains the flood here

    def log_a_lot() -> None:
        for i in range(1200):
            flood.info("flood %05d %s", i, "y" * 1000)  # about 1.2 MB: 5 pieces

    quick_pipeline.hooks["GENERATING_REPORT"] = log_a_lot
    api = SlowHeartbeatAppendApi(harness, token, delay=0.3)
    settings = _settings(token, "", tmp_path, "w", heartbeat_interval=0.1)
    assert Worker(settings, api=api).run_once()
    run = client.get_compute_worker_run_from_scheduled_run(scheduled)
    assert run.state == "COMPLETED", run.message
    log = tmp_path / "log.txt"
    client.download_compute_worker_run_log(run, log)
    lines = log.read_text().splitlines()
    numbers = [int(line.split("flood ")[1][:5]) for line in lines if "flood " in line]
    assert numbers == list(range(1200))
    last_flood = max(i for i, line in enumerate(lines) if "flood " in line)
    uploading = min(i for i, line in enumerate(lines) if "state UPLOADING_ARTIFACTS" in line)
    assert last_flood < uploading, "text logged later was appended before the flood's end"


def _tag(harness: ServerHarness, scheduled_id: str, tag: str, names: list[str]) -> None:
    """Tag ``names`` of the job ``scheduled_id`` as the web app of ``selfsup serve`` does."""
    from sqlalchemy import select

    from selfsup.apphelpers.web_backend import Viewer
    from selfsup.server.models import ScheduledRun
    from selfsup.server.web_backend import ServerBackend
    from selfsup.web.backend import RunViewOpener

    with harness.app.state.sessions() as session:
        user_id = session.scalars(
            select(ScheduledRun.user_id).where(ScheduledRun.id == scheduled_id)
        ).one()
    backend = ServerBackend(harness.app.state.sessions, harness.settings, RunViewOpener())
    viewer = Viewer(user_id=user_id, name="alice", session_id="test")
    assert backend.tag(viewer, scheduled_id, names, tag) == len(names)


@pytest.mark.slow
def test_a_scheduled_run_queries_the_tags_of_an_earlier_run_kept_by_the_server(
    harness: ServerHarness, tmp_path: Path, make_image_folder: Callable[..., Path]
) -> None:
    from selfsup.openapi_generated.swagger_client.rest import ApiException

    roots = tmp_path / "roots"
    images = make_image_folder(n_classes=2, n_per_class=4, root=roots / "input")
    (roots / "lightly").mkdir()
    names = sorted(p.relative_to(images).as_posix() for p in images.rglob("*.png"))
    tagged = [names[1], names[6]]
    token = harness.token()
    with LiveServer(harness.app) as live:
        client = ApiWorkflowClient(token=token, base_url=live.url)
        local_dataset(client, "tagged", images, roots / "lightly")
        # The earlier run whose samples were tagged in the web app (it need not have run).
        first = client.schedule_compute_worker_run(
            worker_config=WORKER_CONFIG, lightly_config=LIGHTLY_CONFIG
        )
        client.cancel_scheduled_compute_worker_run(first)
        _tag(harness, first, "keepers", tagged)

        def selection(tag: str, run: str | None) -> dict[str, Any]:
            query: dict[str, Any] = {"tag": tag, **({"run": run} if run is not None else {})}
            return {
                "n_samples": 3,
                "strategies": [
                    {
                        "input": {"type": "EMBEDDINGS", "query": query},
                        "strategy": {"type": "SIMILARITY"},
                    }
                ],
            }

        # Refused when scheduled, naming the tag and listing the run's tags.
        for tag, ref, expected in (
            ("cats", first, f"run {first!r} has no sample tagged 'cats'; its tags: keepers (2)"),
            ("keepers", "nope", "'nope' is no run of yours on this server"),
            ("keepers", None, "tag 'keepers' names no run"),
        ):
            with pytest.raises(ApiException) as info:
                client.schedule_compute_worker_run(
                    worker_config={},
                    lightly_config=LIGHTLY_CONFIG,
                    selection_config=selection(tag, ref),
                )
            assert info.value.status == 400
            assert expected in str(info.value)

        second = client.schedule_compute_worker_run(
            worker_config={},
            lightly_config=LIGHTLY_CONFIG,
            selection_config=selection("keepers", first),
        )
        worker = Worker(_settings(token, live.url, tmp_path, "w1"))
        assert worker.run_once()
        run = client.get_compute_worker_run_from_scheduled_run(second)
        assert run.state == "COMPLETED", run.message
        report_path = tmp_path / "report.json"
        client.download_compute_worker_run_report_json(run, report_path)
        queries = json.loads(report_path.read_text())["job"]["extra"]["queries"]
        # The run recorded the set it used: the tagged names and the server run they came from.
        assert queries[0]["names"] == tagged
        assert queries[0]["where"] == "input"
        assert queries[0]["source"].startswith("tag keepers of run ")
        assert queries[0]["source"].endswith(f"/server_tags/{first}")
        log = tmp_path / "run.log"
        client.download_compute_worker_run_log(run, log)
        assert f"query tag 'keepers' of run {first} on the server" in log.read_text()
        # Each selected sample is nearest to a query first: the queries themselves come first.
        selected = client.get_compute_worker_run_selected_filenames(run)
        assert set(selected[:2]) == set(tagged)


def test_server_tags_become_a_tags_file_and_a_tag_gone_since_fails_naming_the_run_tags(
    tmp_path: Path,
) -> None:
    from selfsup.errors import ConfigError
    from selfsup.openapi_generated.swagger_client.models import (
        DockerRunJobTagData,
    )
    from selfsup.runfolder import RunFolder
    from selfsup.worker.loop import SERVER_TAGS_DIR, _server_tags

    query = {"tag": "keep", "run": "r1"}
    selection = {
        "n_samples": 2,
        "strategies": [
            {"input": {"type": "EMBEDDINGS", "query": query}, "strategy": {"type": "SIMILARITY"}}
        ],
    }
    gone = DockerRunJobTagData(run="r1", scheduled_run_id="s1", tag="keep", known_tags=["drop"])
    job = job_data(
        run_id="r2", scheduled_run_id="s2", selection_config=selection, tags=[gone.model_dump()]
    )
    with pytest.raises(ConfigError, match=r"'r1' is tagged 'keep' any more.*its tags: drop"):
        _server_tags(job, tmp_path)
    tagged = gone.model_copy(update={"names": ["a/x.png", "b/y.png"]})
    resolved, roots = _server_tags(job.model_copy(update={"tags": [tagged]}), tmp_path)
    folder = tmp_path / SERVER_TAGS_DIR / "s1"
    assert resolved["strategies"][0]["input"]["query"] == {"tag": "keep", "run": str(folder)}
    assert roots == [str(tmp_path / SERVER_TAGS_DIR)]
    assert RunFolder(folder).read_tags() == {"keep": ["a/x.png", "b/y.png"]}
    assert query == {"tag": "keep", "run": "r1"}  # the job's own config is left as it came


def test_server_tags_as_preselected_and_excluded_read_the_tags_file(tmp_path: Path) -> None:
    from selfsup.openapi_generated.swagger_client.models import (
        DockerRunJobTagData,
    )
    from selfsup.worker.loop import SERVER_TAGS_DIR, _server_tags

    selection = {
        "n_samples": 2,
        "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}],
        "preselected": [{"tag": "keep", "run": "r1"}, {"samples": ["c.png"]}],
        "excluded": [{"tag": "drop", "run": "r1"}],
    }
    tags = [
        DockerRunJobTagData(run="r1", scheduled_run_id="s1", tag=tag, names=[name])
        for tag, name in (("keep", "a.png"), ("drop", "b.png"))
    ]
    job = job_data(
        run_id="r2",
        scheduled_run_id="s2",
        selection_config=selection,
        tags=[t.model_dump() for t in tags],
    )
    resolved, _ = _server_tags(job, tmp_path)
    folder = str(tmp_path / SERVER_TAGS_DIR / "s1")
    assert resolved["preselected"] == [{"tag": "keep", "run": folder}, {"samples": ["c.png"]}]
    assert resolved["excluded"] == [{"tag": "drop", "run": folder}]
    assert selection["excluded"] == [{"tag": "drop", "run": "r1"}]  # the job's own is kept


@pytest.mark.slow
def test_a_scheduled_run_excludes_the_tags_of_an_earlier_run_kept_by_the_server(
    harness: ServerHarness, tmp_path: Path, make_image_folder: Callable[..., Path]
) -> None:

    roots = tmp_path / "roots"
    images = make_image_folder(n_classes=2, n_per_class=3, root=roots / "input")
    (roots / "lightly").mkdir()
    names = sorted(p.relative_to(images).as_posix() for p in images.rglob("*.png"))
    dropped = [names[0], names[4]]
    token = harness.token()
    with LiveServer(harness.app) as live:
        client = ApiWorkflowClient(token=token, base_url=live.url)
        local_dataset(client, "excluded", images, roots / "lightly")
        first = client.schedule_compute_worker_run(
            worker_config=WORKER_CONFIG, lightly_config=LIGHTLY_CONFIG
        )
        client.cancel_scheduled_compute_worker_run(first)
        _tag(harness, first, "junk", dropped)
        # Select everything but what the earlier run's tag excludes.
        second = client.schedule_compute_worker_run(
            worker_config={},
            lightly_config=LIGHTLY_CONFIG,
            selection_config={
                "n_samples": len(names),
                "strategies": [
                    {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}
                ],
                "excluded": [{"tag": "junk", "run": first}],
            },
        )
        assert Worker(_settings(token, live.url, tmp_path, "w1")).run_once()
        run = client.get_compute_worker_run_from_scheduled_run(second)
        assert run.state == "COMPLETED", run.message
        selected = client.get_compute_worker_run_selected_filenames(run)
        assert sorted(selected) == sorted(set(names) - set(dropped))
        report_path = tmp_path / "report.json"
        client.download_compute_worker_run_report_json(run, report_path)
        inputs = json.loads(report_path.read_text())["job"]["extra"]["selection_inputs"]
        assert inputs["n_excluded"] == 2
        assert inputs["excluded"][0]["names"] == dropped
