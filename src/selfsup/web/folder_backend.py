"""``selfsup view``: the web app over output folders of local ``selfsup run`` calls.

No database: the runs are the folders given on the command line (a folder holding several
run folders is expanded one level deep), the single user is whoever knows the token printed
at start. A folder whose ``report.json`` is missing is shown as a run still going (report.json
is written last) and picked up as soon as it appears.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from selfsup.apphelpers.web_backend import (
    DatasetSummary,
    Download,
    InvalidToken,
    OutputsUnavailable,
    RunSummary,
    Viewer,
    WebNotFound,
    order_downloads,
)
from selfsup.errors import DataError
from selfsup.runfolder import RunFolder
from selfsup.utils.report_units import epoch_ms
from selfsup.web.backend import RunView
from selfsup.web.tags import FolderTags

logger = logging.getLogger(__name__)

LOCAL_DATASET_ID = "local"
LOCAL_SESSION_ID = "local"
_SLUG = re.compile(r"[^A-Za-z0-9_-]+")


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` looks like the output folder of ``selfsup run``."""
    run = RunFolder(folder)
    return run.report_json.is_file() or run.manifest.is_file()


def find_run_folders(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The run folders among ``paths``: each path itself, or its run subfolders.

    Raises:
        FileNotFoundError: a path does not exist, or holds no run folder (the message names
            it and says what a run folder contains).
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if not path.is_dir():
            raise FileNotFoundError(f"{raw}: no such folder (give the output_dir of selfsup run)")
        if is_run_folder(path):
            found.append(path)
            continue
        children = sorted(p for p in path.iterdir() if p.is_dir() and is_run_folder(p))
        if not children:
            raise FileNotFoundError(
                f"{raw}: not a run output folder (no report.json or data/manifest.jsonl) and "
                "no subfolder is one; give the output_dir of selfsup run"
            )
        found.extend(children)
    if not found:
        raise FileNotFoundError("no run folder given")
    return found


def _slugs(folders: Sequence[Path]) -> list[str]:
    slugs: list[str] = []
    for folder in folders:
        base = _SLUG.sub("-", folder.name).strip("-")[:60] or "run"
        slug, n = base, 2
        while slug in slugs:
            slug, n = f"{base}-{n}", n + 1
        slugs.append(slug)
    return slugs


class FolderBackend:
    """Runs read from local output folders, behind one token.

    Args:
        folders: run output folders (see :func:`find_run_folders`).
        token: the login token; a random one when None (read it from :attr:`token`).
        cache_dir: where thumbnails and derived caches go; by default each run's own
            ``.selfsup/web`` folder (never served), else ``$SELFSUP_HOME/view-cache``.
        input_dir: where the runs' images are, when they moved since the run (by default the
            ``input_dir`` recorded in each run's report.json).
    """

    mode: Literal["server", "folder"] = "folder"

    def __init__(
        self,
        folders: Sequence[Path],
        token: str | None = None,
        cache_dir: Path | None = None,
        input_dir: Path | None = None,
    ) -> None:
        if not folders:
            raise ValueError("FolderBackend needs at least one run folder")
        self.token = token or secrets.token_urlsafe(24)
        self._token_digest = hashlib.sha256(self.token.encode()).digest()
        self._folders = dict(zip(_slugs(folders), folders, strict=True))
        self._cache_dir = cache_dir
        self._input_dir = input_dir
        self._views: dict[str, tuple[float, RunView]] = {}
        self._outcomes: dict[Path, tuple[int | None, tuple[str, int | None, int | None]]] = {}
        self._lock = threading.Lock()
        # Sessions opened by logging in; they live as long as the process (like its key).
        self._session_ids: set[str] = set()
        self._user = getpass.getuser() if hasattr(os, "getuid") else "local"
        self._tags = FolderTags()

    # --- users

    def login(self, token: str) -> Viewer:
        digest = hashlib.sha256(token.strip().encode()).digest()
        if not hmac.compare_digest(digest, self._token_digest):
            raise InvalidToken(
                "wrong token: use the one selfsup view printed when it started "
                "(or the --token you gave it)"
            )
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            self._session_ids.add(session_id)
        return Viewer(user_id=LOCAL_SESSION_ID, name=self._user, session_id=session_id)

    def viewer(self, session_id: str) -> Viewer | None:
        with self._lock:
            if session_id not in self._session_ids:
                return None
        return Viewer(user_id=LOCAL_SESSION_ID, name=self._user, session_id=session_id)

    def logout(self, session_id: str) -> None:
        with self._lock:
            self._session_ids.discard(session_id)

    # --- runs

    def datasets(self, viewer: Viewer) -> list[DatasetSummary]:
        return [DatasetSummary(id=LOCAL_DATASET_ID, name="Local runs", created_at=None)]

    def _folder(self, run_id: str) -> Path:
        folder = self._folders.get(run_id)
        if folder is None:
            raise WebNotFound(f"no run {run_id!r}")
        return folder

    def _summary(self, run_id: str, folder: Path) -> RunSummary:
        run = RunFolder(folder)
        report = run.report_json
        done = report.is_file()
        try:
            ended = int(report.stat().st_mtime * 1000) if done else None
            # The run writes its config first: a run still going started about then.
            first = run.config_yaml if run.config_yaml.is_file() else run.data_dir
            created = int(first.stat().st_mtime * 1000)
        except OSError:
            ended, created = None, None
        message = f"{folder}: report.json not written yet (the run is going or stopped early)"
        if done:
            outcome, started, finished = self._outcome(report, ended)
            message = f"{outcome} · {folder}"
            # The times the run recorded (report.json's job): the same as the log and the PDF.
            created = started if started is not None else created
            ended = finished if finished is not None else ended
        return RunSummary(
            id=run_id,
            dataset_id=LOCAL_DATASET_ID,
            dataset_name="Local runs",
            name=folder.name,
            state="COMPLETED" if done else "RUNNING",
            message=message,
            created_at=created,
            ended_at=ended,
            is_final=done,
            has_outputs=done,
        )

    def _outcome(self, report: Path, stamp: int | None) -> tuple[str, int | None, int | None]:
        """``("10 of 48 selected", started, finished)`` from report.json's counts and
        ``job.started_at`` / ``job.finished_at`` (epoch ms; ``None`` when absent or
        unreadable), cached per modification time."""
        with self._lock:
            cached = self._outcomes.get(report)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        started = finished = None
        try:
            # Lenient: reports without "format" (hand-written, tests) are listed too.
            data = RunFolder(report.parent).read_report(strict=False)
            job = data.get("job")
            if isinstance(job, dict):
                started, finished = (
                    epoch_ms(job.get("started_at")),
                    epoch_ms(job.get("finished_at")),
                )
            counts = data.get("counts", {})
            text = (
                f"{int(counts['n_selected']):,} of {int(counts['n_input_to_selection']):,} selected"
            )
        except (OSError, DataError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # A damaged report still lists the run; opening it says what is wrong. The
            # DataError's cause names the problem (JSONDecodeError) where there is one.
            cause = exc.__cause__ if isinstance(exc, DataError) and exc.__cause__ else exc
            text = f"report.json unreadable ({type(cause).__name__})"
        with self._lock:
            self._outcomes[report] = (stamp, (text, started, finished))
        return text, started, finished

    def runs(self, viewer: Viewer, dataset_id: str | None = None) -> list[RunSummary]:
        if dataset_id not in (None, LOCAL_DATASET_ID):
            return []
        return [self._summary(run_id, folder) for run_id, folder in self._folders.items()]

    def run(self, viewer: Viewer, run_id: str) -> RunSummary:
        return self._summary(run_id, self._folder(run_id))

    def log(self, viewer: Viewer, run_id: str, offset: int) -> tuple[str, int]:
        self._folder(run_id)
        # selfsup run prints its log to the terminal; the folder has none.
        return "", 0

    def _input_root(self, folder: Path, report: dict[str, Any]) -> Path:
        if self._input_dir is not None:
            return self._input_dir
        recorded = Path(str(report.get("job", {}).get("input_dir") or ""))
        if recorded.is_dir():
            return recorded
        logger.warning(
            "input folder %s of run %s is gone: thumbnails will be placeholders "
            "(pass --input-dir to selfsup view)",
            recorded,
            folder,
        )
        return recorded

    def view(self, viewer: Viewer, run_id: str) -> RunView:
        folder = self._folder(run_id)
        summary = self._summary(run_id, folder)
        if not summary.has_outputs:
            raise OutputsUnavailable(summary.message)
        from selfsup.web.outputs import OutputsError, RunOutputs
        from selfsup.web.sources import LocalSourceReader
        from selfsup.web.thumbnails import ThumbnailCache

        stamp = RunFolder(folder).report_json.stat().st_mtime
        with self._lock:
            cached = self._views.get(run_id)
            # A rerun into the same folder rewrites report.json last: reopen then.
            if cached is not None and cached[0] == stamp:
                return cached[1]
            cache = self._cache_for(folder)
            try:
                outputs = RunOutputs.open(folder, cache / "outputs")
            except OutputsError as exc:
                raise OutputsUnavailable(str(exc)) from exc
            view = RunView(
                summary=summary,
                outputs=outputs,
                reader=LocalSourceReader(self._input_root(folder, outputs.report)),
                thumbnails=ThumbnailCache(cache / "thumbnails"),
            )
            self._views[run_id] = (stamp, view)
            return view

    def _cache_for(self, folder: Path) -> Path:
        if self._cache_dir is not None:
            digest = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
            return self._cache_dir / f"{folder.name}-{digest}"
        own = folder / ".selfsup" / "web"
        try:
            own.mkdir(parents=True, exist_ok=True)
            probe = own / f".probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
            return own
        except OSError:
            from selfsup.home import selfsup_home

            digest = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
            return selfsup_home() / "view-cache" / f"{folder.name}-{digest}"

    def downloads(self, viewer: Viewer, run_id: str) -> list[Download]:
        view = self.view(viewer, run_id)
        return order_downloads(
            [
                Download(
                    label=f.path, url=f"/runs/{run_id}/files/{f.path}", size=f.size, kind=f.kind
                )
                for f in view.outputs.files()
            ]
        )

    def artifact_path(self, viewer: Viewer, run_id: str, artifact_id: str) -> tuple[Path, str]:
        self._folder(run_id)
        raise WebNotFound("local runs have no server artifacts: their files are under /files/")

    # --- tags (the run folder's tags.json, through selfsup.web.tags)

    def list_tags(self, viewer: Viewer, run_id: str) -> dict[str, int]:
        return self._tags.list_tags(self._folder(run_id))

    def tag(self, viewer: Viewer, run_id: str, names: Sequence[str], tag: str) -> int:
        return self._tags.change(self._folder(run_id), names, tag, add=True)

    def untag(self, viewer: Viewer, run_id: str, names: Sequence[str], tag: str) -> int:
        return self._tags.change(self._folder(run_id), names, tag, add=False)

    def names_with_tag(self, viewer: Viewer, run_id: str, tag: str) -> list[str]:
        return self._tags.names_with_tag(self._folder(run_id), tag)
