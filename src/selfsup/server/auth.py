"""API tokens: created from the CLI, stored hashed, checked on every endpoint but health.

A token reads ``selfsup_<id>_<secret>``: ``id`` (12 hex digits) finds the row, ``secret`` is
32 random bytes (urlsafe base64). Only the SHA-256 of the whole token is stored; a fast hash
is enough because the secret has 256 bits of entropy, so no dictionary attack applies. The
check compares digests in constant time.

Scopes: ``user`` for the user-facing endpoints, ``worker`` for the worker endpoints (the only
ones that hand out datasource credentials). A token made with the default scope ``all`` has
both, like the single lightly token used by client and worker alike.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from selfsup.apphelpers.http_errors import ApiError
from selfsup.server.models import ApiToken, User, new_id

TOKEN_PREFIX = "selfsup_"
SCOPES = ("user", "worker")
SCOPE_CHOICES = {"all": ("user", "worker"), "user": ("user",), "worker": ("worker",)}
_LAST_USED_RESOLUTION_MS = 60_000


def hash_token(token: str) -> str:
    """Hex SHA-256 of the full token text."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed token, else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    token_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
    if not sep or len(token_id) != 12 or not secret:
        return None
    if any(c not in "0123456789abcdef" for c in token_id):
        return None
    return token_id, secret


@dataclass(frozen=True)
class IssuedToken:
    """A new token; ``token`` is shown once and never stored."""

    id: str
    user_id: str
    user_name: str
    token: str
    scopes: tuple[str, ...]


def issue_token(
    session: Session, user_name: str, scope: str, now: int, name: str = ""
) -> IssuedToken:
    """Create ``user_name`` if needed and a new token for it (the caller commits)."""
    if scope not in SCOPE_CHOICES:
        raise ValueError(f"scope {scope!r} is not one of {sorted(SCOPE_CHOICES)}")
    if not user_name or len(user_name) > 200:
        raise ValueError("user name must be 1 to 200 characters")
    user = session.scalars(select(User).where(User.name == user_name)).one_or_none()
    if user is None:
        user = User(id=new_id(), name=user_name, created_at=now)
        session.add(user)
        session.flush()
    token_id = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    scopes = SCOPE_CHOICES[scope]
    session.add(
        ApiToken(
            id=token_id,
            user_id=user.id,
            name=name,
            token_hash=hash_token(token),
            scopes=",".join(scopes),
            created_at=now,
        )
    )
    return IssuedToken(
        id=token_id, user_id=user.id, user_name=user.name, token=token, scopes=scopes
    )


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's user and the scopes the token grants."""

    user_id: str
    token_id: str
    scopes: frozenset[str]


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "UNAUTHORIZED", message, headers={"WWW-Authenticate": "Bearer"})


_bearer = HTTPBearer(
    auto_error=False,
    description="An API token from `selfsup token create --user NAME`, sent as "
    "`Authorization: Bearer selfsup_...`.",
)


def authenticate(session: Session, token: str, now: int) -> Principal:
    """The principal of ``token``, or 401 if it is malformed, unknown or revoked."""
    parts = split_token(token)
    if parts is None:
        raise _unauthorized("malformed API token: expected 'selfsup_<id>_<secret>'")
    row = session.get(ApiToken, parts[0])
    # The id is public (like a user name); the secret must not leak through timing, hence
    # a constant-time comparison of the digests.
    expected = row.token_hash if row is not None else "0" * 64
    if not hmac.compare_digest(expected, hash_token(token)) or row is None:
        raise _unauthorized("invalid API token")
    if row.revoked_at is not None:
        raise _unauthorized("this API token was revoked")
    if row.last_used_at is None or now - row.last_used_at > _LAST_USED_RESOLUTION_MS:
        row.last_used_at = now
        try:
            session.commit()
        except OperationalError:
            # Only informational: in a read-only (deferred) SQLite transaction the write can
            # lose to a concurrent writer; the next request records the use instead.
            session.rollback()
    return Principal(user_id=row.user_id, token_id=row.id, scopes=frozenset(row.scopes.split(",")))


def db_session(request: Request) -> Iterator[Session]:
    """A database session for one request, closed (and rolled back if uncommitted) after it."""
    session: Session = request.app.state.sessions()
    try:
        yield session
    finally:
        session.close()


DbSession = Annotated[Session, Depends(db_session)]


def current_principal(
    request: Request,
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller of this request; 401 without a valid ``Authorization: Bearer`` token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized(
            "missing API token: send 'Authorization: Bearer <token>' "
            "(create one with: selfsup token create --user NAME)"
        )
    now: int = request.app.state.settings.clock()
    return authenticate(session, credentials.credentials, now)


def _require(scope: str) -> Callable[[Principal], Principal]:
    def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if scope not in principal.scopes:
            raise ApiError(
                403,
                "FORBIDDEN",
                f"this API token lacks the {scope!r} scope "
                f"(it has: {', '.join(sorted(principal.scopes))})",
            )
        return principal

    return dependency


UserPrincipal = Annotated[Principal, Depends(_require("user"))]
"""The caller, who must hold a token with the ``user`` scope."""

WorkerPrincipal = Annotated[Principal, Depends(_require("worker"))]
"""The caller, who must hold a token with the ``worker`` scope."""
