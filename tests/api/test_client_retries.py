"""ApiWorkflowClient rides out a server restart: its reads (run info, lists, downloads) are
retried with selfsup.api.retry's back-off for ``retry_give_up_after`` seconds, each retry
logged; calls that change something are sent once; 0 switches retries off."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from selfsup.api import ApiWorkflowClient, ComputeWorkerRunInfo
from selfsup.api.retry import GaveUpError
from selfsup.server.testing import FakeClock, LiveServer, ServerHarness

WORKER_CONFIG = {"stopping_condition": {"n_samples": 0.1, "min_distance": -1}}


class Restartable:
    """A live server on one SQLite file that can be stopped and started on the same port."""

    def __init__(self, tmp: Path, local_root: Path) -> None:
        self._args = (f"sqlite:///{tmp / 'server.db'}", tmp / "data", (local_root,))
        self._clock = FakeClock()
        self.port = 0
        self._harness: ServerHarness | None = None
        self._live: LiveServer | None = None
        self.token = ""

    def start(self) -> None:
        self._harness = ServerHarness(*self._args, clock=self._clock)
        if not self.token:
            self.token = self._harness.token("alice")
        self._live = LiveServer(self._harness.app, port=self.port).__enter__()
        self.port = self._live.port

    def stop(self) -> None:
        assert self._live is not None
        assert self._harness is not None
        self._live.__exit__(None, None, None)
        self._harness.close()
        self._live = self._harness = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def server(tmp_path: Path, local_root: Path) -> Iterator[Restartable]:
    srv = Restartable(tmp_path, local_root)
    srv.start()
    yield srv
    if srv._live is not None:
        srv.stop()


def _scheduled(client: ApiWorkflowClient, local_root: Path) -> str:
    client.create_dataset("ds")
    client.set_local_config(resource_path=str(local_root / "images"))
    return client.schedule_compute_worker_run(WORKER_CONFIG)


def test_polling_a_run_rides_out_a_server_restart(
    server: Restartable, local_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = ApiWorkflowClient(token=server.token, base_url=server.url, retry_give_up_after=60)
    scheduled = _scheduled(client, local_root)
    polls = client.compute_worker_run_info_generator(scheduled, poll_interval=0.1)
    assert next(polls).state == "OPEN"
    server.stop()
    seen: list[ComputeWorkerRunInfo] = []
    runs: list[int] = []

    def poll_while_down() -> None:
        seen.append(client.get_compute_worker_run_info(scheduled))
        runs.append(len(client.get_compute_worker_runs()))

    with caplog.at_level(logging.WARNING, logger="selfsup.api.retry"):
        thread = threading.Thread(target=poll_while_down, daemon=True)
        thread.start()
        time.sleep(2.5)
        assert thread.is_alive(), "the poll waits for the server instead of failing"
        assert seen == []
        server.start()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert [i.state for i in seen] == ["OPEN"]
    assert runs == [0]
    retries = [r.getMessage() for r in caplog.records if "failed (attempt" in r.getMessage()]
    assert retries, "each retry is logged"
    assert f"GET /v1/scheduled-runs/{scheduled} failed (attempt 1" in retries[0]
    assert "ConnectionError: cannot reach the selfsup server" in retries[0]
    # The generator (same client) goes on polling across the restart too.
    client.cancel_scheduled_compute_worker_run(scheduled)
    assert next(polls).state == "CANCELED_OR_NOT_EXISTING"
    client.close()


def test_calls_that_change_something_are_sent_once(
    server: Restartable, caplog: pytest.LogCaptureFixture
) -> None:
    client = ApiWorkflowClient(token=server.token, base_url=server.url, retry_give_up_after=60)
    server.stop()
    started = time.monotonic()
    with (
        caplog.at_level(logging.WARNING, logger="selfsup.api.retry"),
        pytest.raises(ConnectionError, match="cannot reach the selfsup server"),
    ):
        client.create_dataset("never-sent-twice")
    assert time.monotonic() - started < 5
    assert not [r for r in caplog.records if "failed (attempt" in r.getMessage()]
    client.close()


def test_retries_give_up_after_the_clients_limit_and_zero_means_none(
    server: Restartable,
) -> None:
    patient = ApiWorkflowClient(token=server.token, base_url=server.url, retry_give_up_after=1)
    impatient = ApiWorkflowClient(token=server.token, base_url=server.url, retry_give_up_after=0)
    server.stop()
    started = time.monotonic()
    with pytest.raises(GaveUpError, match=r"retry_give_up_after=1 s\).*cannot reach"):
        patient.get_datasets()
    assert 1 <= time.monotonic() - started < 10
    started = time.monotonic()
    with pytest.raises(ConnectionError, match="cannot reach the selfsup server") as info:
        impatient.get_datasets()
    assert not isinstance(info.value, GaveUpError)
    assert time.monotonic() - started < 5
    patient.close()
    impatient.close()


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_retry_give_up_after_out_of_range_is_refused(value: float) -> None:
    with pytest.raises(ValueError, match=r"retry_give_up_after must be a finite number"):
        ApiWorkflowClient(token="t", base_url="http://127.0.0.1:9", retry_give_up_after=value)
