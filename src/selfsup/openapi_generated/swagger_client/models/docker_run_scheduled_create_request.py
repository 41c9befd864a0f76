"""Body of ``POST /v1/datasets/{dataset_id}/scheduled-runs``."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from selfsup.openapi_generated.swagger_client.models._base import RequestModel
from selfsup.openapi_generated.swagger_client.models.docker_run_scheduled_priority import (
    DockerRunScheduledPriority,
)


class DockerRunScheduledCreateRequest(RequestModel):
    """A job for a worker: its configs (validated by the server), priority and labels.

    ``worker_config`` takes the keys of :class:`selfsup.config.WorkerConfig`, ``lightly_config``
    those of :class:`selfsup.config.LightlyConfig`, ``selection_config`` the lightly Worker
    selection dict. ``runs_on`` lists labels a worker must all have to claim the job.
    """

    worker_config: dict[str, Any] | None = None
    lightly_config: dict[str, Any] | None = None
    selection_config: dict[str, Any] | None = None
    priority: DockerRunScheduledPriority = DockerRunScheduledPriority.MID
    runs_on: list[str] = Field(default_factory=list, max_length=64)
