"""The JSON body of every error the server returns."""

from __future__ import annotations

from pydantic import Field

from selfsup.openapi_generated.swagger_client.models._base import ResponseModel


class ApiErrorResponse(ResponseModel):
    """``{"code": "NOT_FOUND", "error": "dataset 'abc' not found"}``: a stable machine code
    and a message naming the key, value or resource at fault."""

    code: str = Field(description="machine-readable error code, e.g. INVALID_CONFIG")
    error: str = Field(description="what is wrong and what would be accepted")
