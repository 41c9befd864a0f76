"""Claiming scheduled runs, leases, state changes and the sweeper of expired leases.

Every change that two parties could race on is a conditional UPDATE whose row count says who
won: ``... SET state='LOCKED' WHERE id=:id AND state='OPEN'`` claims a scheduled run exactly
once, on SQLite (where transactions are serialized by ``BEGIN IMMEDIATE``) and on PostgreSQL
(where the second UPDATE waits for the first, re-reads the row and matches nothing). The
heartbeat only extends a lease that has not run out, and the sweeper only crashes a run whose
lease has run out, so a late heartbeat and the sweeper cannot both succeed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, case, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import Update

from selfsup.apphelpers.http_errors import ApiError, conflict, not_found, run_ended
from selfsup.openapi_generated.swagger_client.models import (
    END_STATES,
    STATE_ORDER,
    DockerRunScheduledState,
    DockerRunState,
)
from selfsup.server.models import Run, ScheduledRun, Worker, new_id
from selfsup.server.settings import ServerSettings

logger = logging.getLogger(__name__)

_END = [s.value for s in END_STATES]
OPEN = DockerRunScheduledState.OPEN.value
LOCKED = DockerRunScheduledState.LOCKED.value
DONE = DockerRunScheduledState.DONE.value
CANCELED = DockerRunScheduledState.CANCELED.value


def _rowcount(session: Session, statement: Update) -> int:
    """Execute a conditional UPDATE and return how many rows it changed."""
    result = cast(CursorResult[Any], session.execute(statement))
    return int(result.rowcount)


def _lease_ms(settings: ServerSettings) -> int:
    return int(settings.lease_seconds * 1000)


def claim_next(
    session: Session, worker: Worker, settings: ServerSettings
) -> tuple[ScheduledRun, Run] | None:
    """Lock the best OPEN scheduled run ``worker`` may take and start a run for it.

    Best = highest priority, then first scheduled. A worker may take a scheduled run when it
    has every label of the run's ``runs_on`` and belongs to the same user. Commits.

    Returns:
        The locked scheduled run and its new run (state STARTED, lease set), or None when
        nothing is waiting for this worker.
    """
    now = settings.clock()
    labels = set(worker.labels)
    candidates = session.execute(
        select(ScheduledRun.id, ScheduledRun.runs_on)
        .where(ScheduledRun.user_id == worker.user_id, ScheduledRun.state == OPEN)
        .order_by(ScheduledRun.priority_rank.desc(), ScheduledRun.seq)
    ).all()
    for scheduled_id, runs_on in candidates:
        if not set(runs_on) <= labels:
            continue
        won = _rowcount(
            session,
            update(ScheduledRun)
            .where(ScheduledRun.id == scheduled_id, ScheduledRun.state == OPEN)
            .values(
                state=LOCKED,
                worker_id=worker.id,
                attempts=ScheduledRun.attempts + 1,
                last_modified_at=now,
            )
            .execution_options(synchronize_session=False),
        )
        if won != 1:
            continue  # another worker took it between our SELECT and UPDATE
        scheduled = session.scalars(
            select(ScheduledRun).where(ScheduledRun.id == scheduled_id)
        ).one()
        session.refresh(scheduled)
        run = Run(
            id=new_id(),
            user_id=scheduled.user_id,
            dataset_id=scheduled.dataset_id,
            scheduled_run_id=scheduled.id,
            worker_id=worker.id,
            attempt=scheduled.attempts,
            state=DockerRunState.STARTED.value,
            message=f"claimed by worker {worker.name!r}",
            abort_requested=False,
            lease_expires_at=now + _lease_ms(settings),
            created_at=now,
            last_modified_at=now,
        )
        session.add(run)
        worker.last_seen_at = now
        session.commit()
        logger.info(
            "scheduled run %s (attempt %d of %d) claimed by worker %s as run %s",
            scheduled.id,
            scheduled.attempts,
            scheduled.max_attempts,
            worker.id,
            run.id,
        )
        return scheduled, run
    worker.last_seen_at = now
    session.commit()
    return None


def held_run(session: Session, worker: Worker, run_id: str, settings: ServerSettings) -> Run:
    """The run ``run_id`` if ``worker`` holds it and its lease is still valid.

    Raises:
        ApiError: 404 if it is not this worker's run; 409 ``RUN_ENDED`` (with the end
            ``state``) if it already ended or its lease ran out (then it is marked CRASHED
            here, and the worker must stop working on it).
    """
    run = session.get(Run, run_id)
    if run is None or run.worker_id != worker.id or run.user_id != worker.user_id:
        raise not_found("run", run_id)
    _raise_if_over(session, run, settings)
    return run


def _raise_if_over(session: Session, run: Run, settings: ServerSettings) -> None:
    """Raise 409 ``RUN_ENDED`` if ``run`` (as loaded) ended or its lease ran out; in the
    latter case mark it CRASHED first (commits)."""
    now = settings.clock()
    if run.state in _END:
        raise run_ended(
            run.state,
            f"run {run.id!r} already ended in state {run.state}; stop working on it",
        )
    if run.lease_expires_at is not None and run.lease_expires_at < now:
        run_id = run.id
        session.rollback()
        crash_expired(session, now, only_run_id=run_id)
        raise run_ended(
            DockerRunState.CRASHED.value,
            f"the lease of run {run_id!r} ran out, so the run was marked CRASHED and its "
            "scheduled run re-opened; stop working on it (heartbeat more often than "
            f"every {settings.lease_seconds:g} s)",
        )


def _lost_race(session: Session, run_id: str, settings: ServerSettings, message: str) -> ApiError:
    """The error for a conditional UPDATE of a held run that matched nothing: ``run_id``
    ended or its lease ran out since it was loaded. Rolls back, re-reads the row and raises
    409 ``RUN_ENDED`` with its state; returns a plain 409 ``CONFLICT`` (``message``) in the
    unlikely case it is somehow still running."""
    session.rollback()
    run = session.get(Run, run_id, populate_existing=True)
    if run is None:
        return not_found("run", run_id)
    _raise_if_over(session, run, settings)
    return conflict(message)


@dataclass(frozen=True)
class Renewal:
    """What a heartbeat granted: the new expiry (ms) and the abort flag, both as of the
    UPDATE that renewed the lease (the row may have changed since)."""

    lease_expires_at: int
    abort_requested: bool


def heartbeat(session: Session, run: Run, settings: ServerSettings) -> Renewal:
    """Extend the lease of a held run by ``lease_seconds`` from now. Commits.

    The answer comes from the renewing UPDATE itself (``RETURNING``), never from reading the
    row again: the run may end (its worker's end report, racing this heartbeat) between the
    commit and such a read, and its lease would read as gone.

    Raises:
        ApiError: 409 ``RUN_ENDED`` if the run ended or its lease ran out before the UPDATE.
    """
    now = settings.clock()
    new_expiry = now + _lease_ms(settings)
    run_id = run.id
    returned = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.state.not_in(_END), Run.lease_expires_at >= now)
        .values(lease_expires_at=new_expiry)
        .returning(Run.abort_requested)
        .execution_options(synchronize_session=False)
    ).all()
    if len(returned) != 1:
        raise _lost_race(
            session,
            run_id,
            settings,
            f"run {run_id!r} is no longer held (it ended or its lease ran out)",
        )
    session.commit()
    return Renewal(lease_expires_at=new_expiry, abort_requested=bool(returned[0][0]))


def change_state(
    session: Session, run: Run, state: DockerRunState, message: str, settings: ServerSettings
) -> Run:
    """Move a held run to ``state`` (forward in the documented order, or to an end state).

    An end state releases the scheduled run: COMPLETED and FAILED make it DONE; ABORTED makes
    it DONE unless the user canceled it; CRASHED re-opens it while attempts remain. A state
    report also renews the lease. Commits.
    """
    now = settings.clock()
    current = DockerRunState(run.state)
    if state not in END_STATES and STATE_ORDER[state] < STATE_ORDER[current]:
        raise conflict(
            f"run {run.id!r} cannot go back from {current} to {state}; states move forward in "
            f"this order: {', '.join(STATE_ORDER)}, then an end state "
            f"({', '.join(sorted(_END))})"
        )
    ending = state in END_STATES
    values: dict[str, Any] = {
        "state": state.value,
        "message": message,
        "last_modified_at": now,
        "lease_expires_at": None if ending else now + _lease_ms(settings),
    }
    if ending:
        values["ended_at"] = now
    changed = _rowcount(
        session,
        update(Run)
        .where(Run.id == run.id, Run.state == current.value, Run.lease_expires_at >= now)
        .values(**values)
        .execution_options(synchronize_session=False),
    )
    if changed != 1:
        raise _lost_race(
            session, run.id, settings, f"run {run.id!r} changed meanwhile; report it again"
        )
    if ending:
        _release(session, run.scheduled_run_id, state, now)
    session.commit()
    session.refresh(run)
    logger.info("run %s -> %s", run.id, state.value)
    return run


def _release(session: Session, scheduled_id: str, state: DockerRunState, now: int) -> None:
    """Settle the LOCKED scheduled run of a run that ended in ``state``."""
    if state == DockerRunState.CRASHED:
        new_state: Any = case((ScheduledRun.attempts < ScheduledRun.max_attempts, OPEN), else_=DONE)
    else:
        new_state = DONE
    session.execute(
        update(ScheduledRun)
        .where(ScheduledRun.id == scheduled_id, ScheduledRun.state == LOCKED)
        .values(state=new_state, worker_id=None, last_modified_at=now)
        .execution_options(synchronize_session=False)
    )


def crash_expired(session: Session, now: int, only_run_id: str | None = None) -> list[str]:
    """Mark runs whose lease ran out before ``now`` CRASHED and re-open their scheduled runs
    (or close them as DONE after ``max_attempts`` claims). Commits; returns the run ids."""
    query = select(Run.id, Run.scheduled_run_id, Run.worker_id).where(
        Run.state.not_in(_END), Run.lease_expires_at < now
    )
    if only_run_id is not None:
        query = query.where(Run.id == only_run_id)
    crashed: list[str] = []
    for run_id, scheduled_id, worker_id in session.execute(query).all():
        changed = _rowcount(
            session,
            update(Run)
            .where(Run.id == run_id, Run.state.not_in(_END), Run.lease_expires_at < now)
            .values(
                state=DockerRunState.CRASHED.value,
                message=f"worker {worker_id} stopped renewing its lease; the run was "
                "marked CRASHED by the server",
                ended_at=now,
                lease_expires_at=None,
                last_modified_at=now,
            )
            .execution_options(synchronize_session=False),
        )
        if changed == 1:
            _release(session, scheduled_id, DockerRunState.CRASHED, now)
            crashed.append(run_id)
            logger.warning(
                "run %s CRASHED: lease of worker %s expired; scheduled run %s released",
                run_id,
                worker_id,
                scheduled_id,
            )
    session.commit()
    return crashed


def sweep_expired_leases(sessions: sessionmaker[Session], now: int) -> list[str]:
    """One pass of the sweeper at time ``now`` (ms): crash expired runs, release their jobs.

    The app runs this every ``sweep_interval_seconds``; tests call it with an injected time.
    """
    with sessions() as session:
        return crash_expired(session, now)


def cancel_scheduled(session: Session, scheduled: ScheduledRun, now: int) -> ScheduledRun:
    """Cancel a scheduled run: an OPEN one is withdrawn, a LOCKED one's run is asked to abort
    (its worker sees ``abort_requested`` on the next heartbeat). Commits."""
    if scheduled.state not in (OPEN, LOCKED):
        raise conflict(f"scheduled run {scheduled.id!r} is {scheduled.state}; nothing to cancel")
    previous = scheduled.state
    changed = _rowcount(
        session,
        update(ScheduledRun)
        .where(ScheduledRun.id == scheduled.id, ScheduledRun.state == previous)
        .values(state=CANCELED, last_modified_at=now)
        .execution_options(synchronize_session=False),
    )
    if changed != 1:
        session.rollback()
        raise conflict(f"scheduled run {scheduled.id!r} changed meanwhile; try again")
    if previous == LOCKED:
        session.execute(
            update(Run)
            .where(Run.scheduled_run_id == scheduled.id, Run.state.not_in(_END))
            .values(abort_requested=True, last_modified_at=now)
            .execution_options(synchronize_session=False)
        )
    session.commit()
    session.refresh(scheduled)
    return scheduled


def require_worker(session: Session, user_id: str, worker_id: str) -> Worker:
    """The worker ``worker_id`` of ``user_id`` or 404."""
    worker = session.get(Worker, worker_id)
    if worker is None or worker.user_id != user_id:
        raise not_found("worker", worker_id)
    return worker


__all__ = [
    "ApiError",
    "Renewal",
    "cancel_scheduled",
    "change_state",
    "claim_next",
    "crash_expired",
    "heartbeat",
    "held_run",
    "require_worker",
    "sweep_expired_leases",
]
