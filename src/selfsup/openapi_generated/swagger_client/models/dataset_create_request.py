"""Body of ``POST /v1/datasets``."""

from __future__ import annotations

from pydantic import Field

from selfsup.openapi_generated.swagger_client.models._base import RequestModel
from selfsup.openapi_generated.swagger_client.models.dataset_type import DatasetType


class DatasetCreateRequest(RequestModel):
    """A new dataset: a name unique among the user's datasets, and what it holds."""

    name: str = Field(min_length=1, max_length=200, description="dataset name")
    type: DatasetType = Field(DatasetType.IMAGES, description="IMAGES or VIDEOS")
