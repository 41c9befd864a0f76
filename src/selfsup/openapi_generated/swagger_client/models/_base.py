"""Base classes of the API bodies: requests reject unknown keys, responses tolerate them.

A request with a misspelt key must fail loudly (the server answers 422 naming the key); a
client reading a response from a newer server should not break on a field it does not know.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RequestModel(BaseModel):
    """Body sent to the server; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False)


class ResponseModel(BaseModel):
    """Body returned by the server; unknown keys are ignored so old clients keep working."""

    model_config = ConfigDict(extra="ignore")
