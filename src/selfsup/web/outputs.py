"""A finished run output folder as the web app sees it: samples, statuses, reasons, maps, files.

:meth:`RunOutputs.open` reads what ``selfsup run`` wrote (``src/selfsup/curation/pipeline.py``)
and answers the questions of the web pages without reading a CSV file per request:

* every sample of the manifest (``data/manifest.jsonl``; corrupt and duplicate ones included)
  with one status: ``corrupt`` / ``duplicate`` from the manifest, ``selected`` / ``removed``
  from the selection;
* pages of samples filtered by status and by a case-insensitive substring of the filename;
* why a sample was kept or removed (:meth:`RunOutputs.explain`), with numbers computed from
  the files; its nearest neighbours; 2-D maps (PCA of all embeddings, UMAP from the report);
* the files of the folder, with a path check that no URL can escape.

Which files are read
    ``report.json`` (missing: the run has not finished, since it is written last),
    ``data/manifest.jsonl``, ``data/normalized_embeddings.csv`` (else ``data/embeddings.csv``,
    normalised here), ``data/selection.csv`` (per candidate: selected, pick rank, pick
    distance, score, THRESHOLD filter, datapool preselection; see
    :func:`selfsup.runfolder.write_selection_csv`) and ``data/projections.csv`` (the
    report's scatter points, header ``filename,pca_x,pca_y[,umap_k{K}_x,umap_k{K}_y]`` with
    ``K`` the UMAP's ``n_neighbors``; see :mod:`selfsup.curation.report`). Folders written before
    ``selection.csv`` existed are read from ``filenames/sampled_filenames_excluding_datapool.txt``
    (pick order) and ``filenames/removed_filenames.txt``; candidates in neither list were
    preselected from a datapool. Pick distances are then computed from the embeddings when
    asked for.

Statuses
    ``selected`` counts this run's picks *and* datapool-preselected candidates (both are in
    the selection), so with a datapool it exceeds ``report.json``'s ``n_selected``, which
    counts new picks only. ``removed`` is every other usable sample, including one that never
    became a candidate (no embedding row). Object-level runs select object crops, not
    samples: an image is ``selected`` when at least one of its crops was picked; neighbours
    and maps are not offered for them (their embedding rows are crops).

Distances
    As in the report: the L2 distance between L2-normalised embeddings (0 to 2).

The cache (``cache_dir``)
    Parsing a 100,000 x 128 CSV takes seconds, so the parsed tables are kept in
    ``cache_dir/idx-<folder>-<digest>/``: ``arrays.npz`` (per-sample and per-candidate arrays),
    ``embeddings.npy`` (normalised float32 matrix), ``strings.json`` (filenames and sources),
    ``pca.npz`` (the PCA map, made on first request) and ``meta.json``, written last. The
    digest covers the folder's resolved path, the size and modification time of every file
    read above, and a format version, so a changed source (a rerun into the folder) gets a
    fresh cache, and older ``idx-*`` folders are deleted then. Every file is written
    atomically; a cache that cannot be written (read-only disk) only costs speed.
    Measured on a synthetic folder of 100,000 samples with 128-dimensional embeddings, on
    the shared 2-core development machine (``pytest tests/web/test_outputs.py -k large``
    prints them; ranges over runs at different load): first open 5-10 s (parsing the CSVs),
    reopen with a warm cache 28-46 ms, a page of 200 samples under 1 ms, the first substring
    query 20-32 ms and its further pages under 1 ms, exact 8 nearest neighbours 3-8 ms, the
    PCA map 0.3-4.7 s once, then 1-2 ms from its cache.

Every file is read through :class:`selfsup.runfolder.RunFolder` (which owns the paths and
formats); ``report.json`` leniently (``read_report(strict=False)``: reports written by hand
or by tests, without ``version``, open too). Nothing here imports torch (only numpy and
:mod:`selfsup.runfolder`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import re
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, overload

import numpy as np
from numpy.typing import NDArray

from selfsup import runfolder
from selfsup.errors import DataError
from selfsup.utils.atomic import atomic_open_bytes, atomic_write_text
from selfsup.utils.names import dumps_json
from selfsup.utils.vectors import knn, l2_normalize, pca
from selfsup.web.sources import check_relative_path

if TYPE_CHECKING:
    from selfsup.web.signals import RunSignals

__all__ = [
    "STATUSES",
    "Explanation",
    "Neighbour",
    "OutputFile",
    "OutputsError",
    "Projection",
    "RunOutputs",
    "Sample",
    "Status",
]

logger = logging.getLogger(__name__)

Status = Literal["selected", "removed", "corrupt", "duplicate"]
STATUSES: tuple[Status, ...] = ("selected", "removed", "corrupt", "duplicate")
_CODE: Final[dict[str, int]] = {status: code for code, status in enumerate(STATUSES)}
_SELECTED, _REMOVED, _CORRUPT, _DUPLICATE = (0, 1, 2, 3)

#: Version of the cache layout; bump when what is cached changes.
_CACHE_VERSION: Final = 1
#: PCA is fitted on at most this many seeded embeddings, then applied to all of them.
_PCA_FIT_ROWS: Final = 20_000
_PCA_SEED: Final = 0
#: Cached substring queries per folder (a grid pages through one query at a time).
_QUERY_CACHE: Final = 16
#: Largest fixed-width array of lower-cased names kept for substring queries.
_MAX_QUERY_ARRAY_BYTES: Final = 256 << 20

# The run folder's files, relative to it (selfsup.runfolder owns the paths).
_REPORT = runfolder.REPORT_JSON
_MANIFEST = runfolder.MANIFEST
_NORMALIZED = runfolder.NORMALIZED_EMBEDDINGS
_EMBEDDINGS = runfolder.EMBEDDINGS
_SELECTION = runfolder.SELECTION_CSV
_PROJECTIONS = runfolder.PROJECTIONS_CSV
_SAMPLED = runfolder.SAMPLED_FILENAMES
_REMOVED_LIST = runfolder.REMOVED_FILENAMES
_FINGERPRINTED: Final = (
    _REPORT,
    _MANIFEST,
    _NORMALIZED,
    _EMBEDDINGS,
    _SELECTION,
    _PROJECTIONS,
    _SAMPLED,
    _REMOVED_LIST,
)
_UMAP_KEY = re.compile(r"umap_k(\d+)")
_DISTANCE = "L2 distance between L2-normalised embeddings"


class OutputsError(Exception):
    """The folder is not a (finished) run output folder; the message names the file at
    fault and what is expected."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample of the run (an image, or one frame of a video).

    Attributes:
        index: Row in :attr:`RunOutputs.samples` (== manifest ``id``); stable, used in URLs.
        filename: Sample name (relative path, or lightly's frame name).
        source: File relative to the input root (the video for a frame).
        frame_index: Frame of ``source`` for a video frame, else ``None``.
        status: ``selected``, ``removed``, ``corrupt`` or ``duplicate``.
        width, height: Pixels, when the check could decode it.
        file_size: Bytes of ``source``; mtime_ns: its modification time (manifest).
        embedding_row: Row in the embeddings matrix; ``None`` for corrupt and duplicate
            samples, for samples that never became candidates, and in object-level runs.
    """

    index: int
    filename: str
    source: str
    frame_index: int | None
    status: Status
    width: int | None
    height: int | None
    file_size: int | None
    mtime_ns: int | None
    embedding_row: int | None


@dataclass(frozen=True)
class Explanation:
    """Why a sample has its status, as plain sentences with numbers.

    Attributes:
        headline: e.g. ``"Selected: pick 12 of 100"``, ``"Removed: covered by a selected
            sample"``, ``"Corrupt: truncated"``, ``"Exact duplicate of cat/1.png"``.
        details: Sentences with the numbers behind the headline.
        related: ``(label, sample index)`` links, e.g. ``("duplicate of", 17)``.
    """

    headline: str
    details: list[str]
    related: list[tuple[str, int]]


@dataclass(frozen=True)
class Neighbour:
    """A nearby sample; ``distance`` is the L2 distance of normalised embeddings (0..2)."""

    sample: Sample
    distance: float


@dataclass(frozen=True)
class Projection:
    """A 2-D map of the run.

    Attributes:
        method: ``"pca"`` or ``"umap"``.
        description: What the map shows, e.g. ``"PCA of all 100,000 embeddings (PC1 12%,
            PC2 8%)"``.
        indices: ``(M,)`` int64 sample indices of the points.
        xy: ``(M, 2)`` float32 coordinates.
    """

    method: str
    description: str
    indices: NDArray[np.int64]
    xy: NDArray[np.float32]


@dataclass(frozen=True)
class OutputFile:
    """A file of the run folder: relative POSIX ``path``, ``size`` in bytes, and ``kind``
    (``report``, ``plot``, ``filenames``, ``embeddings``, ``config``, ``checkpoint``,
    ``data`` or ``other``)."""

    path: str
    size: int
    kind: str


# --------------------------------------------------------------------------- the index


@dataclass
class _Index:
    """Everything :class:`RunOutputs` serves from, as arrays (what the cache stores).

    ``N`` samples (manifest records), ``R`` candidate rows (``normalized_embeddings.csv``).
    Missing integers are ``-1``, missing floats NaN.
    """

    filenames: list[str]
    sources: list[str]
    frame_index: NDArray[np.int64]  # (N,)
    status: NDArray[np.int8]  # (N,) codes into STATUSES
    width: NDArray[np.int64]  # (N,)
    height: NDArray[np.int64]  # (N,)
    file_size: NDArray[np.int64]  # (N,)
    mtime_ns: NDArray[np.int64]  # (N,)
    sample_row: NDArray[np.int64]  # (N,) candidate row of a sample run's sample, -1 none
    row_sample: NDArray[np.int64]  # (R,) sample of each row (the image of a crop), -1 none
    selected: NDArray[np.bool_]  # (R,) in the selection (picked or preselected)
    rank: NDArray[np.int64]  # (R,) 1-based pick order, 0 = not picked by this run
    pick_distance: NDArray[np.float32]  # (R,) at pick time; NaN unknown, inf first pick
    score: NDArray[np.float64]  # (R,) combined score at pick time, NaN unknown
    removed_by: NDArray[np.int64]  # (R,) index into meta["filters"], -1 none
    preselected: NDArray[np.bool_]  # (R,) datapool preselected
    embeddings: NDArray[np.float32]  # (R, D) L2-normalised
    umap_rows: NDArray[np.int64]  # (M,) candidate rows of the report's UMAP points
    umap_xy: NDArray[np.float32]  # (M, 2)
    meta: dict[str, Any]


_ARRAYS: Final = (
    "frame_index",
    "status",
    "width",
    "height",
    "file_size",
    "mtime_ns",
    "sample_row",
    "row_sample",
    "selected",
    "rank",
    "pick_distance",
    "score",
    "removed_by",
    "preselected",
    "umap_rows",
    "umap_xy",
)


def _fingerprint(folder: Path) -> str:
    """Digest of the folder's path and of size + mtime of every file the index reads."""
    stats: list[Any] = [_CACHE_VERSION, str(folder.resolve())]
    for name in _FINGERPRINTED:
        try:
            st = (folder / name).stat()
            stats.append([name, st.st_size, st.st_mtime_ns])
        except OSError:
            stats.append([name, None])
    text = json.dumps(stats, sort_keys=True)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def _read_report(folder: Path) -> dict[str, Any]:
    path = folder / _REPORT
    if not folder.is_dir():
        raise OutputsError(f"{folder} is not a folder; expected the output folder of selfsup run")
    if not path.is_file():
        raise OutputsError(
            f"{path} does not exist: the run has not finished (report.json is written last) "
            "or this is not the output folder of selfsup run"
        )
    try:
        # Lenient: a report without "format" (written by hand or by tests) is still opened.
        return runfolder.RunFolder(folder).read_report(strict=False)
    except OSError as exc:
        raise OutputsError(f"{path} cannot be read ({exc}); expected a run report") from exc
    except DataError as exc:
        raise OutputsError(str(exc)) from exc


