"""The web app inside ``selfsup serve``: the logged-in user's datasets, jobs and runs.

A row of the runs list is a scheduled run (a job), followed across its attempts: its state is
the latest attempt's (``OPEN`` before a worker claims it), so a page keeps following a job
that crashed and was retried. Run ids from the API (``DockerRunData.id``) open the same pages.

A completed run's outputs live in the LIGHTLY datasource under ``runs/<run_id>/`` (the
worker's layout). A LOCAL one is read in place, inside the owner's allowed roots (checked
again at each use, and for every image file's real path: ``selfsup.server.roots``);
a cloud one (S3, GCS, Azure) is copied once into ``<data dir>/web/outputs/<run_id>`` (without
checkpoints, which are artifacts). Images for thumbnails are read from the INPUT datasource.

The backend finds a run's files; the web app's :class:`~selfsup.apphelpers.web_backend.RunOpener`
(given by ``selfsup.cli``, which puts server and web app together) opens them, so that nothing
here imports the web app.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, Literal

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from selfsup.apphelpers.http_errors import ApiError
from selfsup.apphelpers.paths import inside, resolve_local_path
from selfsup.apphelpers.web_backend import (
    FINAL_STATES,
    SESSION_MAX_AGE_S,
    DatasetSummary,
    Download,
    ImageSource,
    InvalidToken,
    LocalImages,
    OutputsUnavailable,
    RemoteImages,
    RunOpener,
    RunSummary,
    Viewer,
    ViewT,
    WebNotFound,
    check_tag,
    order_downloads,
    read_log_chunk,
)
from selfsup.runfolder import RunFolder
from selfsup.server.auth import authenticate
from selfsup.server.models import (
    ApiToken,
    Artifact,
    Dataset,
    Datasource,
    Run,
    SampleTag,
    ScheduledRun,
    User,
    WebSession,
)
from selfsup.server.roots import allowed_roots
from selfsup.server.settings import ServerSettings
from selfsup.utils.names import name_from_bytes, name_to_bytes

logger = logging.getLogger(__name__)

RUNS_FOLDER = "runs"  # as selfsup.worker.loop.RUNS_FOLDER (the worker imports torch; we must not)
_OUTPUT_PURPOSES = ("LIGHTLY", "INPUT_OUTPUT")
_INPUT_PURPOSES = ("INPUT", "INPUT_OUTPUT")


class ServerBackend(Generic[ViewT]):
    """Datasets and runs of the server's database, per logged-in user.

    Args:
        sessions: the app's SQLAlchemy session factory.
        settings: the server's settings (data folder, local roots, clock).
        opener: opens a completed run's output folder for the pages (the web app's
            :class:`selfsup.web.backend.RunViewOpener`); :meth:`view` returns what it opens.
        session_max_age_s: lifetime of a browser session (as the signer's).
    """

    mode: Literal["server", "folder"] = "server"

    def __init__(
        self,
        sessions: Callable[[], Session],
        settings: ServerSettings,
        opener: RunOpener[ViewT],
        session_max_age_s: int = SESSION_MAX_AGE_S,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._opener = opener
        self._session_max_age_s = session_max_age_s
        # A completed run's view, with the LOCAL datasource paths to re-check on every use.
        self._views: dict[str, tuple[ViewT, list[str]]] = {}
        self._lock = threading.Lock()
        self._copy_locks: dict[str, threading.Lock] = {}

    # --- users

    def login(self, token: str) -> Viewer:
        """Check ``token`` and open a server-side session for it (see :meth:`logout`)."""
        with self._sessions() as session:
            try:
                principal = authenticate(session, token.strip(), self._settings.clock())
            except ApiError as exc:
                raise InvalidToken(exc.message) from None
            if "user" not in principal.scopes:
                raise InvalidToken(
                    "this token is a worker token; log in with a token of scope 'user' or 'all' "
                    "(selfsup token create --user NAME)"
                )
            user = session.get(User, principal.user_id)
            name = user.name if user is not None else principal.user_id
            now = self._settings.clock()
            # Sessions past their end are of no use; forget them as new ones come.
            session.execute(delete(WebSession).where(WebSession.expires_at < now))
            web_session = WebSession(
                id=secrets.token_urlsafe(32),
                token_id=principal.token_id,
                created_at=now,
                expires_at=now + self._session_max_age_s * 1000,
            )
            session.add(web_session)
            session.commit()
            return Viewer(user_id=principal.user_id, name=name, session_id=web_session.id)

    def viewer(self, session_id: str) -> Viewer | None:
        """The viewer of an open session whose token is still valid, else None."""
        with self._sessions() as session:
            web_session = session.get(WebSession, session_id)
            if (
                web_session is None
                or web_session.revoked_at is not None
                or web_session.expires_at < self._settings.clock()
            ):
                return None
            row = session.get(ApiToken, web_session.token_id)
            if row is None or row.revoked_at is not None or "user" not in row.scopes.split(","):
                return None
            return Viewer(user_id=row.user_id, name=row.user.name, session_id=web_session.id)

    def logout(self, session_id: str) -> None:
        """End the session on the server: its cookie, replayed, is refused from now on."""
        with self._sessions() as session:
            web_session = session.get(WebSession, session_id)
            if web_session is not None and web_session.revoked_at is None:
                web_session.revoked_at = self._settings.clock()
                session.commit()

    # --- datasets and runs

    def datasets(self, viewer: Viewer) -> list[DatasetSummary]:
        with self._sessions() as session:
            rows = session.scalars(
                select(Dataset).where(Dataset.user_id == viewer.user_id).order_by(Dataset.name)
            )
            return [DatasetSummary(id=d.id, name=d.name, created_at=d.created_at) for d in rows]

    @staticmethod
    def _latest_run(session: Session, scheduled: ScheduledRun) -> Run | None:
        return session.scalars(
            select(Run)
            .where(Run.scheduled_run_id == scheduled.id)
            .order_by(Run.attempt.desc(), Run.created_at.desc())
        ).first()

    @staticmethod
    def _summary(scheduled: ScheduledRun, dataset_name: str, run: Run | None) -> RunSummary:
        # The attempt goes into the message, which pages update live (the name is not).
        attempts = (
            f"attempt {run.attempt} of {scheduled.max_attempts}"
            if run is not None and (run.attempt > 1 or run.state == "CRASHED")
            else ""
        )
        if run is None:
            state = scheduled.state
            message = "waiting for a worker" if state == "OPEN" else state.lower()
            final = state in FINAL_STATES
        else:
            state = run.state
            message = "; ".join(m for m in (run.message, attempts) if m)
            # A crashed attempt whose job was re-opened is not the end of the job.
            final = state in FINAL_STATES and scheduled.state in ("DONE", "CANCELED")
            if state == "CRASHED" and scheduled.state == "OPEN":
                message = f"{attempts} crashed; waiting for a retry"
        return RunSummary(
            id=scheduled.id,
            dataset_id=scheduled.dataset_id,
            dataset_name=dataset_name,
            name=f"{dataset_name} · {scheduled.id[-6:]}",
            state=state,
            message=message,
            created_at=scheduled.created_at,
            ended_at=run.ended_at if run is not None else None,
            is_final=final,
            has_outputs=run is not None and run.state == "COMPLETED",
        )

    def runs(self, viewer: Viewer, dataset_id: str | None = None) -> list[RunSummary]:
        with self._sessions() as session:
            names = {
                d.id: d.name
                for d in session.scalars(select(Dataset).where(Dataset.user_id == viewer.user_id))
            }
            query = select(ScheduledRun).where(ScheduledRun.user_id == viewer.user_id)
            if dataset_id is not None:
                query = query.where(ScheduledRun.dataset_id == dataset_id)
            jobs = list(session.scalars(query.order_by(ScheduledRun.seq.desc())))
            latest: dict[str, Run] = {}
            if jobs:
                for run in session.scalars(
                    select(Run)
                    .where(Run.scheduled_run_id.in_([j.id for j in jobs]))
                    .order_by(Run.attempt, Run.created_at)
                ):
                    latest[run.scheduled_run_id] = run  # ascending: the last one wins
            return [
                self._summary(j, names.get(j.dataset_id, j.dataset_id), latest.get(j.id))
                for j in jobs
            ]

    def _scheduled(self, session: Session, viewer: Viewer, run_id: str) -> ScheduledRun:
        """The job of ``run_id``: a scheduled run id, or the id of one of its runs."""
        scheduled = session.scalars(
            select(ScheduledRun).where(ScheduledRun.id == run_id)
        ).one_or_none()
        if scheduled is None:
            run = session.get(Run, run_id)
            if run is not None:
                scheduled = session.scalars(
                    select(ScheduledRun).where(ScheduledRun.id == run.scheduled_run_id)
                ).one_or_none()
        if scheduled is None or scheduled.user_id != viewer.user_id:
            raise WebNotFound(f"no run {run_id!r}")
        return scheduled

    def _dataset_name(self, session: Session, dataset_id: str) -> str:
        dataset = session.get(Dataset, dataset_id)
        return dataset.name if dataset is not None else dataset_id

    def run(self, viewer: Viewer, run_id: str) -> RunSummary:
        with self._sessions() as session:
            scheduled = self._scheduled(session, viewer, run_id)
            return self._summary(
                scheduled,
                self._dataset_name(session, scheduled.dataset_id),
                self._latest_run(session, scheduled),
            )

    def log(self, viewer: Viewer, run_id: str, offset: int) -> tuple[str, int]:
        with self._sessions() as session:
            scheduled = self._scheduled(session, viewer, run_id)
            run = self._latest_run(session, scheduled)
            if run is None:
                return "", 0
            log = session.scalars(
                select(Artifact).where(Artifact.run_id == run.id, Artifact.type == "LOG")
            ).first()
            path = self._data_file(log.storage_path) if log is not None else None
        return read_log_chunk(path, offset)

    def _data_file(self, storage_path: str) -> Path | None:
        path = Path(self._settings.data_dir) / storage_path
        return path if inside(path, Path(self._settings.data_dir)) else None

    # --- outputs

    def view(self, viewer: Viewer, run_id: str) -> ViewT:
        with self._sessions() as session:
            scheduled = self._scheduled(session, viewer, run_id)
            run = self._latest_run(session, scheduled)
            if run is None or run.state != "COMPLETED":
                state = run.state if run is not None else scheduled.state
                raise OutputsUnavailable(
                    f"the run is {state}: its report, images and map appear when it completes"
                )
            # Every thumbnail asks for the view: a completed run's summary is final, so a
            # cached view needs only its LOCAL folders re-checked against the owner's roots
            # as they are now (a root taken away closes the run's pages); a cached cloud
            # run needs no database query at all.
            with self._lock:
                cached = self._views.get(run.id)
            if cached is not None:
                if cached[1]:
                    roots = allowed_roots(session, scheduled.user_id, self._settings.local_roots)
                    for full_path in cached[1]:
                        self._local(full_path, roots)
                return cached[0]
            roots = allowed_roots(session, scheduled.user_id, self._settings.local_roots)
            summary = self._summary(
                scheduled, self._dataset_name(session, scheduled.dataset_id), run
            )
            sources = list(
                session.scalars(
                    select(Datasource).where(Datasource.dataset_id == scheduled.dataset_id)
                )
            )
            output_ds = _pick(sources, _OUTPUT_PURPOSES)
            input_ds = _pick(sources, _INPUT_PURPOSES)
            if output_ds is None or input_ds is None:
                raise OutputsUnavailable(
                    "the dataset has no LIGHTLY (output) or INPUT datasource any more"
                )
            output_access = _access(output_ds)
            input_access = _access(input_ds)
        web_dir = Path(self._settings.data_dir) / "web"
        folder = self._output_folder(output_access, run.id, web_dir, roots)
        view = self._opener.open(
            summary,
            folder,
            web_dir / "cache" / run.id,
            web_dir / "thumbnails" / run.id,
            self._images(input_access, roots, scheduled.user_id),
        )
        local = [a.full_path for a in (output_access, input_access) if a.type.value == "LOCAL"]
        with self._lock:
            return self._views.setdefault(run.id, (view, local))[0]

    def _owner_roots(self, user_id: str) -> tuple[Path, ...]:
        """The allowed roots of ``user_id`` now (own, then shared)."""
        with self._sessions() as session:
            return allowed_roots(session, user_id, self._settings.local_roots)

    @staticmethod
    def _local(full_path: str, roots: Sequence[Path]) -> Path:
        try:
            return resolve_local_path(full_path, roots)
        except ApiError as exc:
            logger.warning("web app refused a LOCAL folder: %s", exc.message)
            raise OutputsUnavailable(exc.message) from None

    def _output_folder(
        self, access: Any, run_id: str, web_dir: Path, roots: Sequence[Path]
    ) -> Path:
        if access.type.value == "LOCAL":
            root = self._local(access.full_path, roots)
            folder = root / RUNS_FOLDER / run_id
            if not inside(folder, root) or not folder.is_dir():
                raise OutputsUnavailable(f"the outputs of run {run_id} are gone from {root}")
            return folder
        target = web_dir / "outputs" / run_id
        with self._lock:
            lock = self._copy_locks.setdefault(run_id, threading.Lock())
        with lock:
            if RunFolder(target).report_json.is_file():
                return target
            self._copy_outputs(access, run_id, target)
        return target

    @staticmethod
    def _copy_outputs(access: Any, run_id: str, target: Path) -> None:
        """Copy the run's output folder from a cloud datasource, atomically (a temporary
        folder renamed into place), leaving out checkpoints."""
        from selfsup.worker.storage import open_datasource

        fs, root = open_datasource(access)
        remote = f"{root}/{RUNS_FOLDER}/{run_id}"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}-", dir=target.parent))
        try:
            for path in fs.find(remote):
                relative = str(path)[len(remote) :].lstrip("/")
                parts = relative.split("/")
                if not relative or ".." in parts or relative.endswith(".ckpt"):
                    continue
                dest = tmp.joinpath(*parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(path, str(dest))
            if not RunFolder(tmp).report_json.is_file():
                raise OutputsUnavailable(f"no report.json under {access.full_path}/{remote}")
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _images(self, access: Any, roots: Sequence[Path], owner_id: str) -> ImageSource:
        if access.type.value == "LOCAL":
            # Every file's real path is checked against the owner's roots at each read, so
            # a link to a file outside them is never served as a thumbnail or preview.
            return LocalImages(
                self._local(access.full_path, roots),
                allowed_roots=lambda: self._owner_roots(owner_id),
            )
        from selfsup.worker.storage import open_datasource

        fs, root = open_datasource(access)
        return RemoteImages(fs, root)

    def downloads(self, viewer: Viewer, run_id: str) -> list[Download]:
        with self._sessions() as session:
            scheduled = self._scheduled(session, viewer, run_id)
            run = self._latest_run(session, scheduled)
            artifacts = (
                [
                    Download(
                        label=a.file_name,
                        url=f"/runs/{scheduled.id}/artifacts/{a.id}",
                        size=a.size,
                        kind="report" if a.type.startswith("REPORT") else a.type.lower(),
                    )
                    for a in run.artifacts
                ]
                if run is not None
                else []
            )
        files: list[Download] = []
        if run is not None and run.state == "COMPLETED":
            try:
                view = self.view(viewer, run_id)
            except OutputsUnavailable as exc:
                logger.warning("run %s: output files not listed: %s", run_id, exc)
            else:
                files = [
                    Download(
                        label=f"output/{f.path}",
                        url=f"/runs/{scheduled.id}/files/{f.path}",
                        size=f.size,
                        kind=f.kind,
                    )
                    for f in self._opener.files(view)
                ]
        return order_downloads(artifacts) + files

    def artifact_path(self, viewer: Viewer, run_id: str, artifact_id: str) -> tuple[Path, str]:
        with self._sessions() as session:
            scheduled = self._scheduled(session, viewer, run_id)
            artifact = session.get(Artifact, artifact_id)
            run = session.get(Run, artifact.run_id) if artifact is not None else None
            if artifact is None or run is None or run.scheduled_run_id != scheduled.id:
                raise WebNotFound(f"no artifact {artifact_id!r} in run {run_id!r}")
            path = self._data_file(artifact.storage_path)
            name = Path(artifact.file_name).name
        if path is None or not path.is_file():
            raise WebNotFound(f"the file of artifact {artifact_id!r} is gone from the server")
        return path, name

    # --- tags of the job's samples (table sample_tags)

    def list_tags(self, viewer: Viewer, run_id: str) -> dict[str, int]:
        with self._sessions() as session:
            scheduled = self._scheduled(session, viewer, run_id)
            rows = session.execute(
                select(SampleTag.tag, func.count())
                .where(SampleTag.scheduled_run_id == scheduled.id)
                .group_by(SampleTag.tag)
                .order_by(SampleTag.tag)
            ).all()
            return {str(tag): int(count) for tag, count in rows}

    def names_with_tag(self, viewer: Viewer, run_id: str, tag: str) -> list[str]:
        check_tag(tag)
        with self._sessions() as session:
            scheduled = self._scheduled(session, viewer, run_id)
            names = session.scalars(
                select(SampleTag.name).where(
                    SampleTag.scheduled_run_id == scheduled.id, SampleTag.tag == tag
                )
            )
            return sorted(name_from_bytes(n) for n in names)

    def tag(self, viewer: Viewer, run_id: str, names: Sequence[str], tag: str) -> int:
        check_tag(tag)
        with self._sessions() as session:
            scheduled = self._scheduled(session, viewer, run_id)
            wanted = {_name_digest(n): n for n in names}
            have = set(self._tagged_digests(session, scheduled.id, tag, list(wanted)))
            now = self._settings.clock()
            new = [
                SampleTag(
                    scheduled_run_id=scheduled.id,
                    tag=tag,
                    name=name_to_bytes(name),
                    name_digest=digest,
                    created_at=now,
                )
                for digest, name in wanted.items()
                if digest not in have
            ]
            session.add_all(new)
            session.commit()
            return len(new)

    def untag(self, viewer: Viewer, run_id: str, names: Sequence[str], tag: str) -> int:
        check_tag(tag)
        with self._sessions() as session:
            scheduled = self._scheduled(session, viewer, run_id)
            digests = sorted({_name_digest(n) for n in names})
            removed = 0
            for start in range(0, len(digests), _IN_CHUNK):
                result = session.execute(
                    delete(SampleTag).where(
                        SampleTag.scheduled_run_id == scheduled.id,
                        SampleTag.tag == tag,
                        SampleTag.name_digest.in_(digests[start : start + _IN_CHUNK]),
                    )
                )
                removed += int(getattr(result, "rowcount", 0) or 0)
            session.commit()
            return removed

    @staticmethod
    def _tagged_digests(
        session: Session, scheduled_id: str, tag: str, digests: list[str]
    ) -> list[str]:
        found: list[str] = []
        for start in range(0, len(digests), _IN_CHUNK):
            found.extend(
                session.scalars(
                    select(SampleTag.name_digest).where(
                        SampleTag.scheduled_run_id == scheduled_id,
                        SampleTag.tag == tag,
                        SampleTag.name_digest.in_(digests[start : start + _IN_CHUNK]),
                    )
                )
            )
        return found


_IN_CHUNK = 500
"""Most values in one SQL ``IN (...)``: SQLite's default limit on bound parameters is 999."""


def _name_digest(name: str) -> str:
    """SHA-256 hex of a sample name's exact bytes (names may hold undecodable bytes)."""
    return hashlib.sha256(name_to_bytes(name)).hexdigest()


def _pick(sources: list[Datasource], purposes: tuple[str, ...]) -> Datasource | None:
    for purpose in purposes:
        for ds in sources:
            if ds.purpose == purpose:
                return ds
    return None


def _access(row: Datasource) -> Any:
    from selfsup.server.views import datasource_access

    return datasource_access(row)
