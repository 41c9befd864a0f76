"""The web app's routes: HTML pages, thumbnails, output files and the JSON the pages poll.

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

import dataclasses
import functools
import hashlib
import json
import logging
import math
import mimetypes
import os
import threading
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

import jinja2
import numpy as np
from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from selfsup.apphelpers.http_errors import ApiError, bad_request
from selfsup.apphelpers.paths import inside
from selfsup.apphelpers.web_backend import (
    FINAL_STATES,
    Download,
    InvalidToken,
    OutputsUnavailable,
    RunSummary,
    Viewer,
    WebNotFound,
)
from selfsup.utils.names import display_name
from selfsup.web.backend import Backend, RunView
from selfsup.web.outputs import STATUSES, RunOutputs, Sample, Status
from selfsup.web.sessions import (
    COOKIE_NAME,
    ApiViewer,
    LoginRequired,
    PageViewer,
    login_response,
    logout_response,
    safe_next,
    session_viewer,
)
from selfsup.web.sources import check_relative_path
from selfsup.web.thumbnails import ThumbnailError

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_PER_PAGE",
    "MAX_SAMPLES_PER_REQUEST",
    "PER_PAGE",
    "STATIC_DIR",
    "TEMPLATE_DIR",
    "install_routes",
    "router",
]

PACKAGE_DIR = Path(__file__).resolve().parent
STATIC_DIR = PACKAGE_DIR / "static"
TEMPLATE_DIR = PACKAGE_DIR / "templates"

PER_PAGE = 200
"""Tiles per grid page; ``?per_page=`` may ask for 1 to :data:`MAX_PER_PAGE`."""
MAX_PER_PAGE = 500
MAX_QUERY_CHARS = 200
MAX_LOG_OFFSET = 2**53
"""Largest ``?offset=`` of the log poll: far beyond any log, and safe for ``seek``."""
MAX_SAMPLES_PER_REQUEST = 10_000
"""Most indices one ``POST /ui-api/runs/{id}/samples`` may ask for."""
THUMB_SIZE = 192
"""Edge of the square thumbnails (px); the ``width``/``height`` of grid ``<img>`` tags."""
NEIGHBOURS = 12

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
_THUMB_CACHE = "private, max-age=86400"
# Output files can be rewritten by a rerun into the same folder: revalidate every time (the
# ETag makes that a cheap 304).
_FILE_CACHE = "private, no-cache"
_INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

_COUNT_LABELS = {
    "n_files_found": "Files found",
    "n_samples_found": "Samples found",
    "n_corrupt": "Corrupt",
    "n_duplicates": "Duplicates",
    "n_not_relevant": "Not relevant",
    "n_input_to_selection": "Input to selection",
    "n_removed_by_filters": "Removed by filters",
    "n_selected": "Selected",
    "n_removed": "Removed",
    "before": "Before selection",
    "after": "After selection",
}
_FILTER_LABELS: dict[str, str] = {
    "all": "All",
    "selected": "Selected",
    "removed": "Removed",
    "corrupt": "Corrupt",
    "duplicate": "Duplicate",
}

_PLACEHOLDER_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="192" height="192" viewBox="0 0 192 192">'
    '<rect width="192" height="192" fill="#e9ecf0"/>'
    '<g fill="none" stroke="#a3acb9" stroke-width="6" stroke-linecap="round">'
    '<rect x="58" y="62" width="76" height="60" rx="6"/><path d="M64 114l22-22 16 16 10-10 16 16"/>'
    '<path d="M50 140L142 52"/></g>'
    '<text x="96" y="160" text-anchor="middle" font-family="system-ui,sans-serif" '
    'font-size="13" fill="#6b7684">no preview</text></svg>'
).encode("ascii")

router = APIRouter(include_in_schema=False)


# --------------------------------------------------------------------------- templates


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


def _segment(value: object) -> str:
    """One URL path segment: every reserved character percent-encoded."""
    return quote(str(value), safe="")


def _path_url(value: str) -> str:
    """A relative file path in a URL: segments encoded, slashes kept."""
    return quote(value, safe="/")


def _capitalize_first(value: str) -> str:
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
        seg=_segment,
        path_url=_path_url,
        capitalize_first=_capitalize_first,
    )
    env.globals.update(static_url=static_url, state_tone=state_tone)
    return env


_ENV = _environment()


def _render(
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


def _error_page(
    viewer: Viewer | None,
    status_code: int,
    title: str,
    message: str,
    back: tuple[str, str] | None = None,
) -> HTMLResponse:
    return _render(
        "error.html",
        viewer=viewer,
        page="error",
        title=title,
        status_code=status_code,
        message=message,
        back_href=back[0] if back else None,
        back_label=back[1] if back else None,
    )


def _not_found_page(viewer: Viewer | None, message: str) -> HTMLResponse:
    return _error_page(viewer, 404, "Not found", message)


# --------------------------------------------------------------------------- plumbing


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.web
    return backend


def _plain(status_code: int, message: str) -> Response:
    return Response(
        message,
        status_code=status_code,
        media_type="text/plain; charset=utf-8",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"},
    )


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


def _cross_site_message(request: Request) -> str:
    return (
        f"refused a cross-site {request.method} from origin "
        f"{request.headers.get('origin', '(none)')!r}: use the page on this site"
    )


def _etag(path: Path) -> tuple[str, os.stat_result]:
    stat = path.stat()
    digest = hashlib.sha1(
        f"{path.name}:{stat.st_mtime_ns}:{stat.st_size}".encode(), usedforsecurity=False
    ).hexdigest()
    return f'"{digest[:20]}"', stat


def _etag_matches(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag in tags


def _file_response(
    request: Request,
    path: Path,
    *,
    media_type: str,
    cache_control: str,
    download_name: str | None = None,
) -> Response:
    """``path`` with an ETag (304 when the browser has it), attachment when named."""
    etag, stat = _etag(path)
    headers = {"ETag": etag, "Cache-Control": cache_control, "X-Content-Type-Options": "nosniff"}
    if _etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    if download_name is not None:
        return FileResponse(
            path,
            media_type=media_type,
            headers=headers,
            filename=download_name,
            content_disposition_type="attachment",
            stat_result=stat,
        )
    return FileResponse(path, media_type=media_type, headers=headers, stat_result=stat)


def _media_type(path: Path) -> str:
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def _summary_json(run: RunSummary) -> dict[str, Any]:
    data = dataclasses.asdict(run)
    data["tone"] = state_tone(run.state, run.is_final)
    return data


MAX_PAGE_NUMBER = 10**9
"""Largest grid page number (and sample position) a URL may carry."""


class BadNumberError(ValueError):
    """A numeric query parameter is not an integer in its accepted range."""


def _parse_int(raw: str | None, name: str, default: int, lo: int, hi: int) -> int:
    """The integer query parameter ``name``: ``default`` when absent or empty.

    Raises:
        BadNumberError: not a plain decimal integer in ``lo..hi``; the message names the
            parameter, the value (cut short) and the accepted range.
    """
    if raw in (None, ""):
        return default
    assert raw is not None
    # Length first: int() of a huge digit string is itself costly, and no value this long
    # can be in range.
    value: int | None = None
    if len(raw) <= 20 and raw.removeprefix("-").isdigit() and raw.isascii():
        value = int(raw)
    if value is None or not lo <= value <= hi:
        raise BadNumberError(f"{name!r} must be an integer from {lo} to {hi}, got {raw[:40]!r}")
    return value


def _parse_status(raw: str | None) -> tuple[Status | None, str | None]:
    """``(status, None)`` for a known status or all (``None``), ``(None, error)`` else."""
    if raw in (None, "", "all"):
        return None, None
    for status in STATUSES:
        if raw == status:
            return status, None
    return None, f"unknown status {raw!r}: use one of all, {', '.join(STATUSES)}"


def _url(path: str, **params: str | int | None) -> str:
    query = {k: str(v) for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(query)}" if query else path


# --------------------------------------------------------------------------- login


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    """The token form; a browser that is already logged in goes straight to ``next``."""
    backend = _backend(request)
    viewer = session_viewer(request)
    if viewer is not None:
        return login_response(request, viewer, next)
    return _login_form(backend, safe_next(next))


def _login_form(backend: Backend, next_url: str, error: str | None = None) -> HTMLResponse:
    return _render(
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


@router.post("/login")
def login_submit(
    request: Request,
    token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the token once and set the session cookie; the token itself is not kept."""
    backend = _backend(request)
    if not is_same_origin(request):
        return _error_page(None, 403, "Forbidden", _cross_site_message(request))
    if not token.strip():
        return _login_form(backend, safe_next(next), "Enter a token.")
    try:
        viewer = backend.login(token.strip())
    except InvalidToken as exc:
        return _login_form(backend, safe_next(next), str(exc))
    return login_response(request, viewer, next)


