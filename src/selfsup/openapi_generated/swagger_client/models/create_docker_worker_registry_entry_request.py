"""Body of ``POST /v1/workers``."""

from __future__ import annotations

from pydantic import Field

from selfsup.openapi_generated.swagger_client.models._base import RequestModel


class CreateDockerWorkerRegistryEntryRequest(RequestModel):
    """Register a worker by name (registering the same name again updates its labels)."""

    name: str = Field("Default", min_length=1, max_length=200)
    labels: list[str] = Field(default_factory=list, max_length=64)
