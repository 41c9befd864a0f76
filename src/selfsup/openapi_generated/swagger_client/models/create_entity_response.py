"""Response of endpoints that create something."""

from __future__ import annotations

from selfsup.openapi_generated.swagger_client.models._base import ResponseModel


class CreateEntityResponse(ResponseModel):
    """The id of the created resource."""

    id: str
