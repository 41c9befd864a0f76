"""The ASGI app of ``selfsup serve``: the server's API and the web app over its database.

The one place where the server and the web app meet. Neither imports the other
(``tests/test_layers.py``): the server finds runs for the pages
(:class:`selfsup.server.web_backend.ServerBackend`) and the web app opens them
(:class:`selfsup.web.backend.RunViewOpener`), through the interface of
:mod:`selfsup.apphelpers.web_backend`. Importing this module is cheap and never imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from selfsup.server.settings import ServerSettings


def create_server_app(settings: ServerSettings | None = None) -> FastAPI:
    """The app ``selfsup serve`` runs: :func:`selfsup.server.app.create_app` (the API, its
    database migrated first) with the web app's pages, thumbnails and files on the same
    origin, their sessions signed with the key in ``<data dir>/web_session.key``.

    Args:
        settings: as for :func:`selfsup.server.app.create_app`; defaults read
            ``$SELFSUP_DATABASE_URL``, ``$SELFSUP_HOME`` and ``$SELFSUP_LOCAL_ROOTS``.
    """
    from selfsup.server.app import create_app
    from selfsup.server.web_backend import ServerBackend
    from selfsup.web.app import SESSION_KEY_FILE, install_web
    from selfsup.web.backend import RunViewOpener
    from selfsup.web.sessions import SessionSigner, load_or_create_key

    app = create_app(settings)
    resolved: ServerSettings = app.state.settings
    install_web(
        app,
        ServerBackend(app.state.sessions, resolved, RunViewOpener()),
        SessionSigner(load_or_create_key(Path(resolved.data_dir) / SESSION_KEY_FILE)),
    )
    return app