@router.post("/logout")
def logout(request: Request) -> Response:
    """End the session on the server and drop the cookie; cross-site POSTs are refused.

    Ending it on the server matters: a copy of the cookie (a shared machine, a proxy log)
    replayed after the logout gets 401, not the user's pages.
    """
    if not is_same_origin(request):
        return _error_page(None, 403, "Forbidden", _cross_site_message(request))
    session_id = request.app.state.web_sessions.verify(request.cookies.get(COOKIE_NAME))
    if session_id is not None:
        _backend(request).logout(session_id)
    return logout_response()


# --------------------------------------------------------------------------- pages


@router.get("/")
def index(request: Request, token: str | None = None) -> Response:
    """Datasets and their runs, newest first; ``/?token=...`` logs in first (the link
    ``selfsup view`` prints) and redirects to ``/`` so the token leaves the address bar.

    Only ``selfsup view`` honours the token in the URL: on the server an API token never
    belongs in a URL (access logs), and a link with the attacker's token would log a victim's
    browser into the attacker's account (login CSRF).
    """
    backend = _backend(request)
    if token is not None and backend.mode == "folder":
        try:
            viewer = backend.login(token.strip())
        except InvalidToken as exc:
            return _login_form(backend, "/", str(exc))
        return login_response(request, viewer, "/")
    found = session_viewer(request)
    if found is None:
        raise LoginRequired("/")
    viewer = found
    datasets = backend.datasets(viewer)
    runs = backend.runs(viewer)
    groups: list[dict[str, Any]] = [
        {"id": d.id, "name": d.name, "created_at": d.created_at, "runs": []} for d in datasets
    ]
    by_id = {g["id"]: g for g in groups}
    for run in runs:
        group = by_id.get(run.dataset_id)
        if group is None:
            group = {"id": run.dataset_id, "name": run.dataset_name, "created_at": None, "runs": []}
            by_id[run.dataset_id] = group
            groups.append(group)
        group["runs"].append(run)
    return _render(
        "index.html",
        viewer=viewer,
        page="index",
        title="Runs",
        crumbs=[("Runs", None)],
        groups=groups,
        n_runs=len(runs),
        mode=backend.mode,
    )


