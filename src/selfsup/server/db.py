"""Engine, sessions and migrations for SQLite (default) and PostgreSQL.

SQLite is made safe for several threads and processes: WAL journal, a 30 s busy timeout, foreign
keys on, and every transaction opened with ``BEGIN IMMEDIATE`` so that it takes the write lock
up front. Without the last one, two transactions that read and then write can both start
and one fails with "database is locked" instead of waiting its turn (pysqlite otherwise
starts transactions lazily, at the first write).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from selfsup.errors import ConfigError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


#: True while serving a request that only reads (GET, HEAD); set by the app's middleware.
READ_ONLY: ContextVar[bool] = ContextVar("selfsup_read_only_request", default=False)

#: FastAPI runs the (synchronous) endpoints in anyio's worker threads, 40 by default, and
#: each holds a session: the pool must serve 40 at once or requests time out waiting for a
#: connection under load (seen with 50 concurrent clients: 500s after 30 s). 10 are kept
#: open; up to 30 more are opened on demand.
_POOL: dict[str, int] = {"pool_size": 10, "max_overflow": 30}


def parse_database_url(url: str) -> URL:
    """Parse and check a database URL; only SQLite and PostgreSQL (psycopg 3) are supported.

    ``postgresql://`` and ``postgres://`` are read as ``postgresql+psycopg://``.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"database URL {_redact(url)!r} is not valid: {exc} "
            "(use sqlite:///path/to/server.db or postgresql+psycopg://user:pass@host/db)"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgres" or (
        backend == "postgresql" and parsed.get_driver_name() in ("", "psycopg2")
    ):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ConfigError(
                "an in-memory SQLite database would be lost when the server stops; "
                "give a file: sqlite:///path/to/server.db"
            )
    elif backend != "postgresql":
        raise ConfigError(
            f"database URL {_redact(url)!r} uses {backend!r}; supported: "
            "sqlite:///path.db and postgresql+psycopg://user:pass@host/db"
        )
    return parsed


def _redact(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


def make_engine(url: str) -> Engine:
    """An engine for ``url`` configured for concurrent use (see the module docstring).

    ``hide_parameters`` keeps bound values (datasource credentials among them) out of
    SQLAlchemy's logs and exception messages.
    """
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database is not None
        db_path = Path(parsed.database).expanduser()
        db_path.parent.mkdir(parents=True, exist_ok=True)
        if not db_path.exists():
            # The database holds credentials and token hashes: readable by the owner only.
            db_path.touch(mode=0o600)
        engine = create_engine(
            parsed.set(database=str(db_path)),
            connect_args={"check_same_thread": False, "timeout": 30.0},
            hide_parameters=True,
            **_POOL,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(parsed, hide_parameters=True, pool_pre_ping=True, **_POOL)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's "begin" event below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writers take the write lock up front, so a transaction never has to upgrade a read
        # lock (which SQLite refuses at once with "database is locked" when another writer
        # committed meanwhile). Reads of GET requests stay deferred: in WAL mode they run
        # beside the writer instead of queueing behind every other request.
        connection.exec_driver_sql("BEGIN" if READ_ONLY.get() else "BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (responses are built after it)."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations, without an alembic.ini."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade_database(engine: Engine) -> None:
    """Bring the database schema to the newest migration (idempotent)."""
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
    logger.info("database schema is up to date (%s)", _redact(str(engine.url)))


def database_file(url: str) -> Path | None:
    """The SQLite file of ``url``, or None for other databases."""
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return Path(os.path.expanduser(parsed.database))
    return None
