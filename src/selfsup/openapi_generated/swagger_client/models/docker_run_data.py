"""A run (one attempt at a scheduled run) as the API returns it."""

from __future__ import annotations

from pydantic import Field

from selfsup.openapi_generated.swagger_client.models._base import ResponseModel
from selfsup.openapi_generated.swagger_client.models.docker_run_artifact_data import (
    DockerRunArtifactData,
)
from selfsup.openapi_generated.swagger_client.models.docker_run_state import DockerRunState


class DockerRunData(ResponseModel):
    """A run, its state and last message, and the artifacts uploaded so far."""

    id: str
    scheduled_id: str
    dataset_id: str
    worker_id: str
    state: DockerRunState
    message: str = ""
    attempt: int = 1
    abort_requested: bool = False
    created_at: int
    last_modified_at: int
    ended_at: int | None = None
    artifacts: list[DockerRunArtifactData] = Field(default_factory=list)

    @property
    def report_available(self) -> bool:
        """Whether the PDF report has been uploaded."""
        return any(a.type == "REPORT_PDF" for a in self.artifacts)
