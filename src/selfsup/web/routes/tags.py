"""Tags and exports (issue 12): tag and untag samples, list a run's tags, and download a
tag or a selection as a file list, a CSV with scores or a COCO-style images JSON.

JSON under ``/ui-api`` (errors as ``{"code", "error"}``):

* ``GET /ui-api/runs/{id}/tags``: ``{"tags": [{"name", "count"}]}``;
* ``GET /ui-api/runs/{id}/tags/{tag}``: ``{"tag", "indices"}``, the tagged samples of the
  run (the map selects them);
* ``POST /ui-api/runs/{id}/tag`` and ``/untag`` with ``{"tag", "indices"}``: ``{"tag",
  "changed", "tags"}``;
* ``POST /ui-api/runs/{id}/export`` with ``{"indices", "format"}``: the selection as a file.

``GET /runs/{id}/export?tag=&format=`` downloads a tag (a plain link on the grid).

State-changing requests (and the POSTed export, which carries a selection) are refused from
another origin, as every POST of the app
(:func:`~selfsup.web.routes.common.refuse_cross_site`); who may see and tag a run is the
backend's decision, as for every other route.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from selfsup.apphelpers.http_errors import ApiError, bad_request
from selfsup.apphelpers.web_backend import InvalidTag, TagStore, Viewer, WebNotFound, check_tag
from selfsup.errors import DataError
from selfsup.web.backend import RunView
from selfsup.web.outputs import Sample
from selfsup.web.routes.common import (
    NO_STORE,
    api_view,
    backend_of,
    check_indices,
    refuse_cross_site,
)
from selfsup.web.routes.ui_api import MAX_SAMPLES_PER_REQUEST
from selfsup.web.sessions import ApiViewer
from selfsup.web.tags import (
    EXPORT_FORMATS,
    EXPORT_MEDIA_TYPES,
    EXPORT_SUFFIXES,
    ExportFormat,
    TagStorageError,
    export_coco,
    export_csv,
    export_file_list,
    indices_of,
    tags_by_name,
)

router = APIRouter(include_in_schema=False)


class TagRequest(BaseModel):
    """Body of ``POST /ui-api/runs/{id}/tag`` and ``/untag``."""

    model_config = ConfigDict(extra="forbid")

    tag: str = Field(max_length=200)
    indices: list[int] = Field(max_length=MAX_SAMPLES_PER_REQUEST)


class ExportRequest(BaseModel):
    """Body of ``POST /ui-api/runs/{id}/export``."""

    model_config = ConfigDict(extra="forbid")

    indices: list[int] = Field(max_length=10 * MAX_SAMPLES_PER_REQUEST)
    format: ExportFormat


def _checked(tag: str) -> str:
    try:
        return check_tag(tag)
    except InvalidTag as exc:
        raise bad_request(str(exc), "INVALID_TAG") from None


@contextmanager
def _tag_errors() -> Iterator[None]:
    """The backend's errors of a tag call as JSON answers: no such run 404, tags that
    cannot be read or written (a damaged or read-only ``tags.json``) 409."""
    try:
        yield
    except WebNotFound as exc:
        raise ApiError(404, "NOT_FOUND", str(exc)) from None
    except TagStorageError as exc:
        raise ApiError(409, "TAGS_UNAVAILABLE", str(exc)) from None


def _tags_json(store: TagStore, viewer: Viewer, run_id: str) -> list[dict[str, object]]:
    with _tag_errors():
        tags = store.list_tags(viewer, run_id)
    return [{"name": name, "count": count} for name, count in tags.items()]


def _samples(view: RunView, run_id: str, indices: list[int]) -> list[Sample]:
    """The samples of ``indices`` (ascending, each once); 400 naming a bad index."""
    samples = view.outputs.samples
    check_indices(len(samples), run_id, indices)
    return [samples[i] for i in sorted(set(indices))]


def _tagged(request: Request, viewer: Viewer, run_id: str, tag: str) -> list[str]:
    with _tag_errors():
        return backend_of(request).names_with_tag(viewer, run_id, tag)


@router.get("/ui-api/runs/{run_id}/tags")
def api_tags(request: Request, viewer: ApiViewer, run_id: str) -> JSONResponse:
    """``{"tags": [{"name", "count"}]}``, by name."""
    return JSONResponse({"tags": _tags_json(backend_of(request), viewer, run_id)}, headers=NO_STORE)


@router.get("/ui-api/runs/{run_id}/tags/{tag}")
def api_tag(request: Request, viewer: ApiViewer, run_id: str, tag: str) -> JSONResponse:
    """``{"tag", "indices"}``: the ascending sample indices carrying ``tag`` (names no
    longer in the run are left out)."""
    tag = _checked(tag)
    view = api_view(request, viewer, run_id)
    names = _tagged(request, viewer, run_id, tag)
    return JSONResponse({"tag": tag, "indices": indices_of(view.outputs, names)}, headers=NO_STORE)


def _change(request: Request, viewer: Viewer, run_id: str, body: TagRequest, add: bool) -> Response:
    refuse_cross_site(request)
    tag = _checked(body.tag)
    view = api_view(request, viewer, run_id)
    names = [s.filename for s in _samples(view, run_id, body.indices)]
    backend = backend_of(request)
    with _tag_errors():
        if add:
            changed = backend.tag(viewer, run_id, names, tag)
        else:
            changed = backend.untag(viewer, run_id, names, tag)
    return JSONResponse(
        {"tag": tag, "changed": changed, "tags": _tags_json(backend, viewer, run_id)},
        headers=NO_STORE,
    )


@router.post("/ui-api/runs/{run_id}/tag")
def api_tag_samples(request: Request, viewer: ApiViewer, run_id: str, body: TagRequest) -> Response:
    """Give ``tag`` to the samples ``indices`` (at most 10,000 per request)."""
    return _change(request, viewer, run_id, body, add=True)


@router.post("/ui-api/runs/{run_id}/untag")
def api_untag_samples(
    request: Request, viewer: ApiViewer, run_id: str, body: TagRequest
) -> Response:
    """Take ``tag`` from the samples ``indices``."""
    return _change(request, viewer, run_id, body, add=False)


# --------------------------------------------------------------------------- exports


def _export(
    request: Request,
    viewer: Viewer,
    view: RunView,
    samples: list[Sample],
    fmt: str,
    stem: str,
) -> Response:
    if fmt == "txt":
        body = export_file_list(samples)
    elif fmt == "coco":
        body = export_coco(samples)
    else:
        backend = backend_of(request)
        with _tag_errors():
            tags = backend.list_tags(viewer, view.summary.id)
            by_name = tags_by_name(
                {t: backend.names_with_tag(viewer, view.summary.id, t) for t in tags}
            )
        try:
            body = export_csv(view.outputs, samples, by_name)
        except DataError as exc:
            raise ApiError(409, "OUTPUTS_UNAVAILABLE", str(exc)) from None
    name = f"{stem}{EXPORT_SUFFIXES[fmt]}"
    return Response(
        body,
        media_type=EXPORT_MEDIA_TYPES[fmt],
        headers={
            **NO_STORE,
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


def _format(fmt: str) -> str:
    if fmt not in EXPORT_FORMATS:
        raise bad_request(f"format {fmt[:40]!r} is unknown: use one of {', '.join(EXPORT_FORMATS)}")
    return fmt


def _stem(run_id: str, what: str) -> str:
    """A download name from ids and tags only (their charsets are safe in a header)."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in run_id)
    return f"{safe[:60]}-{what}"


@router.get("/runs/{run_id}/export")
def export_tag(
    request: Request, viewer: ApiViewer, run_id: str, tag: str = "", format: str = "txt"
) -> Response:
    """The samples carrying ``tag`` as a download (``format``: txt, csv or coco)."""
    fmt = _format(format)
    tag = _checked(tag)
    view = api_view(request, viewer, run_id)
    indices = indices_of(view.outputs, _tagged(request, viewer, run_id, tag))
    samples = [view.outputs.samples[i] for i in indices]
    return _export(request, viewer, view, samples, fmt, _stem(run_id, tag))


@router.post("/ui-api/runs/{run_id}/export")
def export_selection(
    request: Request, viewer: ApiViewer, run_id: str, body: ExportRequest
) -> Response:
    """The samples ``indices`` (a selection of the grid or the map) as a download."""
    refuse_cross_site(request)
    view = api_view(request, viewer, run_id)
    samples = _samples(view, run_id, body.indices)
    return _export(request, viewer, view, samples, body.format, _stem(run_id, "selection"))
