"""What the route modules share: templates and their filters, error pages, the backend of a
request, same-origin and ETag checks, and the run lookups of the pages."""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from selfsup.apphelpers.http_errors import ApiError, bad_request
from selfsup.apphelpers.web_backend import (
    FINAL_STATES,
    OutputsUnavailable,
    RunSummary,
    Viewer,
    WebNotFound,
)
from selfsup.utils.names import display_name
from selfsup.web.backend import Backend, RunView
from selfsup.web.outputs import RunOutputs, Sample

PACKAGE_DIR = Path(__file__).resolve().parents[1]
STATIC_DIR = PACKAGE_DIR / "static"
TEMPLATE_DIR = PACKAGE_DIR / "templates"


# Pages are private and change while a run goes on: never cached, never framed, and scripts,
# styles and images only from this origin (the templates have no inline script or style).
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _thousands(value: object) -> str:
    """``12345`` -> ``12,345``; other values as text."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    return str(value)


def _filesize(size: object) -> str:
    """Bytes in SI units: ``1234567`` -> ``1.2 MB``."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return "—"
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000.0
        if value < 1000.0 or unit == "TB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def _utc_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _iso_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC).isoformat(timespec="seconds")


def segment(value: object) -> str:
    """One URL path segment: every reserved character percent-encoded."""
    return quote(str(value), safe="")


def _path_url(value: str) -> str:
    """A relative file path in a URL: segments encoded, slashes kept."""
    return quote(value, safe="/")


def capitalize_first(value: str) -> str:
    return value[:1].upper() + value[1:]


def state_tone(state: str, is_final: bool) -> str:
    """The colour family of a run state's pill: ok, bad, off, wait or live (running)."""
    upper = state.upper()
    if upper in ("COMPLETED", "DONE"):
        return "ok"
    if upper in ("FAILED", "CRASHED"):
        return "bad"
    if upper in ("ABORTED", "CANCELED", "CANCELLED") or is_final or upper in FINAL_STATES:
        return "off"
    if upper in ("OPEN", "QUEUED", "PENDING", "SCHEDULED"):
        return "wait"
    return "live"


@functools.cache
def static_url(name: str) -> str:
    """``/static/<name>?v=<content hash>``: browsers pick up a new app.js after an upgrade
    while unchanged files stay cached. Hashed once per name and process."""
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()
    return f"/static/{_path_url(name)}?v={digest[:10]}"


def _printable(value: Any) -> Any:
    """What a template prints: strings holding undecodable file-name bytes made readable."""
    return display_name(value) if isinstance(value, str) else value


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        # Every template is HTML: escape everything, whatever the file name says.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
        # File names are bytes: one that is not UTF-8 is shown with its odd bytes as \xNN
        # (the page must be valid UTF-8), wherever a template prints it.
        finalize=_printable,
    )
    env.filters.update(
        thousands=_thousands,
        filesize=_filesize,
        utc_time=_utc_time,
        iso_time=_iso_time,
        seg=segment,
        path_url=_path_url,
        capitalize_first=capitalize_first,
    )
    env.globals.update(static_url=static_url, state_tone=state_tone)
    return env


_ENV = _environment()


def render(
    template: str,
    *,
    viewer: Viewer | None,
    page: str,
    title: str,
    crumbs: Sequence[tuple[str, str | None]] = (),
    status_code: int = 200,
    wide: bool = False,
    **context: Any,
) -> HTMLResponse:
    html = _ENV.get_template(template).render(
        viewer=viewer,
        page=page,
        title=title,
        crumbs=list(crumbs),
        wide=wide,
        status_code=status_code,
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=dict(_PAGE_HEADERS))


def error_page(
    viewer: Viewer | None,
    status_code: int,
    title: str,
    message: str,
    back: tuple[str, str] | None = None,
) -> HTMLResponse:
    return render(
        "error.html",
        viewer=viewer,
        page="error",
        title=title,
        status_code=status_code,
        message=message,
        back_href=back[0] if back else None,
        back_label=back[1] if back else None,
    )


