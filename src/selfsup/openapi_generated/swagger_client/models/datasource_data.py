"""Datasources as the API returns them: to users without credentials, to workers with."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from selfsup.openapi_generated.swagger_client.models._base import ResponseModel
from selfsup.openapi_generated.swagger_client.models.datasource_purpose import DatasourcePurpose
from selfsup.openapi_generated.swagger_client.models.datasource_type import DatasourceType


class DatasourceData(ResponseModel):
    """A datasource of a dataset; ``options`` holds its non-secret settings (``s3_region``,
    ``gcs_project_id``, ``account_name``). Credentials are never part of this body."""

    id: str
    dataset_id: str
    type: DatasourceType
    purpose: DatasourcePurpose
    full_path: str
    thumb_suffix: str | None = None
    options: dict[str, str] = Field(default_factory=dict)
    has_credentials: bool = False
    created_at: int
    last_modified_at: int


class DatasourceAccessData(ResponseModel):
    """What a worker needs to read or write a datasource, credentials included.

    Returned only by the worker endpoint of a run the calling worker holds.
    """

    type: DatasourceType
    purpose: DatasourcePurpose
    full_path: str
    thumb_suffix: str | None = None
    options: dict[str, str] = Field(default_factory=dict)
    credentials: dict[str, Any] = Field(default_factory=dict)
    allowed_roots: list[str] = Field(
        default_factory=list,
        description="LOCAL only: the folders (real paths) the dataset's owner may read from, as "
        "the server allows them when the job is fetched; the worker re-checks ``full_path`` "
        "and every symlink in it against them when it uses them",
    )
