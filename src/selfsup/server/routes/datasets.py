"""Datasets and their datasources (``/v1/datasets``)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Body, Request, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from selfsup.apphelpers.http_errors import ApiError, conflict, not_found
from selfsup.apphelpers.paths import resolve_local_path
from selfsup.openapi_generated.swagger_client.models import (
    CREDENTIAL_FIELDS,
    DatasetCreateRequest,
    DatasetData,
    DatasourceConfig,
    DatasourceData,
    DatasourcePurpose,
)
from selfsup.server.auth import DbSession, UserPrincipal
from selfsup.server.errors import error_responses
from selfsup.server.leases import LOCKED
from selfsup.server.models import Dataset, Datasource, Run, ScheduledRun, Secret, new_id
from selfsup.server.pages import DEFAULT_PAGE_SIZE, Limit, Offset, page
from selfsup.server.roots import allowed_roots
from selfsup.server.settings import ServerSettings
from selfsup.server.views import dataset_data, datasource_data

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

ERRORS = error_responses(401, 404, 422)


def _settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


def get_dataset(session: DbSession, user_id: str, dataset_id: str) -> Dataset:
    """The dataset ``dataset_id`` of ``user_id``, or 404 (also for other users' datasets)."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or dataset.user_id != user_id:
        raise not_found("dataset", dataset_id)
    return dataset


@router.post("", status_code=201, responses=ERRORS, summary="Create a dataset")
def create_dataset(
    body: DatasetCreateRequest, principal: UserPrincipal, session: DbSession, request: Request
) -> DatasetData:
    """Create a dataset; the name must be unique among the user's datasets (else 409)."""
    now = _settings(request).clock()
    dataset = Dataset(
        id=new_id(),
        user_id=principal.user_id,
        name=body.name,
        type=body.type.value,
        created_at=now,
        last_modified_at=now,
    )
    session.add(dataset)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise conflict(f"you already have a dataset named {body.name!r}") from None
    logger.info("dataset %s created", dataset.id)
    return dataset_data(dataset)


@router.get("", responses=ERRORS, summary="List your datasets")
def list_datasets(
    principal: UserPrincipal,
    session: DbSession,
    request: Request,
    response: Response,
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> list[DatasetData]:
    """The caller's datasets, oldest first, one page (``X-Total-Count``, ``Link: rel=next``)."""
    query = (
        select(Dataset)
        .where(Dataset.user_id == principal.user_id)
        .order_by(Dataset.created_at, Dataset.id)
    )
    return [dataset_data(d) for d in page(session, query, limit, offset, request, response)]


@router.get("/{dataset_id}", responses=ERRORS, summary="Get a dataset")
def read_dataset(dataset_id: str, principal: UserPrincipal, session: DbSession) -> DatasetData:
    """One dataset of the caller."""
    return dataset_data(get_dataset(session, principal.user_id, dataset_id))


@router.delete(
    "/{dataset_id}",
    status_code=204,
    responses=error_responses(401, 404, 409),
    summary="Delete a dataset",
)
def delete_dataset(
    dataset_id: str, principal: UserPrincipal, session: DbSession, request: Request
) -> Response:
    """Delete a dataset with its datasources, scheduled runs, runs and artifacts.

    Refused (409) while a worker holds one of its runs: cancel the scheduled run first.
    """
    dataset = get_dataset(session, principal.user_id, dataset_id)
    busy = session.scalars(
        select(ScheduledRun.id).where(
            ScheduledRun.dataset_id == dataset.id, ScheduledRun.state == LOCKED
        )
    ).first()
    if busy is not None:
        raise conflict(
            f"a worker is running scheduled run {busy!r} of dataset {dataset_id!r}; "
            "cancel it and wait for it to end before deleting the dataset"
        )
    run_ids = list(session.scalars(select(Run.id).where(Run.dataset_id == dataset.id)))
    session.delete(dataset)
    session.commit()
    data_dir = _settings(request).data_dir
    for run_id in run_ids:
        shutil.rmtree(Path(data_dir) / "runs" / run_id, ignore_errors=True)
    logger.info("dataset %s deleted with %d runs", dataset_id, len(run_ids))
    return Response(status_code=204)


@router.post(
    "/{dataset_id}/datasources",
    responses=error_responses(400, 401, 403, 404, 422),
    summary="Set the INPUT and/or LIGHTLY datasource",
)
def set_datasource(
    dataset_id: str,
    config: Annotated[DatasourceConfig, Body()],
    principal: UserPrincipal,
    session: DbSession,
    request: Request,
) -> list[DatasourceData]:
    """Store where the dataset is read from (INPUT) and/or written to (LIGHTLY).

    ``INPUT_OUTPUT`` sets both. Setting a purpose again replaces it. LOCAL paths must lie in
    one of the caller's allowed roots (their own, then the shared ``--local-root`` folders).
    Credentials are stored (encrypted) for workers and never returned; the response lists
    the dataset's datasources without them.
    """
    settings = _settings(request)
    dataset = get_dataset(session, principal.user_id, dataset_id)
    data = config.model_dump()
    kind: str = data.pop("type")
    purpose = DatasourcePurpose(data.pop("purpose"))
    thumb_suffix = data.pop("thumb_suffix")
    full_path: str = data.pop("full_path")
    if kind == "LOCAL":
        roots = allowed_roots(session, principal.user_id, settings.local_roots)
        full_path = str(resolve_local_path(full_path, roots))
    credentials = {k: data.pop(k) for k in CREDENTIAL_FIELDS[kind]}
    options = {k: str(v) for k, v in data.items()}
    purposes = (
        [DatasourcePurpose.INPUT, DatasourcePurpose.LIGHTLY]
        if purpose == DatasourcePurpose.INPUT_OUTPUT
        else [purpose]
    )
    now = settings.clock()
    for p in purposes:
        row = session.scalars(
            select(Datasource).where(
                Datasource.dataset_id == dataset.id, Datasource.purpose == p.value
            )
        ).one_or_none()
        if row is None:
            row = Datasource(id=new_id(), dataset_id=dataset.id, purpose=p.value, created_at=now)
            session.add(row)
        row.type = kind
        row.full_path = full_path
        row.thumb_suffix = thumb_suffix
        row.options = options
        row.credentials = Secret(credentials)
        row.last_modified_at = now
    dataset.last_modified_at = now
    session.commit()
    # The path is the user's own input; the credentials are deliberately not logged.
    logger.info("dataset %s: %s datasource set for %s", dataset.id, kind, purpose.value)
    return _datasources(session, dataset.id)


@router.get("/{dataset_id}/datasources", responses=ERRORS, summary="List datasources")
def list_datasources(
    dataset_id: str, principal: UserPrincipal, session: DbSession
) -> list[DatasourceData]:
    """The dataset's datasources, without credentials."""
    dataset = get_dataset(session, principal.user_id, dataset_id)
    return _datasources(session, dataset.id)


def _datasources(session: DbSession, dataset_id: str) -> list[DatasourceData]:
    rows = session.scalars(
        select(Datasource).where(Datasource.dataset_id == dataset_id).order_by(Datasource.purpose)
    )
    return [datasource_data(r) for r in rows]


__all__ = ["ApiError", "get_dataset", "router"]
