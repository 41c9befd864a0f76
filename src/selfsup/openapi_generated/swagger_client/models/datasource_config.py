"""Bodies of ``POST /v1/datasets/{dataset_id}/datasources``: where a dataset's files live.

The field names are lightly's (``full_path``, ``s3_region``, ``s3_access_key_id``, ...). The
credential fields are write-only: the server stores them for workers and never returns them
on a user-facing endpoint (see :class:`DatasourceData`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from selfsup.openapi_generated.swagger_client.models._base import RequestModel
from selfsup.openapi_generated.swagger_client.models.datasource_purpose import DatasourcePurpose

_THUMB = ".selfsup/thumbnails/[filename]_thumb.[extension]"

# The patterns are matched by pydantic-core's Rust regex, where '$' is the end of the text (not
# before a final newline, as in Python's re.match); '.' matches no newline, and the bucket or
# container part no whitespace, so no path carries a line break.


class _DatasourceConfigBase(RequestModel):
    purpose: DatasourcePurpose = Field(
        DatasourcePurpose.INPUT_OUTPUT, description="INPUT, LIGHTLY or INPUT_OUTPUT (both)"
    )
    thumb_suffix: str | None = Field(
        None, max_length=500, description=f"where thumbnails are written, e.g. {_THUMB!r}"
    )


class DatasourceConfigLOCAL(_DatasourceConfigBase):
    """A folder on the machines of the server and its workers, inside an allowed local root."""

    type: Literal["LOCAL"] = "LOCAL"
    full_path: str = Field(min_length=1, max_length=4096, description="folder path")


class DatasourceConfigS3(_DatasourceConfigBase):
    """An AWS S3 prefix such as ``s3://bucket/input/``."""

    type: Literal["S3"] = "S3"
    full_path: str = Field(pattern=r"^s3://[^/\s]+(/.*)?$", max_length=4096)
    s3_region: str = Field(min_length=1, max_length=64, description="e.g. eu-central-1")
    s3_access_key_id: str = Field(min_length=1, max_length=1024, description="credential")
    s3_secret_access_key: str = Field(min_length=1, max_length=4096, description="credential")


class DatasourceConfigGCS(_DatasourceConfigBase):
    """A Google Cloud Storage prefix such as ``gs://bucket/input/``."""

    type: Literal["GCS"] = "GCS"
    full_path: str = Field(pattern=r"^gs://[^/\s]+(/.*)?$", max_length=4096)
    gcs_project_id: str = Field(min_length=1, max_length=256)
    gcs_credentials: str = Field(
        min_length=1, max_length=65536, description="service account key JSON (credential)"
    )


class DatasourceConfigAzure(_DatasourceConfigBase):
    """An Azure blob container (and optional prefix) such as ``my-container/input/``."""

    type: Literal["AZURE"] = "AZURE"
    full_path: str = Field(
        pattern=r"^[^/\s]+(/.*)?$", max_length=4096, description="container[/prefix]"
    )
    account_name: str = Field(min_length=1, max_length=256)
    account_key: str = Field(min_length=1, max_length=8192, description="SAS token (credential)")


DatasourceConfig = Annotated[
    DatasourceConfigLOCAL | DatasourceConfigS3 | DatasourceConfigGCS | DatasourceConfigAzure,
    Field(discriminator="type"),
]
"""Any datasource config; the ``type`` key picks the variant."""

# Fields of each variant that are credentials: stored apart, never returned to users.
CREDENTIAL_FIELDS: dict[str, tuple[str, ...]] = {
    "LOCAL": (),
    "S3": ("s3_access_key_id", "s3_secret_access_key"),
    "GCS": ("gcs_credentials",),
    "AZURE": ("account_key",),
}
