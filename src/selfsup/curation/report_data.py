"""The data of a curation run's report: its inputs, statistics and plan, as plain values.

:func:`build_report` turns :class:`ReportInputs` (arrays and counts, no files) into the dict
that ``report.json`` holds, and :func:`analyse` also returns the arrays the plots draw
(:class:`Analysis`). Nothing here draws or writes a file: :mod:`selfsup.curation.report`
renders the plots, ``data/projections.csv``, ``report.pdf`` and ``report.json`` from this;
its docstring defines the terms (before, after, removed, the distances) and the bounds on
the cost at any N.
"""

from __future__ import annotations

import io
import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from selfsup import __version__
from selfsup.runfolder import REPORT_FORMAT, REPORT_VERSION
from selfsup.utils.embedding_stats import embedding_stats
from selfsup.utils.safe_open import read_bytes
from selfsup.utils.vectors import knn, l2_normalize, pairwise_distances

logger = logging.getLogger(__name__)


ImageLoader = Callable[[str], Image.Image | None]
"""``load_image(filename) -> PIL image``, or ``None`` when the sample cannot be shown."""

_DISTANCE = "L2 distance between L2-normalised embeddings (range 0 to 2)"

# Elements of one distance block: queries x rows (float32) stays near 64 MB.
_BLOCK_ELEMENTS: Final = 1 << 24


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class JobInfo:
    """What the run was and when it ran.

    Attributes:
        run_name: Name of the run (folder name or user-given).
        started_at, finished_at: ISO 8601 times, e.g. ``"2024-05-01T12:00:00+00:00"``.
        duration_s: Wall-clock duration of the run in seconds.
        input_dir: The scanned folder as the user gave it.
        selfsup_version: Version of selfsup that ran the job.
        config: The resolved configuration, embedded as-is in ``report.json`` (paths, enums,
            tuples and numpy scalars are converted; other objects are refused).
        step_durations_s: Seconds per step, e.g. ``{"check": 3.2, "embed": 120.0}``.
        extra: Further JSON-able facts shown on the summary page (device, model, ...).
    """

    run_name: str
    started_at: str
    finished_at: str
    duration_s: float
    input_dir: str
    selfsup_version: str = __version__
    config: Mapping[str, Any] = field(default_factory=dict)
    step_durations_s: Mapping[str, float] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not math.isfinite(self.duration_s) or self.duration_s < 0:
            raise ValueError(
                f"JobInfo.duration_s must be a finite number >= 0, got {self.duration_s}"
            )


@dataclass(frozen=True)
class SampleCounts:
    """How many samples each step kept, from the scan down to the selection.

    The funnel must add up: ``n_samples_found - n_corrupt - n_duplicates - n_not_relevant ==
    n_input_to_selection``, and ``n_removed_by_filters + n_selected <= n_input_to_selection``.

    Attributes:
        n_files_found: Image and video files the scan found.
        n_corrupt: Samples (or whole files) the corruptness check rejected.
        n_duplicates: Exact duplicates dropped (a kept copy of each remains).
        n_input_to_selection: Samples that entered selection (rows of the embeddings).
        n_selected: Samples selected.
        n_samples_found: Samples the scan listed (images plus video frames); ``None`` when
            every file is one sample (no videos): then it equals ``n_files_found``.
        corrupt_reasons: Corrupt samples per reason (``CorruptReason`` values); empty or
            summing to ``n_corrupt``.
        n_not_relevant: Samples left out by ``relevant_filenames_file``.
        n_removed_by_filters: Samples THRESHOLD strategies removed inside selection.
    """

    n_files_found: int
    n_corrupt: int
    n_duplicates: int
    n_input_to_selection: int
    n_selected: int
    n_samples_found: int | None = None
    corrupt_reasons: Mapping[str, int] = field(default_factory=dict)
    n_not_relevant: int = 0
    n_removed_by_filters: int = 0

    def __post_init__(self) -> None:
        for name in (
            "n_files_found",
            "n_corrupt",
            "n_duplicates",
            "n_input_to_selection",
            "n_selected",
            "n_not_relevant",
            "n_removed_by_filters",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"SampleCounts.{name} must be an integer >= 0, got {value!r}")
        found = self.samples_found
        expected = found - self.n_corrupt - self.n_duplicates - self.n_not_relevant
        if expected != self.n_input_to_selection:
            raise ValueError(
                "SampleCounts do not add up: n_samples_found - n_corrupt - n_duplicates - "
                f"n_not_relevant = {found} - {self.n_corrupt} - {self.n_duplicates} - "
                f"{self.n_not_relevant} = {expected}, but n_input_to_selection = "
                f"{self.n_input_to_selection}"
            )
        if self.n_selected + self.n_removed_by_filters > self.n_input_to_selection:
            raise ValueError(
                f"SampleCounts: n_selected ({self.n_selected}) + n_removed_by_filters "
                f"({self.n_removed_by_filters}) exceeds n_input_to_selection "
                f"({self.n_input_to_selection})"
            )
        if self.corrupt_reasons and sum(self.corrupt_reasons.values()) != self.n_corrupt:
            raise ValueError(
                f"SampleCounts.corrupt_reasons sums to {sum(self.corrupt_reasons.values())}, "
                f"but n_corrupt = {self.n_corrupt}"
            )

    @property
    def samples_found(self) -> int:
        """``n_samples_found``, or ``n_files_found`` when every file is one sample."""
        return self.n_files_found if self.n_samples_found is None else self.n_samples_found


