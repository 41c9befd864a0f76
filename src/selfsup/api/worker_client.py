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

A call answered 409 (:class:`ApiException` with ``status == 409``) means the run ended or its
lease ran out: the worker must stop working on it.
"""

from __future__ import annotations

import os
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
        """Append ``text`` to the run's log artifact."""
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
