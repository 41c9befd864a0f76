"""Browser sessions of the web app: a signed cookie after logging in with an API token.

The token itself never sits in the browser: ``POST /login`` checks it once and sets an
``HttpOnly`` cookie holding ``<session id>.<expiry>.<HMAC-SHA256>``, where the session id is
a random id the backend records (the server's ``web_sessions`` table; ``selfsup view`` keeps
them in memory). Every request re-checks the signature, the expiry and, through
:meth:`Backend.viewer`, that the session was not logged out and its token still exists and is
not revoked: revoking a token logs its browsers out, and a logged-out cookie, replayed, is
refused.

The cookie is ``SameSite=Lax`` (a link to a run page from a chat or e-mail opens logged in)
and ``Secure`` behind HTTPS; state-changing requests are POSTs, which browsers do not send
cross-site with a Lax cookie, and the routes also refuse a POST whose ``Origin`` is foreign.
The API under ``/v1`` ignores the cookie (bearer tokens only), so it cannot be driven
cross-site either.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from selfsup.apphelpers.web_backend import SESSION_MAX_AGE_S, Viewer
from selfsup.utils.atomic import atomic_write_bytes
from selfsup.web.backend import Backend

COOKIE_NAME = "selfsup_session"
_KEY_BYTES = 32
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class SessionSigner:
    """Issues and checks session cookie values ``<session id>.<expiry s>.<signature>``.

    Args:
        key: HMAC key (at least 32 bytes); whoever has it can forge sessions.
        max_age_s: lifetime of a session in seconds.
        clock: seconds since the epoch (injectable for tests).
    """

    def __init__(
        self,
        key: bytes,
        max_age_s: int = SESSION_MAX_AGE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(key) < _KEY_BYTES:
            raise ValueError(f"session key must have at least {_KEY_BYTES} bytes, got {len(key)}")
        if max_age_s <= 0:
            raise ValueError(f"max_age_s must be > 0, got {max_age_s}")
        self._key = key
        self.max_age_s = max_age_s
        self._clock = clock

    def _signature(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def issue(self, session_id: str) -> str:
        """A cookie value for ``session_id`` (letters, digits, ``_`` and ``-`` only)."""
        if not _SESSION_ID.fullmatch(session_id):
            raise ValueError(f"session id {session_id!r} must be letters, digits, '_' or '-'")
        payload = f"{session_id}.{int(self._clock()) + self.max_age_s}"
        return f"{payload}.{self._signature(payload)}"

    def verify(self, value: str | None) -> str | None:
        """The session id of a valid, unexpired cookie value, else None."""
        if not value or len(value) > 512:
            return None
        payload, sep, signature = value.rpartition(".")
        if not sep or not hmac.compare_digest(signature, self._signature(payload)):
            return None
        session_id, sep, expiry = payload.rpartition(".")
        if not sep or not expiry.isdigit() or int(expiry) < self._clock():
            return None
        return session_id


def load_or_create_key(path: Path) -> bytes:
    """The session key stored at ``path``, created (mode 0600, atomically) when missing.

    Keeping the key on disk lets sessions survive a server restart; deleting the file logs
    every browser out.
    """
    if path.is_file():
        key = path.read_bytes()
        if len(key) >= _KEY_BYTES:
            return key
    key = secrets.token_bytes(_KEY_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600: never readable by others, not even between a write and a chmod.
    atomic_write_bytes(path, key, mode=0o600)
    return path.read_bytes()


class LoginRequired(Exception):  # noqa: N818  -- control flow: becomes a redirect
    """A page was asked for without a valid session: the handler redirects to the login."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class NotLoggedIn(Exception):  # noqa: N818  -- control flow: becomes a 401
    """A file or data URL was asked for without a valid session: 401."""


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.web
    return backend


def _signer(request: Request) -> SessionSigner:
    signer: SessionSigner = request.app.state.web_sessions
    return signer


def session_viewer(request: Request) -> Viewer | None:
    """The logged-in viewer of ``request``, or None."""
    session_id = _signer(request).verify(request.cookies.get(COOKIE_NAME))
    if session_id is None:
        return None
    return _backend(request).viewer(session_id)


def _page_viewer(request: Request) -> Viewer:
    viewer = session_viewer(request)
    if viewer is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return viewer


def _api_viewer(request: Request) -> Viewer:
    viewer = session_viewer(request)
    if viewer is None:
        raise NotLoggedIn()
    return viewer


PageViewer = Annotated[Viewer, Depends(_page_viewer)]
"""The viewer of an HTML page; without a session the browser is sent to ``/login``."""

ApiViewer = Annotated[Viewer, Depends(_api_viewer)]
"""The viewer of a thumbnail, file or JSON request; without a session: 401."""


def safe_next(next_url: str | None) -> str:
    """``next_url`` if it is a path on this site, else ``/`` (no open redirects)."""
    if (
        not next_url
        or not next_url.startswith("/")
        or next_url.startswith("//")
        or "\\" in next_url
        or any(ord(c) < 32 for c in next_url)
    ):
        return "/"
    return next_url


def login_response(request: Request, viewer: Viewer, next_url: str | None) -> Response:
    """Redirect to ``next_url`` (made safe) with the session cookie of ``viewer`` set."""
    response = RedirectResponse(safe_next(next_url), status_code=303)
    signer = _signer(request)
    response.set_cookie(
        COOKIE_NAME,
        signer.issue(viewer.session_id),
        max_age=signer.max_age_s,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


def logout_response() -> Response:
    """Redirect to the login page with the session cookie removed."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="lax")
    return response


def install_sessions(app: FastAPI, backend: Backend, signer: SessionSigner) -> None:
    """Attach the backend and signer to ``app`` and turn missing sessions into a redirect
    (pages) or a 401 (everything else)."""
    app.state.web = backend
    app.state.web_sessions = signer

    @app.exception_handler(LoginRequired)
    async def _login_required(_request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={quote(exc.next_url, safe='')}", status_code=303)

    @app.exception_handler(NotLoggedIn)
    async def _not_logged_in(_request: Request, _exc: NotLoggedIn) -> Response:
        return JSONResponse(
            {"code": "UNAUTHORIZED", "error": "not logged in: open /login and enter your token"},
            status_code=401,
        )
