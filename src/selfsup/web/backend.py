"""What the web pages need from where runs live: the server's database or local folders.

Routes talk to one :class:`Backend`; ``selfsup serve`` uses
:class:`selfsup.server.web_backend.ServerBackend` (datasets, scheduled runs and runs of the
logged-in user, outputs read from the LIGHTLY datasource), which opens runs with
:class:`RunViewOpener`, and ``selfsup view`` uses
:class:`selfsup.web.folder_backend.FolderBackend` (output folders of local runs, one token
printed at start). Both hand out :class:`RunView` objects bundling a run's outputs with where
its images are read from and its thumbnail cache. The records they share with the server
are :mod:`selfsup.apphelpers.web_backend`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from selfsup.apphelpers.web_backend import (
    DatasetSummary,
    Download,
    ImageSource,
    LocalImages,
    OutputsUnavailable,
    RunSummary,
    TagStore,
    Viewer,
)

if TYPE_CHECKING:
    from selfsup.web.outputs import OutputFile, RunOutputs
    from selfsup.web.sources import SourceReader
    from selfsup.web.thumbnails import ThumbnailCache


@dataclass
class RunView:
    """An openable run: its outputs, where its images come from, its thumbnail cache."""

    summary: RunSummary
    outputs: RunOutputs
    reader: SourceReader
    thumbnails: ThumbnailCache


class Backend(TagStore, Protocol):
    """Where the web app finds users, runs and their files, and keeps the tags of a run's
    samples (:class:`~selfsup.apphelpers.web_backend.TagStore`)."""

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


class RunViewOpener:
    """Opens a run's output folder as a :class:`RunView`: the
    :class:`~selfsup.apphelpers.web_backend.RunOpener` the server's backend is given."""

    def open(
        self,
        summary: RunSummary,
        output_dir: Path,
        cache_dir: Path,
        thumbnails_dir: Path,
        images: ImageSource,
    ) -> RunView:
        """The outputs of ``output_dir`` (index cached in ``cache_dir``), a reader of
        ``images`` and a thumbnail cache in ``thumbnails_dir``."""
        from selfsup.web.outputs import OutputsError, RunOutputs
        from selfsup.web.sources import FsspecSourceReader, LocalSourceReader
        from selfsup.web.thumbnails import ThumbnailCache

        try:
            outputs = RunOutputs.open(output_dir, cache_dir)
        except OutputsError as exc:
            raise OutputsUnavailable(str(exc)) from exc
        reader: SourceReader
        if isinstance(images, LocalImages):
            reader = LocalSourceReader(images.root, allowed_roots=images.allowed_roots)
        else:
            reader = FsspecSourceReader(images.fs, images.root)
        return RunView(
            summary=summary,
            outputs=outputs,
            reader=reader,
            thumbnails=ThumbnailCache(thumbnails_dir),
        )

    def files(self, view: RunView) -> Sequence[OutputFile]:
        """The files of the run's output folder (:meth:`RunOutputs.files`)."""
        return view.outputs.files()
