"""Request size limits and the upload token check, enforced before a body is read.

A pure ASGI middleware in front of the whole app (API and web app). Without it, FastAPI reads
and parses a JSON body before the endpoint's dependencies check the token (a 50 MB JSON body
without a token cost 270 MB of server memory), and a multipart upload is spooled to disk
before the endpoint runs (a 100 MB upload without a token was written to disk first).

* Every request body is limited to ``max_body_bytes`` (1 MiB by default), except the
  artifact uploads of workers (``POST /v1/workers/{id}/runs/{id}/artifacts``), limited to
  ``max_upload_bytes`` plus :data:`MULTIPART_OVERHEAD_BYTES` for the form's envelope.
* A declared ``Content-Length`` over the limit is answered 413 at once, without reading a
  byte of the body. A body without one (chunked) is counted as it streams and cut off with
  413 as soon as it passes the limit.
* An upload must carry a valid, unrevoked ``Authorization: Bearer`` token before a byte of
  it is read: 401 otherwise. The endpoint checks the token again with its scope as usual.

Answers use the API's JSON error body and close the connection, so the unread rest of the
body is never taken in.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from selfsup.apphelpers.http_errors import error_body

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024**2
"""1 MiB: the largest config, datasource or log append is a few kB."""
DEFAULT_MAX_UPLOAD_BYTES = 8 * 1024**3
"""8 GiB: room for the embeddings and checkpoint of a large run."""

#: Room for the multipart envelope (boundaries, part headers, the ``type`` and ``file_name``
#: fields) on top of the file itself; the endpoint checks the file's exact size.
MULTIPART_OVERHEAD_BYTES = 64 * 1024

_UPLOAD_PATH = re.compile(r"/v1/workers/[^/]+/runs/[^/]+/artifacts/?")


def is_upload(method: str, path: str) -> bool:
    """Whether a request is a worker's artifact upload (the only large body accepted)."""
    return method == "POST" and _UPLOAD_PATH.fullmatch(path) is not None


class BodyTooLargeError(HTTPException):
    """A streamed body passed its limit; raised from ``receive`` and answered 413.

    An :class:`HTTPException`, so that FastAPI, which turns other errors met while reading
    a body into a 400, passes it on to the JSON error handlers unchanged.
    """

    def __init__(self, limit: int, what: str) -> None:
        super().__init__(413, _too_large_message(limit, what))


def _too_large_message(limit: int, what: str) -> str:
    return (
        f"{what} is over the server's limit of {limit} bytes "
        "(selfsup serve --max-body-bytes / --max-upload-bytes)"
    )


class RequestLimits:
    """The ASGI middleware described in the module docstring.

    Args:
        app: the application behind it.
        max_body_bytes: the largest body of any request but an upload.
        max_upload_bytes: the largest uploaded artifact file.
        token_error: checks an ``Authorization`` header value (or None when absent) and
            returns None when it carries a valid token, else the message for the 401. It
            may block (a database lookup): it runs in a worker thread.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        max_upload_bytes: int,
        token_error: Callable[[str | None], str | None],
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.token_error = token_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        upload = is_upload(scope.get("method", ""), scope.get("path", ""))
        if upload:
            limit = self.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
            what = "the upload"
            message = await run_in_threadpool(self.token_error, headers.get("authorization"))
            if message is not None:
                logger.info("unauthenticated upload to %s refused unread", scope.get("path"))
                await _reject(send, 401, "UNAUTHORIZED", message, {"www-authenticate": "Bearer"})
                return
        else:
            limit = self.max_body_bytes
            what = "the request body"
        declared = headers.get("content-length")
        if declared is not None:
            length = int(declared) if declared.strip().isdigit() else -1
            if length < 0:
                await _reject(
                    send, 400, "BAD_REQUEST", f"Content-Length {declared[:40]!r} is no byte count"
                )
                return
            if length > limit:
                logger.info(
                    "%s %s: Content-Length %d over the limit of %d, refused unread",
                    scope.get("method"),
                    scope.get("path"),
                    length,
                    limit,
                )
                await _reject(
                    send,
                    413,
                    "TOO_LARGE",
                    f"{_too_large_message(limit, what)}: Content-Length is {length}",
                )
                return

        received = 0
        started = exceeded = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    logger.info(
                        "%s %s: body passed the limit of %d bytes while streaming; refused",
                        scope.get("method"),
                        scope.get("path"),
                        limit,
                    )
                    raise BodyTooLargeError(limit, what)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if exceeded:  # close, or the server would go on reading the rest
                    message = {
                        **message,
                        "headers": [*message.get("headers", []), (b"connection", b"close")],
                    }
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLargeError as exc:
            # Raised outside of FastAPI's body parsing (which answers it itself): answer here
            # unless a response is already on its way.
            if started:
                raise
            await _reject(send, 413, "TOO_LARGE", str(exc.detail))


async def _reject(
    send: Send, status: int, code: str, message: str, extra: dict[str, str] | None = None
) -> None:
    """Answer with the JSON error body and close the connection (the body stays unread)."""
    body = json.dumps(error_body(code, message)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *((k.encode(), v.encode()) for k, v in (extra or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