def not_found_page(viewer: Viewer | None, message: str) -> HTMLResponse:
    return error_page(viewer, 404, "Not found", message)


# --------------------------------------------------------------------------- plumbing


def backend_of(request: Request) -> Backend:
    backend: Backend = request.app.state.web
    return backend


def is_same_origin(request: Request) -> bool:
    """Whether a state-changing request comes from this site.

    A browser sends ``Origin`` with every cross-site POST; it must name this host. Without
    ``Origin`` (old browsers, curl), ``Sec-Fetch-Site`` is checked when present. The host is
    compared, not the scheme: behind a TLS-terminating proxy the app sees http while the
    page's origin is https.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
    parts = urlsplit(origin)
    if origin == "null" or parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "")}
    return parts.netloc.lower() in {h.lower() for h in hosts if h}


def cross_site_message(request: Request) -> str:
    return (
        f"refused a cross-site {request.method} from origin "
        f"{request.headers.get('origin', '(none)')!r}: use the page on this site"
    )


NO_STORE = {"Cache-Control": "no-store"}
"""Headers of the JSON answers under ``/ui-api``: live data, never cached."""


def api_view(request: Request, viewer: Viewer, run_id: str) -> RunView:
    """The run's opened outputs for a ``/ui-api`` route; ApiError 404 or 409 (the JSON
    error body) otherwise."""
    try:
        return backend_of(request).view(viewer, run_id)
    except WebNotFound as exc:
        raise ApiError(404, "NOT_FOUND", str(exc)) from None
    except OutputsUnavailable as exc:
        raise ApiError(409, "OUTPUTS_UNAVAILABLE", str(exc)) from None


def refuse_cross_site(request: Request) -> None:
    """403 ``FORBIDDEN`` (JSON, for the ``/ui-api`` POSTs) unless :func:`is_same_origin`."""
    if not is_same_origin(request):
        raise ApiError(403, "FORBIDDEN", cross_site_message(request))


def check_indices(n_samples: int, run_id: str, indices: Sequence[int]) -> None:
    """400 naming the first of ``indices`` that is no sample of the run (of ``n_samples``)."""
    bad = [i for i in indices if not 0 <= i < n_samples]
    if bad:
        raise bad_request(
            f"indices: {bad[0]} is not a sample of run {run_id!r} (use 0 to {n_samples - 1})"
        )


def etag_matches(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag in tags


def login_form(backend: Backend, next_url: str, error: str | None = None) -> HTMLResponse:
    return render(
        "login.html",
        viewer=None,
        page="login",
        title="Log in",
        # A refused token re-renders the form with 200: it is a form error, and a 4xx would
        # also show up as a resource error in the browser console.
        status_code=200,
        mode=backend.mode,
        next_url=next_url,
        error=error,
    )


def run_crumbs(run: RunSummary, *more: tuple[str, str | None]) -> list[tuple[str, str | None]]:
    return [("Runs", "/"), (run.name, f"/runs/{segment(run.id)}" if more else None), *more]


def open_page_view(request: Request, viewer: Viewer, run_id: str) -> RunView | HTMLResponse:
    """The run's opened outputs (``view.summary`` is the run, fresh: no second backend call
    for it), or the error page to answer instead."""
    try:
        return backend_of(request).view(viewer, run_id)
    except WebNotFound as exc:
        return not_found_page(viewer, str(exc))
    except OutputsUnavailable as exc:
        return error_page(
            viewer,
            409,
            "No outputs yet",
            f"{exc}. The images and the map appear when the run completes.",
            back=(f"/runs/{segment(run_id)}", "Back to the run"),
        )


def sample_or_none(outputs: RunOutputs, index: str) -> Sample | None:
    if not index.isdigit() or len(index) > 12:
        return None
    try:
        return outputs.sample(int(index))
    except IndexError:
        return None
