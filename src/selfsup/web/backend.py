"""What the web pages need from where runs live: the server's database or local folders.

Routes talk to one :class:`Backend`; ``selfsup serve`` uses
:class:`selfsup.web.server_backend.ServerBackend` (datasets, scheduled runs and runs of the
logged-in user, outputs read from the LIGHTLY datasource) and ``selfsup view`` uses
:class:`selfsup.web.folder_backend.FolderBackend` (output folders of local runs, one token
printed at start). Both hand out :class:`RunView` objects bundling a run's outputs with where
its images are read from and its thumbnail cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from selfsup.web.outputs import RunOutputs
    from selfsup.web.sources import SourceReader
    from selfsup.web.thumbnails import ThumbnailCache

FINAL_STATES = frozenset({"COMPLETED", "FAILED", "ABORTED", "CRASHED", "CANCELED", "DONE"})


class InvalidToken(Exception):  # noqa: N818  -- reads as a condition, like the others here
    """The token entered at the login is malformed, unknown, revoked or lacks the user scope;
    the message says which."""


class WebNotFound(Exception):  # noqa: N818  -- a condition, not a failure of ours
    """No such dataset, run, artifact or sample for this viewer (another user's is the same)."""


class OutputsUnavailable(Exception):  # noqa: N818  -- a condition, not a failure of ours
    """The run exists but has no outputs to show (yet); the message says why."""


@dataclass(frozen=True)
class Viewer:
    """Who is looking: the user behind the session, and the session's id (random, recorded
    by the backend so that logging out ends it)."""

    user_id: str
    name: str
    session_id: str


@dataclass(frozen=True)
class DatasetSummary:
    """A dataset in the runs list."""

    id: str
    name: str
    created_at: int | None


@dataclass(frozen=True)
class RunSummary:
    """One run as the pages show it.

    Attributes:
        id: stable id used in URLs (server: the scheduled run's id, so a page keeps following
            the job across retries; view: the folder's slug).
        state: the latest attempt's state (``OPEN`` while no worker has claimed the job).
        message: the latest state message (error text of a failed run, selected count, ...).
        created_at, ended_at: ms since the epoch, when known.
        is_final: no further state change is expected (pages stop polling).
        has_outputs: the output folder can be opened (report, grid and map work).
    """

    id: str
    dataset_id: str
    dataset_name: str
    name: str
    state: str
    message: str
    created_at: int | None
    ended_at: int | None
    is_final: bool
    has_outputs: bool


@dataclass(frozen=True)
class Download:
    """A file offered for download on the run page."""

    label: str
    url: str
    size: int | None
    kind: str


@dataclass
class RunView:
    """An openable run: its outputs, where its images come from, its thumbnail cache."""

    summary: RunSummary
    outputs: RunOutputs
    reader: SourceReader
    thumbnails: ThumbnailCache


class Backend(Protocol):
    """Where the web app finds users, runs and their files."""

    mode: Literal["server", "folder"]

    def login(self, token: str) -> Viewer:
        """The viewer of ``token``; raises :class:`InvalidToken` saying what is wrong."""
        ...

    def viewer(self, session_id: str) -> Viewer | None:
        """The viewer of a session, or None once it was logged out, or its token is revoked
        or unknown."""
        ...

    def logout(self, session_id: str) -> None:
        """End a session for good: its cookie, replayed later, no longer logs in."""
        ...

    def datasets(self, viewer: Viewer) -> list[DatasetSummary]:
        """The viewer's datasets, by name."""
        ...

    def runs(self, viewer: Viewer, dataset_id: str | None = None) -> list[RunSummary]:
        """The viewer's runs (of one dataset), newest first."""
        ...

    def run(self, viewer: Viewer, run_id: str) -> RunSummary:
        """One run of the viewer; :class:`WebNotFound` otherwise."""
        ...

    def log(self, viewer: Viewer, run_id: str, offset: int) -> tuple[str, int]:
        """The run's log from byte ``offset`` on (at most a few hundred kB) and the offset
        to ask for next."""
        ...

    def view(self, viewer: Viewer, run_id: str) -> RunView:
        """The opened outputs of a run (cached); :class:`OutputsUnavailable` when it has none."""
        ...

    def downloads(self, viewer: Viewer, run_id: str) -> list[Download]:
        """Artifacts and output files of the run, report.pdf first."""
        ...

    def artifact_path(self, viewer: Viewer, run_id: str, artifact_id: str) -> tuple[Path, str]:
        """The stored file of an artifact of the run and its download name."""
        ...


LOG_CHUNK_BYTES = 256 * 1024


def read_log_chunk(path: Path | None, offset: int) -> tuple[str, int]:
    """Text of ``path`` from byte ``offset`` (at most :data:`LOG_CHUNK_BYTES`) and the next
    offset; a multi-byte character cut at the end of the chunk is left for the next call."""
    if path is None or offset < 0 or not path.is_file():
        return "", max(offset, 0)
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read(LOG_CHUNK_BYTES)
    # Only the last three bytes can be an incomplete UTF-8 sequence; keep them for later.
    for cut in range(len(data), max(len(data) - 4, -1), -1):
        try:
            return data[:cut].decode("utf-8"), offset + cut
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace"), offset + len(data)


def order_downloads(downloads: list[Download]) -> list[Download]:
    """report.pdf first, then the report, then the rest in their given order."""

    def rank(d: Download) -> int:
        if d.label.endswith("report.pdf"):
            return 0
        return 1 if d.kind == "report" else 2

    return sorted(downloads, key=rank)
