"""The web app's backend interface: what its pages show, and what a backend hands over.

The web app (:mod:`selfsup.web`) talks to one backend: the server's database
(:class:`selfsup.server.web_backend.ServerBackend`, in ``selfsup serve``) or local run
folders (:class:`selfsup.web.folder_backend.FolderBackend`, in ``selfsup view``). The records
and conditions both speak live here, below the server and the web app, so that neither has
to import the other; ``selfsup.cli`` puts them together.

A backend that finds a run's files but does not open them itself (the server, which must
not import the web app's readers) describes them with :class:`LocalImages` or
:class:`RemoteImages` and a :class:`RunOpener` (the web app's) opens them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

SESSION_MAX_AGE_S = 7 * 24 * 3600
"""How long a browser session of the web app lasts (its cookie and the backend's record)."""

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


@dataclass(frozen=True)
class LocalImages:
    """A run's images in a local folder.

    Attributes:
        root: the folder (already checked against the owner's allowed roots).
        allowed_roots: the owner's allowed roots as they are at each read, so that a file
            linking outside them is never served; None where any file under ``root`` may be.
    """

    root: Path
    allowed_roots: Callable[[], Sequence[Path]] | None = None


@dataclass(frozen=True)
class RemoteImages:
    """A run's images in an fsspec file system: ``fs`` and the ``root`` path inside it
    without protocol (``"bucket/prefix"``)."""

    fs: Any
    root: str


ImageSource = LocalImages | RemoteImages


class OutputFileInfo(Protocol):
    """A file of a run's output folder: relative POSIX ``path``, ``size`` and ``kind``."""

    @property
    def path(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def kind(self) -> str: ...


ViewT = TypeVar("ViewT")


class RunOpener(Protocol[ViewT]):
    """Opens a run's output folder for the pages (the web app's reader, thumbnails, index)."""

    def open(
        self,
        summary: RunSummary,
        output_dir: Path,
        cache_dir: Path,
        thumbnails_dir: Path,
        images: ImageSource,
    ) -> ViewT:
        """The opened run; raises :class:`OutputsUnavailable` when the folder holds no
        readable outputs (the message says why)."""
        ...

    def files(self, view: ViewT) -> Sequence[OutputFileInfo]:
        """The files of the opened run's output folder, as offered for download."""
        ...


# --------------------------------------------------------------------------- tags

TAG_MAX_CHARS = 64
"""Longest tag name."""
_TAG_CHARS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
TAG_RULE = (
    f"1 to {TAG_MAX_CHARS} ASCII letters, digits, '_', '-' or '.', starting with a letter or digit"
)


class InvalidTag(ValueError):  # noqa: N818  -- reads as a condition, like the others here
    """A tag name breaks :data:`TAG_RULE`; the message names it and says what is accepted."""


def check_tag(tag: str) -> str:
    """``tag`` when it is a valid tag name (see :data:`TAG_RULE`).

    Tags become file names of exports and keys of ``tags.json``, and are typed in a URL:
    a small safe charset keeps every one of those unambiguous.

    Raises:
        InvalidTag: the name is empty, too long or uses other characters.
    """
    if not isinstance(tag, str) or len(tag) > TAG_MAX_CHARS or not _TAG_CHARS.fullmatch(tag):
        shown = tag[: TAG_MAX_CHARS + 8] if isinstance(tag, str) else type(tag).__name__
        raise InvalidTag(f"tag {shown!r} is not a valid tag name: use {TAG_RULE}")
    return tag


class TagStore(Protocol):
    """Tags of a run's samples, kept with the run (what both backends offer the pages).

    A tag is a name (:func:`check_tag`) given to samples, keyed by their sample name (the
    manifest's ``filename``), so that tags outlive a rerun that renumbers the samples and can
    be handed to the next run as a file list. Every method checks the viewer's access to the
    run as the run's other calls do (:class:`WebNotFound` otherwise).
    """

    def list_tags(self, viewer: Viewer, run_id: str) -> dict[str, int]:
        """Every tag of the run and how many samples carry it, by tag name."""
        ...

    def tag(self, viewer: Viewer, run_id: str, names: Sequence[str], tag: str) -> int:
        """Give ``tag`` to the samples ``names``; the number newly tagged. Raises
        :class:`InvalidTag` for a bad name."""
        ...

    def untag(self, viewer: Viewer, run_id: str, names: Sequence[str], tag: str) -> int:
        """Take ``tag`` from the samples ``names``; the number untagged (a tag left on no
        sample is gone)."""
        ...

    def names_with_tag(self, viewer: Viewer, run_id: str, tag: str) -> list[str]:
        """The sample names carrying ``tag``, sorted; empty for an unknown tag."""
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
