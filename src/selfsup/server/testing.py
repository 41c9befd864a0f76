"""Helpers to test against a real server: a fake clock, a throwaway PostgreSQL, and the app
served by uvicorn on a free loopback port in a background thread.

Used by selfsup's own tests and meant for the worker's: nothing here is needed to run a
server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import httpx
from fastapi import FastAPI

if TYPE_CHECKING:
    from selfsup.api import ApiWorkflowClient, WorkerApiClient
    from selfsup.server.settings import ServerSettings


@dataclass
class FakeClock:
    """A settable clock in ms since the epoch, for :class:`ServerSettings.clock`."""

    now: int = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.now += int(seconds * 1000)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def find_postgres_bin() -> Path | None:
    """The folder with ``initdb`` and ``pg_ctl``: on PATH, /usr/local/bin or the newest
    /usr/lib/postgresql/*/bin (Debian's layout); None if PostgreSQL is not installed."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates = [Path("/usr/local/bin"), *versions]
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


class TemporaryPostgres:
    """A PostgreSQL server in a temporary folder, listening on 127.0.0.1, trust auth.

    As root it runs as the ``postgres`` system user (PostgreSQL refuses to run as root).
    Durability is switched off (``fsync=off``): the data is thrown away afterwards.
    """

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="selfsup-pg-"))
        self.data = self.folder / "data"
        self._counter = 0
        self._lock = threading.Lock()
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self._prefix = ["runuser", "-u", "postgres", "--"]

    @property
    def admin_url(self) -> str:
        """URL of the ``postgres`` database as superuser ``postgres``."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self._prefix, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}\n{tail}"
            )

    def start(self) -> TemporaryPostgres:
        """initdb and start; returns self once the server accepts connections."""
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = (
            f"-F -p {self.port} -h 127.0.0.1 -k {self.folder} "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def create_database(self, template: str | None = None) -> str:
        """A new database, empty or a copy of database ``template``; returns its URL."""
        import psycopg
        from psycopg import sql

        with self._lock:
            self._counter += 1
            name = f"selfsup_test_{self._counter}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            if template is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            else:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                        sql.Identifier(name), sql.Identifier(template)
                    )
                )
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the server (fast) and delete its folder."""
        with contextlib.suppress(RuntimeError):
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


class LiveServer:
    """Serve ``app`` with uvicorn on a free 127.0.0.1 port in a daemon thread.

    Use as a context manager; ``url`` is the base URL. Real sockets and uvicorn's thread pool
    give true concurrency (unlike an in-process test client).

    ``port`` (default: a free one) lets a test restart a server where its clients expect it:
    leave the first ``LiveServer``, then enter a new one with ``port=first.port`` (the socket
    is bound with SO_REUSEADDR, so connections of the old one in TIME_WAIT do not block it).
    """

    def __init__(self, app: FastAPI, port: int = 0) -> None:
        import uvicorn

        self.app = app
        # IPPROTO_TCP explicitly: asyncio enables TCP_NODELAY only on sockets whose proto says
        # TCP, and without it every small response waits ~40 ms for the delayed ACK.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.01)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)
        self._sock.close()


class ServerHarness:
    """An app on ``database_url`` with a fake clock, an in-process test client and helpers to
    mint tokens and build API clients. ``close()`` releases the database connections.

    Args:
        database_url: the database (migrated on creation).
        data_dir: artifact folder.
        local_roots: allowed roots of LOCAL datasources.
        app_factory: builds the app from the settings; the default is the API alone
            (:func:`selfsup.server.app.create_app`); pass
            :func:`selfsup.cli.apps.create_server_app` for the web app's pages too, as
            ``selfsup serve`` serves them.
        **settings: further :class:`ServerSettings` fields (``lease_seconds``, ...).
    """

    def __init__(
        self,
        database_url: str,
        data_dir: Path,
        local_roots: tuple[Path, ...] = (),
        app_factory: Callable[[ServerSettings], FastAPI] | None = None,
        **settings: Any,
    ) -> None:
        from fastapi.testclient import TestClient

        from selfsup.server.app import create_app
        from selfsup.server.settings import ServerSettings

        self.clock = settings.pop("clock", None) or FakeClock()
        settings.setdefault("sweep_interval_seconds", 0)
        self.settings = ServerSettings(
            database_url=database_url,
            data_dir=data_dir,
            local_roots=local_roots,
            clock=self.clock,
            **settings,
        )
        self.app = (app_factory or create_app)(self.settings)
        self.http = TestClient(self.app)

    def token(self, user: str = "alice", scope: str = "all") -> str:
        """A new API token of ``user`` (created if new)."""
        from selfsup.server.auth import issue_token

        with self.app.state.sessions() as session:
            issued = issue_token(session, user, scope, self.clock())
            session.commit()
        return issued.token

    @staticmethod
    def headers(token: str) -> dict[str, str]:
        """The Authorization header for ``token``."""
        return {"Authorization": f"Bearer {token}"}

    def client(self, token: str, dataset_id: str | None = None) -> ApiWorkflowClient:
        """An ApiWorkflowClient calling this app in-process."""
        from selfsup.api import ApiWorkflowClient

        return ApiWorkflowClient(token=token, dataset_id=dataset_id, http_client=self._httpx())

    def worker_client(self, token: str) -> WorkerApiClient:
        """A WorkerApiClient calling this app in-process."""
        from selfsup.api import WorkerApiClient

        return WorkerApiClient(token=token, http_client=self._httpx())

    def _httpx(self) -> httpx.Client:
        # Starlette's TestClient derives from httpx2.Client, a fork with httpx's interface;
        # the API clients only call request() and stream() on it.
        return cast(httpx.Client, self.http)

    def sweep(self) -> list[str]:
        """One sweeper pass at the fake clock's time."""
        from selfsup.server.leases import sweep_expired_leases

        return sweep_expired_leases(self.app.state.sessions, self.clock())

    def live(self) -> LiveServer:
        """The same app served over real sockets (use as a context manager)."""
        return LiveServer(self.app)

    def close(self) -> None:
        """Close the test client and the database connections."""
        self.http.close()
        self.app.state.engine.dispose()
