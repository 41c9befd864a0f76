"""Tags of a run's samples and the exports of tagged or selected samples.

Tags are names given to samples in the web app (issue 12), kept with the run so the next run
can use them: ``selfsup view`` keeps them in the run folder's ``tags.json``
(:meth:`selfsup.runfolder.RunFolder.read_tags`, through :class:`FolderTags`), ``selfsup
serve`` in its database (:class:`selfsup.server.web_backend.ServerBackend`). Both key a tag
by sample name (the manifest's ``filename``), not by index, so that a file list of a tag is
exactly what ``selection.csv``, ``relevant_filenames_file`` or a datapool read.

Exports of a set of samples (a tag, or the current selection of the grid or the map):

* :func:`export_file_list`: one sample name per line (``.txt``), the input of
  ``relevant_filenames_file`` and of a datapool;
* :func:`export_csv`: one row per sample with its status, size, the selection's numbers from
  ``data/selection.csv`` and the check's quality scores from the manifest;
* :func:`export_coco`: a COCO-style ``{"images": [{"id", "file_name", "width", "height"}]}``.
"""

from __future__ import annotations

import csv
import io
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from selfsup.apphelpers.web_backend import check_tag
from selfsup.errors import DataError
from selfsup.runfolder import RunFolder, SelectionTable
from selfsup.utils.names import NAME_ERRORS, dumps_json, name_to_bytes

if TYPE_CHECKING:  # the readers load numpy tables; the folder backend imports them lazily
    from selfsup.web.outputs import RunOutputs, Sample

ExportFormat = Literal["txt", "csv", "coco"]
"""The export formats: file list, CSV with scores, COCO-style images JSON."""
EXPORT_FORMATS: tuple[ExportFormat, ...] = get_args(ExportFormat)

EXPORT_MEDIA_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "coco": "application/json",
}
EXPORT_SUFFIXES = {"txt": ".txt", "csv": ".csv", "coco": ".coco.json"}

CSV_COLUMNS = (
    "index",
    "filename",
    "status",
    "width",
    "height",
    "file_size",
    "selected",
    "rank",
    "pick_distance",
    "score",
    "preselected",
    "brightness",
    "contrast",
    "sharpness",
    "saturation",
    "tags",
)
"""Header of :func:`export_csv`; empty cells where a run has no such number."""

_QUALITY = ("brightness", "contrast", "sharpness", "saturation")


class TagStorageError(Exception):
    """``tags.json`` cannot be read or written; the message names the file and why."""


class FolderTags:
    """Tags kept in run folders' ``tags.json`` (for ``selfsup view``).

    Thread-safe within a process: every change reads, edits and atomically rewrites the file
    under a lock of its folder, so two requests tagging at once both land.
    """

    def __init__(self) -> None:
        self._locks: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, folder: Path) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(folder, threading.Lock())

    @staticmethod
    def _read(folder: Path) -> dict[str, list[str]]:
        try:
            return RunFolder(folder).read_tags()
        except (DataError, OSError) as exc:
            raise TagStorageError(f"cannot read the tags of {folder}: {exc}") from exc

    def list_tags(self, folder: Path) -> dict[str, int]:
        """Tag -> number of samples, sorted by tag."""
        return {tag: len(names) for tag, names in sorted(self._read(folder).items())}

    def names_with_tag(self, folder: Path, tag: str) -> list[str]:
        """Sorted sample names carrying ``tag``."""
        return list(self._read(folder).get(check_tag(tag), []))

    def change(self, folder: Path, names: Sequence[str], tag: str, *, add: bool) -> int:
        """Add (or remove) ``tag`` to (from) ``names``; the number of samples changed."""
        check_tag(tag)
        with self._lock(folder):
            tags = self._read(folder)
            current = set(tags.get(tag, []))
            before = len(current)
            if add:
                current.update(names)
            else:
                current.difference_update(names)
            changed = abs(len(current) - before)
            if changed:
                tags[tag] = sorted(current)
                try:
                    RunFolder(folder).write_tags(tags)
                except OSError as exc:
                    raise TagStorageError(
                        f"cannot write {RunFolder(folder).tags_json}: {exc.strerror or exc} "
                        "(the run folder must be writable to keep tags)"
                    ) from exc
            return changed


