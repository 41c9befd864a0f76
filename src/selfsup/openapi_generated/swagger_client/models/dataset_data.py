"""A dataset as the API returns it."""

from __future__ import annotations

from selfsup.openapi_generated.swagger_client.models._base import ResponseModel
from selfsup.openapi_generated.swagger_client.models.dataset_type import DatasetType


class DatasetData(ResponseModel):
    """A dataset; timestamps are milliseconds since the Unix epoch, as in lightly's API."""

    id: str
    name: str
    type: DatasetType
    created_at: int
    last_modified_at: int
