"""Files of a run: thumbnails and previews of its images, its output files and its artifacts."""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
import threading
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from selfsup.apphelpers.paths import inside
from selfsup.apphelpers.web_backend import (
    OutputsUnavailable,
    Viewer,
    WebNotFound,
)
from selfsup.web.backend import RunView
from selfsup.web.outputs import Sample
from selfsup.web.routes.common import backend_of, etag_matches, sample_or_none
from selfsup.web.sessions import ApiViewer
from selfsup.web.sources import check_relative_path
from selfsup.web.thumbnails import ThumbnailError

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)


_THUMB_CACHE = "private, max-age=86400"
# Output files can be rewritten by a rerun into the same folder: revalidate every time (the
# ETag makes that a cheap 304).
_FILE_CACHE = "private, no-cache"
_INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


_PLACEHOLDER_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="192" height="192" viewBox="0 0 192 192">'
    '<rect width="192" height="192" fill="#e9ecf0"/>'
    '<g fill="none" stroke="#a3acb9" stroke-width="6" stroke-linecap="round">'
    '<rect x="58" y="62" width="76" height="60" rx="6"/><path d="M64 114l22-22 16 16 10-10 16 16"/>'
    '<path d="M50 140L142 52"/></g>'
    '<text x="96" y="160" text-anchor="middle" font-family="system-ui,sans-serif" '
    'font-size="13" fill="#6b7684">no preview</text></svg>'
).encode("ascii")


def _plain(status_code: int, message: str) -> Response:
    return Response(
        message,
        status_code=status_code,
        media_type="text/plain; charset=utf-8",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"},
    )


def _etag(path: Path) -> tuple[str, os.stat_result]:
    stat = path.stat()
    digest = hashlib.sha1(
        f"{path.name}:{stat.st_mtime_ns}:{stat.st_size}".encode(), usedforsecurity=False
    ).hexdigest()
    return f'"{digest[:20]}"', stat


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
    if etag_matches(request, etag):
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


def _open_file_view(request: Request, viewer: Viewer, run_id: str) -> RunView | Response:
    try:
        return backend_of(request).view(viewer, run_id)
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
    sample = sample_or_none(opened.outputs, index)
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
        path, name = backend_of(request).artifact_path(viewer, run_id, artifact_id)
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