def _run_config(report: Mapping[str, Any]) -> Mapping[str, Any]:
    """``job.config`` of the report (the run's configuration), ``{}`` when absent."""
    job = report.get("job")
    config = job.get("config") if isinstance(job, dict) else None
    return config if isinstance(config, dict) else {}


def _object_task(report: Mapping[str, Any]) -> str:
    """``job.config.object_level.task_name`` of the report, ``""`` for sample runs."""
    level = _run_config(report).get("object_level")
    task = level.get("task_name") if isinstance(level, dict) else None
    return task if isinstance(task, str) else ""


def _load_candidates(folder: Path) -> tuple[NDArray[np.float32], list[str], str]:
    """Normalised embeddings ``(R, D)``, their names, and the file they came from."""
    for name in (_NORMALIZED, _EMBEDDINGS):
        path = folder / name
        if path.is_file():
            try:
                emb, _, names = runfolder.RunFolder.read_embeddings(path)
            except DataError as exc:
                raise OutputsError(f"{path} cannot be read: {exc}") from exc
            return l2_normalize(emb, min_norm=1e-12), names, name
    raise OutputsError(
        f"{folder / _NORMALIZED} does not exist (nor {_EMBEDDINGS}): the folder holds no "
        "embeddings of the samples that entered selection"
    )


def _crop_image(name: str, task: str, known: Mapping[str, int]) -> int:
    """Sample index of the image an object crop was cut from, by the crop naming rule
    ``<sample without extension>-<task>-<box>-<extension>.png``; -1 when unknown."""
    match = re.fullmatch(rf"(.*)-{re.escape(task)}-\d+(?:-([^/]*))?\.png", name, re.DOTALL)
    if match is None:
        return -1
    stem, ext = match.group(1), match.group(2)
    return known.get(f"{stem}.{ext}" if ext else stem, -1)


