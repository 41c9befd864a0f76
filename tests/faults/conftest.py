"""Shared fault-injection fixtures: a real server (SQLite in a tmp dir, real clock, short
leases) that can be stopped and started again on the same port and database, a TCP proxy
whose link can be cut, tiny jobs, and workers in threads whose outcome is recorded.

Tests get everything through fixtures (``server``, ``proxy``, ``schedule_small_job``,
``worker_settings``, ``start_worker``, ``wait_for``), so nothing is imported from here."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from faults._proxy import ToggleProxy
from selfsup.api import ApiWorkflowClient
from selfsup.server.testing import LiveServer, ServerHarness
from selfsup.worker import Worker, WorkerSettings
from worker._tiny import LIGHTLY_CONFIG, WORKER_CONFIG


def _now_ms() -> int:
    return int(time.time() * 1000)


class RestartableServer:
    """``selfsup serve`` in this process on a fixed database and data folder: :meth:`start`
    serves a fresh app (migrations, sweeper and all) on the same port every time, :meth:`stop`
    shuts it down like a server restart would; in between, connections are refused.

    Args:
        tmp: folder for the database, data and LOCAL roots (``tmp/roots``).
        lease_seconds: lease of each claim and heartbeat.
    """

    def __init__(self, tmp: Path, lease_seconds: float) -> None:
        self.database_url = f"sqlite:///{tmp / 'server.db'}"
        self.data_dir = tmp / "data"
        self.roots = tmp / "roots"
        self.roots.mkdir(exist_ok=True)
        self.lease_seconds = lease_seconds
        self.port = 0
        self._harness: ServerHarness | None = None
        self._live: LiveServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def harness(self) -> ServerHarness:
        if self._harness is None:
            raise RuntimeError("the server is stopped")
        return self._harness

    def start(self) -> None:
        """Serve a new app on the database (on the port of the previous start, if any)."""
        self._harness = ServerHarness(
            self.database_url,
            self.data_dir,
            (self.roots,),
            clock=_now_ms,
            lease_seconds=self.lease_seconds,
            sweep_interval_seconds=0.25,
        )
        self._live = LiveServer(self._harness.app, port=self.port)
        self._live.__enter__()
        self.port = self._live.port

    def stop(self) -> None:
        """Shut the server down (in-flight requests finish, idle connections are closed)."""
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None
        if self._harness is not None:
            self._harness.close()
            self._harness = None

    def client(self, token: str) -> ApiWorkflowClient:
        """A user client over the socket (not through any proxy)."""
        return ApiWorkflowClient(token=token, base_url=self.url)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[[float], RestartableServer]]:
    """``server(lease_seconds)`` starts a :class:`RestartableServer`; stopped at teardown."""
    started: list[RestartableServer] = []

    def start(lease_seconds: float) -> RestartableServer:
        s = RestartableServer(tmp_path, lease_seconds)
        s.start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


ScheduleJob = Callable[[ApiWorkflowClient, Path, str], str]


@pytest.fixture
def schedule_small_job(make_image_folder: Callable[..., Path]) -> ScheduleJob:
    """``schedule_small_job(client, roots, name)``: a dataset ``name`` of 8 tiny images with
    LOCAL input and output folders in ``roots/name``, and one scheduled run of it; returns
    the scheduled run's id."""
    from selfsup.openapi_generated.swagger_client.models.datasource_purpose import (
        DatasourcePurpose,
    )

    def schedule(client: ApiWorkflowClient, roots: Path, name: str) -> str:
        images = make_image_folder(n_classes=2, n_per_class=4, root=roots / name / "input")
        (roots / name / "lightly").mkdir()
        client.create_dataset(name)
        client.set_local_config(str(images), purpose=DatasourcePurpose.INPUT)
        client.set_local_config(str(roots / name / "lightly"), purpose=DatasourcePurpose.LIGHTLY)
        return client.schedule_compute_worker_run(
            worker_config=WORKER_CONFIG, lightly_config=LIGHTLY_CONFIG
        )

    return schedule


