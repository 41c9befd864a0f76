"""The login form, its submission and logout (a session cookie per browser)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from selfsup.apphelpers.web_backend import InvalidToken
from selfsup.web.routes.common import (
    backend_of,
    cross_site_message,
    error_page,
    is_same_origin,
    login_form,
)
from selfsup.web.sessions import (
    COOKIE_NAME,
    login_response,
    logout_response,
    safe_next,
    session_viewer,
)

router = APIRouter(include_in_schema=False)


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    """The token form; a browser that is already logged in goes straight to ``next``."""
    backend = backend_of(request)
    viewer = session_viewer(request)
    if viewer is not None:
        return login_response(request, viewer, next)
    return login_form(backend, safe_next(next))


@router.post("/login")
def login_submit(
    request: Request,
    token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the token once and set the session cookie; the token itself is not kept."""
    backend = backend_of(request)
    if not is_same_origin(request):
        return error_page(None, 403, "Forbidden", cross_site_message(request))
    if not token.strip():
        return login_form(backend, safe_next(next), "Enter a token.")
    try:
        viewer = backend.login(token.strip())
    except InvalidToken as exc:
        return login_form(backend, safe_next(next), str(exc))
    return login_response(request, viewer, next)


@router.post("/logout")
def logout(request: Request) -> Response:
    """End the session on the server and drop the cookie; cross-site POSTs are refused.

    Ending it on the server matters: a copy of the cookie (a shared machine, a proxy log)
    replayed after the logout gets 401, not the user's pages.
    """
    if not is_same_origin(request):
        return error_page(None, 403, "Forbidden", cross_site_message(request))
    session_id = request.app.state.web_sessions.verify(request.cookies.get(COOKIE_NAME))
    if session_id is not None:
        backend_of(request).logout(session_id)
    return logout_response()
