"""``WorkerApiClient``: the worker side of the server API, for ``selfsup worker``.

A worker's loop::

    api = WorkerApiClient(token=..., base_url=...)
    worker = api.register("gpu-box-1", labels=["gpu"])
    while True:
        claim = api.claim(worker.id)            # None: nothing to do, poll again later
        if claim is None: ...; continue
        job = api.get_job(worker.id, claim.run.id)   # configs + datasources with credentials
        api.set_state(worker.id, claim.run.id, "LOADING_DATASET")
        ...                                     # heartbeat() at least every lease_seconds / 3
        api.upload_artifact(worker.id, claim.run.id, "out/report.pdf", "REPORT_PDF")
        api.set_state(worker.id, claim.run.id, "COMPLETED")

A call answered 409 (:class:`ApiException` with ``status == 409``, code ``RUN_ENDED`` and the
end state in ``selfsup.api._http.error_detail(exc, "state")``) means the run ended or its
lease ran out: the worker must stop working on it.

Log text goes to the server in pieces of at most :data:`LOG_PIECE_BYTES` (:func:`log_pieces`):
the server refuses a JSON body over 1 MiB (``--max-body-bytes``) and a log append over
1,000,000 characters, and a worker that kept its log through an outage may hold far more.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import httpx

from selfsup.api._http import HttpApi
from selfsup.openapi_generated.swagger_client.models import (
    CreateDockerWorkerRegistryEntryRequest,
    DockerRunArtifactData,
    DockerRunArtifactType,
    DockerRunClaimData,
    DockerRunData,
    DockerRunHeartbeatData,
    DockerRunJobData,
    DockerRunLogAppendRequest,
    DockerRunState,
    DockerRunStateUpdateRequest,
    DockerWorkerRegistryEntryData,
)

# Largest piece of log text in one append, counted as it is sent (UTF-8 inside a JSON string):
# a quarter of the server's default body limit, well under its 1,000,000-character cap.
LOG_PIECE_BYTES = 256 * 1024
# The most a single character can take in a JSON string sent as UTF-8 ("\u001b").
_MAX_CHAR_BYTES = 6
_LINE = re.compile(r"[^\n]*\n|[^\n]+")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_bytes(text: str) -> int:
    """Bytes ``text`` takes inside a JSON string as httpx sends it (UTF-8, escapes counted)."""
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2


def _show_surrogate(match: re.Match[str]) -> str:
    code = ord(match.group())
    # U+DC80..U+DCFF stand for one undecodable byte of a file name (surrogateescape).
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def sendable_log_text(text: str) -> str:
    """``text`` with every lone surrogate written out (``\\xNN`` for a file name's
    undecodable byte, as ``selfsup.utils.names.display_name`` shows it, ``\\uXXXX`` for any
    other): such text cannot be encoded as UTF-8, so the server could never receive it."""
    return _LONE_SURROGATE.sub(_show_surrogate, text)


def _cut_line(line: str, limit: int) -> list[str]:
    """One line longer than ``limit`` cut between characters into the longest pieces that
    fit (each found by bisection over the piece's length)."""
    pieces: list[str] = []
    start = 0
    while start < len(line):
        lo, hi = 1, min(len(line) - start, limit)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if _json_bytes(line[start : start + mid]) <= limit:
                lo = mid
            else:
                hi = mid - 1
        pieces.append(line[start : start + lo])
        start += lo
    return pieces


def log_pieces(text: str, limit: int = LOG_PIECE_BYTES) -> list[str]:
    """``text`` cut into pieces to append one after the other, in order; joined they are
    ``text`` again.

    Each piece takes at most ``limit`` bytes as sent (UTF-8 in a JSON string, escapes
    included). Pieces end at line ends where possible: lines are packed whole, and only a
    line longer than ``limit`` by itself is cut, between two characters (never inside a
    character's UTF-8 bytes). ``text`` must hold no lone surrogates
    (:func:`sendable_log_text`).

    Raises:
        ValueError: ``limit`` is under 6 bytes (what one character may take).
    """
    if limit < _MAX_CHAR_BYTES:
        raise ValueError(f"log piece limit must be >= {_MAX_CHAR_BYTES} bytes, got {limit}")
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for line in _LINE.findall(text):
        cost = _json_bytes(line)
        if size + cost > limit and current:
            pieces.append("".join(current))
            current, size = [], 0
        if cost > limit:
            pieces.extend(_cut_line(line, limit))
            continue
        current.append(line)
        size += cost
    if current:
        pieces.append("".join(current))
    return pieces


class WorkerApiClient:
    """Calls of the worker-facing endpoints (the token needs the ``worker`` scope).

    Args:
        token: API token (default ``$SELFSUP_TOKEN``).
        base_url: server location (default ``$SELFSUP_SERVER_LOCATION``).
        timeout: seconds per request (uploads: ``upload_timeout``).
        http_client: send through this ``httpx.Client`` (tests).
    """

    def __init__(
        self,
        token: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._http = HttpApi(token, base_url, timeout=timeout, http_client=http_client)

    def __repr__(self) -> str:
        return f"WorkerApiClient(base_url={self._http.base_url!r})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def register(
        self, name: str = "Default", labels: Sequence[str] | None = None
    ) -> DockerWorkerRegistryEntryData:
        """Register (or re-register) this worker; the same name keeps the same id."""
        body = CreateDockerWorkerRegistryEntryRequest(name=name, labels=list(labels or []))
        response = self._http.request("POST", "/v1/workers", json=body.model_dump(mode="json"))
        return DockerWorkerRegistryEntryData.model_validate(response.json())

    def claim(self, worker_id: str) -> DockerRunClaimData | None:
        """Claim the next scheduled run for this worker, or None when there is none."""
        response = self._http.request("POST", f"/v1/workers/{worker_id}/claim")
        if response.status_code == 204:
            return None
        return DockerRunClaimData.model_validate(response.json())

    def _run_path(self, worker_id: str, run_id: str) -> str:
        return f"/v1/workers/{worker_id}/runs/{run_id}"

    def get_job(self, worker_id: str, run_id: str) -> DockerRunJobData:
        """Configs and datasources (with credentials) of a run this worker holds."""
        response = self._http.request("GET", f"{self._run_path(worker_id, run_id)}/job")
        return DockerRunJobData.model_validate(response.json())

    def set_state(
        self, worker_id: str, run_id: str, state: DockerRunState | str, message: str = ""
    ) -> DockerRunData:
        """Report the run's next state (also renews the lease)."""
        body = DockerRunStateUpdateRequest(state=DockerRunState(state), message=message)
        response = self._http.request(
            "POST", f"{self._run_path(worker_id, run_id)}/state", json=body.model_dump(mode="json")
        )
        return DockerRunData.model_validate(response.json())

    def append_log(self, worker_id: str, run_id: str, text: str) -> None:
        """Append ``text`` to the run's log artifact in one request.

        The server refuses a body over its limit (1 MiB by default): send a long text as
        :func:`log_pieces`, one call each, so that the caller knows which got through."""
        body = DockerRunLogAppendRequest(text=text)
        self._http.request(
            "POST", f"{self._run_path(worker_id, run_id)}/log", json=body.model_dump(mode="json")
        )

    def heartbeat(
        self, worker_id: str, run_id: str, timeout: float | None = None
    ) -> DockerRunHeartbeatData:
        """Renew the run's lease; ``abort_requested`` in the answer means: stop and report
        ABORTED. ``timeout`` (seconds) overrides the client's: a renewal that takes longer
        than a good part of the lease is worth retrying sooner."""
        response = self._http.request(
            "POST", f"{self._run_path(worker_id, run_id)}/heartbeat", timeout=timeout
        )
        return DockerRunHeartbeatData.model_validate(response.json())

    def upload_artifact(
        self,
        worker_id: str,
        run_id: str,
        path: str | os.PathLike[str],
        artifact_type: DockerRunArtifactType | str,
        file_name: str | None = None,
        upload_timeout: float = 600.0,
    ) -> DockerRunArtifactData:
        """Upload the file at ``path`` as an artifact (named ``file_name`` or its base name)."""
        source = Path(path)
        with open(source, "rb") as f:
            response = self._http.request(
                "POST",
                f"{self._run_path(worker_id, run_id)}/artifacts",
                files={"file": (source.name, f, "application/octet-stream")},
                data={
                    "type": DockerRunArtifactType(artifact_type).value,
                    "file_name": file_name or source.name,
                },
                timeout=upload_timeout,
            )
        return DockerRunArtifactData.model_validate(response.json())
