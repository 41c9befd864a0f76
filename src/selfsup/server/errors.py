"""The error answers of the server's endpoints as OpenAPI documents them.

The errors themselves and their JSON body are :mod:`selfsup.apphelpers.http_errors`, shared
with the web app.
"""

from __future__ import annotations

from typing import Any

Responses = dict[int | str, dict[str, Any]]

_DESCRIPTIONS = {
    400: "a value the server cannot use (the message says which and what is accepted)",
    401: "missing, invalid or revoked API token",
    403: "the token lacks the scope, or a path is outside the allowed roots",
    404: "no such resource for this user",
    409: "the resource's state does not allow this; RUN_ENDED (with the end `state`): the "
    "run ended or its lease ran out",
    410: "the artifact's file is gone",
    413: "body or upload over the server's size limit (the message names the limit)",
    422: "malformed body, or a config with an unknown key or bad value",
}


def error_responses(*codes: int) -> Responses:
    """OpenAPI ``responses`` entries for ``codes``, all with the JSON error body."""
    from selfsup.openapi_generated.swagger_client.models import ApiErrorResponse

    return {code: {"model": ApiErrorResponse, "description": _DESCRIPTIONS[code]} for code in codes}
