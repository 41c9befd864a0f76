"""Bodies of the worker-facing endpoints: claim, job, state, log and heartbeat."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from selfsup.openapi_generated.swagger_client.models._base import RequestModel, ResponseModel
from selfsup.openapi_generated.swagger_client.models.dataset_data import DatasetData
from selfsup.openapi_generated.swagger_client.models.datasource_data import DatasourceAccessData
from selfsup.openapi_generated.swagger_client.models.docker_run_data import DockerRunData
from selfsup.openapi_generated.swagger_client.models.docker_run_scheduled_data import (
    DockerRunScheduledData,
)
from selfsup.openapi_generated.swagger_client.models.docker_run_state import DockerRunState


class DockerRunClaimData(ResponseModel):
    """A scheduled run the worker now holds, the run created for this attempt, and the lease
    (ms since the epoch) the worker must renew with heartbeats before it runs out."""

    run: DockerRunData
    scheduled_run: DockerRunScheduledData
    lease_expires_at: int
    lease_seconds: float


class DockerRunJobTagData(ResponseModel):
    """The samples of an earlier run on the server carrying a tag that the job's selection
    config names (``{tag: name, run: <run id>}``), as the database held them when the
    worker fetched the job.

    ``run`` is the id as the config gives it (a run's or a scheduled run's), ``names`` the
    tagged sample names (sorted; names that are not UTF-8 are left out and counted in
    ``left_out``), ``known_tags`` every tag that run has, for the error of a tag gone since.
    """

    run: str
    scheduled_run_id: str
    tag: str
    names: list[str] = Field(default_factory=list)
    left_out: int = 0
    known_tags: list[str] = Field(default_factory=list)


class DockerRunJobData(ResponseModel):
    """Everything a worker needs to execute a run, datasource credentials included.

    ``tags``: the tagged samples of earlier runs the selection config names (server tags,
    resolved from the database; see :class:`DockerRunJobTagData`)."""

    run_id: str
    scheduled_run_id: str
    dataset: DatasetData
    worker_config: dict[str, Any]
    lightly_config: dict[str, Any]
    selection_config: dict[str, Any] | None = None
    datasources: list[DatasourceAccessData] = Field(default_factory=list)
    tags: list[DockerRunJobTagData] = Field(default_factory=list)


class DockerRunStateUpdateRequest(RequestModel):
    """Move a run to its next state; ``message`` says what is happening or what failed."""

    state: DockerRunState
    message: str = Field("", max_length=10_000)


class DockerRunLogAppendRequest(RequestModel):
    """Text appended to the run's log artifact as is (include the newlines)."""

    text: str = Field(max_length=1_000_000)


class DockerRunHeartbeatData(ResponseModel):
    """The renewed lease, and whether the user asked to abort (the worker then stops and
    reports ABORTED)."""

    lease_expires_at: int
    abort_requested: bool
