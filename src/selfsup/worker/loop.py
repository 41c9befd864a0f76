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

Outages: every call is retried through :func:`selfsup.api.retry.call_with_retry` (connection
errors, timeouts, 502/503/504, and 500 on calls safe to repeat). While idle (register,
claim) the worker retries until ``give_up_after``; while it holds a run, a failed heartbeat
is retried sooner than the interval and the run thread's calls wait and retry, as long as
the lease can still be valid. The worker keeps its own account of the lease (the send time of
the last successful renewal + ``lease_seconds``): once that has passed, the server has
certainly taken the run back, so the worker stops the run at the next step boundary, uploads
nothing more, and goes back to claiming, without needing to reach the server to learn it.
"""

from __future__ import annotations

import copy
import functools
import logging
import shutil
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from selfsup.api import ApiException, WorkerApiClient
from selfsup.api._http import error_detail
from selfsup.api.retry import RetryPolicy, RetryStoppedError, call_with_retry, describe
from selfsup.api.worker_client import log_pieces, sendable_log_text
from selfsup.config.run_configs import changed_lightly_config
from selfsup.errors import ConfigError, DataError
from selfsup.openapi_generated.swagger_client.models import (
    DockerRunClaimData,
    DockerRunJobData,
)
from selfsup.openapi_generated.swagger_client.models.datasource_data import DatasourceAccessData
from selfsup.openapi_generated.swagger_client.models.docker_run_state import END_STATES
from selfsup.runfolder import RunFolder
from selfsup.utils.atomic import atomic_write_text, describe_storage_error
from selfsup.worker import storage
from selfsup.worker.config import WorkerSettings

logger = logging.getLogger(__name__)

# Where a run's outputs go inside the LIGHTLY datasource (the layout of `selfsup run` below).
RUNS_FOLDER = "runs"

T = TypeVar("T")

# What a call of the server can raise: an error answer, no answer (connection refused, reset,
# timeout), or an answer that is not what the API promises (e.g. a proxy's HTML page:
# ValueError from the JSON or model parser).
_CALL_ERRORS = (ApiException, ConnectionError, ValueError)

# Answers in which the server refuses a request of the run and says why (a LOCAL folder no
# longer inside the owner's roots: 403 PATH_OUTSIDE_ROOTS; a value it cannot use; a body over
# its limit): the run ends FAILED with the server's message, like a ConfigError.
_REFUSALS = frozenset({400, 403, 413, 422})

# Log pieces (of at most LOG_PIECE_BYTES) the heartbeat thread sends per beat, so that a large
# backlog after an outage cannot hold the next heartbeat back for long; the rest follows
# with the next beats and all of it before the run's end state.
_LOG_PIECES_PER_BEAT = 8


class RunLostError(Exception):
    """The server answered 409: the run ended or its lease ran out; stop working on it."""


class RunAbortedError(Exception):
    """The user cancelled the scheduled run while it was running."""


class _StopRequestedError(Exception):
    """:meth:`Worker.stop` was called while the worker waited for the server."""


@dataclass
class _Lease:
    """State shared between the run thread and its heartbeat thread.

    ``renewed_at`` is the ``time.monotonic()`` at which the last request that renewed the lease
    (claim, heartbeat, state report) was *sent*: the server started the new lease no earlier,
    so ``renewed_at + seconds`` is a safe local bound of when the server takes the run back.
    """

    run_id: str
    seconds: float
    renewed_at: float
    lost: threading.Event = field(default_factory=threading.Event)
    abort: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def renewed(self, sent_at: float) -> None:
        """Record a successful renewal sent at ``sent_at`` (monotonic seconds)."""
        with self._lock:
            self.renewed_at = max(self.renewed_at, sent_at)

    def remaining(self) -> float:
        """Seconds until the lease surely ran out on the server (negative: it has)."""
        with self._lock:
            return self.renewed_at + self.seconds - time.monotonic()


class _LogStream(logging.Handler):
    """Buffers log records of one thread (the run's) for :meth:`drain`.

    ``sending`` is held by whoever is sending drained text (the heartbeat thread, or the run
    thread's final flush), so that text drained later never overtakes text drained earlier
    and text put back with :meth:`restore` is sent before anything newer.
    """

    def __init__(self, thread_id: int) -> None:
        super().__init__(logging.INFO)
        self._thread_id = thread_id
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self.sending = threading.Lock()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self._thread_id:
            return
        line = sendable_log_text(self.format(record))
        with self._lock:
            self._lines.append(line + "\n")

    def write(self, text: str) -> None:
        """Add a line written by the worker itself."""
        text = sendable_log_text(text)
        with self._lock:
            self._lines.append(text if text.endswith("\n") else text + "\n")

    def drain(self) -> str:
        """Take the buffered text (put it back with :meth:`restore` if it could not be sent)."""
        with self._lock:
            text = "".join(self._lines)
            self._lines.clear()
        return text

    def restore(self, text: str) -> None:
        """Put text taken by :meth:`drain` back in front, to be sent with the next append."""
        with self._lock:
            self._lines.insert(0, text)


def _is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and getattr(exc, "status", None) == 409


def _failure(exc: Exception) -> tuple[str, bool]:
    """The message a run that raised ``exc`` ends FAILED with, and whether the error is a
    known one (said in that message alone, without a traceback in the log): a bad config or
    input, a request of the run the server refused (the server's own message, e.g. 403
    ``PATH_OUTSIDE_ROOTS`` naming the folder and the allowed roots), or a full or read-only
    disk (naming the file that could not be written)."""
    if isinstance(exc, ConfigError | DataError):
        return str(exc), True
    if isinstance(exc, ApiException) and exc.status in _REFUSALS:
        return exc.message, True
    if isinstance(exc, OSError) and (storage := describe_storage_error(exc)) is not None:
        # A full or read-only work folder reads as it does for `selfsup run`.
        return storage, True
    return f"{type(exc).__name__}: {exc}", False


class Worker:
    """Claims and executes scheduled runs until stopped.

    Args:
        settings: the worker's settings.
        api: the client to talk through (default: one built from ``settings``).
    """

    def __init__(self, settings: WorkerSettings, api: WorkerApiClient | None = None) -> None:
        self.settings = settings
        self.api = api or WorkerApiClient(
            token=settings.token, base_url=settings.server_url, timeout=settings.request_timeout
        )
        self.worker_id = settings.worker_id
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the loop to stop after the current run (also ends a wait for the server)."""
        self._stop.set()

    # --- idle: register and claim

    def _idle_call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn`` retried with the settings' policy until it succeeds, ``give_up_after``
        passes (:class:`~selfsup.api.retry.GaveUpError`) or :meth:`stop` is called."""
        try:
            return call_with_retry(
                fn,
                policy=self.settings.retry_policy,
                what=what,
                should_stop=self._stop.is_set,
                sleep=self._stop.wait,
                log=logger,
            )
        except RetryStoppedError:
            raise _StopRequestedError() from None

    def register(self) -> str:
        """The worker's id: the configured one, or the id of ``settings.name`` registered.

        Registering is idempotent per name, so it is retried like any call safe to repeat."""
        if not self.worker_id:
            entry = self._idle_call(
                "register",
                lambda: self.api.register(self.settings.name, labels=list(self.settings.labels)),
            )
            self.worker_id = entry.id
            logger.info("registered as worker %s (%s)", entry.id, self.settings.name)
        return self.worker_id

    def run_forever(self) -> int:
        """Poll and execute runs until ``max_runs``, ``max_idle_seconds`` or :meth:`stop`;
        returns the number of runs claimed.

        Raises:
            GaveUpError: the server stayed unreachable for ``give_up_after`` seconds.
        """
        claimed = 0
        try:
            self.register()
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
        except _StopRequestedError:
            logger.info("worker %s stopped while waiting for the server", self.settings.name)
        return claimed

    def run_once(self) -> bool:
        """Claim one run and execute it; False when there was nothing to claim.

        A claim is retried through outages. That is safe: the server gives each scheduled run
        to exactly one worker, and a claim whose answer was lost leaves a run nobody
        heartbeats, which the server marks CRASHED after one lease and re-opens (it costs
        one of the job's attempts, never a second concurrent run).

        A worker registered by name that the server no longer knows (404, e.g. a server
        started on a new database) registers again.

        Raises:
            GaveUpError: the server stayed unreachable for ``give_up_after`` seconds.
            ApiException: the server refused the claim (e.g. 401 for a revoked token).
        """
        sent_at = 0.0

        def claim() -> DockerRunClaimData | None:
            nonlocal sent_at
            sent_at = time.monotonic()
            return self.api.claim(self.worker_id)

        try:
            self.register()
            try:
                claim_data = self._idle_call("claim", claim)
            except ApiException as exc:
                if exc.status != 404 or self.settings.worker_id:
                    raise
                logger.warning(
                    "the server does not know worker %s any more (%s); registering %r again",
                    self.worker_id,
                    exc,
                    self.settings.name,
                )
                self.worker_id = ""
                self.register()
                claim_data = self._idle_call("claim", claim)
        except _StopRequestedError:
            return False
        if claim_data is None:
            return False
        self.execute(claim_data, claimed_at=sent_at)
        return True

    # --- one run

    def execute(self, claim: DockerRunClaimData, claimed_at: float | None = None) -> str:
        """Execute a claimed run; returns the end state reported (or ``LOST``).

        ``claimed_at``: ``time.monotonic()`` when the claim was sent, the start of the lease
        as the worker counts it (default: now).
        """
        run_id = claim.run.id
        lease = _Lease(
            run_id=run_id,
            seconds=float(claim.lease_seconds),
            renewed_at=time.monotonic() if claimed_at is None else claimed_at,
        )
        stream = _LogStream(threading.get_ident())
        logging.getLogger().addHandler(stream)
        # The run's log should hold the pipeline's progress messages; only selfsup's own
        # loggers are made more verbose (never less), and this is not undone, so two workers
        # in one process cannot race on it.
        package = logging.getLogger("selfsup")
        if package.getEffectiveLevel() > logging.INFO:
            package.setLevel(logging.INFO)
        interval = self.settings.heartbeat_interval or max(claim.lease_seconds / 3, 0.05)
        # Within a run, retries must come sooner than the next heartbeat is due: the lease,
        # not give_up_after, bounds how long they go on.
        policy = RetryPolicy(
            base=min(self.settings.retry_base, interval / 2),
            cap=min(self.settings.retry_cap, interval / 2),
        )
        beat = threading.Thread(
            target=self._heartbeat,
            args=(lease, interval, policy, stream),
            name=f"selfsup-heartbeat-{run_id}",
            daemon=True,
        )
        beat.start()
        work = self.settings.work_dir / "runs" / run_id
        end = "LOST"
        work.mkdir(parents=True, exist_ok=True)
        try:
            end = self._execute(claim, lease, policy, stream, work)
        except RunLostError:
            logger.warning(
                "run %s: stopped working on it; the server has taken it back (CRASHED) and "
                "will give it to a worker again while attempts remain",
                run_id,
            )
        finally:
            lease.stop.set()
            beat.join()
            logging.getLogger().removeHandler(stream)
            if not self.settings.keep_outputs:
                shutil.rmtree(work, ignore_errors=True)
        return end

    def _lose(self, lease: _Lease, reason: str) -> None:
        """Mark the lease lost (once), saying why."""
        if not lease.lost.is_set():
            logger.warning("run %s: lease lost: %s; stopping work on it", lease.run_id, reason)
            lease.lost.set()

    def _ensure_held(self, lease: _Lease) -> None:
        """Raise :class:`RunLostError` when the lease is lost or ran out by the worker's own
        count (so the worker stops even while it cannot reach the server)."""
        if not lease.lost.is_set() and lease.remaining() < 0:
            self._lose(
                lease,
                f"no renewal reached the server for {lease.seconds:g} s (the lease), so the "
                "server has marked the run CRASHED",
            )
        if lease.lost.is_set():
            raise RunLostError()

    def _call(
        self,
        lease: _Lease,
        policy: RetryPolicy,
        what: str,
        fn: Callable[[], T],
        *,
        idempotent: bool = True,
        renews: bool = False,
        done_on_conflict: Callable[[ApiException], bool] | None = None,
    ) -> T | None:
        """``fn`` for the held run, retried through outages while the lease can be valid.

        Args:
            renews: a success renews the lease (state reports do).
            done_on_conflict: for a call that was sent more than once, whether a 409 means
                that an earlier attempt succeeded though its answer was lost (then None is
                returned).

        Raises:
            RunLostError: 409 from the server, or the lease ran out by the worker's count.
        """
        attempts = 0
        sent_at = 0.0

        def attempt() -> T:
            nonlocal attempts, sent_at
            self._ensure_held(lease)
            attempts += 1
            sent_at = time.monotonic()
            return fn()

        try:
            result = call_with_retry(
                attempt,
                policy=policy,
                what=f"{what} of run {lease.run_id}",
                idempotent=idempotent,
                should_stop=lambda: lease.lost.is_set() or lease.remaining() < 0,
                max_wait=lease.remaining,
                sleep=lease.lost.wait,
                log=logger,
            )
        except RetryStoppedError:
            self._ensure_held(lease)
            raise  # unreachable: should_stop is only true when the lease is gone
        except ApiException as exc:
            if not _is_conflict(exc):
                raise
            if attempts > 1 and done_on_conflict is not None and done_on_conflict(exc):
                logger.info("%s of run %s: an earlier attempt got through", what, lease.run_id)
                return None
            self._lose(lease, f"the server answered {exc}")
            raise RunLostError() from exc
        if renews:
            lease.renewed(sent_at)
        return result

    def _state(
        self,
        lease: _Lease,
        policy: RetryPolicy,
        state: str,
        message: str = "",
    ) -> None:
        if lease.abort.is_set() and state not in ("ABORTED", "FAILED"):
            raise RunAbortedError()
        logger.info("state %s %s", state, message)
        ending = state in END_STATES
        if ending:
            # No heartbeat may cross the end state: the server would answer it 409 (run
            # ended) and the worker would log a lost lease for a run that ended well. The
            # report itself is retried against the lease like any other call.
            lease.stop.set()

        def already(exc: ApiException) -> bool:
            # The server commits an end state, then answers; when that answer was lost, the
            # repeated report is refused (409 RUN_ENDED) because the run already ended in
            # that very state.
            return exc.code == "RUN_ENDED" and error_detail(exc, "state") == state

        self._call(
            lease,
            policy,
            f"state {state}",
            lambda: self.api.set_state(self.worker_id, lease.run_id, state, message[:10_000]),
            renews=not ending,
            done_on_conflict=already if ending else None,
        )

    def _execute(
        self,
        claim: DockerRunClaimData,
        lease: _Lease,
        policy: RetryPolicy,
        stream: _LogStream,
        work: Path,
    ) -> str:
        from selfsup.curation.pipeline import run as run_pipeline

        run_id = claim.run.id
        stream.write(
            f"worker {self.settings.name} ({self.worker_id}) claimed run {run_id} of scheduled "
            f"run {claim.scheduled_run.id}, attempt {claim.run.attempt}"
        )
        try:
            job = self._call(
                lease, policy, "get_job", lambda: self.api.get_job(self.worker_id, run_id)
            )
            assert job is not None  # only calls with done_on_conflict may return None
            self._state(lease, policy, "LOADING_DATASET")
            cfg, lightly_ds = self._prepare(job, work)
            config_file = work / "config.json"
            atomic_write_text(config_file, cfg.model_dump_json(indent=2))
            self._upload(lease, policy, config_file, "CONFIG", "config.json")

            def on_step(state: str) -> None:
                # Each pipeline step is where an abort request or a lost lease takes effect.
                self._ensure_held(lease)
                if lease.abort.is_set():
                    raise RunAbortedError()
                self._state(lease, policy, state)

            result = run_pipeline(cfg, progress=False, on_step=on_step)
            out = result.output_dir
            self._ensure_held(lease)
            if lease.abort.is_set():
                raise RunAbortedError()
            # GENERATING_REPORT comes after UPLOADING_DATASET in the documented order, so the
            # upload of the output folder is reported as part of the artifacts' upload.
            self._state(lease, policy, "UPLOADING_ARTIFACTS")
            remote = storage.upload_folder(
                out,
                lightly_ds,
                f"{RUNS_FOLDER}/{run_id}",
                source_roots=[Path(r) for r in cfg.allowed_roots],
                check=lambda: self._ensure_held(lease),
            )
            stream.write(f"outputs uploaded to {lightly_ds.type.value} {remote}")
            self._upload_outputs(lease, policy, out)
            self._state(lease, policy, "UPLOADED_ARTIFACTS")
            self._flush_final(lease, policy, stream)
            self._state(lease, policy, "COMPLETED", f"{len(result.selected)} samples selected")
            return "COMPLETED"
        except RunLostError:
            raise
        except RunAbortedError:
            stream.write("aborted on the user's request")
            self._flush_final(lease, policy, stream)
            self._state(lease, policy, "ABORTED", "aborted")
            return "ABORTED"
        except Exception as exc:
            if lease.lost.is_set() or (isinstance(exc, ApiException) and _is_conflict(exc)):
                raise RunLostError() from exc
            message, known = _failure(exc)
            stream.write(f"run failed: {message}")
            if not known:
                stream.write(traceback.format_exc())
            self._flush_final(lease, policy, stream)
            self._state(lease, policy, "FAILED", message)
            return "FAILED"

    def _prepare(self, job: DockerRunJobData, work: Path) -> tuple[Any, DatasourceAccessData]:
        """The RunConfig of the job, with its datasources made local.

        ``allowed_roots`` of the config (the folders links in the input may lead into) are
        the LOCAL input datasource's allowed roots, or the cache folder a remote input was
        downloaded to."""
        from selfsup.config import RunConfig

        input_ds = _datasource(job, ("INPUT", "INPUT_OUTPUT"), "INPUT")
        lightly_ds = _datasource(job, ("LIGHTLY", "INPUT_OUTPUT"), "LIGHTLY")
        input_dir = storage.materialise_input(input_ds, self.settings.work_dir / "cache")
        if input_ds.type.value == "LOCAL":
            allowed = [str(r) for r in storage.local_roots(input_ds)]
        else:
            allowed = [str(input_dir.resolve())]
        data: dict[str, Any] = dict(job.worker_config)
        if job.selection_config is not None:
            data["selection_config"], tag_roots = _server_tags(job, work)
            # The tags folder is the worker's own; the queries' run folders must lie in a root.
            allowed += tag_roots
        lightly = changed_lightly_config(job.lightly_config)
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
            allowed_roots=allowed,
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

    def _upload(self, lease: _Lease, policy: RetryPolicy, path: Path, kind: str, name: str) -> None:
        # Safe to repeat: the server replaces an artifact uploaded again under the same name.
        self._call(
            lease,
            policy,
            f"upload of {name}",
            lambda: self.api.upload_artifact(self.worker_id, lease.run_id, path, kind, name),
        )

    def _upload_outputs(self, lease: _Lease, policy: RetryPolicy, out: Path) -> None:
        run = RunFolder(out)
        wanted = [
            (run.report_pdf, "REPORT_PDF", run.report_pdf.name),
            (run.report_json, "REPORT_JSON", run.report_json.name),
            (run.sampled_filenames, "SELECTED_FILENAMES", run.sampled_filenames.name),
            (run.corrupt_filenames, "OTHER", run.corrupt_filenames.name),
            (run.embeddings, "EMBEDDINGS", run.embeddings.name),
        ]
        wanted += [(p, "CHECKPOINT", p.name) for p in sorted(out.glob("*.ckpt"))]
        for path, kind, name in wanted:
            if path.is_file():
                self._upload(lease, policy, path, kind, name)

    # --- heartbeat and log

    def _flush_final(self, lease: _Lease, policy: RetryPolicy, stream: _LogStream) -> None:
        """Send all of the buffered log before an end state, in pieces (:func:`log_pieces`),
        retrying each through outages.

        Appending is not idempotent: when an answer is lost, the retry repeats that piece in
        the log (text is never dropped). A refusal other than 409 is logged, not fatal: the
        log must not decide how a run ends; the unsent pieces stay buffered.

        Waits for a flush of the heartbeat thread under way, so the log stays in order.
        """
        with stream.sending:
            pieces = log_pieces(stream.drain())
            for index, piece in enumerate(pieces):
                try:
                    self._call(
                        lease,
                        policy,
                        "log append",
                        functools.partial(self.api.append_log, self.worker_id, lease.run_id, piece),
                        idempotent=False,
                    )
                except RunLostError:
                    raise
                except ApiException as exc:
                    stream.restore("".join(pieces[index:]))
                    logger.warning("could not append to the log of run %s: %s", lease.run_id, exc)
                    return

    def _flush_once(self, lease: _Lease, stream: _LogStream) -> None:
        """Send the buffered log from the heartbeat thread, in pieces (:func:`log_pieces`),
        at most :data:`_LOG_PIECES_PER_BEAT` of them; on a failure keep the unsent pieces,
        in order, for the next beat. Skipped while the run thread's final flush is sending
        (it sends everything)."""
        if not stream.sending.acquire(blocking=False):
            return
        try:
            pieces = log_pieces(stream.drain())
            for index, piece in enumerate(pieces):
                if index == _LOG_PIECES_PER_BEAT or lease.stop.is_set():
                    stream.restore("".join(pieces[index:]))
                    return
                try:
                    self.api.append_log(self.worker_id, lease.run_id, piece)
                except _CALL_ERRORS as exc:
                    stream.restore("".join(pieces[index:]))
                    if _is_conflict(exc):
                        self._lose(lease, f"the server answered {exc}")
                    else:
                        logger.warning(
                            "could not append to the log of run %s (kept for the next beat): %s",
                            lease.run_id,
                            describe(exc),
                        )
                    return
        finally:
            stream.sending.release()

    def _heartbeat(
        self, lease: _Lease, interval: float, policy: RetryPolicy, stream: _LogStream
    ) -> None:
        """Renew the lease every ``interval`` seconds until the run ends.

        A failed renewal (any error but 409) is retried after ``policy``'s back-off, which is
        capped below the interval, until the lease runs out by the worker's own count; then,
        or on a 409, the lease is marked lost and the thread ends.
        """
        timeout = min(self.settings.request_timeout, max(lease.seconds / 2, 0.05))
        failures = 0
        failing_since = 0.0
        wait = interval
        while not lease.stop.wait(max(min(wait, lease.remaining()), 0.0)):
            if lease.remaining() < 0:
                self._lose(
                    lease,
                    f"no heartbeat reached the server for {lease.seconds:g} s (the lease), "
                    f"{failures} attempts failed, so the server has marked the run CRASHED",
                )
                return
            sent_at = time.monotonic()
            try:
                answer = self.api.heartbeat(self.worker_id, lease.run_id, timeout=timeout)
            except _CALL_ERRORS as exc:
                if lease.stop.is_set():
                    return  # the run ended while this beat was under way: nothing to renew
                if _is_conflict(exc):
                    self._lose(lease, f"the server answered {exc}")
                    return
                if not failures:
                    failing_since = sent_at
                wait = policy.delay(failures)
                failures += 1
                logger.warning(
                    "heartbeat of run %s failed (attempt %d, lease left %.1f s); retrying in "
                    "%.2f s: %s",
                    lease.run_id,
                    failures,
                    lease.remaining(),
                    wait,
                    describe(exc),
                )
                continue
            lease.renewed(sent_at)
            if failures:
                recovered = (
                    f"heartbeat renewed the lease again after {failures} failed attempts over "
                    f"{sent_at - failing_since:.1f} s"
                )
                logger.info("run %s: %s", lease.run_id, recovered)
                stream.write(recovered)
            failures = 0
            wait = interval
            if answer.abort_requested:
                lease.abort.set()
            self._flush_once(lease, stream)


SERVER_TAGS_DIR = "server_tags"
"""Folder of the work directory holding, per earlier run on the server, a ``tags.json`` of
the tags the job's selection config names (:func:`_server_tags`)."""


def _server_tags(job: DockerRunJobData, work: Path) -> tuple[dict[str, Any], list[str]]:
    """The job's selection config with each query, preselected or excluded source of a server
    run's tag (``{tag: name, run: <run id>}``, resolved by the server into ``job.tags``) reading a
    ``tags.json`` this writes under ``work/server_tags/<scheduled run id>/``, and the roots
    those folders lie in.

    The pipeline then reads server tags by the code it reads ``selfsup view``'s tags with,
    and ``report.json`` records the set (source and names). Nothing outlives the attempt: a
    retry fetches the job, and so the tags, again.

    Raises:
        ConfigError: a named run or tag is gone from the server since the run was scheduled
            (the message lists the run's tags).
    """
    selection: dict[str, Any] = copy.deepcopy(dict(job.selection_config or {}))
    if not job.tags:
        return selection, []
    root = work / SERVER_TAGS_DIR
    folders: dict[str, dict[str, list[str]]] = {}
    folder_of: dict[tuple[str, str], Path] = {}
    for entry in job.tags:
        if not entry.scheduled_run_id:
            raise ConfigError(
                f"selection_config: tag {entry.tag!r} of run {entry.run!r}: that run is no "
                "longer on the server (deleted since this run was scheduled)"
            )
        if not entry.names:
            known = ", ".join(entry.known_tags) or "none"
            raise ConfigError(
                f"selection_config: no sample of run {entry.run!r} is tagged {entry.tag!r} "
                f"any more (untagged since this run was scheduled); its tags: {known}"
            )
        if entry.left_out:
            logger.warning(
                "tag %r of run %s: %d tagged sample name(s) are not UTF-8 and cannot be sent "
                "to the worker; left out",
                entry.tag,
                entry.run,
                entry.left_out,
            )
        folders.setdefault(entry.scheduled_run_id, {})[entry.tag] = entry.names
        folder_of[(entry.run, entry.tag)] = root / entry.scheduled_run_id
        logger.info(
            "query tag %r of run %s on the server (scheduled run %s): %d samples",
            entry.tag,
            entry.run,
            entry.scheduled_run_id,
            len(entry.names),
        )
    for scheduled_id, tags in folders.items():
        folder = root / scheduled_id
        folder.mkdir(parents=True, exist_ok=True)
        RunFolder(folder).write_tags(tags)
    sources = [
        (strategy.get("input") or {}).get("query") if isinstance(strategy, dict) else None
        for strategy in selection.get("strategies") or []
    ]
    # selection_config.preselected / excluded take the same sources as a query.
    sources += [*(selection.get("preselected") or []), *(selection.get("excluded") or [])]
    for source in sources:
        if isinstance(source, dict) and source.get("tag"):
            found = folder_of.get((str(source.get("run") or ""), str(source["tag"])))
            if found is not None:
                source["run"] = str(found)
    return selection, [str(root)]


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
