"""``GET /health``: liveness and database reachability, without authentication."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from selfsup import __version__
from selfsup.server.auth import DbSession

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness and database check (no token needed)")
def health(session: DbSession) -> dict[str, str]:
    """``{"status": "ok", "version": ...}`` when the database answers."""
    session.execute(text("SELECT 1"))
    return {"status": "ok", "version": __version__}