def _run_crumbs(run: RunSummary, *more: tuple[str, str | None]) -> list[tuple[str, str | None]]:
    return [("Runs", "/"), (run.name, f"/runs/{_segment(run.id)}" if more else None), *more]


def _open_page_view(request: Request, viewer: Viewer, run_id: str) -> RunView | HTMLResponse:
    """The run's opened outputs (``view.summary`` is the run, fresh: no second backend call
    for it), or the error page to answer instead."""
    try:
        return _backend(request).view(viewer, run_id)
    except WebNotFound as exc:
        return _not_found_page(viewer, str(exc))
    except OutputsUnavailable as exc:
        return _error_page(
            viewer,
            409,
            "No outputs yet",
            f"{exc}. The images and the map appear when the run completes.",
            back=(f"/runs/{_segment(run_id)}", "Back to the run"),
        )


@router.get("/runs/{run_id}")
def run_page(request: Request, viewer: PageViewer, run_id: str) -> Response:
    """State, message and log of a run (both followed live), then its report: counts,
    savings, selection, plots and downloads."""
    backend = _backend(request)
    try:
        run = backend.run(viewer, run_id)
        log_text, log_offset = backend.log(viewer, run_id, 0)
    except WebNotFound as exc:
        return _not_found_page(viewer, str(exc))
    view: RunView | None = None
    downloads: list[Download] = []
    outputs_message = run.message or "This run has no outputs."
    if run.has_outputs:
        # Downloads are listed only beside the report: a run without outputs skips the query.
        try:
            view = backend.view(viewer, run_id)
            downloads = backend.downloads(viewer, run_id)
        except OutputsUnavailable as exc:
            outputs_message = str(exc)
        except WebNotFound as exc:
            return _not_found_page(viewer, str(exc))
    report = view.outputs.report if view is not None else {}
    log_empty = (
        "Local runs print their log to the terminal; this folder has none."
        if backend.mode == "folder"
        else ("No log yet." if not run.is_final else "This run wrote no log.")
    )
    return _render(
        "run.html",
        viewer=viewer,
        page="run",
        title=run.name,
        crumbs=_run_crumbs(run),
        run=run,
        outputs_ready=view is not None,
        outputs_message=outputs_message,
        job_items=_job_items(report),
        count_items=_count_items(report),
        corrupt_reasons=_corrupt_reasons(report),
        savings_items=_savings_items(report),
        savings_note=_savings_note(report),
        selection_items=_selection_items(report),
        plots=_plots(report),
        downloads=downloads,
        log_text=log_text,
        log_offset=log_offset,
        log_empty=log_empty,
    )


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count_items(report: dict[str, Any]) -> list[tuple[str, str, int]]:
    """Every integer of ``report["counts"]`` as ``(key, label, value)``, in report order."""
    return [
        (
            key,
            _COUNT_LABELS.get(key, _capitalize_first(key.removeprefix("n_").replace("_", " "))),
            v,
        )
        for key, v in _dict(report.get("counts")).items()
        if isinstance(v, int) and not isinstance(v, bool)
    ]


