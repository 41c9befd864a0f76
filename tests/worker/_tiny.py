"""The configs of a scheduled run as cheap as the real pipeline allows (8 tiny images, one
epoch of a tiny model), shared by the worker tests and the fault-injection suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LIGHTLY_CONFIG: dict[str, Any] = {
    "model": {"name": "resnet-9", "width": 0.125},
    "collate": {"input_size": 32},
    "trainer": {"max_epochs": 1, "gpus": 0},
    "loader": {"num_workers": 0, "batch_size": 8},
}
WORKER_CONFIG: dict[str, Any] = {"stopping_condition": {"n_samples": 3}}


def local_dataset(client: Any, name: str, images: Path, outputs: Path) -> None:
    """Create dataset ``name`` through ``client`` (an ``ApiWorkflowClient``) with the LOCAL
    datasources of a scheduled run: ``images`` as INPUT and ``outputs`` as LIGHTLY."""
    from selfsup.openapi_generated.swagger_client.models.datasource_purpose import (
        DatasourcePurpose,
    )

    client.create_dataset(name)
    client.set_local_config(str(images), purpose=DatasourcePurpose.INPUT)
    client.set_local_config(str(outputs), purpose=DatasourcePurpose.LIGHTLY)


def job_data(**fields: Any) -> Any:
    """A ``DockerRunJobData`` as the server hands a worker: run ``r1`` of scheduled run
    ``s1`` over an image dataset ``d``, empty configs; ``fields`` replace any of these."""
    from selfsup.openapi_generated.swagger_client.models import DockerRunJobData

    dataset = {"id": "d", "name": "d", "type": "IMAGES", "created_at": 0, "last_modified_at": 0}
    base: dict[str, Any] = {
        "run_id": "r1",
        "scheduled_run_id": "s1",
        "dataset": dataset,
        "worker_config": {},
        "lightly_config": {},
    }
    return DockerRunJobData.model_validate({**base, **fields})
