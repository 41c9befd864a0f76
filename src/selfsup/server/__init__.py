"""``selfsup serve``: the self-hosted job server (datasets, datasources, scheduled runs, runs,
artifacts) that :class:`selfsup.api.ApiWorkflowClient` and ``selfsup worker`` talk to.

The server stores records; the worker does the work. Nothing here imports torch: configs are
checked with the pydantic models of :mod:`selfsup.config` only. Importing this package is
cheap; :func:`create_app` pulls in FastAPI and SQLAlchemy when it is first used.

:func:`create_app` builds the API; ``selfsup serve`` runs it with the web app's pages added
(:func:`selfsup.cli.apps.create_server_app`): the server never imports the web app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selfsup.server.app import create_app
    from selfsup.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from selfsup.server.app import create_app

        return create_app
    if name == "ServerSettings":
        from selfsup.server.settings import ServerSettings

        return ServerSettings
    raise AttributeError(f"module 'selfsup.server' has no attribute {name!r}")
