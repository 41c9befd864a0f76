"""``selfsup worker``: lightly-style ``key=value`` arguments into :class:`WorkerSettings`.

::

    SELFSUP_TOKEN=... selfsup worker worker.name=gpu-box-1 worker.labels=[gpu] \\
        server_url=http://127.0.0.1:8000

Keys (defaults in brackets):

  token                       API token; prefer $SELFSUP_TOKEN (arguments show in process lists)
  server_url                  server location [$SELFSUP_SERVER_URL, $SELFSUP_SERVER_LOCATION]
  worker.worker_id            id of a registered worker [register worker.name]
  worker.name                 name to register [Default]
  worker.labels=[a,b]         labels matched against a job's runs_on [none]
  worker.poll_interval        seconds between claims while idle [10]
  worker.heartbeat_interval   seconds between lease renewals [0 = a third of the lease]
  worker.work_dir             downloads and run outputs [$SELFSUP_HOME/worker]
  worker.once                 stop after one run [false]
  worker.max_runs             stop after this many runs [0 = never]
  worker.max_idle_seconds     stop after idling this long [0 = never]
  worker.umap                 draw the report's UMAP plots [true]
  worker.num_workers          processes for the corruptness check [-1 = all cores]
  worker.keep_outputs         keep a run's local outputs after the upload [false]
  worker.give_up_after        seconds without the server before exiting [0 = never give up]
  worker.retry_base           first back-off window after a failed call, seconds [0.5]
  worker.retry_cap            longest wait between two attempts, seconds [60]
  worker.request_timeout      seconds one request may take [30]

Connection errors, timeouts and 502/503/504 answers (and 500 on calls that are safe to
repeat) are retried with capped exponential back-off and full jitter, each retry logged;
see docs/reliability.md.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfsup.errors import ConfigError, did_you_mean
from selfsup.worker.config import SECONDS_FIELDS

TOKEN_ENV = "SELFSUP_TOKEN"
SERVER_ENV = ("SELFSUP_SERVER_URL", "SELFSUP_SERVER_LOCATION")

_KEYS = {
    "token": "token",
    "server_url": "server_url",
    "worker.worker_id": "worker_id",
    "worker.name": "name",
    "worker.labels": "labels",
    "worker.poll_interval": "poll_interval",
    "worker.heartbeat_interval": "heartbeat_interval",
    "worker.work_dir": "work_dir",
    "worker.once": "once",
    "worker.max_runs": "max_runs",
    "worker.max_idle_seconds": "max_idle_seconds",
    "worker.umap": "umap",
    "worker.num_workers": "num_workers",
    "worker.keep_outputs": "keep_outputs",
    "worker.give_up_after": "give_up_after",
    "worker.retry_base": "retry_base",
    "worker.retry_cap": "retry_cap",
    "worker.request_timeout": "request_timeout",
}
_FLOATS = set(SECONDS_FIELDS)
_INTS = {"max_runs", "num_workers"}
_BOOLS = {"once", "umap", "keep_outputs"}


def _bool(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ConfigError(f"{key}={value!r}: expected true or false")


def _labels(value: str) -> tuple[str, ...]:
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return tuple(p.strip().strip("'\"") for p in text.split(",") if p.strip())


def parse_worker_args(argv: Sequence[str], env: dict[str, str] | None = None) -> Any:
    """:class:`WorkerSettings` from ``key=value`` arguments and the environment."""
    from selfsup.worker.config import WorkerSettings

    environ = dict(os.environ) if env is None else env
    values: dict[str, Any] = {}
    once = False
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError(f"argument {arg!r} is not key=value (e.g. worker.name=gpu-box-1)")
        if key not in _KEYS:
            hint = did_you_mean(key, _KEYS, cutoff=0.6) or f"; known keys: {', '.join(_KEYS)}"
            raise ConfigError(f"unknown worker key {key!r}{hint}")
        field = _KEYS[key]
        try:
            if field in _FLOATS:
                values[field] = float(value)
            elif field in _INTS:
                values[field] = int(value)
            elif field in _BOOLS:
                if field == "once":
                    once = _bool(key, value)
                else:
                    values[field] = _bool(key, value)
            elif field == "labels":
                values[field] = _labels(value)
            elif field == "work_dir":
                values[field] = Path(value).expanduser()
            else:
                values[field] = value
        except ConfigError:
            raise
        except ValueError:
            kind = "a number" if field in _FLOATS else "an integer"
            raise ConfigError(f"{key}={value!r}: expected {kind}") from None
    if once:
        values["max_runs"] = 1
    values.setdefault("token", environ.get(TOKEN_ENV, ""))
    if "server_url" not in values:
        values["server_url"] = next((environ[k] for k in SERVER_ENV if environ.get(k)), None)
    return WorkerSettings(**values)


def worker_main(argv: Sequence[str]) -> int:
    """Entry point of ``selfsup worker``; returns the exit code."""
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    try:
        settings = parse_worker_args(argv)
    except ConfigError as exc:
        print(f"selfsup worker: {exc}", file=sys.stderr)
        return 2
    from selfsup.api import ApiException
    from selfsup.api.retry import GaveUpError
    from selfsup.worker.loop import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    worker = Worker(settings)

    def _graceful(signum: int, frame: object) -> None:
        logging.getLogger(__name__).info("signal %d: stopping after the current run", signum)
        worker.stop()

    previous = signal.signal(signal.SIGTERM, _graceful)
    try:
        worker.run_forever()
    except KeyboardInterrupt:
        return 130
    except (GaveUpError, ApiException) as exc:
        # Out of retries, or a refusal retrying cannot change (revoked token, ...).
        print(f"selfsup worker: {exc}", file=sys.stderr)
        return 1
    finally:
        # Put the handler back: worker_main may run inside a longer-lived process (tests).
        signal.signal(signal.SIGTERM, previous)
        worker.api.close()
    return 0
