"""Where each user's LOCAL datasources may point: their own roots plus the shared ones.

* **Own roots** are stored per user in the database (``user_roots``) and managed by the
  admin: ``selfsup token roots --user NAME --add DIR / --remove DIR``. Only that user's
  datasources may point inside them.
* **Shared roots** are the server-wide ``selfsup serve --local-root DIR`` folders (or
  ``$SELFSUP_LOCAL_ROOTS``): every user may point inside them, and so may read what other
  users keep there. That is an admin's explicit choice, logged at start-up.

A user's allowed roots are their own roots first, then the shared ones (a relative datasource
path is taken relative to the first). They are checked when a datasource is set, again when a
worker fetches a job (which also carries their real paths, ``allowed_roots``, for the worker
to re-check at use) and in the web app each time a file is served, so removing a root takes
effect at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from selfsup.server.models import User, UserRoot, new_id


def own_roots(session: Session, user_id: str) -> list[Path]:
    """The roots stored for ``user_id``, oldest first."""
    rows = session.scalars(
        select(UserRoot.path)
        .where(UserRoot.user_id == user_id)
        .order_by(UserRoot.created_at, UserRoot.path)
    )
    return [Path(p) for p in rows]


def allowed_roots(session: Session, user_id: str, shared: Sequence[Path]) -> tuple[Path, ...]:
    """The user's own roots, then the shared ones, without repeats."""
    seen: dict[str, Path] = {}
    for root in (*own_roots(session, user_id), *shared):
        seen.setdefault(str(root), root)
    return tuple(seen.values())


def real_paths(roots: Sequence[Path]) -> list[str]:
    """``roots`` with ``~`` expanded and symlinks resolved: what a worker checks against."""
    return [str(Path(r).expanduser().resolve(strict=False)) for r in roots]


def _user(session: Session, user_name: str) -> User:
    user = session.scalars(select(User).where(User.name == user_name)).one_or_none()
    if user is None:
        raise LookupError(
            f"no user {user_name!r}: users are made with 'selfsup token create --user NAME'"
        )
    return user


def _normalised(path: str) -> str:
    if not path or "\x00" in path:
        raise ValueError(f"root {path!r} must be a non-empty path without NUL bytes")
    folder = Path(path).expanduser()
    if not folder.is_absolute():
        raise ValueError(f"root {path!r} must be an absolute path, like /data/{path}")
    if any(part == ".." for part in folder.parts):
        raise ValueError(f"root {path!r} must not contain '..'; give the folder itself")
    return str(folder)


def change_roots(
    session: Session, user_name: str, add: Sequence[str], remove: Sequence[str], now: int
) -> list[Path]:
    """Add and remove roots of ``user_name`` (the caller commits); returns the new list.

    Raises:
        LookupError: no such user.
        ValueError: a root is not an absolute path, or a removed one is not a root of the user.
    """
    user = _user(session, user_name)
    current = {str(p) for p in own_roots(session, user.id)}
    for path in remove:
        folder = _normalised(path)
        if folder not in current:
            raise ValueError(
                f"{folder!r} is not a root of user {user_name!r}; "
                f"their roots: {', '.join(sorted(current)) or 'none'}"
            )
        session.execute(
            delete(UserRoot).where(UserRoot.user_id == user.id, UserRoot.path == folder)
        )
        current.discard(folder)
    for path in add:
        folder = _normalised(path)
        if folder not in current:
            session.add(UserRoot(id=new_id(), user_id=user.id, path=folder, created_at=now))
            current.add(folder)
    session.flush()
    return own_roots(session, user.id)


def roots_of_user(session: Session, user_name: str) -> list[Path]:
    """The own roots of ``user_name``; LookupError for an unknown user."""
    return own_roots(session, _user(session, user_name).id)