def _read_selection_csv(
    path: Path, row_of: Mapping[str, int], n_rows: int
) -> tuple[dict[str, NDArray[Any]], list[str], dict[int, str]]:
    """Per-row arrays from ``selection.csv`` (:func:`selfsup.runfolder.read_selection_csv`)
    in embedding-row order, the filter descriptions, and row -> sample name (the ``sample``
    column, where it differs from the filename)."""
    try:
        table = runfolder.read_selection_csv(path)
    except DataError as exc:
        raise OutputsError(str(exc)) from exc
    rows = np.empty(len(table.filenames), dtype=np.int64)
    for i, name in enumerate(table.filenames):
        row = row_of.get(name)
        if row is None:
            raise OutputsError(
                f"{path}, line {i + 2}: {name!r} is no row of the embeddings; selection.csv "
                "and normalized_embeddings.csv disagree"
            )
        rows[i] = row
    seen = np.zeros(n_rows, dtype=bool)
    seen[rows] = True
    if not seen.all():
        missing = int(np.count_nonzero(~seen))
        raise OutputsError(f"{path} lacks {missing} of the {n_rows} rows of the embeddings")

    def by_row(values: NDArray[Any], fill: Any, dtype: Any) -> NDArray[Any]:
        out = np.full(n_rows, fill, dtype=dtype)
        out[rows] = values  # a repeated name: its last line wins
        return out

    arrays: dict[str, NDArray[Any]] = {
        "selected": by_row(table.selected, False, bool),
        "rank": by_row(table.rank, 0, np.int64),
        "pick_distance": by_row(table.pick_distance, np.nan, np.float32),
        "score": by_row(table.score, np.nan, np.float64),
        "removed_by": by_row(table.removed_by, -1, np.int64),
        "preselected": by_row(table.preselected, False, bool),
    }
    sample_of = {
        int(rows[i]): sample
        for i, (name, sample) in enumerate(zip(table.filenames, table.samples, strict=True))
        if sample != name
    }
    return arrays, table.filters, sample_of


def _selection_from_lists(
    folder: Path, row_of: Mapping[str, int], n_rows: int
) -> dict[str, NDArray[Any]]:
    """Per-row arrays of an older folder without ``selection.csv`` (see module docstring)."""
    lists: list[list[str]] = []
    for name in (_SAMPLED, _REMOVED_LIST):
        path = folder / name
        try:
            lists.append(runfolder.RunFolder.read_filename_list(path))
        except OSError as exc:
            raise OutputsError(
                f"{folder / _SELECTION} and {path} are missing or unreadable ({exc}): the "
                "folder does not say which samples were selected"
            ) from exc
    sampled, removed = lists
    rank = np.zeros(n_rows, dtype=np.int64)
    for position, name in enumerate(sampled, start=1):
        row = row_of.get(name)
        if row is not None:
            rank[row] = position
    is_removed = np.zeros(n_rows, dtype=bool)
    for name in removed:
        row = row_of.get(name)
        if row is not None:
            is_removed[row] = True
    preselected = (rank == 0) & ~is_removed
    return {
        "selected": (rank > 0) | preselected,
        "rank": rank,
        "pick_distance": np.full(n_rows, np.nan, dtype=np.float32),
        "score": np.full(n_rows, np.nan, dtype=np.float64),
        "removed_by": np.full(n_rows, -1, dtype=np.int64),
        "preselected": preselected,
    }


def _read_umap(
    folder: Path, row_of: Mapping[str, int]
) -> tuple[NDArray[np.int64], NDArray[np.float32], int | None]:
    """The UMAP points of ``projections.csv``: candidate rows, coordinates, n_neighbors of
    the first UMAP in the file (:meth:`selfsup.runfolder.RunFolder.read_projections`); none
    without the file or a UMAP column. Names the embeddings lack, and non-finite points, are
    left out."""
    empty = (np.zeros(0, np.int64), np.zeros((0, 2), np.float32), None)
    try:
        projections = runfolder.RunFolder(folder).read_projections()
    except DataError as exc:
        raise OutputsError(str(exc)) from exc
    if projections is None:
        return empty
    umaps = [(key, _UMAP_KEY.fullmatch(key)) for key in projections.coordinates]
    found = [(key, match) for key, match in umaps if match is not None]
    if not found:
        return empty
    key, match = found[0]
    coordinates = projections.coordinates[key]
    rows: list[int] = []
    keep: list[int] = []
    for i, name in enumerate(projections.filenames):
        row = row_of.get(name)
        if row is not None and np.isfinite(coordinates[i]).all():
            rows.append(row)
            keep.append(i)
    return (
        np.asarray(rows, dtype=np.int64),
        coordinates[keep].astype(np.float32).reshape(-1, 2),
        int(match.group(1)),
    )


def _build_index(folder: Path, report: Mapping[str, Any]) -> _Index:
    """Read the run's files into an :class:`_Index` (the slow, O(N) part of opening)."""
    manifest_path = folder / _MANIFEST
    try:
        records = runfolder.RunFolder(folder).read_manifest().records
    except FileNotFoundError:
        raise OutputsError(
            f"{manifest_path} does not exist: expected the manifest of every sample"
        ) from None
    except (OSError, DataError) as exc:
        raise OutputsError(f"{manifest_path} cannot be read: {exc}") from exc
    n = len(records)
    filenames = [r.filename for r in records]
    index_of = {name: i for i, name in enumerate(filenames)}
    task = _object_task(report)

    embeddings, names, embeddings_file = _load_candidates(folder)
    r_count = len(names)
    row_of = {name: i for i, name in enumerate(names)}
    selection_path = folder / _SELECTION
    filters: list[str] = []
    sample_of: dict[int, str] = {}
    if selection_path.is_file():
        arrays, filters, sample_of = _read_selection_csv(selection_path, row_of, r_count)
        selection_source = _SELECTION
    else:
        arrays = _selection_from_lists(folder, row_of, r_count)
        selection_source = f"{_SAMPLED} and {_REMOVED_LIST}"

    row_sample = np.full(r_count, -1, dtype=np.int64)
    for row, name in enumerate(names):
        owner = sample_of.get(row)
        if owner is not None:
            row_sample[row] = index_of.get(owner, -1)
        elif task:
            row_sample[row] = _crop_image(name, task, index_of)
        else:
            row_sample[row] = index_of.get(name, -1)
    sample_row = np.full(n, -1, dtype=np.int64)
    if not task:
        has = row_sample >= 0
        sample_row[row_sample[has]] = np.flatnonzero(has)

    status = np.full(n, _REMOVED, dtype=np.int8)
    picked_images = row_sample[arrays["selected"] & (row_sample >= 0)]
    if task:
        status[picked_images] = _SELECTED
    else:
        candidate = sample_row >= 0
        chosen = np.zeros(n, dtype=bool)
        chosen[candidate] = arrays["selected"][sample_row[candidate]]
        status[chosen] = _SELECTED
    sparse: dict[str, dict[str, Any]] = {}
    frame_index = np.full(n, -1, dtype=np.int64)
    width = np.full(n, -1, dtype=np.int64)
    height = np.full(n, -1, dtype=np.int64)
    file_size = np.empty(n, dtype=np.int64)
    mtime_ns = np.empty(n, dtype=np.int64)
    for i, r in enumerate(records):
        if r.frame_index is not None:
            frame_index[i] = r.frame_index
        if r.width is not None:
            width[i] = r.width
        if r.height is not None:
            height[i] = r.height
        file_size[i] = r.file_size
        mtime_ns[i] = r.mtime_ns
        if r.status == "corrupt":
            status[i] = _CORRUPT
            sample_row[i] = -1
        elif r.status == "duplicate":
            status[i] = _DUPLICATE
            sample_row[i] = -1
        if r.status != "ok" or r.warning:
            sparse[str(i)] = {
                "reason": None if r.reason is None else r.reason.value,
                "detail": r.detail,
                "duplicate_of": r.duplicate_of,
                "duplicate_index": index_of.get(r.duplicate_of or "", -1),
                "warning": r.warning,
            }
    umap_rows, umap_xy, umap_k = (
        _read_umap(folder, row_of)
        if not task
        else (np.zeros(0, np.int64), np.zeros((0, 2), np.float32), None)
    )
    meta = {
        "filters": filters,
        "sparse": sparse,
        "object_level_task": task,
        "umap_k": umap_k,
        "selection_source": selection_source,
        "embeddings_file": embeddings_file,
        "n_rows_without_sample": int(np.count_nonzero(row_sample < 0)),
    }
    return _Index(
        filenames=filenames,
        sources=[r.source for r in records],
        frame_index=frame_index,
        status=status,
        width=width,
        height=height,
        file_size=file_size,
        mtime_ns=mtime_ns,
        sample_row=sample_row,
        row_sample=row_sample,
        selected=np.asarray(arrays["selected"], dtype=bool),
        rank=np.asarray(arrays["rank"], dtype=np.int64),
        pick_distance=np.asarray(arrays["pick_distance"], dtype=np.float32),
        score=np.asarray(arrays["score"], dtype=np.float64),
        removed_by=np.asarray(arrays["removed_by"], dtype=np.int64),
        preselected=np.asarray(arrays["preselected"], dtype=bool),
        embeddings=embeddings,
        umap_rows=umap_rows,
        umap_xy=umap_xy,
        meta=meta,
    )