def _corrupt_reasons(report: dict[str, Any]) -> list[tuple[str, int]]:
    reasons = _dict(_dict(report.get("counts")).get("corrupt_reasons"))
    return sorted(
        ((str(k), v) for k, v in reasons.items() if isinstance(v, int)), key=lambda kv: -kv[1]
    )


def _percent(value: object) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return f"{100.0 * value:.1f} %"
    return None


def _number(value: object, digits: int = 2) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}" if math.isfinite(value) else str(value)


def _items(pairs: Sequence[tuple[str, str | None]]) -> list[tuple[str, str]]:
    return [(label, text) for label, text in pairs if text is not None]


def _savings_items(report: dict[str, Any]) -> list[tuple[str, str]]:
    s = _dict(report.get("savings"))
    currency = str(s.get("currency") or "")
    cost = _number(s.get("labeling_cost_saved"))
    co2 = _number(s.get("kg_co2e_saved"), 3)
    return _items(
        [
            ("Samples to label", _number(s.get("samples_to_label"))),
            ("Samples saved", _number(s.get("samples_saved"))),
            ("Fraction saved", _percent(s.get("fraction_saved"))),
            ("Labelling cost saved", f"{cost} {currency}".strip() if cost else None),
            ("CO₂e saved", f"{co2} kg" if co2 else None),
        ]
    )


def _savings_note(report: dict[str, Any]) -> str:
    note = _dict(_dict(report.get("savings")).get("assumptions")).get("note")
    return str(note) if note else ""


_STOP_REASONS = {
    "n_samples": "the requested number of samples was reached",
    "min_distance": "no candidate was farther than min_distance",
    "exhausted": "every candidate was picked or filtered",
}


def _selection_items(report: dict[str, Any]) -> list[tuple[str, str]]:
    sel = _dict(report.get("selection"))
    pick = _dict(sel.get("pick_distance"))
    method = _dict(_dict(report.get("job")).get("config")).get("method")
    reason = sel.get("stop_reason")
    return _items(
        [
            ("Method", str(method) if method else None),
            ("Selected", _number(sel.get("n_selected"))),
            ("Selected fraction", _percent(sel.get("selected_fraction"))),
            ("Requested", _number(sel.get("n_requested"))),
            ("Stopped because", _STOP_REASONS.get(str(reason), str(reason)) if reason else None),
            ("Removed by filters", _number(sel.get("n_removed_by_filters"))),
            ("Last pick distance", _number(pick.get("last"), 4)),
            ("Median pick distance", _number(pick.get("median"), 4)),
        ]
    )


def _job_items(report: dict[str, Any]) -> list[tuple[str, str]]:
    job = _dict(report.get("job"))
    duration = job.get("duration_s")
    return _items(
        [
            ("Input folder", str(job["input_dir"]) if job.get("input_dir") else None),
            (
                "Duration",
                _duration(float(duration)) if isinstance(duration, int | float) else None,
            ),
            (
                "selfsup version",
                str(job["selfsup_version"]) if job.get("selfsup_version") else None,
            ),
        ]
    )


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _plots(report: dict[str, Any]) -> list[tuple[str, str]]:
    files = _dict(report.get("plots")).get("files")
    if not isinstance(files, list):
        return []
    return [(f, PurePosixPath(f).stem.replace("_", " ")) for f in files if isinstance(f, str)]


