"""lightly-compatible import location of the API models (see :mod:`selfsup.openapi_generated`)."""

from selfsup.openapi_generated.swagger_client.models import *  # noqa: F403
from selfsup.openapi_generated.swagger_client.models import __all__ as _models_all

__all__ = list(_models_all)
