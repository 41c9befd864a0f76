"""A scheduled run as the API returns it."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from selfsup.openapi_generated.swagger_client.models._base import ResponseModel
from selfsup.openapi_generated.swagger_client.models.docker_run_scheduled_priority import (
    DockerRunScheduledPriority,
)
from selfsup.openapi_generated.swagger_client.models.docker_run_scheduled_state import (
    DockerRunScheduledState,
)


class DockerRunScheduledData(ResponseModel):
    """A job and its resolved configs; ``attempts`` counts how often a worker claimed it."""

    id: str
    dataset_id: str
    priority: DockerRunScheduledPriority
    runs_on: list[str] = Field(default_factory=list)
    state: DockerRunScheduledState
    worker_config: dict[str, Any] = Field(default_factory=dict)
    lightly_config: dict[str, Any] = Field(default_factory=dict)
    selection_config: dict[str, Any] | None = None
    attempts: int = 0
    max_attempts: int = 1
    worker_id: str | None = None
    created_at: int
    last_modified_at: int