@router.get("/runs/{run_id}/images")
def images_page(
    request: Request,
    viewer: PageViewer,
    run_id: str,
    status: str | None = None,
    page: str | None = None,
    per_page: str | None = None,
    q: str = "",
) -> Response:
    """One page of the thumbnail grid: filter tabs with counts, file-name search, pager.

    Only the requested page is rendered (``RunOutputs.page``), so a 100,000-sample run
    answers as fast as a small one; the thumbnails load lazily as they scroll into view.
    """
    view = _open_page_view(request, viewer, run_id)
    if isinstance(view, HTMLResponse):
        return view
    run = view.summary
    outputs = view.outputs
    chosen, error = _parse_status(status)
    if error is not None:
        return _error_page(
            viewer, 400, "Bad filter", error, back=(f"/runs/{_segment(run_id)}/images", "All")
        )
    query = q.strip()[:MAX_QUERY_CHARS]
    try:
        size = _parse_int(per_page, "per_page", PER_PAGE, 1, MAX_PER_PAGE)
        number = _parse_int(page, "page", 1, 1, MAX_PAGE_NUMBER)
    except BadNumberError as exc:
        return _error_page(
            viewer, 400, "Bad page", str(exc), back=(f"/runs/{_segment(run_id)}/images", "All")
        )
    samples, total = outputs.page(chosen, (number - 1) * size, size, query)
    n_pages = max(1, math.ceil(total / size))
    if number > n_pages:  # past the end (e.g. a stale link): show the last page
        number = n_pages
        samples, total = outputs.page(chosen, (number - 1) * size, size, query)
    offset = (number - 1) * size

    base = f"/runs/{_segment(run_id)}/images"
    shown_size = size if size != PER_PAGE else None
    counts = _filter_counts(outputs, query)
    tabs = [
        {
            "key": key,
            "label": _FILTER_LABELS[key],
            "count": counts[key],
            "active": (chosen or "all") == key,
            "href": _url(base, status=None if key == "all" else key, q=query, per_page=shown_size),
        }
        for key in ("all", *STATUSES)
    ]

    def page_href(n: int) -> str:
        return _url(base, status=chosen, q=query, per_page=shown_size, page=n if n > 1 else None)

    detail = f"/runs/{_segment(run_id)}/images/"
    return _render(
        "images.html",
        viewer=viewer,
        page="images",
        title=f"Images · {run.name}",
        crumbs=_run_crumbs(run, ("Images", None)),
        wide=True,
        run=run,
        status=chosen,
        query=query,
        max_query=MAX_QUERY_CHARS,
        tabs=tabs,
        samples=samples,
        detail_hrefs=[
            _url(f"{detail}{s.index}", status=chosen, q=query, pos=offset + i)
            for i, s in enumerate(samples)
        ],
        total=total,
        page_number=number,
        n_pages=n_pages,
        per_page=size,
        default_per_page=PER_PAGE,
        prev_href=page_href(number - 1) if number > 1 else None,
        next_href=page_href(number + 1) if number < n_pages else None,
        clear_href=_url(base, status=chosen, per_page=shown_size),
        thumb_size=THUMB_SIZE,
    )


def _filter_counts(outputs: RunOutputs, query: str) -> dict[str, int]:
    """Samples per filter tab; with a search, the matches per tab."""
    if not query:
        return dict(outputs.counts())
    counts: dict[str, int] = {s: outputs.page(s, 0, 1, query)[1] for s in STATUSES}
    counts["all"] = sum(counts.values())
    return counts


@router.get("/runs/{run_id}/images/{index}")
def image_page(
    request: Request,
    viewer: PageViewer,
    run_id: str,
    index: str,
    status: str | None = None,
    q: str = "",
    pos: str | None = None,
) -> Response:
    """One sample: its preview, status and why, metadata, and its nearest neighbours.

    ``status``, ``q`` and ``pos`` (its position in that filtered list) come from the grid,
    so previous/next walk the same filtered list the user was looking at.
    """
    view = _open_page_view(request, viewer, run_id)
    if isinstance(view, HTMLResponse):
        return view
    run = view.summary
    outputs = view.outputs
    sample = _sample_or_none(outputs, index)
    if sample is None:
        return _not_found_page(viewer, f"run {run_id!r} has no sample {index!r}")
    chosen, error = _parse_status(status)
    query = q.strip()[:MAX_QUERY_CHARS]
    base = f"/runs/{_segment(run_id)}/images"
    try:
        parsed_pos = _parse_int(pos, "pos", -1, 0, MAX_PAGE_NUMBER)
    except BadNumberError as exc:
        return _error_page(viewer, 400, "Bad position", str(exc), back=(base, "All"))
    position: int | None = parsed_pos if parsed_pos >= 0 else None
    prev_href = next_href = None
    filter_total = 0
    if error is None and position is not None:
        start = max(position - 1, 0)
        around, filter_total = outputs.page(chosen, start, position - start + 2, query)
        here = position - start
        if here < len(around) and around[here].index == sample.index:
            if here > 0:
                prev = around[here - 1]
                prev_href = _url(f"{base}/{prev.index}", status=chosen, q=query, pos=position - 1)
            if here + 1 < len(around):
                nxt = around[here + 1]
                next_href = _url(f"{base}/{nxt.index}", status=chosen, q=query, pos=position + 1)
        else:  # the list changed since the grid was rendered: no filtered walk
            position = None
    if position is None:
        chosen, query = None, ""
        n = len(outputs.samples)
        prev_href = f"{base}/{sample.index - 1}" if sample.index > 0 else None
        next_href = f"{base}/{sample.index + 1}" if sample.index + 1 < n else None
    grid_page = position // PER_PAGE + 1 if position is not None else None
    explanation = outputs.explain(sample.index)
    related: list[tuple[str, Sample]] = []
    for label, other in explanation.related:
        found = _sample_or_none(outputs, str(other))
        if found is not None:
            related.append((label, found))
    return _render(
        "image.html",
        viewer=viewer,
        page="image",
        title=f"{sample.filename} · {run.name}",
        crumbs=_run_crumbs(run, ("Images", base), (sample.filename, None)),
        run=run,
        sample=sample,
        explanation=explanation,
        related=related,
        neighbours=outputs.neighbours(sample.index, k=NEIGHBOURS),
        prev_href=prev_href,
        next_href=next_href,
        grid_href=_url(
            base,
            status=chosen,
            q=query,
            page=grid_page if grid_page and grid_page > 1 else None,
        ),
        position=position,
        filter_total=filter_total,
        filter_label=_FILTER_LABELS[chosen or "all"].lower() if chosen else "samples",
        thumb_size=THUMB_SIZE,
    )


