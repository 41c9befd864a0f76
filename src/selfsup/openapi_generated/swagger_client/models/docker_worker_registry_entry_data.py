"""A registered worker."""

from __future__ import annotations

from pydantic import Field

from selfsup.openapi_generated.swagger_client.models._base import ResponseModel


class DockerWorkerRegistryEntryData(ResponseModel):
    """A worker of the user; it claims scheduled runs whose ``runs_on`` labels it all has."""

    id: str
    name: str
    labels: list[str] = Field(default_factory=list)
    created_at: int
    last_seen_at: int | None = None
