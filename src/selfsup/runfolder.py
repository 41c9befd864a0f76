"""The run folder of ``selfsup run``: every path and file format of a run, in one place.

A run folder holds (paths relative to it; each is a constant of this module and an attribute
of :class:`RunFolder`)::

    .selfsup/run-folder                  marker, written first (MARKER)
    .selfsup/state.json                  fingerprints of finished steps, for reruns (STATE)
    .selfsup/training/                   the trainer's working folder (TRAINING_DIR)
    config/config.yaml                   the resolved configuration (CONFIG_YAML)
    config/overrides.yaml                the command-line overrides, one YAML list item each
    data/manifest.jsonl                  every sample (owned by selfsup.curation.manifest)
    data/embeddings.csv                  embeddings of the usable samples (selfsup.utils.io)
    data/embeddings.parquet/             the same as Parquet shards part-NNNNNN.parquet, written
                                         by lightly.embedding.engine=ray only
                                         (selfsup.embedding.ray_engine)
    data/normalized_embeddings.csv       the same, L2-normalised: the selection candidates
    data/selected_embeddings.csv         embeddings of the picks, in pick order
    data/selection.csv                   per candidate: picked, rank, distance, filter, ...
    data/projections.csv                 the report's 2-D scatter coordinates
    data/quality.csv                     image-quality scores per usable sample
                                         (selfsup.curation.quality)
    data/clean_filenames.txt             the samples that passed the check, one per line
                                         (enable_corruptness_check=true only)
    data/al_score_embeddings.csv         embeddings.csv plus one column per active-learning
                                         score read by the selection (only then)
    data/frames/, data/crops/<task>/     extracted frames, object crops (optional)
    filenames/corrupt_filenames.txt      filename<TAB>reason<TAB>detail
    filenames/duplicate_filenames.txt    filename<TAB>kept filename
    filenames/near_duplicate_filenames.txt   group_id<TAB>filename<TAB>kept<TAB>distance
                                         (selfsup.curation.near_duplicates)
    filenames/sampled_filenames_excluding_datapool.txt   picks, in pick order
    filenames/removed_filenames.txt      candidates not picked
    filenames/quality_issues.txt         filename<TAB>issue<TAB>score<TAB>threshold
    plots/*.png                          the report's plots
    report.pdf                           the report
    report.json                          every value of the report, written last
    tags.json                            tags given to samples in the web app (TAGS_JSON)

Formats owned elsewhere are delegated, not re-implemented: the manifest and the
tab-separated filename tables to :mod:`selfsup.curation.manifest`, embeddings CSVs to
:mod:`selfsup.utils.io`. Every write is atomic (:mod:`selfsup.utils.atomic`).

Versions and older folders
    The marker and ``report.json`` carry ``format`` and ``version``. Readers accept every
    older shape a released selfsup wrote:

    * layout 0 (the first runs): no marker, no ``data/selection.csv`` and no
      ``data/projections.csv``; :meth:`RunFolder.read_selection` and
      :meth:`RunFolder.read_projections` return ``None`` and a reader derives the selection
      from the two filename lists (:meth:`RunFolder.selection_from_lists`);
    * layout 0 with ``selection.csv`` and ``projections.csv`` (runs before the marker);
    * layout 1: the marker ``{"format": "selfsup-run-folder", "version": 1}``.

    ``report.json`` has been ``{"format": "selfsup-report", "version": 1, ...}`` since the
    first run; ``tags.json`` is ``{"format": "selfsup-tags", "version": 1, "tags": {...}}``.
    A newer version than this selfsup knows is refused with a clear error.

This module imports neither torch nor the pipeline: the web app and the server read run
folders with it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, overload

import numpy as np
from numpy.typing import NDArray

from selfsup.curation import manifest as _manifest
from selfsup.curation import quality as _quality
from selfsup.data.files import RUN_MARKER, is_run_folder
from selfsup.errors import DataError
from selfsup.utils import io as _io
from selfsup.utils.atomic import atomic_open_text, atomic_write_text
from selfsup.utils.names import NAME_ERRORS, dumps_json

__all__ = [
    "CONFIG_YAML",
    "CORRUPT_FILENAMES",
    "CROPS_DIR",
    "DATA_DIR",
    "DUPLICATE_FILENAMES",
    "EMBEDDINGS",
    "EMBEDDINGS_PARQUET",
    "FRAMES_DIR",
    "MANIFEST",
    "MARKER",
    "NEAR_DUPLICATE_FILENAMES",
    "NORMALIZED_EMBEDDINGS",
    "OVERRIDES_YAML",
    "PLOTS_DIR",
    "PROJECTIONS_CSV",
    "QUALITY_CSV",
    "QUALITY_ISSUES",
    "REMOVED_FILENAMES",
    "REPORT_FORMAT",
    "REPORT_JSON",
    "REPORT_PDF",
    "REPORT_VERSION",
    "RUN_FOLDER_FORMAT",
    "RUN_FOLDER_VERSION",
    "RUN_MARKER_TEXT",
    "SAMPLED_FILENAMES",
    "SELECTED_EMBEDDINGS",
    "SELECTION_COLUMNS",
    "SELECTION_CSV",
    "STATE",
    "TAGS_FORMAT",
    "TAGS_JSON",
    "TAGS_VERSION",
    "TRAINING_DIR",
    "Projections",
    "RunFolder",
    "SelectionTable",
]

# --------------------------------------------------------------------------- paths (relative)

MARKER: Final = RUN_MARKER
STATE: Final = ".selfsup/state.json"
TRAINING_DIR: Final = ".selfsup/training"
CONFIG_YAML: Final = "config/config.yaml"
OVERRIDES_YAML: Final = "config/overrides.yaml"
DATA_DIR: Final = "data"
MANIFEST: Final = "data/manifest.jsonl"
EMBEDDINGS: Final = "data/embeddings.csv"
EMBEDDINGS_PARQUET: Final = "data/embeddings.parquet"
NORMALIZED_EMBEDDINGS: Final = "data/normalized_embeddings.csv"
SELECTED_EMBEDDINGS: Final = "data/selected_embeddings.csv"
SELECTION_CSV: Final = "data/selection.csv"
PROJECTIONS_CSV: Final = "data/projections.csv"
QUALITY_CSV: Final = "data/quality.csv"
CLEAN_FILENAMES: Final = "data/clean_filenames.txt"
AL_SCORE_EMBEDDINGS: Final = "data/al_score_embeddings.csv"
FRAMES_DIR: Final = "data/frames"
CROPS_DIR: Final = "data/crops"
CORRUPT_FILENAMES: Final = "filenames/corrupt_filenames.txt"
DUPLICATE_FILENAMES: Final = "filenames/duplicate_filenames.txt"
NEAR_DUPLICATE_FILENAMES: Final = "filenames/near_duplicate_filenames.txt"
SAMPLED_FILENAMES: Final = "filenames/sampled_filenames_excluding_datapool.txt"
REMOVED_FILENAMES: Final = "filenames/removed_filenames.txt"
QUALITY_ISSUES: Final = "filenames/quality_issues.txt"
PLOTS_DIR: Final = "plots"
REPORT_PDF: Final = "report.pdf"
REPORT_JSON: Final = "report.json"
TAGS_JSON: Final = "tags.json"

# --------------------------------------------------------------------------- format versions

RUN_FOLDER_FORMAT: Final = "selfsup-run-folder"
RUN_FOLDER_VERSION: Final = 1
#: The marker's exact text (one JSON line).
RUN_MARKER_TEXT: Final = f'{{"format": "{RUN_FOLDER_FORMAT}", "version": {RUN_FOLDER_VERSION}}}\n'

REPORT_FORMAT: Final = "selfsup-report"
REPORT_VERSION: Final = 1

TAGS_FORMAT: Final = "selfsup-tags"
TAGS_VERSION: Final = 1

#: Header of ``data/selection.csv`` (see :meth:`RunFolder.write_selection`).
SELECTION_COLUMNS: Final = (
    "filename",
    "selected",
    "rank",
    "pick_distance",
    "score",
    "removed_by",
    "preselected",
    "sample",
)


# --------------------------------------------------------------------------- typed contents


@dataclass(frozen=True)
class SelectionTable:
    """The contents of ``data/selection.csv``: one entry per candidate, in candidate order.

    Attributes:
        filenames: ``(N,)`` candidate names (rows of ``normalized_embeddings.csv``).
        selected: ``(N,)`` bool, picked by this run or preselected by a datapool.
        rank: ``(N,)`` int64, 1-based pick position; 0 when not picked by this run.
        pick_distance: ``(N,)`` float64, distance at pick time; NaN when absent.
        score: ``(N,)`` float64, combined score at pick time; NaN when absent.
        removed_by: ``(N,)`` int64 index into ``filters``; -1 for none.
        filters: Descriptions of the THRESHOLD filters, in order of first appearance.
        preselected: ``(N,)`` bool, chosen by an earlier run (datapool).
        samples: ``(N,)`` manifest sample of each row (the filename itself but for crops).
    """

    filenames: list[str]
    selected: NDArray[np.bool_]
    rank: NDArray[np.int64]
    pick_distance: NDArray[np.float64]
    score: NDArray[np.float64]
    removed_by: NDArray[np.int64]
    filters: list[str]
    preselected: NDArray[np.bool_]
    samples: list[str]


@dataclass(frozen=True)
class Projections:
    """The contents of ``data/projections.csv``.

    Attributes:
        filenames: ``(M,)`` names of the drawn samples (ascending embedding row).
        coordinates: ``"pca"`` / ``"umap_k{K}"`` -> ``(M, 2)`` float64 coordinates.
    """

    filenames: list[str]
    coordinates: dict[str, NDArray[np.float64]]


def _csv_float(value: float, digits: int) -> str:
    """A float for a table: empty for NaN, ``inf``/``-inf``, else ``%.{digits}g``."""
    if math.isnan(value):
        return ""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


def _float_cell(text: str, path: Path, line: int, column: str) -> float:
    if not text:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{path}, line {line}, column {column}: {text!r} is not a number") from None


def _check_version(data: Any, path: Path, fmt: str, newest: int) -> int:
    """The ``version`` of a ``{"format": fmt, "version": n}`` object; errors name the file."""
    if not isinstance(data, dict) or data.get("format") != fmt:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise DataError(
            f"{path}: format {got!r} is not {fmt!r}; expected a JSON object "
            f'{{"format": "{fmt}", "version": <1..{newest}>, ...}}'
        )
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= newest:
        raise DataError(
            f"{path}: {fmt} version {version!r} is not supported; this selfsup reads "
            f"versions 1 to {newest}"
        )
    return version


# --------------------------------------------------------------------------- the folder


class _At:
    """A path attribute of :class:`RunFolder`: ``folder.<attribute>`` is
    ``folder.path / relative`` (read-only)."""

    __slots__ = ("relative",)

    def __init__(self, relative: str) -> None:
        self.relative = relative

    @overload
    def __get__(self, folder: None, owner: type[Any]) -> _At: ...

    @overload
    def __get__(self, folder: RunFolder, owner: type[Any]) -> Path: ...

    def __get__(self, folder: RunFolder | None, owner: type[Any]) -> Path | _At:
        return self if folder is None else folder.path / self.relative


class RunFolder:
    """The output folder of one run: its paths, and readers and writers of its files.

    Args:
        path: The folder (need not exist yet).
    """

    __slots__ = ("path",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunFolder) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __truediv__(self, relative: str) -> Path:
        return self.path / relative

    # ---- paths: ``folder.<name>`` is ``folder.path / <NAME>`` (the constants above)

    marker = _At(MARKER)
    state_file = _At(STATE)
    training_dir = _At(TRAINING_DIR)
    config_yaml = _At(CONFIG_YAML)
    overrides_yaml = _At(OVERRIDES_YAML)
    data_dir = _At(DATA_DIR)
    manifest = _At(MANIFEST)
    embeddings = _At(EMBEDDINGS)
    embeddings_parquet = _At(EMBEDDINGS_PARQUET)
    normalized_embeddings = _At(NORMALIZED_EMBEDDINGS)
    selected_embeddings = _At(SELECTED_EMBEDDINGS)
    selection_csv = _At(SELECTION_CSV)
    projections_csv = _At(PROJECTIONS_CSV)
    quality_csv = _At(QUALITY_CSV)
    clean_filenames = _At(CLEAN_FILENAMES)
    al_score_embeddings = _At(AL_SCORE_EMBEDDINGS)
    quality_issues = _At(QUALITY_ISSUES)
    frames_dir = _At(FRAMES_DIR)
    corrupt_filenames = _At(CORRUPT_FILENAMES)
    duplicate_filenames = _At(DUPLICATE_FILENAMES)
    near_duplicate_filenames = _At(NEAR_DUPLICATE_FILENAMES)
    sampled_filenames = _At(SAMPLED_FILENAMES)
    removed_filenames = _At(REMOVED_FILENAMES)
    plots_dir = _At(PLOTS_DIR)
    report_pdf = _At(REPORT_PDF)
    report_json = _At(REPORT_JSON)
    tags_json = _At(TAGS_JSON)

    def crops_dir(self, task: str) -> Path:
        """Where the crops of object-detection task ``task`` that were picked are saved."""
        return self.path / CROPS_DIR / task

    def plot(self, name: str) -> Path:
        """``plots/<name>``."""
        return self.path / PLOTS_DIR / name

    # ---- marker and layout

    def is_run_folder(self) -> bool:
        """True for a run folder of any layout (:func:`selfsup.data.files.is_run_folder`)."""
        return is_run_folder(self.path)

    def write_marker(self) -> None:
        """Write the marker (first, before any other file of a run)."""
        atomic_write_text(self.marker, RUN_MARKER_TEXT)

    def layout_version(self) -> int:
        """The marker's version; 0 for a folder written before the marker existed.

        Raises:
            DataError: the marker is unreadable, of another format, or newer than this
                selfsup reads.
        """
        try:
            text = self.marker.read_text(encoding="utf-8")
        except FileNotFoundError:
            return 0
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{self.marker}: not JSON ({exc.msg}); expected {RUN_MARKER_TEXT}"
            ) from exc
        return _check_version(data, self.marker, RUN_FOLDER_FORMAT, RUN_FOLDER_VERSION)

    # ---- config

    def write_config(self, config_yaml: str, overrides: Sequence[str]) -> None:
        """``config/config.yaml`` (the resolved config as YAML) and ``config/overrides.yaml``
        (each override as a YAML list item, verbatim)."""
        atomic_write_text(self.config_yaml, config_yaml)
        atomic_write_text(self.overrides_yaml, "".join(f"- {o}\n" for o in overrides))

    def read_overrides(self) -> list[str]:
        """The overrides as :meth:`write_config` wrote them (``[]`` when the file is empty)."""
        text = self.overrides_yaml.read_text(encoding="utf-8")
        out: list[str] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.startswith("- "):
                raise DataError(
                    f"{self.overrides_yaml}, line {number}: {line!r} is not '- <override>'"
                )
            out.append(line[2:])
        return out

    # ---- state of finished steps

    def read_state(self) -> dict[str, Any]:
        """``.selfsup/state.json``; ``{}`` when missing or broken (the work is only redone)."""
        try:
            loaded = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def write_state(self, state: Mapping[str, Any]) -> None:
        atomic_write_text(self.state_file, json.dumps(state, indent=2, sort_keys=True))

    # ---- manifest and filename tables (selfsup.curation.manifest owns the formats)

    def read_manifest(self) -> _manifest.Manifest:
        """The manifest (:func:`selfsup.curation.manifest.read_manifest`)."""
        return _manifest.read_manifest(self.manifest)

    def write_manifest(self, records: Iterable[_manifest.SampleRecord]) -> None:
        _manifest.write_manifest(self.manifest, records)

    def write_corrupt_filenames(self, records: Iterable[_manifest.SampleRecord]) -> int:
        return _manifest.write_corrupt_filenames(self.corrupt_filenames, records)

    def write_duplicate_filenames(self, records: Iterable[_manifest.SampleRecord]) -> int:
        return _manifest.write_duplicate_filenames(self.duplicate_filenames, records)

    def write_quality(self, assessment: _quality.QualityAssessment) -> int:
        """``data/quality.csv`` and ``filenames/quality_issues.txt`` (format owned by
        :mod:`selfsup.curation.quality`); returns the number of issue lines."""
        _quality.write_quality_csv(self.quality_csv, assessment)
        return _quality.write_quality_issues(self.quality_issues, assessment)

    def write_clean_filenames(self, records: Iterable[_manifest.SampleRecord]) -> int:
        """``data/clean_filenames.txt``: the clean version of the dataset (lightly's worker
        writes one when ``enable_corruptness_check=true``), the samples that passed the
        check (status ``ok``: neither corrupt nor a removed exact duplicate), one name per
        line in manifest order; returns how many."""
        names = [r.filename for r in records if r.status == "ok"]
        self.write_filename_list(self.clean_filenames, names)
        return len(names)

    def write_al_score_embeddings(
        self,
        names: Sequence[str],
        embeddings: NDArray[np.floating[Any]],
        labels: Sequence[int] | NDArray[np.integer[Any]],
        scores: Mapping[str, NDArray[np.float64]],
    ) -> None:
        """``data/al_score_embeddings.csv``: ``data/embeddings.csv``'s format (filenames,
        ``embedding_*``, labels; :func:`selfsup.utils.io.save_embeddings`) followed by one
        column per active-learning score the selection read, named ``<task>.<score>``
        (``scores`` keys), values as ``repr`` of the float. Columns after ``labels`` are
        lightly's "additional columns": :func:`selfsup.utils.io.check_embeddings` with
        ``remove_additional_columns=True`` turns the file into a plain embeddings CSV.

        Raises:
            DataError: a score has not one value per row, or is not finite.
        """
        keys = sorted(scores)
        for key in keys:
            values = np.asarray(scores[key], dtype=np.float64)
            if values.shape != (len(names),) or not np.isfinite(values).all():
                raise DataError(
                    f"{self.al_score_embeddings}: score {key!r} must be {len(names)} finite "
                    f"values, one per row, got shape {values.shape}"
                )
        self.al_score_embeddings.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.al_score_embeddings.parent) as tmp:
            plain = Path(tmp) / "embeddings.csv"
            _io.save_embeddings(plain, embeddings, labels, names)
            lines = plain.read_text(encoding="utf-8", errors=NAME_ERRORS).splitlines()
        cells = io.StringIO()
        csv.writer(cells, lineterminator="").writerow(keys)  # RFC 4180 quoting of names
        header = cells.getvalue()
        rows = [",".join(repr(float(scores[k][i])) for k in keys) for i in range(len(names))]
        text = "".join(
            f"{line},{extra}\n" for line, extra in zip(lines, [header, *rows], strict=True)
        )
        atomic_write_text(self.al_score_embeddings, text, errors=NAME_ERRORS)

    @staticmethod
    def write_filename_list(path: Path, names: Sequence[str]) -> None:
        """One name per line, each as its exact bytes (:mod:`selfsup.utils.names`)."""
        atomic_write_text(path, "".join(f"{n}\n" for n in names), errors=NAME_ERRORS)

    @staticmethod
    def read_filename_list(path: Path) -> list[str]:
        """The names (first column) of a filename list or table."""
        return _manifest.read_filename_list(path)

    # ---- embeddings (selfsup.utils.io owns the format)

    @staticmethod
    def write_embeddings(
        path: Path,
        embeddings: NDArray[Any],
        labels: Sequence[int] | NDArray[np.integer[Any]],
        filenames: Sequence[str],
    ) -> None:
        """One of the embeddings CSVs (:func:`selfsup.utils.io.save_embeddings`)."""
        _io.save_embeddings(path, embeddings, labels, filenames)

    @staticmethod
    def read_embeddings(path: Path) -> tuple[NDArray[np.float32], list[int], list[str]]:
        """Embeddings ``(N, D)``, labels and names (:func:`selfsup.utils.io.load_embeddings`)."""
        return _io.load_embeddings(path)

    # ---- selection.csv

    def write_selection(
        self,
        names: Sequence[str],
        indices: NDArray[np.integer[Any]],
        distances: NDArray[np.floating[Any]],
        scores: NDArray[np.floating[Any]],
        removed_by: NDArray[np.integer[Any]],
        filters: Sequence[str],
        preselected: NDArray[np.integer[Any]],
        samples: Sequence[str] | None = None,
    ) -> None:
        """Write ``data/selection.csv`` (:func:`write_selection_csv`)."""
        write_selection_csv(
            self.selection_csv,
            names,
            indices,
            distances,
            scores,
            removed_by,
            filters,
            preselected,
            samples,
        )

    def read_selection(self) -> SelectionTable | None:
        """``data/selection.csv``; ``None`` for a folder written before it existed.

        Columns other than ``filename``, ``selected`` and ``rank`` may be absent (read as
        empty); the ``sample`` column defaults to the filename.

        Raises:
            DataError: a malformed header, row or cell (named by file, line and column).
        """
        path = self.selection_csv
        if not path.is_file():
            return None
        return read_selection_csv(path)

    def selection_from_lists(self) -> tuple[list[str], list[str]]:
        """(picked in pick order, removed) from the two filename lists: what a folder without
        ``selection.csv`` says about the selection."""
        return (
            self.read_filename_list(self.sampled_filenames),
            self.read_filename_list(self.removed_filenames),
        )

    # ---- projections.csv

    def write_projections(
        self,
        filenames: Sequence[str],
        rows: NDArray[np.intp],
        coordinates: Mapping[str, NDArray[np.float64]],
    ) -> None:
        """``data/projections.csv``: header ``filename,pca_x,pca_y,umap_k{K}_x,umap_k{K}_y``
        (pca first, then the others sorted), one row per drawn sample ``filenames[rows[i]]``
        with ``coordinates[key][i]`` at 7 significant digits; names RFC 4180 quoted. With no
        coordinates the file is not written and a stale one is removed."""
        path = self.projections_csv
        if not coordinates:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        keys = sorted(coordinates, key=lambda key: (key != "pca", key))
        header = ["filename"] + [f"{key}_{axis}" for key in keys for axis in ("x", "y")]
        with atomic_open_text(path, errors=NAME_ERRORS) as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            for i, row in enumerate(rows.tolist()):
                values = [
                    f"{float(coordinates[key][i, axis]):.7g}" for key in keys for axis in (0, 1)
                ]
                writer.writerow([filenames[row], *values])

    def read_projections(self) -> Projections | None:
        """``data/projections.csv``; ``None`` when absent (older folders, or nothing drawn).

        Raises:
            DataError: a header without ``filename`` or x/y column pairs, or a bad cell.
        """
        path = self.projections_csv
        if not path.is_file():
            return None
        with open(path, encoding="utf-8", errors=NAME_ERRORS, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or header[0] != "filename" or len(header) % 2 != 1:
                raise DataError(
                    f"{path}: the header must be filename followed by <key>_x,<key>_y pairs; "
                    f"got {header!r}"
                )
            keys: list[str] = []
            for x, y in zip(header[1::2], header[2::2], strict=True):
                if not (x.endswith("_x") and y == x[:-2] + "_y"):
                    raise DataError(f"{path}: columns {x!r}, {y!r} are no <key>_x,<key>_y pair")
                keys.append(x[:-2])
            names: list[str] = []
            values: list[list[float]] = []
            for line, cells in enumerate(reader, start=2):
                if len(cells) != len(header):
                    raise DataError(
                        f"{path}, line {line}: {len(cells)} cells for {len(header)} columns"
                    )
                names.append(cells[0])
                values.append(
                    [_float_cell(c, path, line, header[j + 1]) for j, c in enumerate(cells[1:])]
                )
        table = np.asarray(values, dtype=np.float64).reshape(len(names), 2 * len(keys))
        coords = {key: table[:, 2 * j : 2 * j + 2].copy() for j, key in enumerate(keys)}
        return Projections(filenames=names, coordinates=coords)

    # ---- report

    def remove_report(self) -> None:
        """Delete ``report.json`` (a rerun does so first: its presence means "finished")."""
        self.report_json.unlink(missing_ok=True)

    def write_report(self, report: Mapping[str, Any]) -> None:
        """``report.json``: indented JSON (names as exact bytes), no NaN, one final newline."""
        text = dumps_json(report, indent=2, allow_nan=False)
        atomic_write_text(self.report_json, text + "\n")

    def read_report(self, strict: bool = True) -> dict[str, Any]:
        """``report.json`` of any version up to :data:`REPORT_VERSION`.

        Args:
            strict: With ``False``, a JSON object without ``version`` (and without
                ``format``, or with this one: a report written by hand or by a test, which
                the web app lists and opens) is read as it is; one that names another format
                or a version this selfsup does not read is still refused.

        Raises:
            FileNotFoundError: there is no report (the run has not finished).
            DataError: not JSON, not a selfsup report, or a newer version.
        """
        path = self.report_json
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{path} is not readable JSON ({exc}); expected a run report") from exc
        if (
            not strict
            and isinstance(data, dict)
            and data.get("format", REPORT_FORMAT) == REPORT_FORMAT
            and "version" not in data
        ):
            return data
        _check_version(data, path, REPORT_FORMAT, REPORT_VERSION)
        report: dict[str, Any] = data
        return report

    # ---- tags (written by the web app of ``selfsup view``)

    def read_tags(self) -> dict[str, list[str]]:
        """``tags.json``: tag -> sample names (sorted); ``{}`` when the folder has none.

        Raises:
            DataError: not JSON, not a tags file, a newer version, or a ``tags`` value that is
                not an object of lists of names (the message names the file and the key).
        """
        path = self.tags_json
        try:
            text = path.read_text(encoding="utf-8", errors=NAME_ERRORS)
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path} is not readable JSON ({exc.msg}); expected "
                f'{{"format": "{TAGS_FORMAT}", "version": {TAGS_VERSION}, "tags": {{...}}}}'
            ) from exc
        _check_version(data, path, TAGS_FORMAT, TAGS_VERSION)
        tags = data.get("tags", {})
        if not isinstance(tags, dict):
            raise DataError(f"{path}: 'tags' must be an object of tag -> list of sample names")
        out: dict[str, list[str]] = {}
        for tag, names in tags.items():
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise DataError(f"{path}: tags[{tag!r}] must be a list of sample names")
            out[tag] = sorted(set(names))
        return out

    def write_tags(self, tags: Mapping[str, Iterable[str]]) -> None:
        """``tags.json`` (atomically), tags and names sorted, names as exact bytes; tags
        without names are left out. The caller checks the tag names."""
        kept = {tag: sorted(set(names)) for tag, names in sorted(tags.items())}
        data = {
            "format": TAGS_FORMAT,
            "version": TAGS_VERSION,
            "tags": {tag: names for tag, names in kept.items() if names},
        }
        atomic_write_text(self.tags_json, dumps_json(data, indent=1) + "\n", errors=NAME_ERRORS)


# --------------------------------------------------------------------------- selection.csv


def write_selection_csv(
    path: str | os.PathLike[str],
    names: Sequence[str],
    indices: NDArray[np.integer[Any]],
    distances: NDArray[np.floating[Any]],
    scores: NDArray[np.floating[Any]],
    removed_by: NDArray[np.integer[Any]],
    filters: Sequence[str],
    preselected: NDArray[np.integer[Any]],
    samples: Sequence[str] | None = None,
) -> None:
    """Write ``data/selection.csv``: one row per selection candidate, in candidate order.

    Columns (header line first, RFC 4180 quoting of names, UTF-8; a name that is not UTF-8
    as its exact bytes, see :mod:`selfsup.utils.names`):

    ``filename``
        The candidate's name: the row's name in ``normalized_embeddings.csv`` (a sample, or
        an object crop in an object-level run).
    ``selected``
        ``1`` when the candidate is in this run's selection (new picks and datapool
        preselected rows alike), else ``0``.
    ``rank``
        1-based position in the pick order (``sampled_filenames_excluding_datapool.txt``);
        empty when not picked by this run.
    ``pick_distance``
        ``SelectionResult.distances`` of the pick: L2 distance (between L2-normalised
        embeddings) to the nearest sample chosen before it, i.e. the coverage radius at that
        moment; ``inf`` for a first pick with nothing chosen before; empty when not picked or
        not measured (NaN: the selection had no DIVERSITY strategy).
    ``score``
        Combined score ``sum_i strength_i * log objective_i`` at pick time; empty when not
        picked.
    ``removed_by``
        Description of the THRESHOLD filter that removed the candidate
        (``SelectionResult.filters``), empty if none.
    ``preselected``
        ``1`` for rows a datapool preselected (chosen by an earlier run), else ``0``.
    ``sample``
        The manifest sample the row belongs to: the filename itself, or for an object crop
        the image (or video frame) it was cut from.

    Floats use 9 significant digits (exact for float32 distances). Written atomically.

    Args:
        names: ``(N,)`` candidate names.
        indices: ``(k,)`` picked rows in pick order; ``distances``, ``scores``: ``(k,)``.
        removed_by: ``(N,)`` index into ``filters`` per row, ``-1`` for none.
        preselected: Rows chosen earlier (datapool).
        samples: ``(N,)`` manifest sample per row; defaults to ``names``.
    """
    n = len(names)
    order = np.asarray(indices, dtype=np.int64)
    dist = np.asarray(distances, dtype=np.float64)
    score = np.asarray(scores, dtype=np.float64)
    removed = np.asarray(removed_by, dtype=np.int64)
    pre = np.asarray(preselected, dtype=np.int64)
    if dist.shape != order.shape or score.shape != order.shape:
        raise ValueError(
            f"indices {order.shape}, distances {dist.shape} and scores {score.shape} must match"
        )
    if removed.shape != (n,):
        raise ValueError(f"removed_by has shape {removed.shape}, expected ({n},)")
    if samples is not None and len(samples) != n:
        raise ValueError(f"samples has {len(samples)} entries for {n} candidates")
    is_pre = np.zeros(n, dtype=bool)
    is_pre[pre] = True
    position = np.full(n, -1, dtype=np.int64)
    position[order] = np.arange(order.size)
    with atomic_open_text(path, errors=NAME_ERRORS) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(SELECTION_COLUMNS)
        for i in range(n):
            p = int(position[i])
            r = int(removed[i])
            writer.writerow(
                (
                    names[i],
                    "1" if p >= 0 or is_pre[i] else "0",
                    str(p + 1) if p >= 0 else "",
                    _csv_float(float(dist[p]), 9) if p >= 0 else "",
                    _csv_float(float(score[p]), 9) if p >= 0 else "",
                    filters[r] if r >= 0 else "",
                    "1" if is_pre[i] else "0",
                    names[i] if samples is None else samples[i],
                )
            )


def read_selection_csv(path: str | os.PathLike[str]) -> SelectionTable:
    """Read a ``selection.csv`` written by :func:`write_selection_csv`.

    Raises:
        DataError: a header without ``filename``, ``selected`` and ``rank``, a row with the
            wrong number of cells, or a cell that is not a number where one is expected.
    """
    source = Path(path)
    names: list[str] = []
    samples: list[str] = []
    selected: list[bool] = []
    rank: list[int] = []
    distance: list[float] = []
    score: list[float] = []
    removed_by: list[int] = []
    preselected: list[bool] = []
    filters: list[str] = []
    filter_of: dict[str, int] = {}
    with open(source, encoding="utf-8", errors=NAME_ERRORS, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        required = ("filename", "selected", "rank")
        if header is None or any(c not in header for c in required):
            raise DataError(
                f"{source}: the header must name the columns {', '.join(required)} (and "
                f"pick_distance, score, removed_by, preselected, sample); got {header!r}"
            )
        col = {name: i for i, name in enumerate(header)}

        def cell(cells: list[str], name: str) -> str:
            return cells[col[name]] if name in col else ""

        for line, cells in enumerate(reader, start=2):
            if len(cells) != len(header):
                raise DataError(
                    f"{source}, line {line}: {len(cells)} cells for {len(header)} columns"
                )
            name = cells[col["filename"]]
            names.append(name)
            samples.append(cell(cells, "sample") or name)
            selected.append(cells[col["selected"]] == "1")
            text = cells[col["rank"]]
            try:
                rank.append(int(text) if text else 0)
            except ValueError:
                raise DataError(
                    f"{source}, line {line}, column rank: {text!r} is not an integer"
                ) from None
            distance.append(
                _float_cell(cell(cells, "pick_distance"), source, line, "pick_distance")
            )
            score.append(_float_cell(cell(cells, "score"), source, line, "score"))
            text = cell(cells, "removed_by")
            if text and text not in filter_of:
                filter_of[text] = len(filters)
                filters.append(text)
            removed_by.append(filter_of[text] if text else -1)
            preselected.append(cell(cells, "preselected") == "1")
    return SelectionTable(
        filenames=names,
        selected=np.asarray(selected, dtype=bool),
        rank=np.asarray(rank, dtype=np.int64),
        pick_distance=np.asarray(distance, dtype=np.float64),
        score=np.asarray(score, dtype=np.float64),
        removed_by=np.asarray(removed_by, dtype=np.int64),
        filters=filters,
        preselected=np.asarray(preselected, dtype=bool),
        samples=samples,
    )
