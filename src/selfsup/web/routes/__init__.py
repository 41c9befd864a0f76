"""The web app's routes: HTML pages, thumbnails, output files and the JSON the pages poll.

One module per resource: :mod:`.login` (login and logout), :mod:`.runs` (the runs list and a
run's page), :mod:`.samples` (image grid, image page, embedding map), :mod:`.files`
(thumbnails, previews, output files, artifacts), :mod:`.ui_api` (the JSON under
``/ui-api``), :mod:`.tags` (tagging samples, exports of a tag or a selection) and
:mod:`.explore` (near-duplicate groups, find similar, the map's colours) and
:mod:`.compare` (two runs' selections side by side);
:mod:`.common` holds what they share (templates, error pages, checks).

Pages are rendered on the server with Jinja2 (autoescaping on: every file name, message and
log line is text, never markup); a little JavaScript (``static/app.js``, ``static/map.js``)
polls run states and logs and draws the embedding map. No inline scripts or styles, so the
pages run under a strict Content-Security-Policy.

Who may see what is decided by the :class:`~selfsup.web.backend.Backend` at
``request.app.state.web``: pages take the viewer through
:data:`~selfsup.web.sessions.PageViewer` (no session: redirect to ``/login``), files and JSON
through :data:`~selfsup.web.sessions.ApiViewer` (no session: 401). Another user's run is a
plain 404, indistinguishable from one that does not exist.

Backend errors map to responses the same way everywhere: :class:`WebNotFound` -> 404 (an HTML
page, ``{"code", "error"}`` JSON under ``/ui-api``, a bare 404 for files),
:class:`OutputsUnavailable` -> 409 with its message (the run page itself still renders the
state and the log of a run without outputs). A thumbnail that cannot be made is answered by
a placeholder image with ``X-Selfsup-Thumbnail-Error`` so the grid never breaks.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from selfsup.web.routes import compare, explore, files, login, runs, samples, tags, ui_api
from selfsup.web.routes.common import STATIC_DIR, TEMPLATE_DIR
from selfsup.web.routes.samples import MAX_PER_PAGE, NEIGHBOURS, PER_PAGE
from selfsup.web.routes.ui_api import MAX_SAMPLES_PER_REQUEST

__all__ = [
    "MAX_PER_PAGE",
    "MAX_SAMPLES_PER_REQUEST",
    "NEIGHBOURS",
    "PER_PAGE",
    "STATIC_DIR",
    "TEMPLATE_DIR",
    "install_routes",
]


def install_routes(app: FastAPI) -> None:
    """Add the pages, files and ``/ui-api`` routes to ``app`` and serve ``/static``.

    ``app.state.web`` (the Backend) and the session handling come from
    :func:`selfsup.web.sessions.install_sessions`; the ``/ui-api`` errors are raised as
    :class:`~selfsup.apphelpers.http_errors.ApiError`, answered by the handlers of
    :func:`selfsup.apphelpers.http_errors.install_error_handlers` (both apps install them).
    """
    for module in (login, runs, samples, files, ui_api, tags, explore, compare):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
