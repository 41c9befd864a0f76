"""HTTP plumbing shared by the user and worker clients: auth header, JSON errors, downloads."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from selfsup.errors import ConfigError
from selfsup.openapi_generated.swagger_client.rest import ApiException
from selfsup.utils.atomic import atomic_open_bytes

DEFAULT_SERVER_LOCATION = "http://127.0.0.1:8000"
TOKEN_ENV = "SELFSUP_TOKEN"
SERVER_ENV = "SELFSUP_SERVER_LOCATION"


def resolve_token(token: str | None) -> str:
    """``token`` or ``$SELFSUP_TOKEN``; a clear error when neither is set."""
    value = token or os.environ.get(TOKEN_ENV, "")
    if not value:
        raise ValueError(
            f"no API token: pass token=... or set ${TOKEN_ENV} "
            "(create one on the server with: selfsup token create --user NAME)"
        )
    return value


def resolve_base_url(base_url: str | None) -> str:
    """``base_url``, ``$SELFSUP_SERVER_LOCATION`` or ``http://127.0.0.1:8000``."""
    return (base_url or os.environ.get(SERVER_ENV) or DEFAULT_SERVER_LOCATION).rstrip("/")


class HttpApi:
    """Authenticated JSON calls to one selfsup server.

    Args:
        token: API token; sent as ``Authorization: Bearer`` (never in the URL, where it would
            end up in access logs).
        base_url: server location.
        timeout: seconds per request.
        http_client: an existing ``httpx.Client`` to send through (e.g. FastAPI's TestClient);
            its own base URL is used then.
    """

    def __init__(
        self,
        token: str | None,
        base_url: str | None,
        timeout: float = 30.0,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._token = resolve_token(token)
        self.base_url = resolve_base_url(base_url)
        self._timeout = timeout
        self._owns_client = http_client is None
        self._client = http_client or httpx.Client(base_url=self.base_url, timeout=timeout)

    def __repr__(self) -> str:  # keeps the token out of reprs and tracebacks
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def close(self) -> None:
        """Close the connection pool (when this object created it)."""
        if self._owns_client:
            self._client.close()

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        files: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one request; raise :class:`ApiException` (or ConfigError for a config the server
        rejects) on an error status."""
        request = self._client.build_request(
            method,
            path,
            json=json,
            params={k: v for k, v in (params or {}).items() if v is not None},
            files=files,
            data=data,
            headers=self._headers,
            timeout=timeout or self._timeout,
        )
        try:
            response = self._client.send(request)
        except httpx.TransportError as exc:
            raise ConnectionError(
                f"cannot reach the selfsup server at {self.base_url}: {exc} "
                f"(start it with 'selfsup serve', or set ${SERVER_ENV})"
            ) from exc
        if response.status_code >= 400:
            raise error_from(response)
        return response

    def download(self, path: str, output_path: str | os.PathLike[str], timeout: float) -> Path:
        """Stream ``path`` into ``output_path`` (written atomically)."""
        target = Path(output_path)
        request = self._client.build_request("GET", path, headers=self._headers, timeout=timeout)
        try:
            response = self._client.send(request, stream=True)
            try:
                if response.status_code >= 400:
                    response.read()
                    raise error_from(response)
                with atomic_open_bytes(target) as f:
                    for chunk in response.iter_bytes():
                        f.write(chunk)
            finally:
                response.close()
        except httpx.TransportError as exc:
            raise ConnectionError(f"download from {self.base_url}{path} failed: {exc}") from exc
        return target


class ServerApiException(ApiException):
    """An :class:`ApiException` that also keeps the error body's other fields.

    ``details`` holds every field of ``{"code": ..., "error": ..., ...}`` but the code and
    the message, as text: e.g. ``{"state": "COMPLETED"}`` of a 409 ``RUN_ENDED``. Empty for a
    body that is not the server's JSON (a proxy's error page).
    """

    def __init__(
        self, status: int, code: str, message: str, details: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status, code, message)
        self.details: dict[str, str] = dict(details or {})


def error_detail(exc: BaseException, key: str) -> str | None:
    """The field ``key`` of the server's error body behind ``exc``, or None when ``exc`` is
    no server answer or the body has no such field."""
    if isinstance(exc, ServerApiException):
        return exc.details.get(key)
    return None


def error_from(response: httpx.Response) -> Exception:
    """The exception for an error response: ConfigError for rejected configs, else
    :class:`ServerApiException` (an :class:`ApiException`) with the server's code, message
    and any further fields of the body."""
    code, message = f"HTTP_{response.status_code}", response.text[:500]
    details: dict[str, str] = {}
    try:
        body = response.json()
    except ValueError:  # not JSON (e.g. a proxy's HTML error page): keep the raw text
        body = None
    if isinstance(body, dict):
        code = str(body.get("code", code))
        message = str(body.get("error", message))
        details = {str(k): str(v) for k, v in body.items() if k not in ("code", "error")}
    if code == "INVALID_CONFIG":
        return ConfigError(message)
    return ServerApiException(response.status_code, code, message, details)
