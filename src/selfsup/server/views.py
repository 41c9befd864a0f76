"""Database rows -> API bodies. Credentials never pass through here except in
:func:`datasource_access`, used only by the worker endpoint."""

from __future__ import annotations

from typing import Any

from selfsup.openapi_generated.swagger_client.models import (
    DatasetData,
    DatasetType,
    DatasourceAccessData,
    DatasourceData,
    DatasourcePurpose,
    DatasourceType,
    DockerRunArtifactData,
    DockerRunArtifactType,
    DockerRunData,
    DockerRunScheduledData,
    DockerRunScheduledPriority,
    DockerRunScheduledState,
    DockerRunState,
    DockerWorkerRegistryEntryData,
)
from selfsup.server.models import Artifact, Dataset, Datasource, Run, ScheduledRun, Worker


def dataset_data(row: Dataset) -> DatasetData:
    """The API body of a dataset."""
    return DatasetData(
        id=row.id,
        name=row.name,
        type=DatasetType(row.type),
        created_at=row.created_at,
        last_modified_at=row.last_modified_at,
    )


def datasource_data(row: Datasource) -> DatasourceData:
    """The user's view of a datasource: no credentials, only whether some are stored."""
    return DatasourceData(
        id=row.id,
        dataset_id=row.dataset_id,
        type=DatasourceType(row.type),
        purpose=DatasourcePurpose(row.purpose),
        full_path=row.full_path,
        thumb_suffix=row.thumb_suffix,
        options={str(k): str(v) for k, v in row.options.items()},
        has_credentials=bool(row.credentials),
        created_at=row.created_at,
        last_modified_at=row.last_modified_at,
    )


def datasource_access(
    row: Datasource, allowed_roots: list[str] | None = None
) -> DatasourceAccessData:
    """The worker's view of a datasource, credentials included.

    Args:
        row: the datasource.
        allowed_roots: LOCAL only: the real paths of the roots the dataset's owner may use
            now, for the worker to re-check every path against at use.
    """
    credentials: dict[str, Any] = row.credentials.reveal()
    return DatasourceAccessData(
        type=DatasourceType(row.type),
        purpose=DatasourcePurpose(row.purpose),
        full_path=row.full_path,
        thumb_suffix=row.thumb_suffix,
        options={str(k): str(v) for k, v in row.options.items()},
        credentials=credentials,
        allowed_roots=list(allowed_roots or []) if row.type == "LOCAL" else [],
    )


def scheduled_run_data(row: ScheduledRun) -> DockerRunScheduledData:
    """The API body of a scheduled run, with its resolved configs."""
    return DockerRunScheduledData(
        id=row.id,
        dataset_id=row.dataset_id,
        priority=DockerRunScheduledPriority(row.priority),
        runs_on=list(row.runs_on),
        state=DockerRunScheduledState(row.state),
        worker_config=dict(row.worker_config),
        lightly_config=dict(row.lightly_config),
        selection_config=row.selection_config,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        worker_id=row.worker_id,
        created_at=row.created_at,
        last_modified_at=row.last_modified_at,
    )


def artifact_data(row: Artifact) -> DockerRunArtifactData:
    """The API body of an artifact (its storage path stays private)."""
    return DockerRunArtifactData(
        id=row.id,
        type=DockerRunArtifactType(row.type),
        file_name=row.file_name,
        size=row.size,
        sha256=row.sha256,
        created_at=row.created_at,
    )


def run_data(row: Run) -> DockerRunData:
    """The API body of a run with its artifacts (lazy-loads them: call in a session)."""
    return DockerRunData(
        id=row.id,
        scheduled_id=row.scheduled_run_id,
        dataset_id=row.dataset_id,
        worker_id=row.worker_id,
        state=DockerRunState(row.state),
        message=row.message,
        attempt=row.attempt,
        abort_requested=row.abort_requested,
        created_at=row.created_at,
        last_modified_at=row.last_modified_at,
        ended_at=row.ended_at,
        artifacts=[artifact_data(a) for a in row.artifacts],
    )


def worker_data(row: Worker) -> DockerWorkerRegistryEntryData:
    """The API body of a registered worker."""
    return DockerWorkerRegistryEntryData(
        id=row.id,
        name=row.name,
        labels=list(row.labels),
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
    )
