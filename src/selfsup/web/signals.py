"""Every per-sample signal a run folder holds, for filtering, sorting and colouring the web app.

The grid filters by quality issue, near-duplicate membership, tag and status, and sorts by any
numeric score; the embedding map colours its points by the same signals. Nothing here is a
fixed list of scores: :func:`load_signals` discovers them from the files the run wrote, so a
score a later selfsup adds (a new column of ``data/quality.csv``, a new ``data/*.csv`` table
with a ``filename`` column) appears in the app without a change here.

Where the signals come from (paths owned by :mod:`selfsup.runfolder`)
    * ``data/quality.csv``: every column but ``filename`` is a score (``brightness``,
      ``blur``, ...; :mod:`selfsup.curation.quality` owns the format);
    * ``data/selection.csv`` (through :class:`~selfsup.web.outputs.RunOutputs`, which has
      read it): ``pick_rank`` (1 = first pick), ``pick_distance`` (distance to the picks
      before it, at pick time) and ``selection_score`` (the combined score of scored
      strategies), each only when at least one sample has a value;
    * the embeddings: ``nearest_pick_distance``, each candidate's L2 distance (between
      L2-normalised embeddings, 0 to 2) to its nearest *selected* sample other than itself,
      the coverage the selection leaves; computed on first use, not when the run opens
      (exact k-NN, O(R x S x D): seconds for 100,000 candidates and 10,000 picks);
    * any other ``data/<stem>.csv`` with a ``filename`` column (embedding tables, the
      manifest, the selection and the projections excepted): each column whose filled cells
      are all numbers becomes the score ``<stem>.<column>``;
    * ``filenames/quality_issues.txt``: the flagged (sample, issue) pairs; the issues are
      the names found in the file;
    * ``filenames/near_duplicate_filenames.txt``: near-duplicate groups (group id, member,
      kept member, distance to it; :mod:`selfsup.curation.near_duplicates`);
    * the sample names: ``folder``, a sample's top-level folder (the class of an
      ImageFolder-style input), the categorical "label" of the map.

A missing file means no such signal (older runs open unchanged); a malformed one is refused
with :class:`SignalsError` naming the file and line. Scores are per *sample* (manifest row):
NaN where a sample has none (a corrupt file has no quality scores).

This module imports numpy and the run-folder readers only (no torch, no server).
"""

from __future__ import annotations

import csv
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import NDArray

from selfsup import runfolder
from selfsup.curation.manifest import read_filename_table
from selfsup.curation.quality import read_quality_issues
from selfsup.errors import DataError
from selfsup.utils.names import NAME_ERRORS

if TYPE_CHECKING:
    from selfsup.web.outputs import RunOutputs

__all__ = [
    "DuplicateGroup",
    "RunSignals",
    "SignalsError",
    "discover_table_scores",
    "load_signals",
    "read_near_duplicate_groups",
]

#: data/*.csv files that are not score tables (their own readers own them).
_NOT_SCORE_TABLES: Final = frozenset(
    Path(p).name
    for p in (
        runfolder.EMBEDDINGS,
        runfolder.NORMALIZED_EMBEDDINGS,
        runfolder.SELECTED_EMBEDDINGS,
        runfolder.SELECTION_CSV,
        runfolder.PROJECTIONS_CSV,
        runfolder.QUALITY_CSV,
    )
)
#: A score table larger than this is not read by the web app (it would stall the page).
_MAX_TABLE_BYTES: Final = 256 << 20
_FILENAME_COLUMNS: Final = ("filename", "filenames")


class SignalsError(Exception):
    """A signal file of the run is malformed; the message names the file and the line."""


@dataclass(frozen=True)
class DuplicateGroup:
    """One near-duplicate group, as the web app shows it.

    Attributes:
        id: The group id of ``near_duplicate_filenames.txt``.
        members: ``(M,)`` sample indices, the kept member first (file order).
        distances: ``(M,)`` distance of each member to the kept one (0 for it): Hamming bits
            of the perceptual hashes, or an embedding distance (``by_embedding``).
        by_embedding: ``(M,)`` whether the distance is an embedding distance.
        kept: Sample index of the member the run keeps.
    """

    id: int
    members: NDArray[np.int64]
    distances: NDArray[np.float64]
    by_embedding: NDArray[np.bool_]
    kept: int


