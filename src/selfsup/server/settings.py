"""Settings of one server process: database, data folder, local roots, leases and a clock."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from selfsup.apphelpers.limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_UPLOAD_BYTES
from selfsup.home import selfsup_home

if TYPE_CHECKING:  # settings stay cheap to import: no SQLAlchemy or cryptography here
    from selfsup.server.secret_keys import SecretKeys


def now_ms() -> int:
    """Wall-clock time in milliseconds since the Unix epoch (the API's timestamp unit)."""
    return time.time_ns() // 1_000_000


def default_database_url() -> str:
    """``$SELFSUP_DATABASE_URL`` or an SQLite file ``$SELFSUP_HOME/server.db``."""
    env = os.environ.get("SELFSUP_DATABASE_URL")
    if env:
        return env
    return f"sqlite:///{selfsup_home() / 'server.db'}"


def default_local_roots() -> tuple[Path, ...]:
    """Folders named in ``$SELFSUP_LOCAL_ROOTS`` (separated by ``os.pathsep``)."""
    raw = os.environ.get("SELFSUP_LOCAL_ROOTS", "")
    return tuple(Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip())


@dataclass(frozen=True)
class ServerSettings:
    """How one server process runs.

    Attributes:
        database_url: SQLAlchemy URL, ``sqlite:///path.db`` or
            ``postgresql+psycopg://user:password@host/db``.
        data_dir: where uploaded artifacts and run logs are stored.
        local_roots: folders inside which LOCAL datasources may point; none means LOCAL
            datasources are refused.
        lease_seconds: how long a claim or heartbeat keeps a run; a run whose lease ran out is
            marked CRASHED and its scheduled run re-opened.
        max_attempts: claims of one scheduled run before a crash is final (state DONE).
        sweep_interval_seconds: how often the app looks for expired leases; 0 disables the
            background sweeper (tests call :func:`selfsup.server.leases.sweep_expired_leases`).
        max_upload_bytes: largest accepted artifact upload (file bytes).
        max_body_bytes: largest body of any other request (JSON, forms); checked before the
            body is read or the token checked (``selfsup.apphelpers.limits``).
        secret_keys: the keys encrypting datasource credentials; None reads
            ``$SELFSUP_SECRET_KEY`` or ``<data_dir>/secret.key`` (created on first start).
        clock: current time in ms since the epoch; injectable so tests can move time.
    """

    database_url: str = field(default_factory=default_database_url)
    data_dir: Path = field(default_factory=lambda: selfsup_home() / "server")
    local_roots: Sequence[Path] = field(default_factory=default_local_roots)
    lease_seconds: float = 120.0
    max_attempts: int = 3
    sweep_interval_seconds: float = 10.0
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    secret_keys: SecretKeys | None = None
    clock: Callable[[], int] = now_ms

    def __post_init__(self) -> None:
        if self.lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be > 0, got {self.lease_seconds}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        for name in ("max_body_bytes", "max_upload_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 byte, got {getattr(self, name)}")
        if self.sweep_interval_seconds < 0:
            raise ValueError(
                f"sweep_interval_seconds must be >= 0, got {self.sweep_interval_seconds}"
            )