def _save_index(index: _Index, target: Path, digest: str) -> None:
    """Write the index into ``target`` (``meta.json`` last: it marks the cache complete)."""
    target.mkdir(parents=True, exist_ok=True)
    with atomic_open_bytes(target / "arrays.npz") as handle:
        np.savez(handle, **{name: getattr(index, name) for name in _ARRAYS})
    with atomic_open_bytes(target / "embeddings.npy") as handle:
        np.save(handle, index.embeddings, allow_pickle=False)
    sources = [None if s == f else s for s, f in zip(index.sources, index.filenames, strict=True)]
    strings = {"filenames": index.filenames, "sources": sources}
    # dumps_json: names that are not UTF-8 stay exact (as \udcXX escapes) in valid JSON.
    atomic_write_text(target / "strings.json", dumps_json(strings))
    meta = {"version": _CACHE_VERSION, "digest": digest, **index.meta}
    atomic_write_text(target / "meta.json", json.dumps(meta, ensure_ascii=False))


def _load_index(target: Path, digest: str) -> _Index | None:
    """The cached index in ``target``, or ``None`` when absent, stale or unreadable."""
    meta_path = target / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("version") != _CACHE_VERSION or meta.get("digest") != digest:
            return None
        strings = json.loads((target / "strings.json").read_text(encoding="utf-8"))
        filenames = list(strings["filenames"])
        sources = [
            f if s is None else s for s, f in zip(strings["sources"], filenames, strict=True)
        ]
        with np.load(target / "arrays.npz", allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name]) for name in _ARRAYS}
        embeddings = np.asarray(np.load(target / "embeddings.npy", allow_pickle=False))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.warning("ignoring the unreadable outputs cache %s (%s); rebuilding it", target, exc)
        return None
    for key in ("digest", "version"):
        meta.pop(key, None)
    return _Index(
        filenames=filenames,
        sources=sources,
        embeddings=embeddings.astype(np.float32, copy=False),
        meta=meta,
        **arrays,
    )


# --------------------------------------------------------------------------- samples view


class _SampleList(Sequence[Sample]):
    """The samples as a read-only sequence, built on access from the index arrays (so that
    opening a 100,000-sample folder does not create 100,000 objects)."""

    def __init__(self, index: _Index, embedding_rows: bool) -> None:
        self._index = index
        self._embedding_rows = embedding_rows

    def __len__(self) -> int:
        return len(self._index.filenames)

    @overload
    def __getitem__(self, i: int) -> Sample: ...

    @overload
    def __getitem__(self, i: slice) -> list[Sample]: ...

    def __getitem__(self, i: int | slice) -> Sample | list[Sample]:
        if isinstance(i, slice):
            return [self.make(j) for j in range(*i.indices(len(self)))]
        n = len(self)
        j = int(i)
        if j < 0:
            j += n
        if not 0 <= j < n:
            raise IndexError(f"sample index {i} out of range: the run has {n} samples")
        return self.make(j)

    def __iter__(self) -> Iterator[Sample]:
        return (self.make(j) for j in range(len(self)))

    def make(self, j: int) -> Sample:
        ix = self._index
        frame = int(ix.frame_index[j])
        width = int(ix.width[j])
        height = int(ix.height[j])
        row = int(ix.sample_row[j])
        return Sample(
            index=j,
            filename=ix.filenames[j],
            source=ix.sources[j],
            frame_index=frame if frame >= 0 else None,
            status=STATUSES[int(ix.status[j])],
            width=width if width >= 0 else None,
            height=height if height >= 0 else None,
            file_size=int(ix.file_size[j]),
            mtime_ns=int(ix.mtime_ns[j]),
            embedding_row=row if row >= 0 and self._embedding_rows else None,
        )


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"


_KIND_BY_TOP: Final = {
    runfolder.PLOTS_DIR: "plot",
    Path(runfolder.SAMPLED_FILENAMES).parts[0]: "filenames",
    Path(runfolder.CONFIG_YAML).parts[0]: "config",
}


def _kind(relative: str) -> str:
    parts = relative.split("/")
    if relative in (runfolder.REPORT_JSON, runfolder.REPORT_PDF):
        return "report"
    if relative.endswith(".ckpt"):
        return "checkpoint"
    if len(parts) > 1 and parts[0] in _KIND_BY_TOP:
        return _KIND_BY_TOP[parts[0]]
    if parts[0] == runfolder.DATA_DIR:
        if relative == runfolder.CLEAN_FILENAMES:
            return "filenames"  # a list of names, as those of filenames/
        return "embeddings" if parts[-1].endswith("embeddings.csv") else "data"
    return "other"


# --------------------------------------------------------------------------- RunOutputs


