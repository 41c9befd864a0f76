"""An artifact (file) of a run."""

from __future__ import annotations

from selfsup.openapi_generated.swagger_client.models._base import ResponseModel
from selfsup.openapi_generated.swagger_client.models.docker_run_artifact_type import (
    DockerRunArtifactType,
)


class DockerRunArtifactData(ResponseModel):
    """A file a run uploaded; download it from ``/v1/runs/{run_id}/artifacts/{id}``."""

    id: str
    type: DockerRunArtifactType
    file_name: str
    size: int
    sha256: str
    created_at: int
