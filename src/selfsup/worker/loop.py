"""The worker loop: claim a scheduled run, execute it with the curation pipeline, report.

One claimed run goes through::

    STARTED (set by the claim)
    LOADING_DATASET      materialise the INPUT datasource, fetch files named by the config
    CHECKING_CORRUPTNESS, TRAINING, EMBEDDING, SAMPLING, GENERATING_REPORT
                         reported by selfsup.curation.pipeline.run as each step starts
    UPLOADING_ARTIFACTS  the output folder to the LIGHTLY datasource (runs/<run_id>/), then
                         report.pdf, report.json, selected filenames, checkpoint, config
    UPLOADED_ARTIFACTS
    COMPLETED | FAILED (ConfigError / DataError / any error, with its message) | ABORTED

A heartbeat thread renews the lease every third of it and streams the log; a 409 from any
call means the server took the run back (lease expired: CRASHED), and the worker drops it.
An abort requested by the user takes effect at the start of the next pipeline step.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from selfsup.api import ApiException, WorkerApiClient
from selfsup.errors import ConfigError, DataError
from selfsup.openapi_generated.swagger_client.models import (
    DockerRunClaimData,
    DockerRunJobData,
)
from selfsup.openapi_generated.swagger_client.models.datasource_data import DatasourceAccessData
from selfsup.utils.atomic import atomic_write_text
from selfsup.worker import storage
from selfsup.worker.config import WorkerSettings

logger = logging.getLogger(__name__)

# Where a run's outputs go inside the LIGHTLY datasource (the layout of `selfsup run` below).
RUNS_FOLDER = "runs"


class RunLostError(Exception):
    """The server answered 409: the run ended or its lease ran out; stop working on it."""


class RunAbortedError(Exception):
    """The user cancelled the scheduled run while it was running."""


@dataclass
class _Lease:
    """State shared between the run thread and its heartbeat thread."""

    lost: threading.Event
    abort: threading.Event
    stop: threading.Event


class _LogStream(logging.Handler):
    """Buffers log records of one thread (the run's) for :meth:`drain`."""

    def __init__(self, thread_id: int) -> None:
        super().__init__(logging.INFO)
        self._thread_id = thread_id
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self._thread_id:
            return
        line = self.format(record)
        with self._lock:
            self._lines.append(line + "\n")

    def write(self, text: str) -> None:
        """Add a line written by the worker itself."""
        with self._lock:
            self._lines.append(text if text.endswith("\n") else text + "\n")

    def drain(self) -> str:
        with self._lock:
            text = "".join(self._lines)
            self._lines.clear()
        return text


def _is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and getattr(exc, "status", None) == 409


class Worker:
    """Claims and executes scheduled runs until stopped.

    Args:
        settings: the worker's settings.
        api: the client to talk through (default: one built from ``settings``).
    """

    def __init__(self, settings: WorkerSettings, api: WorkerApiClient | None = None) -> None:
        self.settings = settings
        self.api = api or WorkerApiClient(token=settings.token, base_url=settings.server_url)
        self.worker_id = settings.worker_id
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the loop to stop after the current run."""
        self._stop.set()

    def register(self) -> str:
        """The worker's id: the configured one, or the id of ``settings.name`` registered."""
        if not self.worker_id:
            entry = self.api.register(self.settings.name, labels=list(self.settings.labels))
            self.worker_id = entry.id
            logger.info("registered as worker %s (%s)", entry.id, self.settings.name)
        return self.worker_id

    def run_forever(self) -> int:
        """Poll and execute runs until ``max_runs``, ``max_idle_seconds`` or :meth:`stop`;
        returns the number of runs claimed."""
        self.register()
        claimed = 0
        idle_since = time.monotonic()
        while not self._stop.is_set():
            if self.settings.max_runs and claimed >= self.settings.max_runs:
                break
            if self.run_once():
                claimed += 1
                idle_since = time.monotonic()
                continue
            idle = time.monotonic() - idle_since
            if self.settings.max_idle_seconds and idle >= self.settings.max_idle_seconds:
                break
            self._stop.wait(self.settings.poll_interval)
        return claimed

    def run_once(self) -> bool:
        """Claim one run and execute it; False when there was nothing to claim."""
        claim = self.api.claim(self.register())
        if claim is None:
            return False
        self.execute(claim)
        return True

    def execute(self, claim: DockerRunClaimData) -> str:
        """Execute a claimed run; returns the end state reported (or ``LOST``)."""
        run_id = claim.run.id
        lease = _Lease(threading.Event(), threading.Event(), threading.Event())
        stream = _LogStream(threading.get_ident())
        logging.getLogger().addHandler(stream)
        # The run's log should hold the pipeline's progress messages; only selfsup's own
        # loggers are made more verbose (never less), and this is not undone, so two workers
        # in one process cannot race on it.
        package = logging.getLogger("selfsup")
        if package.getEffectiveLevel() > logging.INFO:
            package.setLevel(logging.INFO)
        interval = self.settings.heartbeat_interval or max(claim.lease_seconds / 3, 0.05)
        beat = threading.Thread(
            target=self._heartbeat,
            args=(run_id, interval, lease, stream),
            name=f"selfsup-heartbeat-{run_id}",
            daemon=True,
        )
        beat.start()
        work = self.settings.work_dir / "runs" / run_id
        end = "LOST"
        work.mkdir(parents=True, exist_ok=True)
        try:
            end = self._execute(claim, lease, stream, work)
        except RunLostError:
            logger.warning("run %s was taken back by the server (lease expired?)", run_id)
        finally:
            lease.stop.set()
            beat.join()
            logging.getLogger().removeHandler(stream)
            if not self.settings.keep_outputs:
                shutil.rmtree(work, ignore_errors=True)
        return end

    # --- one run

    def _call(self, lease: _Lease, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if lease.lost.is_set():
            raise RunLostError()
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            if _is_conflict(exc):
                lease.lost.set()
                raise RunLostError() from exc
            raise

    def _state(self, run_id: str, lease: _Lease, state: str, message: str = "") -> None:
        if lease.abort.is_set() and state not in ("ABORTED", "FAILED"):
            raise RunAbortedError()
        logger.info("state %s %s", state, message)
        self._call(lease, self.api.set_state, self.worker_id, run_id, state, message[:10_000])

    def _execute(
        self, claim: DockerRunClaimData, lease: _Lease, stream: _LogStream, work: Path
    ) -> str:
        from selfsup.curation.pipeline import run as run_pipeline

        run_id = claim.run.id
        stream.write(
            f"worker {self.settings.name} ({self.worker_id}) claimed run {run_id} of scheduled "
            f"run {claim.scheduled_run.id}, attempt {claim.run.attempt}"
        )
        try:
            job: DockerRunJobData = self._call(lease, self.api.get_job, self.worker_id, run_id)
            self._state(run_id, lease, "LOADING_DATASET")
            cfg, lightly_ds = self._prepare(job, work)
            config_file = work / "config.json"
            atomic_write_text(config_file, cfg.model_dump_json(indent=2))
            self._upload(run_id, lease, config_file, "CONFIG", "config.json")

            def on_step(state: str) -> None:
                # Each pipeline step is a point where an abort request takes effect.
                if lease.abort.is_set():
                    raise RunAbortedError()
                self._state(run_id, lease, state)

            result = run_pipeline(cfg, progress=False, on_step=on_step)
            out = result.output_dir
            if lease.abort.is_set():
                raise RunAbortedError()
            # GENERATING_REPORT comes after UPLOADING_DATASET in the documented order, so the
            # upload of the output folder is reported as part of the artifacts' upload.
            self._state(run_id, lease, "UPLOADING_ARTIFACTS")
            remote = storage.upload_folder(out, lightly_ds, f"{RUNS_FOLDER}/{run_id}")
            stream.write(f"outputs uploaded to {lightly_ds.type.value} {remote}")
            self._upload_outputs(run_id, lease, out)
            self._state(run_id, lease, "UPLOADED_ARTIFACTS")
            self._flush(run_id, stream)
            self._state(run_id, lease, "COMPLETED", f"{len(result.selected)} samples selected")
            return "COMPLETED"
        except RunLostError:
            raise
        except RunAbortedError:
            stream.write("aborted on the user's request")
            self._flush(run_id, stream)
            self._call(lease, self.api.set_state, self.worker_id, run_id, "ABORTED", "aborted")
            return "ABORTED"
        except Exception as exc:
            if isinstance(exc, ApiException) and _is_conflict(exc):
                raise RunLostError() from exc
            known = isinstance(exc, ConfigError | DataError)
            message = str(exc) if known else f"{type(exc).__name__}: {exc}"
            stream.write(f"run failed: {message}")
            if not known:
                stream.write(traceback.format_exc())
            self._flush(run_id, stream)
            self._call(lease, self.api.set_state, self.worker_id, run_id, "FAILED", message)
            return "FAILED"

    def _prepare(self, job: DockerRunJobData, work: Path) -> tuple[Any, DatasourceAccessData]:
        """The RunConfig of the job, with its datasources made local."""
        from selfsup.config import RunConfig

        input_ds = _datasource(job, ("INPUT", "INPUT_OUTPUT"), "INPUT")
        lightly_ds = _datasource(job, ("LIGHTLY", "INPUT_OUTPUT"), "LIGHTLY")
        input_dir = storage.materialise_input(input_ds, self.settings.work_dir / "cache")
        data: dict[str, Any] = dict(job.worker_config)
        if job.selection_config is not None:
            data["selection_config"] = job.selection_config
        lightly = dict(job.lightly_config)
        checkpoint = str(lightly.pop("checkpoint", "") or "")
        data["lightly"] = lightly
        relevant = str(data.get("relevant_filenames_file") or "")
        if relevant:
            data["relevant_filenames_file"] = str(
                storage.fetch_file(
                    lightly_ds, relevant, "relevant_filenames_file", work / "relevant_filenames.txt"
                )
            )
        if checkpoint:
            data["checkpoint"] = str(
                storage.fetch_file(
                    lightly_ds,
                    checkpoint,
                    "lightly_config.checkpoint",
                    work / "checkpoint" / Path(checkpoint).name,
                )
            )
        data.update(
            input_dir=str(input_dir),
            output_dir=str(work / "output"),
            umap=self.settings.umap,
            num_workers=self.settings.num_workers,
        )
        try:
            cfg = RunConfig.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(
                f"invalid config of the scheduled run at {where!r}: {first['msg']}"
            ) from None
        return cfg, lightly_ds

    def _upload(self, run_id: str, lease: _Lease, path: Path, kind: str, name: str) -> None:
        self._call(lease, self.api.upload_artifact, self.worker_id, run_id, path, kind, name)

    def _upload_outputs(self, run_id: str, lease: _Lease, out: Path) -> None:
        wanted = [
            (out / "report.pdf", "REPORT_PDF", "report.pdf"),
            (out / "report.json", "REPORT_JSON", "report.json"),
            (
                out / "filenames" / "sampled_filenames_excluding_datapool.txt",
                "SELECTED_FILENAMES",
                "sampled_filenames_excluding_datapool.txt",
            ),
            (out / "filenames" / "corrupt_filenames.txt", "OTHER", "corrupt_filenames.txt"),
            (out / "data" / "embeddings.csv", "EMBEDDINGS", "embeddings.csv"),
        ]
        wanted += [(p, "CHECKPOINT", p.name) for p in sorted(out.glob("*.ckpt"))]
        for path, kind, name in wanted:
            if path.is_file():
                self._upload(run_id, lease, path, kind, name)

    # --- heartbeat and log

    def _flush(self, run_id: str, stream: _LogStream) -> None:
        text = stream.drain()
        if not text:
            return
        try:
            self.api.append_log(self.worker_id, run_id, text)
        except ApiException as exc:
            # The log is best effort; a lost run's log cannot be appended any more.
            logger.warning("could not append to the log of run %s: %s", run_id, exc)

    def _heartbeat(self, run_id: str, interval: float, lease: _Lease, stream: _LogStream) -> None:
        while not lease.stop.wait(interval):
            try:
                answer = self.api.heartbeat(self.worker_id, run_id)
            except ApiException as exc:
                if _is_conflict(exc):
                    lease.lost.set()
                    return
                logger.warning("heartbeat of run %s failed: %s", run_id, exc)
                continue
            if answer.abort_requested:
                lease.abort.set()
            self._flush(run_id, stream)


def _datasource(
    job: DockerRunJobData, purposes: tuple[str, ...], name: str
) -> DatasourceAccessData:
    for purpose in purposes:
        for access in job.datasources:
            if access.purpose.value == purpose:
                return access
    raise ConfigError(
        f"dataset {job.dataset.name!r} has no {name} datasource: set one with "
        f"set_local_config/set_s3_config(..., purpose={name!r})"
    )