def _sample_or_none(outputs: RunOutputs, index: str) -> Sample | None:
    if not index.isdigit() or len(index) > 12:
        return None
    try:
        return outputs.sample(int(index))
    except IndexError:
        return None


@router.get("/runs/{run_id}/map")
def map_page(
    request: Request, viewer: PageViewer, run_id: str, method: str | None = None
) -> Response:
    """The 2-D embedding map: drawn by map.js from ``/ui-api/runs/{id}/projection``."""
    view = _open_page_view(request, viewer, run_id)
    if isinstance(view, HTMLResponse):
        return view
    run = view.summary
    methods = view.outputs.projection_methods()
    chosen = method or (methods[0] if methods else None)
    if chosen is not None and chosen not in methods:
        return _error_page(
            viewer,
            404,
            "No such projection",
            f"this run has no {chosen!r} projection; available: {', '.join(methods) or 'none'}",
            back=(f"/runs/{_segment(run_id)}/map", "Default map"),
        )
    return _render(
        "map.html",
        viewer=viewer,
        page="map",
        title=f"Map · {run.name}",
        crumbs=_run_crumbs(run, ("Map", None)),
        wide=True,
        run=run,
        methods=methods,
        method=chosen,
        statuses=list(STATUSES),
    )


# --------------------------------------------------------------------------- files


def _open_file_view(request: Request, viewer: Viewer, run_id: str) -> RunView | Response:
    try:
        return _backend(request).view(viewer, run_id)
    except WebNotFound:
        return _plain(404, "not found")
    except OutputsUnavailable as exc:
        return _plain(409, str(exc))


_logged_thumbnail_errors: set[tuple[str, int, str]] = set()
_logged_lock = threading.Lock()
_MAX_LOGGED = 100_000


def _log_thumbnail_error_once(run_id: str, sample: Sample, kind: str, exc: Exception) -> None:
    key = (run_id, sample.index, kind)
    with _logged_lock:
        if key in _logged_thumbnail_errors:
            return
        if len(_logged_thumbnail_errors) >= _MAX_LOGGED:
            _logged_thumbnail_errors.clear()
        _logged_thumbnail_errors.add(key)
    # Corrupt samples have no picture by definition; only unexpected failures are warnings.
    level = logging.DEBUG if sample.status == "corrupt" else logging.WARNING
    logger.log(level, "no %s for sample %d of run %s: %s", kind, sample.index, run_id, exc)


def _header_text(message: str) -> str:
    """``message`` fit for an HTTP header: ASCII, one line, short."""
    flat = " ".join(message.split())
    return flat.encode("ascii", "replace").decode("ascii")[:300]


def _image(request: Request, viewer: Viewer, run_id: str, index: str, kind: str) -> Response:
    opened = _open_file_view(request, viewer, run_id)
    if isinstance(opened, Response):
        return opened
    sample = _sample_or_none(opened.outputs, index)
    if sample is None:
        return _plain(404, "not found")
    try:
        if kind == "thumbnail":
            path = opened.thumbnails.thumbnail(sample, opened.reader)
        else:
            path = opened.thumbnails.preview(sample, opened.reader)
    except (ThumbnailError, OSError) as exc:
        # OSError: the cache folder cannot be written (full disk, permissions); the grid
        # keeps working with placeholders and the log says why.
        _log_thumbnail_error_once(run_id, sample, kind, exc)
        return Response(
            _PLACEHOLDER_SVG,
            media_type="image/svg+xml",
            headers={
                "X-Selfsup-Thumbnail-Error": _header_text(str(exc)),
                "Cache-Control": "private, no-cache",
                "X-Content-Type-Options": "nosniff",
            },
        )
    return _file_response(request, path, media_type="image/jpeg", cache_control=_THUMB_CACHE)


@router.get("/runs/{run_id}/thumbs/{index}")
def thumbnail(request: Request, viewer: ApiViewer, run_id: str, index: str) -> Response:
    """The cached JPEG thumbnail of a sample (made on first request)."""
    return _image(request, viewer, run_id, index, "thumbnail")


