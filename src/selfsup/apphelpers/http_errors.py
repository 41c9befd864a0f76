"""JSON errors of selfsup's HTTP apps: every failure answers ``{"code": ..., "error": ...}``.

Shared by the server's API and the web app (both install :func:`install_error_handlers`),
and raised by the path checks of :mod:`selfsup.apphelpers.paths`.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Mapping, Sequence
from typing import Any, Union, get_args, get_origin

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from selfsup.errors import ConfigError, closest

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered to the caller with ``status`` and ``{"code", "error"}``.

    ``details`` are further fields of the body for a caller to act on without reading the
    message (e.g. ``state`` of :func:`run_ended`); they may not be named ``code`` or
    ``error``.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        details: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        reserved = {"code", "error"} & set(details or {})
        if reserved:
            raise ValueError(f"error details may not replace the body's {sorted(reserved)}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.details = dict(details or {})


def not_found(kind: str, resource_id: str) -> ApiError:
    """404 for a resource that does not exist *or belongs to someone else* (indistinguishable,
    so ids of other users' resources cannot be probed)."""
    return ApiError(404, "NOT_FOUND", f"{kind} {resource_id!r} not found")


def conflict(message: str) -> ApiError:
    """409: the request is valid but the resource's state does not allow it."""
    return ApiError(409, "CONFLICT", message)


RUN_ENDED = "RUN_ENDED"


def run_ended(state: str, message: str) -> ApiError:
    """409 ``RUN_ENDED`` for a call about a run that is over, with its end ``state`` in the
    body (COMPLETED, FAILED, ABORTED, or CRASHED when its lease ran out): the worker must stop
    working on it, and a worker whose own end report was answered too late for it to see
    recognises its success by the state, not by the message."""
    return ApiError(409, RUN_ENDED, message, details={"state": state})


def bad_request(message: str, code: str = "BAD_REQUEST") -> ApiError:
    """400: a value the server cannot use, with what would be accepted."""
    return ApiError(400, code, message)


def error_body(code: str, message: str, details: Mapping[str, str] | None = None) -> dict[str, str]:
    """The JSON body of every error answer: ``{"code", "error", **details}``."""
    return {**(details or {}), "code": code, "error": message}


def _model_at(annotation: Any, path: Sequence[Any]) -> type[BaseModel] | None:
    """The pydantic model reached by following ``path`` (field names, union tags) from
    ``annotation``, or None where the path cannot be followed."""
    current: Any = annotation
    for part in path:
        members = get_args(current) if get_origin(current) in (Union, types.UnionType) else ()
        if members:
            tagged = [
                m
                for m in members
                if isinstance(m, type)
                and issubclass(m, BaseModel)
                and "type" in m.model_fields
                and m.model_fields["type"].default == part
            ]
            if len(tagged) != 1:
                return None
            current = tagged[0]
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = field.annotation
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _suggest_body_field(request: Request, loc: Sequence[Any]) -> str | None:
    """The body field closest to the unknown key at ``loc``, for a did-you-mean hint."""
    body_field = getattr(request.scope.get("route"), "body_field", None)
    annotation = getattr(getattr(body_field, "field_info", None), "annotation", None)
    if annotation is None or len(loc) < 2 or loc[0] != "body":
        return None
    model = _model_at(annotation, loc[1:-1])
    if model is None:
        return None
    return closest(str(loc[-1]), model.model_fields, cutoff=0.6)


def _describe_validation_error(err: dict[str, Any], request: Request) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        suggestion = _suggest_body_field(request, tuple(err.get("loc", ())))
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        return f"{loc}: unknown field{hint}"
    if kind == "json_invalid":
        return f"body is not valid JSON: {err.get('ctx', {}).get('error', err.get('msg'))}"
    if kind == "missing":
        return f"{loc}: field required"
    return f"{loc}: {err.get('msg', 'invalid value')}"


def install_error_handlers(app: FastAPI) -> None:
    """Register handlers turning every error into the JSON error body."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details),
            status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(ConfigError)
    async def _config_error(_request: Request, exc: ConfigError) -> JSONResponse:
        return JSONResponse(error_body("INVALID_CONFIG", str(exc)), status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Only the location and the reason: echoing the input could repeat a credential.
        messages = [_describe_validation_error(dict(e), request) for e in exc.errors()]
        return JSONResponse(
            error_body("MALFORMED_REQUEST", "; ".join(messages) or "malformed request"),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            401: "UNAUTHORIZED",
            403: "FORBIDDEN",
            404: "NOT_FOUND",
            405: "METHOD_NOT_ALLOWED",
            413: "TOO_LARGE",
        }
        return JSONResponse(
            error_body(code.get(exc.status_code, f"HTTP_{exc.status_code}"), str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged with the traceback for the operator; the caller gets no internals.
        logger.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body("INTERNAL_ERROR", "internal server error; see the server log"),
            status_code=500,
        )
