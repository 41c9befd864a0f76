"""Workers: registration (``/v1/workers``) and the worker-facing run endpoints.

A worker registers with labels, then polls ``POST /v1/workers/{worker_id}/claim``. For the run
it gets it fetches the job (configs and datasources *with* credentials), reports states,
appends to the log, uploads artifacts and renews its lease with heartbeats, all under
``/v1/workers/{worker_id}/runs/{run_id}/``. These endpoints need a token with the ``worker``
scope and answer 404 for runs the worker does not hold, 409 once the run ended or its lease
ran out (the worker must then stop).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from selfsup.apphelpers.http_errors import ApiError, conflict
from selfsup.apphelpers.paths import resolve_local_path, safe_artifact_name
from selfsup.openapi_generated.swagger_client.models import (
    CreateDockerWorkerRegistryEntryRequest,
    DockerRunArtifactData,
    DockerRunArtifactType,
    DockerRunClaimData,
    DockerRunData,
    DockerRunHeartbeatData,
    DockerRunJobData,
    DockerRunLogAppendRequest,
    DockerRunStateUpdateRequest,
    DockerWorkerRegistryEntryData,
)
from selfsup.server.auth import (
    DbSession,
    Principal,
    UserPrincipal,
    WorkerPrincipal,
    current_principal,
)
from selfsup.server.errors import error_responses
from selfsup.server.leases import (
    change_state,
    claim_next,
    crash_expired,
    heartbeat,
    held_run,
    require_worker,
)
from selfsup.server.models import Artifact, Dataset, Datasource, Run, ScheduledRun, Worker, new_id
from selfsup.server.pages import DEFAULT_PAGE_SIZE, Limit, Offset, page
from selfsup.server.roots import allowed_roots, real_paths
from selfsup.server.settings import ServerSettings
from selfsup.server.tag_inputs import resolve_tag_inputs
from selfsup.server.views import (
    artifact_data,
    dataset_data,
    datasource_access,
    run_data,
    scheduled_run_data,
    worker_data,
)
from selfsup.utils.atomic import atomic_open_bytes

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/workers", tags=["workers"])

LOG_FILE_NAME = "log.txt"
_CHUNK = 1024 * 1024
WORKER_ERRORS = error_responses(401, 403, 404, 409, 422)


def _settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


AnyPrincipal = Annotated[Principal, Depends(current_principal)]


def _clean_labels(labels: list[str]) -> list[str]:
    cleaned = sorted({label.strip() for label in labels if label.strip()})
    for label in cleaned:
        if len(label) > 100:
            raise ApiError(400, "BAD_REQUEST", f"label {label[:20]!r}... is over 100 characters")
    return cleaned


@router.post("", summary="Register a worker (idempotent per name)")
def register_worker(
    body: CreateDockerWorkerRegistryEntryRequest,
    principal: AnyPrincipal,
    session: DbSession,
    request: Request,
) -> DockerWorkerRegistryEntryData:
    """Register a worker of the caller; registering an existing name updates its labels and
    returns the same id."""
    now = _settings(request).clock()
    labels = _clean_labels(body.labels)
    worker = session.scalars(
        select(Worker).where(Worker.user_id == principal.user_id, Worker.name == body.name)
    ).one_or_none()
    if worker is None:
        worker = Worker(
            id=new_id(),
            user_id=principal.user_id,
            name=body.name,
            labels=labels,
            created_at=now,
            last_seen_at=now,
        )
        session.add(worker)
    else:
        worker.labels = labels
        worker.last_seen_at = now
    try:
        session.commit()
    except IntegrityError:
        # Two registrations of the same new name raced; the other one created it.
        session.rollback()
        worker = session.scalars(
            select(Worker).where(Worker.user_id == principal.user_id, Worker.name == body.name)
        ).one()
    logger.info("worker %s registered with labels %s", worker.id, labels)
    return worker_data(worker)


@router.get("", summary="List your workers")
def list_workers(
    principal: AnyPrincipal,
    session: DbSession,
    request: Request,
    response: Response,
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> list[DockerWorkerRegistryEntryData]:
    """The caller's registered workers, oldest first, one page (``X-Total-Count``,
    ``Link: rel=next``)."""
    query = (
        select(Worker)
        .where(Worker.user_id == principal.user_id)
        .order_by(Worker.created_at, Worker.id)
    )
    return [worker_data(w) for w in page(session, query, limit, offset, request, response)]


@router.delete("/{worker_id}", status_code=204, summary="Remove a worker")
def delete_worker(worker_id: str, principal: UserPrincipal, session: DbSession) -> Response:
    """Forget a worker; refused (409) while it holds a run."""
    worker = require_worker(session, principal.user_id, worker_id)
    busy = session.scalars(
        select(Run.id).where(Run.worker_id == worker.id, Run.lease_expires_at.is_not(None))
    ).first()
    if busy is not None:
        raise conflict(f"worker {worker_id!r} holds run {busy!r}; wait for it to end")
    session.delete(worker)
    session.commit()
    return Response(status_code=204)


@router.post(
    "/{worker_id}/claim",
    responses={**WORKER_ERRORS, 204: {"description": "nothing to do now"}},
    response_model=DockerRunClaimData,
    summary="Claim the next scheduled run",
)
def claim(
    worker_id: str, principal: WorkerPrincipal, session: DbSession, request: Request
) -> DockerRunClaimData | Response:
    """Lock the highest-priority, oldest OPEN scheduled run whose ``runs_on`` labels the worker
    all has, and start a run for it with a lease. 204 when there is none. Each scheduled run is
    given to exactly one worker, also when many claim at once."""
    settings = _settings(request)
    worker = require_worker(session, principal.user_id, worker_id)
    # Release what crashed workers left behind, so it can be claimed right away.
    crash_expired(session, settings.clock())
    claimed = claim_next(session, worker, settings)
    if claimed is None:
        return Response(status_code=204)
    scheduled, run = claimed
    assert run.lease_expires_at is not None
    return DockerRunClaimData(
        run=run_data(run),
        scheduled_run=scheduled_run_data(scheduled),
        lease_expires_at=run.lease_expires_at,
        lease_seconds=settings.lease_seconds,
    )


@router.get(
    "/{worker_id}/runs/{run_id}/job",
    responses=WORKER_ERRORS,
    summary="The configs and datasources (with credentials) of a held run",
)
def read_job(
    worker_id: str, run_id: str, principal: WorkerPrincipal, session: DbSession, request: Request
) -> DockerRunJobData:
    """Everything needed to execute the run. The only endpoint that returns credentials, and
    only to the worker holding the run's lease.

    LOCAL datasources are checked against the dataset owner's allowed roots as they are now
    (403 ``PATH_OUTSIDE_ROOTS`` when one left them) and carry those roots' real paths in
    ``allowed_roots``, for the worker to re-check every path at use."""
    worker = require_worker(session, principal.user_id, worker_id)
    run = held_run(session, worker, run_id, _settings(request))
    scheduled = session.scalars(
        select(ScheduledRun).where(ScheduledRun.id == run.scheduled_run_id)
    ).one()
    dataset = session.get(Dataset, run.dataset_id)
    assert dataset is not None
    sources = list(
        session.scalars(
            select(Datasource)
            .where(Datasource.dataset_id == dataset.id)
            .order_by(Datasource.purpose)
        )
    )
    # The owner's roots as they are now: a root removed since the datasource was set, or a
    # folder swapped for a link leaving them, stops the job here (403 naming the path).
    roots = allowed_roots(session, dataset.user_id, _settings(request).local_roots)
    for source in sources:
        if source.type == "LOCAL":
            resolve_local_path(source.full_path, roots)
    real_roots = real_paths(roots)
    logger.info("worker %s fetched the job of run %s", worker.id, run.id)
    return DockerRunJobData(
        run_id=run.id,
        scheduled_run_id=scheduled.id,
        dataset=dataset_data(dataset),
        worker_config=dict(scheduled.worker_config),
        lightly_config=dict(scheduled.lightly_config),
        selection_config=scheduled.selection_config,
        datasources=[datasource_access(s, real_roots) for s in sources],
        # Tags of earlier runs the selection reads, as the database holds them now.
        tags=resolve_tag_inputs(session, dataset.user_id, scheduled.selection_config),
    )


@router.post(
    "/{worker_id}/runs/{run_id}/state", responses=WORKER_ERRORS, summary="Report a run state"
)
def report_state(
    worker_id: str,
    run_id: str,
    body: DockerRunStateUpdateRequest,
    principal: WorkerPrincipal,
    session: DbSession,
    request: Request,
) -> DockerRunData:
    """Move the run forward (409 for a step back); an end state releases the scheduled run."""
    settings = _settings(request)
    worker = require_worker(session, principal.user_id, worker_id)
    run = held_run(session, worker, run_id, settings)
    run = change_state(session, run, body.state, body.message, settings)
    return run_data(run)


@router.post(
    "/{worker_id}/runs/{run_id}/heartbeat",
    responses=WORKER_ERRORS,
    summary="Renew the lease of a run",
)
def renew_lease(
    worker_id: str, run_id: str, principal: WorkerPrincipal, session: DbSession, request: Request
) -> DockerRunHeartbeatData:
    """Extend the lease by ``lease_seconds``; ``abort_requested`` tells the worker to stop."""
    settings = _settings(request)
    worker = require_worker(session, principal.user_id, worker_id)
    run = held_run(session, worker, run_id, settings)
    worker.last_seen_at = settings.clock()
    renewal = heartbeat(session, run, settings)
    return DockerRunHeartbeatData(
        lease_expires_at=renewal.lease_expires_at, abort_requested=renewal.abort_requested
    )


def _run_dir(settings: ServerSettings, run_id: str) -> Path:
    return Path(settings.data_dir) / "runs" / run_id


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _record_artifact(
    session: DbSession,
    run: Run,
    kind: DockerRunArtifactType,
    file_name: str,
    storage_path: str,
    size: int,
    sha256: str,
    now: int,
) -> Artifact:
    artifact = session.scalars(
        select(Artifact).where(Artifact.run_id == run.id, Artifact.file_name == file_name)
    ).one_or_none()
    if artifact is None:
        artifact = Artifact(id=new_id(), run_id=run.id, file_name=file_name, created_at=now)
        session.add(artifact)
    artifact.type = kind.value
    artifact.storage_path = storage_path
    artifact.size = size
    artifact.sha256 = sha256
    return artifact


@router.post(
    "/{worker_id}/runs/{run_id}/log",
    status_code=204,
    responses=WORKER_ERRORS,
    summary="Append to the run's log",
)
def append_log(
    worker_id: str,
    run_id: str,
    body: DockerRunLogAppendRequest,
    principal: WorkerPrincipal,
    session: DbSession,
    request: Request,
) -> Response:
    """Append text to the LOG artifact ``log.txt`` (created on the first append)."""
    settings = _settings(request)
    worker = require_worker(session, principal.user_id, worker_id)
    run = held_run(session, worker, run_id, settings)
    path = _run_dir(settings, run.id) / LOG_FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(body.text)
    storage = str(path.relative_to(settings.data_dir))
    _record_artifact(
        session,
        run,
        DockerRunArtifactType.LOG,
        LOG_FILE_NAME,
        storage,
        path.stat().st_size,
        _file_sha256(path),
        settings.clock(),
    )
    session.commit()
    return Response(status_code=204)


@router.post(
    "/{worker_id}/runs/{run_id}/artifacts",
    status_code=201,
    responses={**WORKER_ERRORS, **error_responses(400, 413)},
    summary="Upload an artifact",
)
def upload_artifact(
    worker_id: str,
    run_id: str,
    principal: WorkerPrincipal,
    session: DbSession,
    request: Request,
    file: Annotated[UploadFile, File(description="the file's content")],
    type: Annotated[DockerRunArtifactType, Form(description="what the file is")],
    file_name: Annotated[str | None, Form(description="name to store (default: upload's)")] = None,
) -> DockerRunArtifactData:
    """Store a file of the run under the server's data folder (multipart form: ``file``,
    ``type`` and optionally ``file_name``). Uploading the same name again replaces it."""
    settings = _settings(request)
    worker = require_worker(session, principal.user_id, worker_id)
    run = held_run(session, worker, run_id, settings)
    name = safe_artifact_name(file_name or file.filename or "")
    # End the transaction while the file is copied: on SQLite an open transaction holds the
    # database's write lock, and a large checkpoint must not block every other request.
    session.rollback()
    target = _run_dir(settings, run.id) / name
    digest = hashlib.sha256()
    size = 0
    # 0640 from creation: never readable by others, not even between a write and a chmod.
    with atomic_open_bytes(target, mode=0o640) as out:
        for chunk in iter(lambda: file.file.read(_CHUNK), b""):
            size += len(chunk)
            if size > settings.max_upload_bytes:
                # Raising inside the block discards the partial temporary file.
                raise ApiError(
                    413,
                    "TOO_LARGE",
                    f"artifact {name!r} is over the server's limit of "
                    f"{settings.max_upload_bytes} bytes",
                )
            digest.update(chunk)
            out.write(chunk)
    run = held_run(session, worker, run_id, settings)  # still ours after the copy?
    artifact = _record_artifact(
        session,
        run,
        type,
        name,
        str(target.relative_to(settings.data_dir)),
        size,
        digest.hexdigest(),
        settings.clock(),
    )
    session.commit()
    logger.info("run %s: artifact %s (%s, %d bytes) stored", run.id, name, type.value, size)
    return artifact_data(artifact)