class RunOutputs:
    """A finished run output folder, opened for the web app (see the module docstring).

    Thread-safe: the web server calls it from many threads; lazily computed parts (PCA,
    query results) are made under a lock.

    Attributes:
        folder: The run output folder.
        report: Parsed ``report.json``.
        samples: All samples, ``samples[i].index == i``.
    """

    folder: Path
    report: dict[str, Any]
    samples: Sequence[Sample]

    def __init__(self, folder: Path, report: dict[str, Any], index: _Index, cache: Path) -> None:
        """Use :meth:`open`."""
        self.folder = folder
        self.report = report
        self._index = index
        self._cache = cache
        self._root = folder.resolve()
        self._task: str = str(index.meta.get("object_level_task") or "")
        self._list = _SampleList(index, embedding_rows=not self._task)
        self.samples = self._list
        self._filters: list[str] = list(index.meta.get("filters") or [])
        self._sparse: dict[str, Any] = dict(index.meta.get("sparse") or {})
        self._by_status = {
            status: np.flatnonzero(index.status == code).astype(np.int64)
            for code, status in enumerate(STATUSES)
        }
        self._all = np.arange(len(index.filenames), dtype=np.int64)
        ranked = np.flatnonzero(index.rank > 0)
        self._picks = ranked[np.argsort(index.rank[ranked], kind="stable")].astype(np.int64)
        self._chosen_rows = np.flatnonzero(index.selected).astype(np.int64)
        self._no_sample_rows = np.flatnonzero(index.row_sample < 0)
        self._lock = threading.Lock()
        self._queries: OrderedDict[str, NDArray[np.int64]] = OrderedDict()
        self._haystack: NDArray[np.str_] | list[str] | None = None
        self._projections: dict[str, Projection] = {}
        self._signals_lock = threading.Lock()

    # ----------------------------------------------------------------- opening

    @classmethod
    def open(cls, folder: str | os.PathLike[str], cache_dir: str | os.PathLike[str]) -> RunOutputs:
        """Open a finished run output folder; derived tables are cached in ``cache_dir``.

        The first open of a folder reads its CSV files (seconds for 100,000 samples);
        later opens load the cache (well under a second) until a source file changes.

        Raises:
            OutputsError: not a folder, no ``report.json`` (the run has not finished), or a
                required file is missing or malformed; the message names the file.
        """
        root = Path(folder)
        report = _read_report(root)
        digest = _fingerprint(root)
        cache = Path(cache_dir)
        # The folder's own prefix: a cache_dir shared by several folders keeps each one's.
        prefix = "idx-" + hashlib.blake2b(str(root.resolve()).encode(), digest_size=6).hexdigest()
        target = cache / f"{prefix}-{digest}"
        index = _load_index(target, digest)
        if index is None:
            index = _build_index(root, report)
            try:
                _save_index(index, target, digest)
            except OSError as exc:
                logger.warning(
                    "cannot write the outputs cache %s (%s): every open re-reads the CSVs",
                    target,
                    exc,
                )
            else:
                _remove_stale(cache, prefix, keep=target.name)
        return cls(root, report, index, target)

    # ----------------------------------------------------------------- grid

    def counts(self) -> dict[str, int]:
        """Number of samples per status, and ``"all"``."""
        counts = {"all": int(self._all.size)}
        counts.update({status: int(idx.size) for status, idx in self._by_status.items()})
        return counts

    def page(
        self, status: Status | None, offset: int, limit: int, query: str = ""
    ) -> tuple[list[Sample], int]:
        """Samples ``offset .. offset + limit`` of those with ``status`` (all for ``None``)
        whose filename contains ``query`` (case-insensitive), and how many match in total.

        O(limit) per call: per-status index arrays are built when the folder opens, and the
        matches of a query are computed once (one vectorised O(N) pass) and kept for the next
        pages.

        Raises:
            ValueError: an unknown status, or a negative offset or limit.
        """
        if status is not None and status not in _CODE:
            raise ValueError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
        if offset < 0 or limit < 0:
            raise ValueError(f"offset and limit must be >= 0, got {offset} and {limit}")
        if query:
            base = self._matches(query, status)
        else:
            base = self._all if status is None else self._by_status[status]
        chosen = base[offset : offset + limit]
        return [self._list.make(int(j)) for j in chosen], int(base.size)

    def _matches(self, query: str, status: Status | None) -> NDArray[np.int64]:
        """Ascending indices of the samples with ``status`` (any for ``None``) whose
        lower-cased filename contains the lower-cased query; kept for the next pages."""
        needle = query.lower()
        key = f"{status or ''}\x00{needle}"
        with self._lock:
            found = self._queries.get(key)
            if found is not None:
                self._queries.move_to_end(key)
                return found
        result = self._find(needle)
        if status is not None:
            result = result[self._index.status[result] == _CODE[status]]
        with self._lock:
            self._queries[key] = result
            while len(self._queries) > _QUERY_CACHE:
                self._queries.popitem(last=False)
        return result

    def _find(self, needle: str) -> NDArray[np.int64]:
        """Ascending indices of the samples whose lower-cased filename contains ``needle``.

        The lower-cased names are kept as one fixed-width unicode array, searched by numpy's
        vectorised ``strings.find`` (about 3 ms for 100,000 names). Where that array would
        be huge (a few very long names), a ``str.find`` pass over the joined names is used.
        """
        if "\x00" in needle:
            return np.zeros(0, dtype=np.int64)  # no filename holds a NUL
        with self._lock:
            if self._haystack is None:
                lowered = [name.lower() for name in self._index.filenames]
                longest = max((len(name) for name in lowered), default=0)
                if 4 * longest * len(lowered) <= _MAX_QUERY_ARRAY_BYTES:
                    self._haystack = np.array(lowered, dtype=f"<U{max(longest, 1)}")
                else:
                    self._haystack = lowered
            haystack = self._haystack
        if isinstance(haystack, np.ndarray):
            return np.flatnonzero(np.strings.find(haystack, needle) >= 0).astype(np.int64)
        return np.asarray([i for i, name in enumerate(haystack) if needle in name], np.int64)

    def indices(self, status: Status | None, query: str = "") -> NDArray[np.int64]:
        """Ascending indices of every sample with ``status`` (all for ``None``) whose name
        contains ``query`` (case-insensitive): the whole list :meth:`page` pages through,
        for filters and sorts applied on top of it (:mod:`selfsup.web.signals`)."""
        if status is not None and status not in _CODE:
            raise ValueError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
        if query:
            return self._matches(query, status)
        return self._all if status is None else self._by_status[status]

    def make_samples(self, indices: Sequence[int] | NDArray[np.int64]) -> list[Sample]:
        """The samples at ``indices``, in that order."""
        return [self._list.make(int(j)) for j in indices]

    def filenames(self) -> list[str]:
        """Every sample's name, by sample index (the index's list; do not modify)."""
        return self._index.filenames

    def status_codes(self) -> NDArray[np.int8]:
        """``(N,)`` codes into :data:`STATUSES` per sample (do not modify)."""
        return self._index.status

    def embedding_arrays(self) -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.int64]]:
        """``(embeddings (R, D) L2-normalised, sample_row (N,) with -1 for none, selected
        rows)`` for numpy-only computations over the run; object-level runs give no sample
        rows (their rows are crops). Do not modify."""
        ix = self._index
        if self._task:
            return ix.embeddings, np.full(len(ix.filenames), -1, np.int64), self._chosen_rows
        return ix.embeddings, ix.sample_row, self._chosen_rows

    def selection_scores(self) -> dict[str, NDArray[np.float64]]:
        """Per-sample numbers of ``data/selection.csv``: ``pick_rank``, ``pick_distance``
        (finite only; the first pick's infinite distance is left out) and ``selection_score``,
        each only when at least one sample has a value; ``{}`` in object-level runs."""
        if self._task:
            return {}
        ix = self._index
        n = len(ix.filenames)
        has = np.flatnonzero(ix.sample_row >= 0)
        rows = ix.sample_row[has]
        out: dict[str, NDArray[np.float64]] = {}
        columns = {
            "pick_rank": np.where(ix.rank > 0, ix.rank, np.nan).astype(np.float64),
            "pick_distance": np.where(
                np.isfinite(ix.pick_distance), ix.pick_distance, np.nan
            ).astype(np.float64),
            "selection_score": ix.score.astype(np.float64),
        }
        for key, per_row in columns.items():
            values = np.full(n, np.nan, dtype=np.float64)
            values[has] = per_row[rows]
            if np.isfinite(values).any():
                out[key] = values
        return out

    def cached_array(
        self, name: str, compute: Callable[[], NDArray[np.float64]]
    ) -> NDArray[np.float64]:
        """A derived ``(N,)`` per-sample array kept in this folder's cache as ``<name>.npy``
        (the cache's digest covers the run's files, so a rerun gets a fresh one); computed
        by ``compute`` when absent or unreadable. A cache that cannot be written only costs
        the next open the computation again."""
        path = self._cache / f"{name}.npy"
        n = len(self._index.filenames)
        if path.is_file():
            try:
                loaded = np.load(path, allow_pickle=False)
                if loaded.shape == (n,):
                    return np.asarray(loaded, dtype=np.float64)
            except (OSError, ValueError) as exc:
                logger.warning("ignoring the unreadable cache %s (%s)", path, exc)
        values = compute()
        try:
            self._cache.mkdir(parents=True, exist_ok=True)
            with atomic_open_bytes(path) as handle:
                np.save(handle, values, allow_pickle=False)
        except OSError as exc:
            logger.warning("cannot cache %s in %s (%s)", name, path, exc)
        return values

    @functools.cached_property
    def signals(self) -> RunSignals:
        """Every per-sample signal of the run (:func:`selfsup.web.signals.load_signals`),
        discovered on first use and kept with this object.

        Raises:
            SignalsError: a signal file is malformed.
        """
        from selfsup.web.signals import load_signals

        # From Python 3.12 cached_property no longer locks: a request that waited here for
        # another one's discovery takes its result instead of reading the files again.
        with self._signals_lock:
            done: RunSignals | None = self.__dict__.get("signals")
            return done if done is not None else load_signals(self)

    def sample(self, index: int) -> Sample:
        """The sample at ``index``. Raises IndexError outside ``0 .. N-1`` (no wrapping)."""
        if not isinstance(index, int | np.integer) or not 0 <= index < len(self._list):
            raise IndexError(f"sample index {index!r} out of range: the run has {len(self._list)}")
        return self._list.make(int(index))

    @functools.cached_property
    def name_index(self) -> dict[str, int]:
        """Sample name -> sample index (built on first use, from the names alone: no
        :class:`Sample` is made; a name given twice maps to its last sample)."""
        return {name: i for i, name in enumerate(self._index.filenames)}

    # ----------------------------------------------------------------- explanations

    def _name(self, row: int) -> str:
        j = int(self._index.row_sample[row])
        return self._index.filenames[j] if j >= 0 else f"embedding row {row}"

    def _nearest(self, query_row: int, rows: NDArray[np.int64]) -> tuple[int, float] | None:
        """Nearest of ``rows`` to ``query_row`` (exact distance), or None for no rows."""
        rows = rows[rows != query_row]
        if rows.size == 0:
            return None
        emb = self._index.embeddings
        found = knn(
            emb[query_row : query_row + 1],
            emb,
            1,
            support_rows=rows,
            backend="numpy",
            distance_dtype=np.float32,
        )
        return int(found.indices[0, 0]), float(found.distances[0, 0])

    def _last_pick_distance(self) -> float:
        if self._picks.size == 0:
            return math.nan
        return float(self._index.pick_distance[self._picks[-1]])

    def explain(self, index: int) -> Explanation:
        """Why sample ``index`` has its status, with numbers from the run's files.

        Raises:
            IndexError: no such sample.
        """
        sample = self.sample(index)
        if sample.status == "corrupt":
            return self._explain_corrupt(sample)
        if sample.status == "duplicate":
            return self._explain_duplicate(sample)
        if self._task:
            return self._explain_object_level(sample)
        row = int(self._index.sample_row[index])
        if row < 0:
            return Explanation(
                "Removed: not a selection candidate",
                [
                    "It is usable (neither corrupt nor a duplicate) but has no row in "
                    f"{self._index.meta.get('embeddings_file', _NORMALIZED)}, so it never "
                    "entered selection (for example left out by relevant_filenames_file)."
                ],
                [],
            )
        if sample.status == "selected":
            return self._explain_selected(row)
        return self._explain_removed(row)

    def _extra(self, index: int) -> dict[str, Any]:
        info = self._sparse.get(str(index))
        return info if isinstance(info, dict) else {}

    def _explain_corrupt(self, sample: Sample) -> Explanation:
        info = self._extra(sample.index)
        reason = str(info.get("reason") or "unreadable")
        details: list[str] = []
        if info.get("detail"):
            details.append(f"{str(info['detail']).rstrip('.')}.")
        where = sample.source
        if sample.frame_index is not None:
            where = f"frame {sample.frame_index} of {sample.source}"
        size = f", {sample.file_size:,} bytes" if sample.file_size is not None else ""
        details.append(f"The check could not use {where}{size}; corrupt samples skip selection.")
        if info.get("warning"):
            details.append(f"Warning: {info['warning']}")
        return Explanation(f"Corrupt: {reason.replace('_', ' ')}", details, [])

    def _explain_duplicate(self, sample: Sample) -> Explanation:
        info = self._extra(sample.index)
        kept = str(info.get("duplicate_of") or "another sample")
        related: list[tuple[str, int]] = []
        kept_index = int(info.get("duplicate_index", -1))
        if kept_index >= 0:
            related.append(("duplicate of", kept_index))
        return Explanation(
            f"Exact duplicate of {kept}",
            [
                f"Its decoded pixels are identical to those of {kept} (same pixel hash). That "
                "copy was kept; this one did not enter selection."
            ],
            related,
        )

    def _explain_selected(self, row: int) -> Explanation:
        ix = self._index
        k = int(self._picks.size)
        n_candidates = int(ix.selected.size)
        n_pre = int(np.count_nonzero(ix.preselected))
        rank = int(ix.rank[row])
        related: list[tuple[str, int]] = []
        if rank == 0:
            return Explanation(
                "Selected: preselected from the datapool",
                [
                    "An earlier run recorded in the datapool chose it. This run kept it and "
                    f"measured diversity from it and the {n_pre - 1:,} other preselected "
                    f"samples; it has no pick rank here ({k:,} new picks among "
                    f"{n_candidates:,} candidates)."
                ],
                [],
            )
        details = [
            f"It was the {_ordinal(rank)} of the {k:,} samples this run picked, among "
            f"{n_candidates:,} candidates."
        ]
        earlier = np.concatenate([self._picks[: rank - 1], np.flatnonzero(ix.preselected)])
        nearest = self._nearest(row, earlier.astype(np.int64))
        recorded = float(ix.pick_distance[row])
        length = self._sequence_length()
        if length > 1:
            # Sequences are picked whole by their frame-averaged embedding: the recorded
            # distance belongs to the sequence, and the previous frame is no earlier pick.
            details.append(
                f"It belongs to a sequence of {length} consecutive frames picked together "
                "(selected_sequence_length)"
                + (
                    f"; when the sequence was picked, its frame-averaged embedding was "
                    f"{recorded:.3f} from the nearest earlier pick ({_DISTANCE})."
                    if math.isfinite(recorded)
                    else "."
                )
            )
        elif nearest is None:
            details.append(
                "It was the first pick: nothing had been chosen before it, so its pick distance "
                "is unbounded."
            )
        else:
            near_row, computed = nearest
            j = int(ix.row_sample[near_row])
            if j >= 0:
                related.append(("nearest earlier pick", j))
            if math.isfinite(recorded):
                details.append(
                    f"When picked, its nearest earlier pick ({self._name(near_row)}) was "
                    f"{recorded:.3f} away: the coverage radius of the selection at that moment "
                    f"({_DISTANCE})."
                )
            else:
                why = (
                    "the selection recorded no pick distance (it had no DIVERSITY strategy)"
                    if ix.meta.get("selection_source") == _SELECTION
                    else f"computed from the embeddings; {_SELECTION} is missing"
                )
                details.append(
                    f"When picked, its nearest earlier pick ({self._name(near_row)}) was "
                    f"{computed:.3f} away ({why})."
                )
        last = self._last_pick_distance()
        if k > 1 and math.isfinite(last):
            details.append(
                f"For comparison, the last of the {k:,} picks was made at a distance of {last:.3f}."
            )
        score = float(ix.score[row])
        if math.isfinite(score):
            details.append(
                f"Its combined selection score at pick time was {score:.4g} (sum of strength "
                "x log objective over the selection strategies)."
            )
        if n_pre:
            details.append(
                f"{n_pre:,} samples preselected from the datapool counted as already chosen."
            )
        return Explanation(f"Selected: pick {rank:,} of {k:,}", details, related)

    def _explain_removed(self, row: int) -> Explanation:
        ix = self._index
        k = int(self._picks.size)
        related: list[tuple[str, int]] = []
        details: list[str] = []
        filt = int(ix.removed_by[row])
        if filt >= 0:
            description = self._filters[filt] if filt < len(self._filters) else "a THRESHOLD"
            details.append(
                f"The filter {description} removed it before any sample was picked; "
                "filtered samples cannot be selected."
            )
            headline = "Removed by a filter"
        else:
            headline = "Removed: not picked"
        nearest = self._nearest(row, self._chosen_rows)
        if nearest is None:
            details.append(f"The selection chose no sample{self._stop_text()}.")
            return Explanation("Removed: nothing was selected", details, related)
        near_row, distance = nearest
        j = int(ix.row_sample[near_row])
        if j >= 0:
            related.append(("nearest selected sample", j))
        details.append(
            f"Its nearest selected sample is {self._name(near_row)}, {distance:.3f} away "
            f"({_DISTANCE})."
        )
        last = self._last_pick_distance()
        if filt < 0 and k and math.isfinite(last):
            if distance <= last + 1e-6:
                headline = "Removed: covered by a selected sample"
                details.append(
                    f"That is within {last:.3f}, the distance at which the last of the {k:,} "
                    "picks was made: picking this sample would have added less coverage than "
                    "the last pick did."
                )
            else:
                details.append(
                    f"That is more than {last:.3f}, the distance at which the last of the "
                    f"{k:,} picks was made: the selection's other strategies (e.g. typicality "
                    "or weights) ranked it below the picks."
                )
        statistics = self.report.get("statistics")
        coverage = (
            statistics.get("removed_to_selected_distance") if isinstance(statistics, dict) else None
        )
        if isinstance(coverage, dict) and isinstance(coverage.get("max"), int | float):
            sampled = "a sample of " if coverage.get("sampled") else ""
            n_q = int(coverage.get("n_queries") or 0)
            details.append(
                f"Across {sampled}{n_q:,} removed samples, the distance to the nearest selected "
                f"sample has median {float(coverage.get('median') or 0.0):.3f} and maximum "
                f"{float(coverage['max']):.3f} (from the report)."
            )
        stop = self._stop_text()
        if stop:
            details.append(f"Selection stopped{stop}.")
        return Explanation(headline, details, related)

    def _sequence_length(self) -> int:
        """``selected_sequence_length`` of the run's config (1 when absent)."""
        value = _run_config(self.report).get("selected_sequence_length")
        return value if isinstance(value, int) and value > 1 else 1

    def _stop_text(self) -> str:
        selection = self.report.get("selection")
        reason = selection.get("stop_reason") if isinstance(selection, dict) else None
        k = int(self._picks.size)
        texts = {
            "n_samples": f" after {k:,} picks: the requested number of samples was reached",
            "min_distance": (
                f" after {k:,} picks: no candidate was farther than min_distance from the selection"
            ),
            "exhausted": f" after {k:,} picks: every candidate was picked or filtered",
        }
        return texts.get(str(reason), "")

    def _explain_object_level(self, sample: Sample) -> Explanation:
        ix = self._index
        crops = np.flatnonzero(ix.row_sample == sample.index)
        picked = crops[ix.selected[crops]]
        ranks = sorted(int(r) for r in ix.rank[picked] if r > 0)
        base = f"This run selected among the object crops of task {self._task!r}, not whole images"
        if crops.size == 0:
            return Explanation(
                "Removed: no object crop",
                [f"{base}; this image had no box of that task, so nothing of it could be picked."],
                [],
            )
        if picked.size:
            shown = ", ".join(f"#{r:,}" for r in ranks[:10]) + (", ..." if len(ranks) > 10 else "")
            return Explanation(
                f"Selected: {picked.size} of its {crops.size} object crops",
                [
                    f"{base}: {picked.size} of the {crops.size} crops of this image were "
                    f"selected"
                    + (f" (picks {shown} of {int(self._picks.size):,})." if ranks else ".")
                ],
                [],
            )
        return Explanation(
            f"Removed: none of its {crops.size} object crops was selected",
            [f"{base}: none of the {crops.size} crops of this image was selected."],
            [],
        )

    # ----------------------------------------------------------------- neighbours

    def neighbours(self, index: int, k: int = 8) -> list[Neighbour]:
        """The ``k`` nearest samples among all candidates (exact, itself excluded), nearest
        first; ``[]`` for a sample without an embedding and in object-level runs.

        The ``k`` most similar by cosine (:func:`selfsup.utils.vectors.knn`, exact, equal
        similarities by row), about O(R D), then sorted by their L2 distance, equal distances
        by row. For unit rows both orders agree; a zero row (cosine 0 with everything) ranks
        by its cosine, as it always did.
        """
        sample = self.sample(index)
        if self._task or sample.embedding_row is None or k <= 0:
            return []
        emb = self._index.embeddings
        row = sample.embedding_row
        found = knn(
            emb[row : row + 1],
            emb,
            k,
            metric="cosine",
            support_rows=(
                np.flatnonzero(self._index.row_sample >= 0) if self._no_sample_rows.size else None
            ),
            exclude_self=True,
            query_ids=np.array([row]),
            backend="numpy",
            distance_dtype=np.float32,
            unit_rows=True,
        )
        top = found.indices[0][found.indices[0] >= 0]
        distances = np.linalg.norm(emb[top] - emb[row], axis=1)
        order = np.lexsort((top, distances))
        return [
            Neighbour(self._list.make(int(self._index.row_sample[top[i]])), float(distances[i]))
            for i in order
        ]

    # ----------------------------------------------------------------- maps

    def projection_methods(self) -> list[str]:
        """The maps this run offers: ``"pca"`` (3+ candidates, 2+ dimensions) and ``"umap"``
        (when the report drew one); none for object-level runs."""
        if self._task:
            return []
        methods: list[str] = []
        emb = self._index.embeddings
        if emb.shape[0] - self._no_sample_rows.size >= 3 and emb.shape[1] >= 2:
            methods.append("pca")
        if self._index.umap_rows.size:
            methods.append("umap")
        return methods

    def projection(self, method: str) -> Projection:
        """The 2-D map ``method`` (``"pca"`` or ``"umap"``).

        PCA: of all candidate embeddings, by SVD of the centred matrix (fitted on a seeded
        subsample of 20,000 when there are more, then applied to all); made once and cached.
        UMAP: the report's points from ``data/projections.csv`` (a subsample).

        Raises:
            KeyError: the method is unknown or not available for this run.
        """
        if method not in self.projection_methods():
            raise KeyError(
                f"no {method!r} map for this run; available: "
                f"{', '.join(self.projection_methods()) or 'none'}"
            )
        with self._lock:
            cached = self._projections.get(method)
            if cached is None:
                cached = self._pca() if method == "pca" else self._umap()
                self._projections[method] = cached
        return cached

    def _pca(self) -> Projection:
        ix = self._index
        keep = np.flatnonzero(ix.row_sample >= 0)
        path = self._cache / "pca.npz"
        xy: NDArray[np.float32] | None = None
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as data:
                    xy = np.asarray(data["xy"], dtype=np.float32)
                    ratio = np.asarray(data["ratio"], dtype=np.float64)
                    n_fit = int(data["n_fit"])
                if xy.shape != (keep.size, 2):
                    xy = None
            except (OSError, ValueError, KeyError) as exc:
                logger.warning("ignoring the unreadable PCA cache %s (%s)", path, exc)
                xy = None
        if xy is None:
            xy, ratio, n_fit = _pca_2d(ix.embeddings[keep])
            try:
                with atomic_open_bytes(path) as handle:
                    np.savez(handle, xy=xy, ratio=ratio, n_fit=np.int64(n_fit))
            except OSError as exc:
                logger.warning("cannot cache the PCA map in %s (%s)", path, exc)
        n = int(keep.size)
        fitted = "" if n_fit >= n else f", fitted on {n_fit:,} of them"
        description = (
            f"PCA of all {n:,} embeddings (PC1 {ratio[0]:.0%}, PC2 {ratio[1]:.0%} of the "
            f"variance{fitted})"
        )
        return Projection("pca", description, ix.row_sample[keep].astype(np.int64), xy)

    def _umap(self) -> Projection:
        ix = self._index
        samples = ix.row_sample[ix.umap_rows]
        keep = samples >= 0
        m = int(np.count_nonzero(keep))
        n = int(ix.embeddings.shape[0])
        k = ix.meta.get("umap_k")
        of = f"all {n:,} samples" if m >= n else f"{m:,} of {n:,} samples"
        return Projection(
            "umap",
            f"UMAP (n_neighbors={k}) of {of}, from the report",
            samples[keep].astype(np.int64),
            ix.umap_xy[keep],
        )

    # ----------------------------------------------------------------- files

    def files(self) -> list[OutputFile]:
        """Every regular file of the folder except hidden ones and ``.selfsup/``; report
        files first, then by path. Links are listed only where :meth:`resolve_file` would
        serve them."""
        found: list[OutputFile] = []
        for dirpath, dirnames, filenames in os.walk(self._root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel_dir = Path(dirpath).relative_to(self._root)
            for name in filenames:
                if name.startswith("."):
                    continue
                relative = (rel_dir / name).as_posix()
                try:
                    path = self.resolve_file(relative)
                    size = path.stat().st_size
                except (FileNotFoundError, OSError):
                    continue
                found.append(OutputFile(relative, size, _kind(relative)))
        order = {runfolder.REPORT_PDF: 0, runfolder.REPORT_JSON: 1}
        return sorted(found, key=lambda f: (order.get(f.path, 2), f.path))

    def resolve_file(self, relative: str) -> Path:
        """The real path of the regular file ``relative`` inside the folder.

        Raises:
            FileNotFoundError: for anything else: a spelling that could leave the folder
                (``..``, absolute, backslash, NUL, empty or hidden parts, ``.selfsup``; see
                :func:`selfsup.web.sources.check_relative_path`), a symbolic link resolving
                outside the folder or into a hidden part of it, a folder, or nothing there.
                Never returns a path outside the folder.
        """
        parts = check_relative_path(relative)
        try:
            path = self._root.joinpath(*parts).resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
            raise FileNotFoundError(f"{relative!r} is no file of this run ({exc})") from None
        if not path.is_relative_to(self._root):
            raise FileNotFoundError(f"{relative!r} links outside the run folder")
        inner = path.relative_to(self._root).parts
        if any(part.startswith(".") for part in inner):
            raise FileNotFoundError(f"{relative!r} links to a hidden file of the run folder")
        if not path.is_file():
            raise FileNotFoundError(f"{relative!r} is not a regular file of this run")
        return path


def _pca_2d(x: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float64], int]:
    """First two principal components of the rows of ``x`` (N, D), N >= 3, D >= 2.

    Fitted on all rows, or on a seeded subsample of :data:`_PCA_FIT_ROWS` when N is larger;
    every row is projected. Signs are fixed so that each component's largest loading is
    positive (the same data gives the same picture).

    Returns:
        ``(xy (N, 2) float32, explained variance ratio (2,) of the fit set, rows fitted)``.
    """
    result = pca(x, 2, solver="svd", max_fit_rows=_PCA_FIT_ROWS, seed=_PCA_SEED)
    return (
        result.coords.astype(np.float32, copy=False),
        result.explained_variance_ratio,
        result.n_fit,
    )


def _remove_stale(cache: Path, prefix: str, keep: str) -> None:
    """Delete this folder's cache folders (``prefix-*``) of earlier versions of its files."""
    try:
        entries = list(cache.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(prefix + "-") and entry.name != keep and entry.is_dir():
            with contextlib.suppress(OSError):
                shutil.rmtree(entry)
