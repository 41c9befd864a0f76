"""Building the web app: inside ``selfsup serve`` (:func:`install_web`) or on its own over
local run folders (:func:`create_view_app`, used by ``selfsup view``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI

from selfsup import __version__
from selfsup.apphelpers.query_image import ImageEmbedder
from selfsup.web.backend import Backend
from selfsup.web.folder_backend import FolderBackend, find_run_folders
from selfsup.web.sessions import SessionSigner, install_sessions

logger = logging.getLogger(__name__)

SESSION_KEY_FILE = "web_session.key"


def install_web(
    app: FastAPI, backend: Backend, signer: SessionSigner, embedder: ImageEmbedder | None = None
) -> None:
    """Add the pages, files and ``/ui-api`` routes of the web app to ``app``.

    ``embedder`` embeds an uploaded image for "find similar" (``app.state.image_embedder``);
    without one (an app built without torch) the page says that search is unavailable.
    """
    from selfsup.web.routes import install_routes

    app.state.image_embedder = embedder
    install_sessions(app, backend, signer)
    install_routes(app)


def create_view_app(
    folders: Sequence[str | os.PathLike[str]],
    token: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    input_dir: str | os.PathLike[str] | None = None,
    embedder: ImageEmbedder | None = None,
) -> FastAPI:
    """The web app over local run output folders, without a database.

    Args:
        folders: output folders of ``selfsup run``, or folders holding several of them.
        token: the login token; a random one when None (``app.state.web.token``).
        cache_dir: where thumbnails and caches go (default: each run's ``.selfsup/web``).
        input_dir: where the images are, if they moved since the run.
        embedder: embeds an uploaded image for "find similar" (see :func:`install_web`);
            ``selfsup view`` passes :class:`selfsup.cli.apps.RunImageEmbedder`.

    Raises:
        FileNotFoundError: a folder is missing or holds no run (the message names it).
    """
    from selfsup.apphelpers.http_errors import install_error_handlers
    from selfsup.apphelpers.limits import DEFAULT_MAX_BODY_BYTES, RequestLimits

    backend = FolderBackend(
        find_run_folders(folders),
        token=token,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
        input_dir=Path(input_dir) if input_dir is not None else None,
    )
    app = FastAPI(title="selfsup view", version=__version__, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    # Sessions last as long as this process: a new key each start logs browsers out.
    install_web(app, backend, SessionSigner(os.urandom(32)), embedder=embedder)
    # As in the server: a body is refused by its size before it is read (the login form is
    # read before its token is checked). No artifact uploads here; a query image for "find
    # similar" is an ordinary body within max_body_bytes.
    app.add_middleware(
        RequestLimits,
        max_body_bytes=DEFAULT_MAX_BODY_BYTES,
        max_upload_bytes=1,
        token_error=lambda _authorization: "selfsup view accepts no uploads",
    )
    return app