@router.get("/runs/{run_id}/preview/{index}")
def preview(request: Request, viewer: ApiViewer, run_id: str, index: str) -> Response:
    """The larger cached JPEG shown on a sample's page."""
    return _image(request, viewer, run_id, index, "preview")


@router.get("/runs/{run_id}/files/{path:path}")
def output_file(request: Request, viewer: ApiViewer, run_id: str, path: str) -> Response:
    """A file of the run's output folder; never anything outside it (404).

    The spelling is checked before the backend opens anything (the same rules
    RunOutputs.resolve_file applies), and the resolved path is checked again after it: two
    locks on the one door that matters most.
    """
    try:
        check_relative_path(path)
    except FileNotFoundError:
        return _plain(404, "not found")
    opened = _open_file_view(request, viewer, run_id)
    if isinstance(opened, Response):
        return opened
    try:
        resolved = opened.outputs.resolve_file(path)
    except FileNotFoundError:
        return _plain(404, "not found")
    if not inside(resolved, Path(opened.outputs.folder)):
        logger.error("resolve_file(%r) of run %s left its folder; refused", path, run_id)
        return _plain(404, "not found")
    media_type = _media_type(resolved)
    inline = media_type in _INLINE_TYPES
    return _file_response(
        request,
        resolved,
        media_type=media_type,
        cache_control=_FILE_CACHE,
        download_name=None if inline else resolved.name,
    )


@router.get("/runs/{run_id}/artifacts/{artifact_id}")
def artifact(request: Request, viewer: ApiViewer, run_id: str, artifact_id: str) -> Response:
    """A server artifact of the run (log, report, checkpoint...), as a download."""
    try:
        path, name = _backend(request).artifact_path(viewer, run_id, artifact_id)
    except WebNotFound:
        return _plain(404, "not found")
    if not path.is_file():
        return _plain(404, "the artifact's file is gone")
    return _file_response(
        request,
        path,
        media_type=_media_type(Path(name)),
        cache_control=_FILE_CACHE,
        download_name=name,
    )


# --------------------------------------------------------------------------- JSON


_NO_STORE = {"Cache-Control": "no-store"}


@router.get("/ui-api/runs")
def api_runs(request: Request, viewer: ApiViewer) -> JSONResponse:
    """``{"runs": [summary...]}``: every run of the viewer, newest first (polled by ``/``)."""
    runs = _backend(request).runs(viewer)
    return JSONResponse({"runs": [_summary_json(r) for r in runs]}, headers=_NO_STORE)


@router.get("/ui-api/runs/{run_id}")
def api_run(request: Request, viewer: ApiViewer, run_id: str) -> JSONResponse:
    """One run's summary."""
    try:
        run = _backend(request).run(viewer, run_id)
    except WebNotFound as exc:
        raise ApiError(404, "NOT_FOUND", str(exc)) from None
    return JSONResponse(_summary_json(run), headers=_NO_STORE)


@router.get("/ui-api/runs/{run_id}/log")
def api_log(
    request: Request,
    viewer: ApiViewer,
    run_id: str,
    offset: Annotated[int, Query(ge=0, le=MAX_LOG_OFFSET)] = 0,
) -> JSONResponse:
    """``{"text", "offset", "run"}``: the log from byte ``offset`` on, the offset to ask for
    next and the run's summary (one request per poll follows both)."""
    backend = _backend(request)
    try:
        text, next_offset = backend.log(viewer, run_id, offset)
        run = backend.run(viewer, run_id)
    except WebNotFound as exc:
        raise ApiError(404, "NOT_FOUND", str(exc)) from None
    return JSONResponse(
        {"text": text, "offset": next_offset, "run": _summary_json(run)}, headers=_NO_STORE
    )


def _api_view(request: Request, viewer: Viewer, run_id: str) -> RunView:
    """The run's opened outputs; ApiError 404 or 409 (the JSON error body) otherwise."""
    try:
        return _backend(request).view(viewer, run_id)
    except WebNotFound as exc:
        raise ApiError(404, "NOT_FOUND", str(exc)) from None
    except OutputsUnavailable as exc:
        raise ApiError(409, "OUTPUTS_UNAVAILABLE", str(exc)) from None


def _status_codes(outputs: RunOutputs, indices: Sequence[int]) -> list[int]:
    code = {s: i for i, s in enumerate(STATUSES)}
    samples = outputs.samples
    return [code[samples[i].status] for i in indices]


