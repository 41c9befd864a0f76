"""Python client of the selfsup server (lightly's ``lightly.api`` with ``selfsup`` names).

:class:`ApiWorkflowClient` is for users (datasets, datasources, scheduling, results);
:class:`WorkerApiClient` is what ``selfsup worker`` uses to claim and execute runs.
Importing this package does not import torch.
"""

from selfsup.api.api_workflow_client import (
    STATE_SCHEDULED_ID_NOT_FOUND,
    ApiWorkflowClient,
    ArtifactNotExist,
    ComputeWorkerRunInfo,
)
from selfsup.api.worker_client import WorkerApiClient
from selfsup.openapi_generated.swagger_client.rest import ApiException

__all__ = [
    "STATE_SCHEDULED_ID_NOT_FOUND",
    "ApiException",
    "ApiWorkflowClient",
    "ArtifactNotExist",
    "ComputeWorkerRunInfo",
    "WorkerApiClient",
]