# --------------------------------------------------------------------------- names <-> samples


def indices_of(outputs: RunOutputs, names: Iterable[str]) -> list[int]:
    """Ascending sample indices of ``names``; names that are no sample of the run (a tag
    kept from before a rerun that dropped the file) are left out."""
    known = outputs.name_index
    return sorted({known[n] for n in names if n in known})


def tags_by_name(tags: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """Sample name -> its tags (sorted), from tag -> names."""
    out: dict[str, list[str]] = {}
    for tag in sorted(tags):
        for name in tags[tag]:
            out.setdefault(name, []).append(tag)
    return out


# --------------------------------------------------------------------------- exports


def export_file_list(samples: Sequence[Sample]) -> bytes:
    """One sample name per line (exact bytes), the format of the run's filename lists."""
    return b"".join(name_to_bytes(s.filename) + b"\n" for s in samples)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.7g}"
    return str(value)


def export_csv(
    outputs: RunOutputs,
    samples: Sequence[Sample],
    tags: Mapping[str, Sequence[str]] | None = None,
) -> bytes:
    """The samples as CSV (header :data:`CSV_COLUMNS`, RFC 4180 quoting): the grid's facts,
    the selection's numbers (``data/selection.csv``: selected, rank, pick distance, score,
    preselected) and the check's quality scores (manifest), and each sample's tags
    (``;``-separated, from ``tags``: sample name -> tags).

    Raises:
        DataError: ``selection.csv`` or the manifest is malformed (the message names it).
    """
    folder = RunFolder(outputs.folder)
    table: SelectionTable | None = folder.read_selection()
    rows: dict[str, int] = {}
    if table is not None:
        rows = {name: j for j, name in enumerate(table.filenames)}
    quality: dict[str, dict[str, float | None]] = {}
    if folder.manifest.is_file():
        wanted = {s.filename for s in samples}
        for record in folder.read_manifest().records:
            if record.filename in wanted:
                quality[record.filename] = {q: getattr(record, q) for q in _QUALITY}
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in samples:
        j = rows.get(s.filename)
        picked: list[Any] = [None] * 5
        if table is not None and j is not None:
            rank = int(table.rank[j])
            picked = [
                bool(table.selected[j]),
                rank if rank > 0 else None,
                float(table.pick_distance[j]),
                float(table.score[j]),
                bool(table.preselected[j]),
            ]
        scores = quality.get(s.filename, {})
        writer.writerow(
            [
                _cell(v)
                for v in (
                    s.index,
                    s.filename,
                    s.status,
                    s.width,
                    s.height,
                    s.file_size,
                    *picked,
                    *(scores.get(q) for q in _QUALITY),
                    ";".join((tags or {}).get(s.filename, [])),
                )
            ]
        )
    return buffer.getvalue().encode("utf-8", errors=NAME_ERRORS)


def export_coco(samples: Sequence[Sample]) -> bytes:
    """``{"images": [{"id", "file_name", "width", "height"}]}``: COCO's image records, ids
    the sample indices, sizes from the manifest (``null`` where the check could not decode
    the image)."""
    images = [
        {"id": s.index, "file_name": s.filename, "width": s.width, "height": s.height}
        for s in samples
    ]
    return (dumps_json({"images": images}, indent=1) + "\n").encode("utf-8")


def filter_indices(outputs: RunOutputs, indices: Sequence[int], query: str) -> list[int]:
    """The sample indices ``indices`` (a tag's) whose lower-cased file name contains
    ``query`` lower-cased, as the grid's own search matches (O(len(indices)), from the names
    alone: no :class:`Sample` is made). The grid filters them by status itself, since its
    tabs count every status."""
    needle = query.lower()
    if not needle:
        return list(indices)
    names = outputs.filenames()
    return [i for i in indices if needle in names[i].lower()]
