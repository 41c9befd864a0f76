"""Scheduled runs, runs and artifact downloads (user side)."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy import select

from selfsup.apphelpers.http_errors import ApiError, bad_request, not_found
from selfsup.config.run_configs import validate_run_configs
from selfsup.openapi_generated.swagger_client.models import (
    PRIORITY_RANK,
    DatasourcePurpose,
    DockerRunData,
    DockerRunScheduledCreateRequest,
    DockerRunScheduledData,
    DockerRunScheduledState,
)
from selfsup.server.auth import DbSession, UserPrincipal
from selfsup.server.errors import error_responses
from selfsup.server.leases import OPEN, cancel_scheduled
from selfsup.server.models import Artifact, Datasource, Run, ScheduledRun, new_id
from selfsup.server.pages import DEFAULT_PAGE_SIZE, Limit, Offset, page
from selfsup.server.routes.datasets import ERRORS, get_dataset
from selfsup.server.settings import ServerSettings
from selfsup.server.tag_inputs import check_tag_inputs
from selfsup.server.views import run_data, scheduled_run_data

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["runs"])


def _settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


@router.post(
    "/datasets/{dataset_id}/scheduled-runs",
    status_code=201,
    responses=error_responses(400, 401, 404, 422),
    summary="Schedule a run of the dataset",
)
def schedule_run(
    dataset_id: str,
    body: DockerRunScheduledCreateRequest,
    principal: UserPrincipal,
    session: DbSession,
    request: Request,
) -> DockerRunScheduledData:
    """Validate the configs (422 with a did-you-mean message for unknown keys) and queue the
    job for a worker whose labels include all of ``runs_on``.

    A query of the tags of an earlier run (``{tag: name, run: <run id>}``) must name a run of
    the caller that has the tag: 400 ``UNKNOWN_TAG`` listing the run's tags otherwise
    (:mod:`selfsup.server.tag_inputs`)."""
    settings = _settings(request)
    dataset = get_dataset(session, principal.user_id, dataset_id)
    configs = validate_run_configs(
        body.worker_config, body.lightly_config, body.selection_config, check_selection=True
    )
    check_tag_inputs(session, principal.user_id, configs.selection_config)
    purposes = set(
        session.scalars(select(Datasource.purpose).where(Datasource.dataset_id == dataset.id))
    )
    if DatasourcePurpose.INPUT.value not in purposes:
        raise bad_request(
            f"dataset {dataset_id!r} has no INPUT datasource: set one first "
            "(set_local_config, set_s3_config, set_gcs_config or set_azure_config)",
            code="NO_DATASOURCE",
        )
    needs_output = configs.worker_config.get(
        "relevant_filenames_file"
    ) or configs.lightly_config.get("checkpoint")
    if needs_output and DatasourcePurpose.LIGHTLY.value not in purposes:
        raise bad_request(
            "relevant_filenames_file and checkpoint are read from the LIGHTLY datasource, "
            f"but dataset {dataset_id!r} has none: set one with purpose LIGHTLY",
            code="NO_DATASOURCE",
        )
    labels = sorted({label.strip() for label in body.runs_on if label.strip()})
    now = settings.clock()
    scheduled = ScheduledRun(
        id=new_id(),
        user_id=principal.user_id,
        dataset_id=dataset.id,
        priority=body.priority.value,
        priority_rank=PRIORITY_RANK[body.priority],
        runs_on=labels,
        state=OPEN,
        worker_config=configs.worker_config,
        lightly_config=configs.lightly_config,
        selection_config=configs.selection_config,
        attempts=0,
        max_attempts=settings.max_attempts,
        created_at=now,
        last_modified_at=now,
    )
    session.add(scheduled)
    session.commit()
    logger.info(
        "scheduled run %s queued for dataset %s (%s)", scheduled.id, dataset.id, body.priority
    )
    return scheduled_run_data(scheduled)


@router.get("/scheduled-runs", responses=ERRORS, summary="List your scheduled runs")
def list_scheduled_runs(
    principal: UserPrincipal,
    session: DbSession,
    request: Request,
    response: Response,
    dataset_id: str | None = None,
    state: DockerRunScheduledState | None = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> list[DockerRunScheduledData]:
    """Scheduled runs of the caller, optionally of one dataset and/or in one state, oldest
    first, one page (``X-Total-Count``, ``Link: rel=next``)."""
    query = select(ScheduledRun).where(ScheduledRun.user_id == principal.user_id)
    if dataset_id is not None:
        query = query.where(ScheduledRun.dataset_id == dataset_id)
    if state is not None:
        query = query.where(ScheduledRun.state == state.value)
    rows = page(session, query.order_by(ScheduledRun.seq), limit, offset, request, response)
    return [scheduled_run_data(s) for s in rows]


def _get_scheduled(session: DbSession, user_id: str, scheduled_id: str) -> ScheduledRun:
    scheduled = session.scalars(
        select(ScheduledRun).where(ScheduledRun.id == scheduled_id)
    ).one_or_none()
    if scheduled is None or scheduled.user_id != user_id:
        raise not_found("scheduled run", scheduled_id)
    return scheduled


@router.get("/scheduled-runs/{scheduled_id}", responses=ERRORS, summary="Get a scheduled run")
def read_scheduled_run(
    scheduled_id: str, principal: UserPrincipal, session: DbSession
) -> DockerRunScheduledData:
    """One scheduled run of the caller."""
    return scheduled_run_data(_get_scheduled(session, principal.user_id, scheduled_id))


@router.post(
    "/scheduled-runs/{scheduled_id}/cancel",
    responses=error_responses(401, 404, 409),
    summary="Cancel a scheduled run",
)
def cancel_scheduled_run(
    scheduled_id: str, principal: UserPrincipal, session: DbSession, request: Request
) -> DockerRunScheduledData:
    """An OPEN job is withdrawn; for a LOCKED one the worker is asked to abort its run."""
    scheduled = _get_scheduled(session, principal.user_id, scheduled_id)
    scheduled = cancel_scheduled(session, scheduled, _settings(request).clock())
    logger.info("scheduled run %s canceled", scheduled_id)
    return scheduled_run_data(scheduled)


@router.get(
    "/scheduled-runs/{scheduled_id}/run",
    responses=ERRORS,
    summary="The latest run of a scheduled run",
)
def read_run_of_scheduled(
    scheduled_id: str, principal: UserPrincipal, session: DbSession
) -> DockerRunData:
    """The most recent attempt; 404 while no worker has claimed the scheduled run."""
    scheduled = _get_scheduled(session, principal.user_id, scheduled_id)
    run = session.scalars(
        select(Run)
        .where(Run.scheduled_run_id == scheduled.id)
        .order_by(Run.attempt.desc(), Run.created_at.desc())
    ).first()
    if run is None:
        raise not_found("run of scheduled run", scheduled_id)
    return run_data(run)


@router.get("/runs", responses=ERRORS, summary="List your runs")
def list_runs(
    principal: UserPrincipal,
    session: DbSession,
    request: Request,
    response: Response,
    dataset_id: str | None = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> list[DockerRunData]:
    """Runs of the caller (optionally of one dataset), oldest first, with their artifacts,
    one page (``X-Total-Count``, ``Link: rel=next``)."""
    query = select(Run).where(Run.user_id == principal.user_id)
    if dataset_id is not None:
        query = query.where(Run.dataset_id == dataset_id)
    rows = page(session, query.order_by(Run.created_at, Run.id), limit, offset, request, response)
    return [run_data(r) for r in rows]


def get_run(session: DbSession, user_id: str, run_id: str) -> Run:
    """The run ``run_id`` of ``user_id`` or 404."""
    run = session.get(Run, run_id)
    if run is None or run.user_id != user_id:
        raise not_found("run", run_id)
    return run


@router.get("/runs/{run_id}", responses=ERRORS, summary="Get a run")
def read_run(run_id: str, principal: UserPrincipal, session: DbSession) -> DockerRunData:
    """One run of the caller with its state, message and artifacts."""
    return run_data(get_run(session, principal.user_id, run_id))


@router.get(
    "/runs/{run_id}/artifacts/{artifact_id}",
    responses={
        **error_responses(401, 404, 410),
        200: {"content": {"application/octet-stream": {}}},
    },
    response_class=FileResponse,
    summary="Download an artifact",
)
def download_artifact(
    run_id: str, artifact_id: str, principal: UserPrincipal, session: DbSession, request: Request
) -> FileResponse:
    """The artifact's file as uploaded by the worker."""
    run = get_run(session, principal.user_id, run_id)
    artifact = session.get(Artifact, artifact_id)
    if artifact is None or artifact.run_id != run.id:
        raise not_found("artifact", artifact_id)
    path = Path(_settings(request).data_dir) / artifact.storage_path
    if not path.is_file():
        raise ApiError(
            410, "ARTIFACT_MISSING", f"the file of artifact {artifact_id!r} is gone from the server"
        )
    return FileResponse(
        path, filename=Path(artifact.file_name).name, media_type="application/octet-stream"
    )
