"""Typed settings of ``selfsup worker``, with their defaults in one place."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from selfsup.api.retry import RetryPolicy
from selfsup.errors import ConfigError
from selfsup.home import selfsup_home


def _default_work_dir() -> Path:
    return selfsup_home() / "worker"


# The settings given in seconds (floats): validated alike, parsed alike by the CLI.
SECONDS_FIELDS = (
    "poll_interval",
    "heartbeat_interval",
    "max_idle_seconds",
    "give_up_after",
    "retry_base",
    "retry_cap",
    "request_timeout",
)


@dataclass(frozen=True)
class WorkerSettings:
    """How one worker process talks to the server and where it works.

    Attributes:
        token: API token with the ``worker`` scope (``$SELFSUP_TOKEN`` from the CLI, so it
            stays out of process lists).
        server_url: base URL of the server (``$SELFSUP_SERVER_URL``; the API client also
            reads ``$SELFSUP_SERVER_LOCATION``).
        worker_id: id of an already registered worker; empty = register ``name`` (idempotent
            per name, so a restarted worker keeps its id).
        name: name registered with the server.
        labels: labels matched against a scheduled run's ``runs_on``.
        poll_interval: seconds between claims when there is nothing to do.
        heartbeat_interval: seconds between heartbeats; 0 = a third of the lease the server
            grants with each claim.
        work_dir: local folder for downloaded inputs (``cache/``) and run outputs (``runs/``).
        max_runs: stop after this many claimed runs; 0 = never stop (``worker.once=true`` is
            ``max_runs=1``).
        max_idle_seconds: stop after polling this long without a claim; 0 = never (tests).
        umap: draw the report's UMAP plots (``false`` speeds up small runs and tests).
        num_workers: processes for the corruptness check; -1 = all cores.
        keep_outputs: keep a run's local output folder after it was uploaded.
        give_up_after: seconds the server may stay unreachable (connection refused or reset,
            timeouts, 502/503/504, 500 on calls safe to repeat) before an idle worker exits
            with an error; 0 = never give up (a worker rides out any restart). A claimed run
            does not use it: its calls retry for as long as its lease lasts.
        retry_base: seconds of the first back-off window after a failed call; each further
            attempt doubles the window up to ``retry_cap``, and the wait is drawn uniformly
            from the window (full jitter, so workers do not retry in lock step).
        retry_cap: the longest wait between two attempts, in seconds.
        request_timeout: seconds one request may take before it counts as failed (uploads
            get 600 s); heartbeats use at most half the lease.
    """

    token: str
    server_url: str | None = None
    worker_id: str = ""
    name: str = "Default"
    labels: tuple[str, ...] = ()
    poll_interval: float = 10.0
    heartbeat_interval: float = 0.0
    work_dir: Path = field(default_factory=_default_work_dir)
    max_runs: int = 0
    max_idle_seconds: float = 0.0
    umap: bool = True
    num_workers: int = -1
    keep_outputs: bool = False
    give_up_after: float = 0.0
    retry_base: float = 0.5
    retry_cap: float = 60.0
    request_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not self.token:
            raise ConfigError(
                "no token: pass token=... or set $SELFSUP_TOKEN (preferred: the environment "
                "keeps it out of process lists)"
            )
        for key in SECONDS_FIELDS:
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"worker.{key} must be a finite number >= 0, got {value!r}")
        for key in ("retry_base", "retry_cap", "request_timeout"):
            if getattr(self, key) == 0:
                raise ConfigError(f"worker.{key} must be > 0 seconds")
        if self.retry_base > self.retry_cap:
            raise ConfigError(
                f"worker.retry_base ({self.retry_base!r} s) must not exceed worker.retry_cap "
                f"({self.retry_cap!r} s)"
            )
        if self.poll_interval == 0:
            raise ConfigError("worker.poll_interval must be > 0 seconds")
        if self.max_runs < 0:
            raise ConfigError(f"worker.max_runs must be >= 0, got {self.max_runs!r}")
        if self.num_workers < -1:
            raise ConfigError(f"worker.num_workers must be >= -1, got {self.num_workers!r}")

    @property
    def retry_policy(self) -> RetryPolicy:
        """The back-off of the worker's calls while it is idle (register, claim)."""
        return RetryPolicy(
            base=self.retry_base, cap=self.retry_cap, give_up_after=self.give_up_after
        )

    def __repr__(self) -> str:
        # The token never appears in reprs, hence never in logs or tracebacks.
        return (
            f"WorkerSettings(server_url={self.server_url!r}, worker_id={self.worker_id!r}, "
            f"name={self.name!r}, labels={self.labels!r}, work_dir={str(self.work_dir)!r})"
        )
