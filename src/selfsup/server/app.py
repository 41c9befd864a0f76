"""The FastAPI application of the server's API.

``selfsup serve`` adds the web app's pages to it (:func:`selfsup.cli.apps.create_server_app`):
the server never imports the web app, nor the web app the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from selfsup import __version__
from selfsup.apphelpers.http_errors import ApiError, install_error_handlers
from selfsup.apphelpers.limits import RequestLimits
from selfsup.server.auth import authenticate
from selfsup.server.db import READ_ONLY, make_engine, session_factory, upgrade_database
from selfsup.server.leases import sweep_expired_leases
from selfsup.server.routes import datasets, health, runs, similar, workers
from selfsup.server.secret_keys import attach_keys, check_keys_open_the_database, load_keys
from selfsup.server.settings import ServerSettings

logger = logging.getLogger(__name__)

DESCRIPTION = """\
The selfsup job server: datasets, datasources, scheduled runs, runs and artifacts.

Every endpoint except `/health` needs `Authorization: Bearer <token>`; create tokens with
`selfsup token create --user NAME`. Errors are JSON: `{"code": ..., "error": ...}`.
Timestamps are milliseconds since the Unix epoch.
"""


async def _sweep_forever(app: FastAPI, interval: float) -> None:
    settings: ServerSettings = app.state.settings
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(sweep_expired_leases, app.state.sessions, settings.clock())
        except Exception:  # the sweeper must survive a database hiccup; the next pass retries
            logger.exception("sweeping expired leases failed; retrying in %.0f s", interval)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ServerSettings = app.state.settings
    task: asyncio.Task[None] | None = None
    if settings.sweep_interval_seconds > 0:
        task = asyncio.create_task(_sweep_forever(app, settings.sweep_interval_seconds))
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        app.state.engine.dispose()


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """Build the API app: connect to the database and migrate it to the newest schema first.

    The app has the API under ``/v1`` and ``/health``; :func:`selfsup.cli.apps.create_server_app`
    (what ``selfsup serve`` runs) adds the web app's pages over the same database. Routes may
    be added to the returned app before it serves its first request.

    Args:
        settings: database, data folder, local roots, lease length, clock; defaults read
            ``$SELFSUP_DATABASE_URL``, ``$SELFSUP_HOME`` and ``$SELFSUP_LOCAL_ROOTS``.

    Raises:
        SecretKeyError: the credentials' key is malformed or does not open the database.
    """
    settings = settings or ServerSettings()
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    keys = settings.secret_keys or load_keys(Path(settings.data_dir))
    assert keys is not None  # load_keys creates the key file when there is none
    engine = make_engine(settings.database_url)
    try:
        attach_keys(engine, keys)
        upgrade_database(engine)
        check_keys_open_the_database(engine, keys)
    except BaseException:
        engine.dispose()
        raise
    logger.info("datasource credentials are encrypted with the key(s) from %s", keys.source)
    if settings.local_roots:
        logger.warning(
            "shared local roots (every user may point LOCAL datasources inside them and so "
            "read what others keep there): %s; per-user roots: selfsup token roots",
            ", ".join(str(r) for r in settings.local_roots),
        )

    app = FastAPI(
        title="selfsup server",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    install_error_handlers(app)
    for module in (health, datasets, runs, similar, workers):
        app.include_router(module.router)
    app.add_middleware(_ReadOnlyRequests)
    # Outermost: sizes and the upload's token are checked before anything reads a body.
    app.add_middleware(
        RequestLimits,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        token_error=_token_checker(app.state.sessions, settings),
    )
    return app


def _token_checker(
    sessions: sessionmaker[Session], settings: ServerSettings
) -> Callable[[str | None], str | None]:
    """For :class:`RequestLimits`: None when an ``Authorization`` header carries a valid
    token, else why not."""

    def token_error(authorization: str | None) -> str | None:
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return (
                "missing API token: send 'Authorization: Bearer <token>' "
                "(create one with: selfsup token create --user NAME)"
            )
        with sessions() as session:
            try:
                authenticate(session, token.strip(), settings.clock())
            except ApiError as exc:
                return exc.message
        return None

    return token_error


class _ReadOnlyRequests:
    """Marks GET/HEAD requests read-only for the database layer (see ``db.READ_ONLY``).

    A plain ASGI middleware: the context variable it sets is copied into the worker thread
    that runs the synchronous endpoint and its dependencies.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = READ_ONLY.set(scope.get("method") in ("GET", "HEAD"))
        try:
            await self.app(scope, receive, send)
        finally:
            READ_ONLY.reset(token)
