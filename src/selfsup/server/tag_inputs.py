"""Tags kept by ``selfsup serve`` as inputs of a scheduled run (issue 12).

A SIMILARITY strategy's query, and a source of ``selection_config.preselected`` or
``excluded``, may name the samples tagged in the web app: ``{tag: keepers, run: <id>}``,
where ``<id>`` is a run of the same user on this server (a run's id, as ``GET /v1/runs``
lists it, or a scheduled run's id, as the web app's URLs ``/runs/<id>`` show it). The tags
live in the database (``sample_tags``, keyed by the scheduled run), which the worker cannot
read, so:

* when the run is scheduled, :func:`check_tag_inputs` refuses (400 ``UNKNOWN_TAG``) a query
  whose run is not the user's or whose tag that run does not have, naming the tag and
  listing the run's tags, before anything is queued;
* when the worker fetches the job, :func:`resolve_tag_inputs` puts the tagged sample names
  as the database holds them then into the job (``DockerRunJobData.tags``); every attempt
  fetches them again, so a retried job needs nothing kept on the worker. The worker hands
  them to the pipeline as a ``tags.json`` (the format ``selfsup view`` keeps), so the run
  reads server tags by the same code as folder tags, and ``report.json`` records the set
  (``job.extra.queries`` / ``job.extra.selection_inputs``: source, names).

A ``run`` that is a path (holds ``/``, ``\\`` or starts with ``.`` or ``~``) stays a run
folder on the worker's machine, as before; a query without ``run`` would read the new run's
own, empty output folder, so a scheduled run must name one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from selfsup.apphelpers.http_errors import ApiError
from selfsup.openapi_generated.swagger_client.models import DockerRunJobTagData
from selfsup.server.models import Run, SampleTag, ScheduledRun

logger = logging.getLogger(__name__)

_WHERE = "selection_config.strategies[{i}].input.query"


def tag_queries(selection_config: Mapping[str, Any] | None) -> Iterator[tuple[str, str, str]]:
    """``(key path, tag, run)`` of every ``{tag: ..., run?: ...}`` source of the selection
    config (validated already): the strategies' queries in strategy order, then the
    ``preselected`` and ``excluded`` sources; ``run`` is ``""`` when not given."""
    config = selection_config or {}
    strategies = config.get("strategies") or []
    for i, strategy in enumerate(strategies):
        source = strategy.get("input", {}) if isinstance(strategy, Mapping) else {}
        query = source.get("query") if isinstance(source, Mapping) else None
        if isinstance(query, Mapping) and query.get("tag"):
            yield _WHERE.format(i=i), str(query["tag"]), str(query.get("run") or "")
    for key in ("preselected", "excluded"):
        for i, item in enumerate(config.get(key) or []):
            if isinstance(item, Mapping) and item.get("tag"):
                yield f"selection_config.{key}[{i}]", str(item["tag"]), str(item.get("run") or "")


def is_folder(run: str) -> bool:
    """Whether a query's ``run`` names a run folder (a path) rather than a run on the server."""
    return "/" in run or "\\" in run or run.startswith((".", "~"))


def _scheduled_of(session: Session, user_id: str, run: str) -> ScheduledRun | None:
    """The user's scheduled run with id ``run``, or the one of the user's run ``run``."""
    # Looked up by its id column (the table's key is a sequence number).
    scheduled = session.scalars(select(ScheduledRun).where(ScheduledRun.id == run)).one_or_none()
    if scheduled is None:
        attempt = session.get(Run, run)
        if attempt is not None and attempt.scheduled_run_id is not None:
            scheduled = session.scalars(
                select(ScheduledRun).where(ScheduledRun.id == attempt.scheduled_run_id)
            ).one_or_none()
    if scheduled is None or scheduled.user_id != user_id:
        return None
    return scheduled


def _tag_counts(session: Session, scheduled_id: str) -> dict[str, int]:
    rows = session.execute(
        select(SampleTag.tag, func.count())
        .where(SampleTag.scheduled_run_id == scheduled_id)
        .group_by(SampleTag.tag)
        .order_by(SampleTag.tag)
    ).all()
    return {str(tag): int(count) for tag, count in rows}


def check_tag_inputs(
    session: Session, user_id: str, selection_config: Mapping[str, Any] | None
) -> None:
    """Refuse, before the run is queued, a tag query the server cannot resolve (module
    docstring).

    Raises:
        ApiError: 400 ``UNKNOWN_TAG`` naming the key path, the tag and the run, with the
            run's tags (or what ``run`` must be).
    """
    for where, tag, run in tag_queries(selection_config):
        if is_folder(run):
            continue
        if not run:
            raise ApiError(
                400,
                "UNKNOWN_TAG",
                f"{where}: tag {tag!r} names no run; a scheduled run reads the tags of an "
                "earlier run on this server: give run: <its run id or scheduled run id> "
                "(the id in the web app's /runs/<id>)",
            )
        scheduled = _scheduled_of(session, user_id, run)
        if scheduled is None:
            raise ApiError(
                400,
                "UNKNOWN_TAG",
                f"{where}.run: {run!r} is no run of yours on this server (for tag {tag!r}); "
                "give the id of a run or scheduled run, as in the web app's /runs/<id>",
            )
        counts = _tag_counts(session, scheduled.id)
        if not counts.get(tag):
            known = ", ".join(f"{t} ({n})" for t, n in counts.items()) or "none"
            raise ApiError(
                400,
                "UNKNOWN_TAG",
                f"{where}.tag: run {run!r} has no sample tagged {tag!r}; its tags: {known}",
            )


def resolve_tag_inputs(
    session: Session, user_id: str, selection_config: Mapping[str, Any] | None
) -> list[DockerRunJobTagData]:
    """The tagged sample names of every server tag query, for the job (module docstring).

    A run or tag gone since scheduling gives an entry without names (and the run's tags in
    ``known_tags``); the worker fails the run with that message rather than this request,
    so the failure is recorded with the run.
    """
    out: list[DockerRunJobTagData] = []
    seen: set[tuple[str, str]] = set()
    for _where, tag, run in tag_queries(selection_config):
        if not run or is_folder(run) or (run, tag) in seen:
            continue
        seen.add((run, tag))
        scheduled = _scheduled_of(session, user_id, run)
        if scheduled is None:
            out.append(DockerRunJobTagData(run=run, scheduled_run_id="", tag=tag))
            continue
        raw = list(
            session.scalars(
                select(SampleTag.name).where(
                    SampleTag.scheduled_run_id == scheduled.id, SampleTag.tag == tag
                )
            )
        )
        names: list[str] = []
        for name in raw:
            try:
                names.append(bytes(name).decode("utf-8"))
            except UnicodeDecodeError:
                continue  # JSON carries text only; counted in left_out
        out.append(
            DockerRunJobTagData(
                run=run,
                scheduled_run_id=scheduled.id,
                tag=tag,
                names=sorted(names),
                left_out=len(raw) - len(names),
                known_tags=sorted(_tag_counts(session, scheduled.id)),
            )
        )
        logger.info(
            "job: %d samples tagged %r in run %s (scheduled run %s)",
            len(names),
            tag,
            run,
            scheduled.id,
        )
    return out
