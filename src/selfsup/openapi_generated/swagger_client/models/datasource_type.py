"""Storage back end of a datasource."""

from __future__ import annotations

from enum import StrEnum


class DatasourceType(StrEnum):
    """A folder under one of the server's allowed local roots, or a cloud bucket."""

    LOCAL = "LOCAL"
    S3 = "S3"
    GCS = "GCS"
    AZURE = "AZURE"