@dataclass(frozen=True)
class RunSignals:
    """The discovered signals of one run (module docstring).

    Attributes:
        scores: score name -> ``(N,)`` float64 per sample, NaN for none, for the scores
            read so far (use :meth:`values`: some are computed on first use).
        score_sources: score name -> the run file it comes from (for the page's tooltip),
            every score of the run in discovery order.
        issues: quality issue -> ``(N,)`` bool, flagged; issues in file order.
        groups: near-duplicate groups, in file order.
        group_of: ``(N,)`` int64 position in ``groups`` of each sample, -1 for none.
        folders: the distinct top-level folders, sorted (empty when no name has a folder).
        folder_code: ``(N,)`` int64 index into ``folders``, -1 for a name without a folder.
    """

    scores: dict[str, NDArray[np.float64]]
    score_sources: dict[str, str]
    issues: dict[str, NDArray[np.bool_]]
    groups: list[DuplicateGroup]
    group_of: NDArray[np.int64]
    folders: list[str]
    folder_code: NDArray[np.int64]
    lazy: dict[str, Callable[[], NDArray[np.float64]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def score_names(self) -> list[str]:
        """Every score of the run, in discovery order."""
        return list(self.score_sources)

    def values(self, score: str) -> NDArray[np.float64]:
        """``(N,)`` values of ``score`` per sample (NaN: none), computed on first use.

        Raises:
            KeyError: unknown score; the message lists the run's scores.
        """
        with self._lock:
            found = self.scores.get(score)
            if found is None and score in self.lazy:
                found = self.lazy.pop(score)()
                self.scores[score] = found
        if found is None:
            raise KeyError(
                f"this run has no score {score!r}; it has: {', '.join(self.score_names) or 'none'}"
            )
        return found

    def flagged(self, issue: str) -> NDArray[np.int64]:
        """Ascending sample indices flagged with ``issue``; ``issue == "any"``: with any.

        Raises:
            KeyError: the run has no such issue; the message lists those it has.
        """
        if issue == "any":
            if not self.issues:
                return np.zeros(0, dtype=np.int64)
            stacked = np.vstack(list(self.issues.values()))
            return np.flatnonzero(stacked.any(axis=0)).astype(np.int64)
        if issue not in self.issues:
            raise KeyError(
                f"this run flags no {issue!r} issue; it has: {', '.join(self.issues) or 'none'}"
            )
        return np.flatnonzero(self.issues[issue]).astype(np.int64)

    def issues_of(self, index: int) -> list[str]:
        """The issues flagged on sample ``index``."""
        return [name for name, flags in self.issues.items() if flags[index]]

    def sort(self, indices: NDArray[np.int64], score: str, descending: bool) -> NDArray[np.int64]:
        """``indices`` ordered by ``score`` (stable: equal scores keep their order); samples
        without a value come last either way.

        Raises:
            KeyError: unknown score; the message lists the run's scores.
        """
        values = self.values(score)[indices]
        missing = np.isnan(values)
        keyed = np.where(missing, 0.0, -values if descending else values)
        order = np.lexsort((keyed, missing))  # last key is primary: present first
        return indices[order]


def _to_float(cell: str) -> float | None:
    """The number in ``cell`` (empty: NaN), or ``None`` when it is no number."""
    text = cell.strip()
    if not text:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None


def discover_table_scores(
    path: Path, name_index: dict[str, int], n: int, prefix: str = ""
) -> dict[str, NDArray[np.float64]]:
    """The numeric columns of the CSV ``path`` (with a ``filename`` column) per sample.

    A column is a score when every filled cell parses as a float and at least one is
    filled; other columns (labels, names) are skipped. Rows whose name is no sample of the
    run (a crop of an object-level run) are ignored. Returns ``prefix + column`` ->
    ``(n,)`` float64, NaN where a sample has no row or an empty cell.

    Raises:
        SignalsError: no ``filename`` column, or a row with another number of cells.
    """
    with open(path, encoding="utf-8", errors=NAME_ERRORS, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return {}
        name_col = next((i for i, h in enumerate(header) if h in _FILENAME_COLUMNS), None)
        if name_col is None:
            raise SignalsError(f"{path}: no 'filename' column in the header {header!r}")
        columns = [i for i in range(len(header)) if i != name_col]
        values = {i: np.full(n, np.nan, dtype=np.float64) for i in columns}
        numeric = dict.fromkeys(columns, True)
        filled = dict.fromkeys(columns, False)
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise SignalsError(
                    f"{path}:{line}: {len(row)} cells, but the header has {len(header)}"
                )
            sample = name_index.get(row[name_col])
            for i in columns:
                if not numeric[i]:
                    continue
                value = _to_float(row[i])
                if value is None:
                    numeric[i] = False
                    continue
                if not math.isnan(value):
                    filled[i] = True
                if sample is not None:
                    values[i][sample] = value
    return {prefix + header[i]: values[i] for i in columns if numeric[i] and filled[i]}


def read_near_duplicate_groups(path: Path, name_index: dict[str, int]) -> list[DuplicateGroup]:
    """The groups of ``near_duplicate_filenames.txt`` (``group<TAB>name<TAB>kept<TAB>distance``),
    members that are no sample of the run dropped, groups of fewer than 2 members too.

    Raises:
        SignalsError: a line without four columns, or a group id or distance that does not
            parse.
    """
    try:
        rows = read_filename_table(path)
    except FileNotFoundError:
        return []
    members: dict[int, list[tuple[int, float, bool]]] = {}
    kept_of: dict[int, str] = {}
    for line, row in enumerate(rows, start=1):
        if len(row) != 4:
            raise SignalsError(
                f"{path}:{line}: expected group<TAB>filename<TAB>kept<TAB>distance, "
                f"got {len(row)} column(s)"
            )
        try:
            group = int(row[0])
            distance = float(row[3]) if row[3] else math.nan
        except ValueError:
            raise SignalsError(
                f"{path}:{line}: group {row[0]!r} is no integer or distance {row[3]!r} no number"
            ) from None
        kept_of.setdefault(group, row[2])
        sample = name_index.get(row[1])
        if sample is not None:
            # A float with a decimal point is an embedding distance (the writer's rule).
            members.setdefault(group, []).append((sample, distance, "." in row[3]))
    groups: list[DuplicateGroup] = []
    for group, entries in members.items():
        kept = name_index.get(kept_of[group])
        if len(entries) < 2 or kept is None:
            continue
        groups.append(
            DuplicateGroup(
                id=group,
                members=np.array([e[0] for e in entries], dtype=np.int64),
                distances=np.array([e[1] for e in entries], dtype=np.float64),
                by_embedding=np.array([e[2] for e in entries], dtype=bool),
                kept=kept,
            )
        )
    return groups


#: Most ``rows x picks`` similarities held at once while measuring the distance to the picks.
_BLOCK_ELEMENTS: Final = 1 << 24


def _nearest_pick_distance(outputs: RunOutputs) -> NDArray[np.float64]:
    """Per sample: L2 distance (normalised embeddings) to the nearest selected candidate
    other than itself; NaN without an embedding or without another pick.

    One matrix product per block of rows (float32 cosine similarities with the picks, at most
    :data:`_BLOCK_ELEMENTS` at a time), the most similar pick found by ``argmax``, then its
    distance recomputed exactly in float64: a plain GEMM is several times faster here than a
    general k-NN search (one hand timing at 100,000 x 10,000 x 64 on the shared 2-core dev
    machine, commit 1abd6dc: 11.6 s against 36 s; no benchmark script repeats it).
    """
    emb, sample_row, chosen_rows = outputs.embedding_arrays()
    n = len(outputs.samples)
    out = np.full(n, np.nan, dtype=np.float64)
    has = np.flatnonzero(sample_row >= 0)
    if has.size == 0 or chosen_rows.size == 0:
        return out
    rows = sample_row[has]
    picks = emb[chosen_rows]
    pick_of_row = np.full(emb.shape[0], -1, dtype=np.int64)
    pick_of_row[chosen_rows] = np.arange(chosen_rows.size)
    step = max(1, _BLOCK_ELEMENTS // chosen_rows.size)
    for start in range(0, rows.size, step):
        block = rows[start : start + step]
        sims = emb[block] @ picks.T
        own = pick_of_row[block]
        mine = np.flatnonzero(own >= 0)
        sims[mine, own[mine]] = -np.inf  # a pick is not its own nearest pick
        best = np.argmax(sims, axis=1)
        found = np.isfinite(sims[np.arange(block.size), best])
        exact = np.linalg.norm(
            emb[block].astype(np.float64) - picks[best].astype(np.float64), axis=1
        )
        out[has[start : start + step]] = np.where(found, exact, np.nan)
    return out


def load_signals(outputs: RunOutputs) -> RunSignals:
    """Discover every signal of the run of ``outputs`` (module docstring).

    Raises:
        SignalsError: a signal file is malformed (the message names it).
    """
    folder = runfolder.RunFolder(outputs.folder)
    names = outputs.name_index
    n = len(outputs.samples)
    scores: dict[str, NDArray[np.float64]] = {}
    sources: dict[str, str] = {}

    def add(found: dict[str, NDArray[np.float64]], source: str) -> None:
        for key, values in found.items():
            if key not in scores:
                scores[key] = values
                sources[key] = source

    if folder.quality_csv.is_file():
        add(discover_table_scores(folder.quality_csv, names, n), runfolder.QUALITY_CSV)
    add(outputs.selection_scores(), runfolder.SELECTION_CSV)
    lazy: dict[str, Callable[[], NDArray[np.float64]]] = {}
    _, sample_rows, chosen_rows = outputs.embedding_arrays()
    if chosen_rows.size and (sample_rows >= 0).any():

        def nearest() -> NDArray[np.float64]:
            return outputs.cached_array(
                "nearest_pick_distance", lambda: _nearest_pick_distance(outputs)
            )

        lazy["nearest_pick_distance"] = nearest
        sources["nearest_pick_distance"] = "the embeddings (distance to the nearest pick)"
    data_dir = folder / runfolder.DATA_DIR
    if data_dir.is_dir():
        for path in sorted(data_dir.glob("*.csv")):
            if path.name in _NOT_SCORE_TABLES or path.name.endswith("embeddings.csv"):
                continue
            try:
                if path.stat().st_size > _MAX_TABLE_BYTES:
                    continue
            except OSError:
                continue
            add(
                discover_table_scores(path, names, n, prefix=f"{path.stem}."),
                f"{runfolder.DATA_DIR}/{path.name}",
            )

    issues: dict[str, NDArray[np.bool_]] = {}
    if folder.quality_issues.is_file():
        try:
            rows = read_quality_issues(folder.quality_issues)
        except DataError as exc:
            raise SignalsError(str(exc)) from exc
        for name, issue, _score, _threshold in rows:
            flags = issues.setdefault(issue, np.zeros(n, dtype=bool))
            sample = names.get(name)
            if sample is not None:
                flags[sample] = True

    groups = read_near_duplicate_groups(folder.near_duplicate_filenames, names)
    group_of = np.full(n, -1, dtype=np.int64)
    for position, group in enumerate(groups):
        group_of[group.members] = position

    tops = [name.split("/", 1)[0] if "/" in name else "" for name in outputs.filenames()]
    folders = sorted({t for t in tops if t})
    code_of = {f: i for i, f in enumerate(folders)}
    folder_code = np.array([code_of.get(t, -1) for t in tops], dtype=np.int64)
    return RunSignals(
        scores=scores,
        score_sources=sources,
        issues=issues,
        groups=groups,
        group_of=group_of,
        folders=folders,
        folder_code=folder_code.reshape(n),
        lazy=lazy,
    )
