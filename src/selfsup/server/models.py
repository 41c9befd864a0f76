"""Database tables of the server (SQLAlchemy 2 typed ORM).

Every row that belongs to someone carries ``user_id`` so that each query can filter by the
caller; ids are random 24-hex strings (as lightly's) so they cannot be guessed or enumerated.
Timestamps are integers in ms since the Unix epoch, the API's unit, which also keeps
comparisons identical on SQLite and PostgreSQL. The schema is created by the Alembic
migrations in ``migrations/versions``; a test checks both agree.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from selfsup.server.secret_keys import keys_of

# Named constraints so that migrations can refer to them on every back end.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    """A random 24-hex-digit id."""
    return secrets.token_hex(12)


class Secret:
    """Credentials as loaded from the database, hidden from ``repr``.

    SQLAlchemy's debug logging prints result rows with ``repr``; wrapping the value keeps
    credentials out of logs even when an operator turns SQL logging on. Call :meth:`reveal`
    where the plain values are really needed (the worker endpoint).
    """

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = dict(values)

    def reveal(self) -> dict[str, Any]:
        """A copy of the plain credential values."""
        return dict(self._values)

    def __bool__(self) -> bool:
        return bool(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._values == self._values

    __hash__ = None  # type: ignore[assignment]  # mutable-by-value container, like dict

    def __repr__(self) -> str:
        return f"Secret(<{len(self._values)} values hidden>)"


class SecretJSON(TypeDecorator[Secret]):
    """A JSON object stored encrypted (a Fernet token as text) and loaded as :class:`Secret`.

    The keys come with the engine (:func:`selfsup.server.secret_keys.attach_keys`), so a copy
    of the database without the key file holds no readable credential.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Secret | None, dialect: Dialect) -> str | None:
        """Secret -> encrypted JSON text for the database."""
        if value is None:
            return None
        return keys_of(dialect).encrypt(json.dumps(value.reveal(), sort_keys=True))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Secret | None:
        """Encrypted JSON text from the database -> Secret."""
        if value is None:
            return None
        return Secret(json.loads(keys_of(dialect).decrypt(value)))


class Base(DeclarativeBase):
    """Declarative base with the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    """Someone who owns datasets; created with ``selfsup token create --user NAME``."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


class ApiToken(Base):
    """An API token: only its SHA-256 is stored; ``id`` is the public part used for lookup."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    user: Mapped[User] = relationship()


class UserRoot(Base):
    """A folder inside which one user's LOCAL datasources may point (``selfsup token roots``).

    A user's allowed roots are these plus the server-wide ``--local-root`` folders, which
    every user shares (see :func:`selfsup.server.roots.allowed_roots`).
    """

    __tablename__ = "user_roots"
    __table_args__ = (UniqueConstraint("user_id", "path", name="uq_user_roots_user_id_path"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(4096))
    created_at: Mapped[int] = mapped_column(BigInteger)


class WebSession(Base):
    """A browser session of the web app, opened by logging in with an API token.

    The session cookie carries ``id``; logging out sets ``revoked_at``, so a replayed cookie
    is refused even before it expires. Revoking or deleting the token ends its sessions too.
    """

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[str] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Dataset(Base):
    """A dataset of images or videos; its files live in its datasources."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_datasets_user_id_name"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_modified_at: Mapped[int] = mapped_column(BigInteger)


class Datasource(Base):
    """Where a dataset's input is read (INPUT) or its outputs go (LIGHTLY).

    ``options`` holds non-secret settings; ``credentials`` the secret ones as encrypted JSON
    text, returned only to the worker holding a run of the dataset.
    """

    __tablename__ = "datasources"
    __table_args__ = (
        UniqueConstraint("dataset_id", "purpose", name="uq_datasources_dataset_id_purpose"),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(16))
    full_path: Mapped[str] = mapped_column(Text)
    thumb_suffix: Mapped[str | None] = mapped_column(Text, nullable=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    credentials: Mapped[Secret] = mapped_column(SecretJSON)
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_modified_at: Mapped[int] = mapped_column(BigInteger)


class Worker(Base):
    """A registered worker of a user, with labels matched against ``runs_on``."""

    __tablename__ = "workers"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_workers_user_id_name"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    labels: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_seen_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ScheduledRun(Base):
    """A job waiting for (OPEN), held by (LOCKED) or finished by (DONE) a worker, or CANCELED.

    ``seq`` is an auto-increment number that orders jobs of equal priority first come, first
    served; ``id`` is the public id.
    """

    __tablename__ = "scheduled_runs"
    __table_args__ = (Index("ix_scheduled_runs_user_id_state", "user_id", "state"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(24), unique=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    priority: Mapped[str] = mapped_column(String(16))
    priority_rank: Mapped[int] = mapped_column(Integer)
    runs_on: Mapped[list[str]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    worker_config: Mapped[dict[str, Any]] = mapped_column(JSON)
    lightly_config: Mapped[dict[str, Any]] = mapped_column(JSON)
    selection_config: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str | None] = mapped_column(String(24), nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_modified_at: Mapped[int] = mapped_column(BigInteger)


class Run(Base):
    """One attempt at a scheduled run by one worker, kept alive by its lease."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_state_lease_expires_at", "state", "lease_expires_at"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    scheduled_run_id: Mapped[str] = mapped_column(
        ForeignKey("scheduled_runs.id", ondelete="CASCADE"), index=True
    )
    worker_id: Mapped[str] = mapped_column(String(24))
    attempt: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text, default="")
    abort_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_modified_at: Mapped[int] = mapped_column(BigInteger)
    ended_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    artifacts: Mapped[list[Artifact]] = relationship(
        order_by="Artifact.created_at", cascade="all, delete-orphan", passive_deletes=True
    )


class Artifact(Base):
    """A file of a run, stored under the server's data folder at ``storage_path``."""

    __tablename__ = "artifacts"
    __table_args__ = (
        UniqueConstraint("run_id", "file_name", name="uq_artifacts_run_id_file_name"),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(40))
    file_name: Mapped[str] = mapped_column(String(500))
    storage_path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)


class SampleTag(Base):
    """A tag given to one sample of a job's run in the web app (issue 12).

    Keyed by the scheduled run (the id the pages use, stable across attempts) and the sample
    name (the manifest's ``filename``) as its exact bytes (a name may hold bytes that are
    not UTF-8, which a text column refuses); ``name_digest`` (SHA-256 of those bytes) makes
    the pair unique without an index over names of any length.
    """

    __tablename__ = "sample_tags"
    __table_args__ = (
        UniqueConstraint(
            "scheduled_run_id", "tag", "name_digest", name="uq_sample_tags_run_tag_name"
        ),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    scheduled_run_id: Mapped[str] = mapped_column(
        ForeignKey("scheduled_runs.id", ondelete="CASCADE"), index=True
    )
    tag: Mapped[str] = mapped_column(String(64))
    name: Mapped[bytes] = mapped_column(LargeBinary)
    name_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)