@pytest.fixture
def worker_settings(tmp_path: Path) -> Callable[..., WorkerSettings]:
    """``worker_settings(token, url, name, **overrides)``: a test worker's settings, with
    quick polls and retries, no UMAP and no process pool."""

    def make(token: str, url: str, name: str, **kw: Any) -> WorkerSettings:
        values: dict[str, Any] = {
            "poll_interval": 0.2,
            "retry_base": 0.1,
            "retry_cap": 1.0,
            "request_timeout": 5.0,
            "umap": False,
            "num_workers": 0,
            **kw,
        }
        return WorkerSettings(
            token=token, server_url=url, name=name, work_dir=tmp_path / f"work_{name}", **values
        )

    return make


@dataclass
class WorkerThread:
    """A worker's ``run_forever`` in a daemon thread; ``returned``/``raised`` say how it
    ended (a worker must never end by itself in these tests)."""

    worker: Worker
    returned: list[int] = field(default_factory=list)
    raised: list[BaseException] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> WorkerThread:
        def target() -> None:
            try:
                self.returned.append(self.worker.run_forever())
            except BaseException as exc:  # recorded for the test's assertion, not swallowed
                self.raised.append(exc)
                raise

        self.thread = threading.Thread(target=target, name=self.worker.settings.name, daemon=True)
        self.thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def stop(self, timeout: float = 60) -> None:
        """Ask the worker to stop after its current run and wait for it."""
        self.worker.stop()
        if self.thread is not None:
            self.thread.join(timeout)
        self.worker.api.close()


@pytest.fixture
def start_worker() -> Iterator[Callable[[WorkerSettings], WorkerThread]]:
    """``start_worker(settings)`` runs a :class:`Worker` in a thread; stopped at teardown."""
    started: list[WorkerThread] = []

    def start(settings: WorkerSettings) -> WorkerThread:
        started.append(WorkerThread(Worker(settings)).start())
        return started[-1]

    yield start
    for w in started:
        w.stop(timeout=10)


@pytest.fixture
def proxy() -> Iterator[Callable[[int], ToggleProxy]]:
    """``proxy(port)``: a :class:`ToggleProxy` to the server on ``port``; stopped at
    teardown (and by itself after two minutes)."""
    started: list[ToggleProxy] = []

    def start(port: int) -> ToggleProxy:
        started.append(ToggleProxy(port, max_seconds=120).__enter__())
        return started[-1]

    yield start
    for p in started:
        p.stop()


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def wait_for() -> Callable[[Callable[[], bool], float, str], None]:
    """``wait_for(condition, timeout, what)``: poll until true, fail naming ``what``."""
    return _wait_for


@dataclass
class ProxiedJob:
    """One tiny job run by one worker that reaches the server through a :class:`ToggleProxy`
    (the test's own client talks to the server directly)."""

    server: RestartableServer
    link: ToggleProxy
    client: ApiWorkflowClient
    scheduled: str
    worker: WorkerThread

    def latest_state(self) -> str | None:
        """State of the job's latest run (None before the first claim)."""
        runs = self.client.get_compute_worker_runs()
        runs = [r for r in runs if r.scheduled_id == self.scheduled]
        return str(max(runs, key=lambda r: r.attempt).state) if runs else None

    def done(self) -> bool:
        return self.client.get_scheduled_compute_worker_run(self.scheduled).state == "DONE"


@pytest.fixture
def training_behind_proxy(
    server: Callable[[float], RestartableServer],
    proxy: Callable[[int], ToggleProxy],
    schedule_small_job: ScheduleJob,
    worker_settings: Callable[..., WorkerSettings],
    start_worker: Callable[[WorkerSettings], WorkerThread],
) -> Iterator[Callable[..., ProxiedJob]]:
    """``training_behind_proxy(lease_seconds, name, **worker_settings)``: a server granting
    such leases, a job ``name`` and a worker behind a proxy; returns once the run trains."""
    clients: list[ApiWorkflowClient] = []

    def start(lease_seconds: float, name: str, **worker_kw: Any) -> ProxiedJob:
        srv = server(lease_seconds)
        link = proxy(srv.port)
        token = srv.harness.token()
        clients.append(srv.client(token))
        scheduled = schedule_small_job(clients[-1], srv.roots, name)
        worker = start_worker(worker_settings(token, link.url, "w", **worker_kw))
        job = ProxiedJob(srv, link, clients[-1], scheduled, worker)
        _wait_for(lambda: job.latest_state() == "TRAINING", 60, "the run to train")
        return job

    yield start
    for c in clients:
        c.close()