def _rounded(values: np.ndarray[Any, np.dtype[np.floating[Any]]]) -> list[float]:
    """Coordinates with 5 significant digits of the data's range: x and y of 99,700 points
    take 1.3 MB of JSON instead of 3.8 MB (float32 normals, measured), and nothing visible
    changes."""
    finite = values[np.isfinite(values)]
    span = float(finite.max() - finite.min()) if finite.size else 0.0
    decimals = max(0, 5 - math.ceil(math.log10(span))) if span > 0 else 6
    rounded: list[float] = np.round(values.astype(np.float64), decimals).tolist()
    return rounded


@router.get("/ui-api/runs/{run_id}/projection")
def api_projection(
    request: Request, viewer: ApiViewer, run_id: str, method: str | None = None
) -> Response:
    """``{"method", "description", "statuses", "index", "x", "y", "status"}``; ``status``
    holds small ints into ``statuses`` (== STATUSES).

    The encoded body is kept per opened outputs and method (99,700 points: 2.24 MB, 2.3 s the
    first time, 5.6 ms after; benchmarks/README.md), with an ETag so a reload of the map
    costs a 304.
    """
    outputs = _api_view(request, viewer, run_id).outputs
    methods = outputs.projection_methods()
    chosen = method or (methods[0] if methods else "pca")
    try:
        body, etag = _projection_body(outputs, chosen)
    except KeyError:
        raise ApiError(
            404,
            "NOT_FOUND",
            f"no {chosen!r} projection for run {run_id!r}; available: "
            f"{', '.join(methods) or 'none (the run has no embeddings)'}",
        ) from None
    headers = {"Cache-Control": "private, no-cache", "ETag": etag}
    if _etag_matches(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


# Encoded projections per opened RunOutputs: a backend that reopens a rewritten folder hands
# out a new RunOutputs, and the old entry goes with the old object.
_projection_bodies: weakref.WeakKeyDictionary[RunOutputs, dict[str, tuple[bytes, str]]] = (
    weakref.WeakKeyDictionary()
)
_projection_lock = threading.Lock()


def _projection_body(outputs: RunOutputs, method: str) -> tuple[bytes, str]:
    """The JSON of ``outputs.projection(method)`` and its ETag; KeyError for an unknown or
    unavailable method."""
    with _projection_lock:
        cached = _projection_bodies.get(outputs, {}).get(method)
    if cached is not None:
        return cached
    projection = outputs.projection(method)
    indices = [int(i) for i in projection.indices.tolist()]
    body = json.dumps(
        {
            "method": projection.method,
            "description": projection.description,
            "statuses": list(STATUSES),
            "index": indices,
            "x": _rounded(projection.xy[:, 0]),
            "y": _rounded(projection.xy[:, 1]),
            "status": _status_codes(outputs, indices),
        },
        separators=(",", ":"),
        allow_nan=False,
    ).encode()
    etag = f'"{hashlib.sha1(body, usedforsecurity=False).hexdigest()[:20]}"'
    with _projection_lock:
        _projection_bodies.setdefault(outputs, {})[method] = (body, etag)
    return body, etag


class SamplesRequest(BaseModel):
    """Body of ``POST /ui-api/runs/{id}/samples``."""

    model_config = ConfigDict(extra="forbid")

    indices: list[int] = Field(max_length=MAX_SAMPLES_PER_REQUEST)


@router.post("/ui-api/runs/{run_id}/samples")
def api_samples(
    request: Request, viewer: ApiViewer, run_id: str, body: SamplesRequest
) -> JSONResponse:
    """``[{"index", "filename", "status"}]`` for the given sample indices (at most
    10,000), in the order asked: the map's selection list and its "copy file names"."""
    if not is_same_origin(request):
        raise ApiError(403, "FORBIDDEN", _cross_site_message(request))
    samples = _api_view(request, viewer, run_id).outputs.samples
    bad = [i for i in body.indices if not 0 <= i < len(samples)]
    if bad:
        raise bad_request(
            f"indices: {bad[0]} is not a sample of run {run_id!r} (use 0 to {len(samples) - 1})",
        )
    return JSONResponse(
        [
            {"index": i, "filename": display_name(samples[i].filename), "status": samples[i].status}
            for i in body.indices
        ],
        headers=_NO_STORE,
    )


# --------------------------------------------------------------------------- install


def install_routes(app: FastAPI) -> None:
    """Add the pages, files and ``/ui-api`` routes to ``app`` and serve ``/static``.

    ``app.state.web`` (the Backend) and the session handling come from
    :func:`selfsup.web.sessions.install_sessions`; the ``/ui-api`` errors are raised as
    :class:`~selfsup.apphelpers.http_errors.ApiError`, answered by the handlers of
    :func:`selfsup.apphelpers.http_errors.install_error_handlers` (both apps install them).
    """
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
