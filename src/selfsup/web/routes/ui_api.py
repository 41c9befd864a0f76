"""The JSON the pages poll (``/ui-api``): runs, states, log pieces, the map's projection and
sample details."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import threading
import weakref
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from selfsup.apphelpers.http_errors import ApiError
from selfsup.apphelpers.web_backend import (
    RunSummary,
    WebNotFound,
)
from selfsup.utils.names import display_name
from selfsup.web.outputs import STATUSES, RunOutputs
from selfsup.web.routes.common import (
    NO_STORE,
    api_view,
    backend_of,
    check_indices,
    etag_matches,
    refuse_cross_site,
    state_tone,
)
from selfsup.web.sessions import ApiViewer

router = APIRouter(include_in_schema=False)


MAX_LOG_OFFSET = 2**53
"""Largest ``?offset=`` of the log poll: far beyond any log, and safe for ``seek``."""
MAX_SAMPLES_PER_REQUEST = 10_000
"""Most indices one ``POST /ui-api/runs/{id}/samples`` may ask for."""


def _summary_json(run: RunSummary) -> dict[str, Any]:
    data = dataclasses.asdict(run)
    data["tone"] = state_tone(run.state, run.is_final)
    return data


@router.get("/ui-api/runs")
def api_runs(request: Request, viewer: ApiViewer) -> JSONResponse:
    """``{"runs": [summary...]}``: every run of the viewer, newest first (polled by ``/``)."""
    runs = backend_of(request).runs(viewer)
    return JSONResponse({"runs": [_summary_json(r) for r in runs]}, headers=NO_STORE)


@router.get("/ui-api/runs/{run_id}")
def api_run(request: Request, viewer: ApiViewer, run_id: str) -> JSONResponse:
    """One run's summary."""
    try:
        run = backend_of(request).run(viewer, run_id)
    except WebNotFound as exc:
        raise ApiError(404, "NOT_FOUND", str(exc)) from None
    return JSONResponse(_summary_json(run), headers=NO_STORE)


@router.get("/ui-api/runs/{run_id}/log")
def api_log(
    request: Request,
    viewer: ApiViewer,
    run_id: str,
    offset: Annotated[int, Query(ge=0, le=MAX_LOG_OFFSET)] = 0,
) -> JSONResponse:
    """``{"text", "offset", "run"}``: the log from byte ``offset`` on, the offset to ask for
    next and the run's summary (one request per poll follows both)."""
    backend = backend_of(request)
    try:
        text, next_offset = backend.log(viewer, run_id, offset)
        run = backend.run(viewer, run_id)
    except WebNotFound as exc:
        raise ApiError(404, "NOT_FOUND", str(exc)) from None
    return JSONResponse(
        {"text": text, "offset": next_offset, "run": _summary_json(run)}, headers=NO_STORE
    )


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
    outputs = api_view(request, viewer, run_id).outputs
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
    if etag_matches(request, etag):
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
            "status": outputs.status_codes()[projection.indices].tolist(),
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
    refuse_cross_site(request)
    samples = api_view(request, viewer, run_id).outputs.samples
    check_indices(len(samples), run_id, body.indices)
    return JSONResponse(
        [
            {"index": i, "filename": display_name(samples[i].filename), "status": samples[i].status}
            for i in body.indices
        ],
        headers=NO_STORE,
    )