@dataclass(frozen=True)
class CostAssumptions:
    """Prices behind the estimated savings; every estimate is only as good as these.

    Savings are counted against the samples that entered selection: the data you would have
    labelled and trained on without selection. Corrupt files and exact duplicates are not
    counted as saved, which keeps the estimate conservative.

    Attributes:
        labeling_cost_per_sample: Price of labelling one sample. The default, 0.50 USD, is a
            rough price of bounding boxes for an image with a handful of objects at commercial
            labelling services; an image-level class label costs nearer 0.05, a segmentation
            mask several USD. Set your own.
        currency: Currency of ``labeling_cost_per_sample``.
        training_epochs: Epochs a model would be trained on the data; CO2 is saved on each.
        energy_kwh_per_sample_epoch: Energy to train on one sample for one epoch. The default,
            2.5e-7 kWh (0.9 J), is a 300 W GPU training a ResNet-50 at about 330 samples/s.
        kg_co2e_per_kwh: Carbon intensity of electricity; 0.4 kg CO2e/kWh is near the world
            average.
    """

    labeling_cost_per_sample: float = 0.50
    currency: str = "USD"
    training_epochs: int = 100
    energy_kwh_per_sample_epoch: float = 2.5e-7
    kg_co2e_per_kwh: float = 0.4

    def __post_init__(self) -> None:
        for name in (
            "labeling_cost_per_sample",
            "training_epochs",
            "energy_kwh_per_sample_epoch",
            "kg_co2e_per_kwh",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(
                    f"CostAssumptions.{name} must be a finite number >= 0, got {value}"
                )

    @property
    def kg_co2e_per_sample(self) -> float:
        """CO2e of training on one sample: epochs x energy per sample-epoch x intensity."""
        return self.training_epochs * self.energy_kwh_per_sample_epoch * self.kg_co2e_per_kwh


@dataclass(frozen=True)
class ReportOptions:
    """How much the report computes and draws; the defaults bound the cost at any ``N``.

    Attributes:
        umap_neighbors: ``n_neighbors`` of each UMAP plot; ``()`` skips UMAP (the first call
            in a process imports umap-learn and compiles its layout: 8.5 s for 2,000 points
            on a 2-core CPU, benchmarks/umap_first_call.py). A value larger than
            ``N - 1`` is clipped; the file name keeps the requested value.
        max_scatter_points: Most samples PCA/UMAP are fitted on and scatter plots draw.
        max_pairwise_points: Most samples per set whose pairwise distances are histogrammed.
        max_nn_queries: Most query samples of the nearest-neighbour statistics.
        n_filter_decisions: Most ``filter_decision_*`` plots.
        n_filter_neighbors: Removed neighbours shown beside each kept sample.
        histogram_bins: Bins of the pairwise-distance histograms (shared before/after).
        seed: Seed of every subsample, PCA and UMAP.
        dpi: Resolution of the PNG plots.
    """

    umap_neighbors: tuple[int, ...] = (5, 15, 50)
    max_scatter_points: int = 5000
    max_pairwise_points: int = 2000
    max_nn_queries: int = 1000
    n_filter_decisions: int = 6
    n_filter_neighbors: int = 4
    histogram_bins: int = 50
    seed: int = 0
    dpi: int = 150

    def __post_init__(self) -> None:
        for k in self.umap_neighbors:
            if k < 2:
                raise ValueError(f"ReportOptions.umap_neighbors must be >= 2 each, got {k}")
        if len(set(self.umap_neighbors)) != len(self.umap_neighbors):
            raise ValueError(f"ReportOptions.umap_neighbors has repeats: {self.umap_neighbors}")
        for name in ("max_scatter_points", "max_pairwise_points", "max_nn_queries"):
            if getattr(self, name) < 3:
                raise ValueError(f"ReportOptions.{name} must be >= 3, got {getattr(self, name)}")
        for name in ("n_filter_decisions", "n_filter_neighbors", "histogram_bins", "dpi"):
            if getattr(self, name) < 1:
                raise ValueError(f"ReportOptions.{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class ReportInputs:
    """Everything the report needs, as arrays; ``N`` samples entered selection, ``k`` chosen.

    Attributes:
        job: What ran and when.
        counts: The sample funnel; ``counts.n_input_to_selection == N`` and
            ``counts.n_selected == k``.
        embeddings: ``(N, D)`` embeddings of the samples that entered selection (any float
            dtype; normalised block by block here, never modified or copied whole).
        filenames: ``(N,)`` sample names, row-aligned with ``embeddings``.
        selected_indices: ``(k,)`` distinct rows of the selected samples, in selection order.
        selection_distances: ``(k,)`` distance of each pick to the nearest earlier pick at
            pick time (``SelectionResult.distances``); ``inf``/NaN allowed.
        stop_reason: Why selection stopped (``SelectionResult.stop_reason``).
        n_requested: Most samples the stopping condition allowed.
        labels: ``(N,)`` optional class names; the no-overlay scatter plots are coloured by
            them and the report lists counts per label before and after.
        metadata: Optional ``(N,)`` numeric arrays by key (brightness, width, ...); the report
            lists their mean, std, min and max before and after (NaN = unknown, ignored).
        costs: Prices behind the savings estimate.
        load_image: Thumbnails for the filter-decision plots; should return ``None`` for an
            unreadable sample. ``None`` draws a placeholder for every sample.
        near_duplicates: The ``near_duplicates`` section of report.json
            (:meth:`selfsup.curation.near_duplicates.NearDuplicates.summary`); ``None``
            leaves the section out.
        quality: The ``quality`` section of report.json
            (:func:`selfsup.curation.quality.quality_report`: per issue its count, threshold
            and example names); ``None`` leaves the section out.
    """

    job: JobInfo
    counts: SampleCounts
    embeddings: NDArray[np.floating[Any]]
    filenames: Sequence[str]
    selected_indices: NDArray[np.integer[Any]]
    selection_distances: NDArray[np.floating[Any]] | None = None
    stop_reason: str | None = None
    n_requested: int | None = None
    labels: Sequence[str] | None = None
    metadata: Mapping[str, NDArray[np.floating[Any]]] = field(default_factory=dict)
    costs: CostAssumptions = field(default_factory=CostAssumptions)
    load_image: ImageLoader | None = None
    near_duplicates: Mapping[str, Any] | None = None
    quality: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        emb = self.embeddings
        if not isinstance(emb, np.ndarray) or emb.ndim != 2:
            shape = getattr(emb, "shape", None)
            raise ValueError(f"ReportInputs.embeddings must be a 2-D (N, D) array, got {shape}")
        if not np.issubdtype(emb.dtype, np.floating):
            raise ValueError(f"ReportInputs.embeddings must be floating point, got {emb.dtype}")
        n = emb.shape[0]
        if emb.shape[1] < 1:
            raise ValueError("ReportInputs.embeddings has 0 columns; expected (N, D) with D >= 1")
        if not _all_finite(emb):
            raise ValueError("ReportInputs.embeddings contains NaN or inf")
        if len(self.filenames) != n:
            raise ValueError(
                f"ReportInputs.filenames has {len(self.filenames)} names for {n} embedding rows"
            )
        if self.counts.n_input_to_selection != n:
            raise ValueError(
                f"counts.n_input_to_selection = {self.counts.n_input_to_selection}, but "
                f"embeddings has {n} rows"
            )
        sel = np.asarray(self.selected_indices)
        if sel.ndim != 1 or (sel.size and not np.issubdtype(sel.dtype, np.integer)):
            raise ValueError(
                f"ReportInputs.selected_indices must be a 1-D integer array, got shape "
                f"{sel.shape} dtype {sel.dtype}"
            )
        if sel.size and (sel.min() < 0 or sel.max() >= n):
            raise ValueError(
                f"ReportInputs.selected_indices must lie in [0, {n}), got "
                f"min {sel.min()} max {sel.max()}"
            )
        if np.unique(sel).size != sel.size:
            raise ValueError("ReportInputs.selected_indices has repeated rows")
        if self.counts.n_selected != sel.size:
            raise ValueError(
                f"counts.n_selected = {self.counts.n_selected}, but selected_indices has "
                f"{sel.size} rows"
            )
        if self.selection_distances is not None and len(self.selection_distances) != sel.size:
            raise ValueError(
                f"ReportInputs.selection_distances has {len(self.selection_distances)} values "
                f"for {sel.size} selected samples"
            )
        if self.labels is not None and len(self.labels) != n:
            raise ValueError(f"ReportInputs.labels has {len(self.labels)} labels for {n} samples")
        for key, values in self.metadata.items():
            if np.shape(values) != (n,):
                raise ValueError(
                    f"ReportInputs.metadata[{key!r}] must have shape ({n},), got {np.shape(values)}"
                )

    @property
    def selected(self) -> NDArray[np.intp]:
        """``(k,)`` selected rows in selection order, as ``intp``."""
        return np.asarray(self.selected_indices, dtype=np.intp)

    @property
    def removed(self) -> NDArray[np.intp]:
        """``(N - k,)`` rows not selected, ascending."""
        mask = np.ones(self.embeddings.shape[0], dtype=bool)
        mask[self.selected] = False
        return np.flatnonzero(mask).astype(np.intp)


def _all_finite(emb: NDArray[np.floating[Any]]) -> bool:
    step = max(1, _BLOCK_ELEMENTS // max(emb.shape[1], 1))
    return all(bool(np.isfinite(emb[r : r + step]).all()) for r in range(0, emb.shape[0], step))


def folder_image_loader(root: str | Path, max_size: int = 256) -> ImageLoader:
    """A ``load_image`` that opens ``root / filename`` with PIL as an RGB thumbnail.

    Returns ``None`` (and logs why at debug level) for a missing or undecodable file, e.g. a
    video frame name, which is no file on disk: pass a loader that decodes frames for videos.
    """
    base = Path(root)

    def load(filename: str) -> Image.Image | None:
        path = base / filename
        try:
            # read_bytes: never block on a FIFO that replaced the file after the check, and
            # give up on a read that hangs (ReadTimeoutError, a ValueError) after the run's
            # per-file time limit.
            with Image.open(io.BytesIO(read_bytes(path))) as img:
                img.draft("RGB", (max_size, max_size))
                thumb = img.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            logger.debug("no thumbnail for %s: %s", path, err)
            return None
        thumb.thumbnail((max_size, max_size))
        return thumb

    return load


# --------------------------------------------------------------------------- math


def k_nearest(
    embeddings: NDArray[np.floating[Any]],
    query_rows: NDArray[np.intp],
    candidate_rows: NDArray[np.intp] | None,
    k: int,
) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """The ``k`` candidates nearest to each query, by L2 distance of normalised embeddings.

    A query never finds itself (same row), but does find another row with an identical
    embedding at distance 0. :func:`selfsup.utils.vectors.knn` searches in float32 over
    memory-bounded blocks of candidates (never ``Q x N``; blocks are normalised one at a time)
    and returns exact float64 distances, ascending, equal distances by position in
    ``candidate_rows`` (by row for ``None`` or ascending rows). Cost ``Q x C x D``.

    Args:
        embeddings: ``(N, D)`` embeddings (normalised here, block by block).
        query_rows: ``(Q,)`` rows to search from.
        candidate_rows: ``(C,)`` rows to search among; ``None`` for all ``N`` rows.
        k: Neighbours per query.

    Returns:
        ``(Q, k)`` rows and ``(Q, k)`` distances, ascending per query; missing neighbours
        (fewer than ``k`` candidates) are row ``-1`` at distance ``inf``.
    """
    queries = np.asarray(query_rows, dtype=np.intp)
    found = knn(
        embeddings[queries],
        embeddings,
        k,
        normalize=True,
        support_rows=candidate_rows,
        exclude_self=True,
        query_ids=queries,
    )
    return found.indices, found.distances.astype(np.float64, copy=False)


def _subsample(rows: NDArray[np.intp], m: int, seed: int, stream: int) -> NDArray[np.intp]:
    """At most ``m`` of ``rows``, drawn without replacement by a seeded stream, ascending."""
    if rows.size <= m:
        return rows
    rng = np.random.default_rng([seed, stream])
    return np.sort(rows[rng.choice(rows.size, size=m, replace=False)])


def _pairwise_distances(emb: NDArray[np.floating[Any]], rows: NDArray[np.intp]) -> NDArray[Any]:
    """``(m (m - 1) / 2,)`` float64 distances of all pairs of ``rows`` (normalised)."""
    full = pairwise_distances(l2_normalize(emb[rows]).astype(np.float64))
    out: NDArray[Any] = full[np.triu_indices(len(rows), k=1)]
    return out


def _summary(values: NDArray[np.floating[Any]]) -> dict[str, float]:
    """Mean, std, min, percentiles 5/25/50/75/95, max of finite ``values`` (non-empty)."""
    v = np.asarray(values, dtype=np.float64)
    p5, p25, p50, p75, p95 = np.percentile(v, [5, 25, 50, 75, 95])
    return {
        "mean": float(v.mean()),
        "std": float(v.std()),
        "min": float(v.min()),
        "p05": float(p5),
        "p25": float(p25),
        "median": float(p50),
        "p75": float(p75),
        "p95": float(p95),
        "max": float(v.max()),
    }


def _skewness(values: NDArray[np.floating[Any]]) -> float | None:
    """Fisher-Pearson moment coefficient ``m3 / m2^1.5``; ``None`` when the spread is 0."""
    v = np.asarray(values, dtype=np.float64)
    centred = v - v.mean()
    m2 = float(np.mean(centred**2))
    if m2 <= 1e-24:
        return None
    return float(np.mean(centred**3) / m2**1.5)


# --------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class FilterDecision:
    """One ``filter_decision_{position}.png``: a kept sample and its nearest removed ones.

    Attributes:
        position: 0-based position of the kept sample in the selection order.
        kept_row: Row of the kept sample.
        neighbor_rows: Rows of its nearest removed samples, nearest first.
        distances: Their distances (L2 of normalised embeddings), ascending.
    """

    position: int
    kept_row: int
    neighbor_rows: tuple[int, ...]
    distances: tuple[float, ...]

    @property
    def plot_name(self) -> str:
        """File name of the plot, ``filter_decision_{position}.png``."""
        return f"filter_decision_{self.position}.png"


@dataclass(frozen=True)
class Analysis:
    """What build_report and the plots share, computed once."""

    report: dict[str, Any]
    pairwise_before: NDArray[np.float64] | None
    pairwise_after: NDArray[np.float64] | None
    bin_edges: NDArray[np.float64] | None
    scatter_rows: NDArray[np.intp]
    filter_decisions: tuple[FilterDecision, ...]
    plot_files: tuple[str, ...]


#: The plot of example thumbnails per image-quality issue (drawn when any is flagged).
QUALITY_EXAMPLES_PLOT: Final = "quality_examples.png"
#: Most thumbnails per issue in :data:`QUALITY_EXAMPLES_PLOT`.
QUALITY_EXAMPLES_PER_ISSUE: Final = 4


def quality_example_rows(inputs: ReportInputs) -> list[tuple[str, list[int]]]:
    """Per flagged issue (report order), the rows of up to :data:`QUALITY_EXAMPLES_PER_ISSUE`
    of its examples among ``inputs.filenames`` (examples that are no candidate, e.g. in an
    object-level run, are left out); issues without such examples are left out."""
    if not inputs.quality:
        return []
    row_of = {name: i for i, name in enumerate(inputs.filenames)}
    out: list[tuple[str, list[int]]] = []
    for issue, entry in inputs.quality.items():
        rows = [row_of[n] for n in entry.get("examples", ()) if n in row_of]
        if rows:
            out.append((issue, rows[:QUALITY_EXAMPLES_PER_ISSUE]))
    return out


def plot_plan(
    n_samples: int, dim: int, n_selected: int, options: ReportOptions
) -> tuple[list[str], dict[str, str]]:
    """Plot files a report of this size produces (in PDF order), and why others are skipped.

    Pure: the same plan is recorded in ``report.json`` and drawn by :func:`write_plots`.
    Filter-decision files are returned as one entry per planned position.

    Returns:
        ``(files, skipped)``: file names under ``plots/``; plot stem -> reason.
    """
    files: list[str] = []
    skipped: dict[str, str] = {}
    for stem, m in (("distance_distr_before", n_samples), ("distance_distr_after", n_selected)):
        if m >= 2:
            files.append(f"{stem}.png")
        else:
            skipped[stem] = f"pairwise distances need at least 2 samples, got {m}"
    if n_samples >= 3 and dim >= 2:
        files += ["scatter_pca.png", "scatter_pca_no_overlay.png"]
    else:
        skipped["scatter_pca"] = (
            f"PCA needs at least 3 samples and 2 embedding dimensions, got {n_samples} x {dim}"
        )
    for k in options.umap_neighbors:
        if n_samples >= 4:
            files += [f"scatter_umap_k_{k}.png", f"scatter_umap_k_{k}_no_overlay.png"]
        else:
            skipped[f"scatter_umap_k_{k}"] = f"UMAP needs at least 4 samples, got {n_samples}"
    if n_selected == 0:
        skipped["filter_decision"] = "no sample was selected"
    elif n_selected == n_samples:
        skipped["filter_decision"] = "no sample was removed"
    else:
        files += [f"filter_decision_{p}.png" for p in _decision_positions(n_selected, options)]
    return files, skipped


def _decision_positions(n_selected: int, options: ReportOptions) -> list[int]:
    n = min(options.n_filter_decisions, n_selected)
    step = n_selected // n
    return [i * step for i in range(n)]


def _set_statistics(
    inputs: ReportInputs,
    rows: NDArray[np.intp],
    options: ReportOptions,
    stream: int,
) -> tuple[dict[str, Any], NDArray[np.float64] | None]:
    """Statistics of one set (before or after) and its pairwise-distance sample."""
    emb = inputs.embeddings
    stats: dict[str, Any] = {"n_samples": int(rows.size)}
    if rows.size >= 2:
        queries = _subsample(rows, options.max_nn_queries, options.seed, stream)
        cand = None if rows.size == emb.shape[0] else rows
        _, d = k_nearest(emb, queries, cand, 1)
        stats["nearest_neighbor_distance"] = {
            **_summary(d[:, 0]),
            "n_queries": int(queries.size),
            "sampled": bool(queries.size < rows.size),
        }
        pair_rows = _subsample(rows, options.max_pairwise_points, options.seed, stream + 1)
        pairs = _pairwise_distances(emb, pair_rows)
        stats["pairwise_distance"] = {
            **_summary(pairs),
            "skewness": _skewness(pairs),
            "n_points": int(pair_rows.size),
            "n_pairs": int(pairs.size),
            "sampled": bool(pair_rows.size < rows.size),
        }
        return stats, pairs
    stats["nearest_neighbor_distance"] = None
    stats["pairwise_distance"] = None
    return stats, None


def _metadata_statistics(inputs: ReportInputs, sel: NDArray[np.intp]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, values in inputs.metadata.items():
        v = np.asarray(values, dtype=np.float64)
        entry: dict[str, Any] = {}
        for name, part in (("before", v), ("after", v[sel])):
            finite = part[np.isfinite(part)]
            entry[name] = (
                None
                if finite.size == 0
                else {
                    "mean": float(finite.mean()),
                    "std": float(finite.std()),
                    "min": float(finite.min()),
                    "max": float(finite.max()),
                    "n_known": int(finite.size),
                }
            )
        out[key] = entry
    return out


def _label_statistics(inputs: ReportInputs, sel: NDArray[np.intp]) -> dict[str, Any] | None:
    if inputs.labels is None:
        return None
    before = Counter(str(x) for x in inputs.labels)
    after = Counter(str(inputs.labels[int(i)]) for i in sel)
    order = sorted(before, key=lambda lab: (-before[lab], lab))
    return {
        "n_labels": len(order),
        "counts": [{"label": lab, "before": before[lab], "after": after[lab]} for lab in order],
    }


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _selection_summary(inputs: ReportInputs) -> dict[str, Any]:
    n = inputs.counts.n_input_to_selection
    k = inputs.counts.n_selected
    summary: dict[str, Any] = {
        "n_selected": k,
        "selected_fraction": k / n if n else None,
        "stop_reason": inputs.stop_reason,
        "n_requested": inputs.n_requested,
        "n_removed_by_filters": inputs.counts.n_removed_by_filters,
    }
    dists = inputs.selection_distances
    if dists is not None and len(dists):
        d = np.asarray(dists, dtype=np.float64)
        finite = d[np.isfinite(d)]
        summary["pick_distance"] = {
            "description": "distance of each pick to the nearest earlier pick, at pick time",
            "last": _finite_or_none(float(d[-1])),
            "min": float(finite.min()) if finite.size else None,
            "median": float(np.median(finite)) if finite.size else None,
        }
    return summary


def _savings(inputs: ReportInputs) -> dict[str, Any]:
    c = inputs.costs
    n = inputs.counts.n_input_to_selection
    saved = n - inputs.counts.n_selected
    return {
        "baseline_samples": n,
        "samples_to_label": inputs.counts.n_selected,
        "samples_saved": saved,
        "fraction_saved": saved / n if n else 0.0,
        "labeling_cost_per_sample": c.labeling_cost_per_sample,
        "currency": c.currency,
        "labeling_cost_saved": saved * c.labeling_cost_per_sample,
        "kg_co2e_per_sample": c.kg_co2e_per_sample,
        "kg_co2e_saved": saved * c.kg_co2e_per_sample,
        "assumptions": {
            "training_epochs": c.training_epochs,
            "energy_kwh_per_sample_epoch": c.energy_kwh_per_sample_epoch,
            "kg_co2e_per_kwh": c.kg_co2e_per_kwh,
            "note": (
                "Savings count the samples that entered selection but were not selected. "
                f"Labelling at {c.labeling_cost_per_sample:g} {c.currency} per sample; CO2e of "
                f"training {c.training_epochs} epochs at {c.energy_kwh_per_sample_epoch:g} kWh "
                f"per sample and epoch and {c.kg_co2e_per_kwh:g} kg CO2e per kWh."
            ),
        },
    }


def _counts(inputs: ReportInputs) -> dict[str, Any]:
    c = inputs.counts
    return {
        "n_files_found": c.n_files_found,
        "n_samples_found": c.samples_found,
        "n_corrupt": c.n_corrupt,
        "corrupt_reasons": dict(c.corrupt_reasons),
        "n_duplicates": c.n_duplicates,
        "n_not_relevant": c.n_not_relevant,
        "n_input_to_selection": c.n_input_to_selection,
        "n_removed_by_filters": c.n_removed_by_filters,
        "n_selected": c.n_selected,
        "n_removed": c.n_input_to_selection - c.n_selected,
        "before": c.n_input_to_selection,
        "after": c.n_selected,
    }


def analyse(inputs: ReportInputs, options: ReportOptions) -> Analysis:
    emb = inputs.embeddings
    n, dim = emb.shape
    sel = inputs.selected
    removed = inputs.removed
    all_rows = np.arange(n, dtype=np.intp)

    before, pairs_before = _set_statistics(inputs, all_rows, options, stream=1)
    after, pairs_after = _set_statistics(inputs, np.sort(sel), options, stream=3)
    edges: NDArray[np.float64] | None = None
    histogram: dict[str, Any] | None = None
    if pairs_before is not None:
        lo = float(pairs_before.min())
        hi = float(pairs_before.max())
        if pairs_after is not None:
            lo, hi = min(lo, float(pairs_after.min())), max(hi, float(pairs_after.max()))
        if hi - lo < 1e-6:
            lo, hi = max(0.0, lo - 0.05), hi + 0.05
        edges = np.linspace(lo, hi, options.histogram_bins + 1)
        histogram = {
            "bin_edges": edges.tolist(),
            "before_counts": np.histogram(pairs_before, bins=edges)[0].tolist(),
            "after_counts": (
                None if pairs_after is None else np.histogram(pairs_after, bins=edges)[0].tolist()
            ),
        }
    coverage: dict[str, Any] | None = None
    if sel.size and removed.size:
        queries = _subsample(removed, options.max_nn_queries, options.seed, stream=5)
        _, d = k_nearest(emb, queries, sel, 1)
        coverage = {
            "description": "distance of removed samples to their nearest selected sample",
            **_summary(d[:, 0]),
            "n_queries": int(queries.size),
            "sampled": bool(queries.size < removed.size),
        }

    files, skipped = plot_plan(n, dim, sel.size, options)
    if quality_example_rows(inputs):
        files.append(QUALITY_EXAMPLES_PLOT)
    decisions: list[FilterDecision] = []
    if "filter_decision" not in skipped:
        positions = _decision_positions(sel.size, options)
        kept = sel[positions]
        nb_rows, nb_d = k_nearest(emb, kept, removed, options.n_filter_neighbors)
        for p, row, nr, nd in zip(positions, kept, nb_rows, nb_d, strict=True):
            ok = nr >= 0
            decisions.append(
                FilterDecision(
                    position=int(p),
                    kept_row=int(row),
                    neighbor_rows=tuple(int(x) for x in nr[ok]),
                    distances=tuple(float(x) for x in nd[ok]),
                )
            )
    scatter_rows = _subsample(all_rows, options.max_scatter_points, options.seed, stream=7)

    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "job": job_section(inputs.job),
        "counts": _counts(inputs),
        "savings": _savings(inputs),
        "statistics": {
            "distance": _DISTANCE,
            "embedding_dim": int(dim),
            # Collapse figures of the embeddings (selfsup.utils.embedding_stats): a collapsed
            # model makes every distance below meaningless, so the report warns.
            "embedding_health": embedding_stats(emb).to_json(),
            "before": before,
            "after": after,
            "removed_to_selected_distance": coverage,
            "pairwise_distance_histogram": histogram,
            "metadata": _metadata_statistics(inputs, sel),
            "labels": _label_statistics(inputs, sel),
        },
        "selection": _selection_summary(inputs),
        **(
            {}
            if inputs.near_duplicates is None
            else {"near_duplicates": _jsonable(inputs.near_duplicates, "near_duplicates")}
        ),
        **({} if inputs.quality is None else {"quality": _jsonable(inputs.quality, "quality")}),
        "plots": {
            "files": [f"plots/{name}" for name in files],
            "skipped": skipped,
            "scatter_points": int(scatter_rows.size),
            "umap_neighbors": {str(k): min(k, n - 1) for k in options.umap_neighbors if n >= 4},
            "filter_decisions": [
                {
                    "plot": f"plots/{d.plot_name}",
                    "position": d.position,
                    "kept": inputs.filenames[d.kept_row],
                    "neighbors": [
                        {"filename": inputs.filenames[r], "distance": dist}
                        for r, dist in zip(d.neighbor_rows, d.distances, strict=True)
                    ],
                }
                for d in decisions
            ],
        },
    }
    return Analysis(
        report=report,
        pairwise_before=pairs_before,
        pairwise_after=pairs_after,
        bin_edges=edges,
        scatter_rows=scatter_rows,
        filter_decisions=tuple(decisions),
        plot_files=tuple(files),
    )


def job_section(job: JobInfo) -> dict[str, Any]:
    """``report.json``'s ``job`` section of ``job``."""
    return {
        "run_name": job.run_name,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "duration_s": float(job.duration_s),
        "input_dir": job.input_dir,
        "selfsup_version": job.selfsup_version,
        "step_durations_s": {k: float(v) for k, v in job.step_durations_s.items()},
        "extra": _jsonable(job.extra, "job.extra"),
        "config": _jsonable(job.config, "job.config"),
    }


def _jsonable(value: Any, where: str) -> Any:
    """``value`` as plain JSON types; non-finite floats become strings ("inf", "nan")."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Enum):
        return _jsonable(value.value, where)
    if isinstance(value, np.generic):
        return _jsonable(value.item(), where)
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"{where} is a {type(value).__name__}, which report.json cannot hold; expected "
        "str, number, bool, None, Path, Enum, list, tuple or mapping"
    )


def build_report(inputs: ReportInputs, options: ReportOptions | None = None) -> dict[str, Any]:
    """The report as a JSON-serialisable dict; no I/O (the plots are only planned).

    Keys: ``format``, ``version``, ``job`` (incl. the resolved ``config``), ``counts`` (the
    funnel; ``before``/``after`` are the sample counts entering and leaving selection),
    ``savings``, ``statistics`` (``before``/``after`` nearest-neighbour and pairwise-distance
    summaries, the shared-bin histogram, coverage of the removed samples, metadata and label
    counts, ``embedding_health``: std of the L2-normalised embeddings, effective rank and the
    collapse warning), ``selection`` and ``plots`` (``files`` relative to the output folder,
    ``skipped`` with reasons, ``filter_decisions`` with the neighbours shown). Non-finite
    statistics are ``null``.
    """
    return analyse(inputs, options or ReportOptions()).report
