"""Every API body and enum, importable from one place or from its lightly-named module."""

from selfsup.openapi_generated.swagger_client.models.api_error_response import ApiErrorResponse
from selfsup.openapi_generated.swagger_client.models.create_docker_worker_registry_entry_request import (  # noqa: E501
    CreateDockerWorkerRegistryEntryRequest,
)
from selfsup.openapi_generated.swagger_client.models.create_entity_response import (
    CreateEntityResponse,
)
from selfsup.openapi_generated.swagger_client.models.dataset_create_request import (
    DatasetCreateRequest,
)
from selfsup.openapi_generated.swagger_client.models.dataset_data import DatasetData
from selfsup.openapi_generated.swagger_client.models.dataset_type import DatasetType
from selfsup.openapi_generated.swagger_client.models.datasource_config import (
    CREDENTIAL_FIELDS,
    DatasourceConfig,
    DatasourceConfigAzure,
    DatasourceConfigGCS,
    DatasourceConfigLOCAL,
    DatasourceConfigS3,
)
from selfsup.openapi_generated.swagger_client.models.datasource_data import (
    DatasourceAccessData,
    DatasourceData,
)
from selfsup.openapi_generated.swagger_client.models.datasource_purpose import DatasourcePurpose
from selfsup.openapi_generated.swagger_client.models.datasource_type import DatasourceType
from selfsup.openapi_generated.swagger_client.models.docker_run_artifact_data import (
    DockerRunArtifactData,
)
from selfsup.openapi_generated.swagger_client.models.docker_run_artifact_type import (
    DockerRunArtifactType,
)
from selfsup.openapi_generated.swagger_client.models.docker_run_data import DockerRunData
from selfsup.openapi_generated.swagger_client.models.docker_run_scheduled_create_request import (
    DockerRunScheduledCreateRequest,
)
from selfsup.openapi_generated.swagger_client.models.docker_run_scheduled_data import (
    DockerRunScheduledData,
)
from selfsup.openapi_generated.swagger_client.models.docker_run_scheduled_priority import (
    PRIORITY_RANK,
    DockerRunScheduledPriority,
)
from selfsup.openapi_generated.swagger_client.models.docker_run_scheduled_state import (
    DockerRunScheduledState,
)
from selfsup.openapi_generated.swagger_client.models.docker_run_state import (
    END_STATES,
    STATE_ORDER,
    DockerRunState,
)
from selfsup.openapi_generated.swagger_client.models.docker_run_worker_data import (
    DockerRunClaimData,
    DockerRunHeartbeatData,
    DockerRunJobData,
    DockerRunJobTagData,
    DockerRunLogAppendRequest,
    DockerRunStateUpdateRequest,
)
from selfsup.openapi_generated.swagger_client.models.docker_worker_registry_entry_data import (
    DockerWorkerRegistryEntryData,
)

__all__ = [
    "CREDENTIAL_FIELDS",
    "END_STATES",
    "PRIORITY_RANK",
    "STATE_ORDER",
    "ApiErrorResponse",
    "CreateDockerWorkerRegistryEntryRequest",
    "CreateEntityResponse",
    "DatasetCreateRequest",
    "DatasetData",
    "DatasetType",
    "DatasourceAccessData",
    "DatasourceConfig",
    "DatasourceConfigAzure",
    "DatasourceConfigGCS",
    "DatasourceConfigLOCAL",
    "DatasourceConfigS3",
    "DatasourceData",
    "DatasourcePurpose",
    "DatasourceType",
    "DockerRunArtifactData",
    "DockerRunArtifactType",
    "DockerRunClaimData",
    "DockerRunData",
    "DockerRunHeartbeatData",
    "DockerRunJobData",
    "DockerRunJobTagData",
    "DockerRunLogAppendRequest",
    "DockerRunScheduledCreateRequest",
    "DockerRunScheduledData",
    "DockerRunScheduledPriority",
    "DockerRunScheduledState",
    "DockerRunState",
    "DockerRunStateUpdateRequest",
    "DockerWorkerRegistryEntryData",
]
