"""The report of a curation run: statistics, savings, plots, ``report.json`` and ``report.pdf``.

The pipeline calls :func:`write_report` once at the end of a run with plain arrays
(:class:`ReportInputs`); nothing here reads a config file or knows the CLI. The statistics
and the plan of the plots are computed by :mod:`selfsup.curation.report_data` (its names are
re-exported here); this module draws and writes them. The output folder gets::

    plots/distance_distr_before.png      pairwise distances of the samples entering selection
    plots/distance_distr_after.png       ... of the selected samples (before drawn as outline)
    plots/scatter_pca.png                PCA of the embeddings, selected vs removed coloured
    plots/scatter_pca_no_overlay.png     same points, one colour (or coloured by label)
    plots/scatter_umap_k_{K}.png         UMAP with n_neighbors=K, for K in umap_neighbors
    plots/scatter_umap_k_{K}_no_overlay.png
    plots/filter_decision_{P}.png        the sample picked at position P of the selection order
                                         beside its nearest removed neighbours
    data/projections.csv                 the 2-D coordinates the scatter plots draw
    report.pdf                           summary page, configuration page, the plots
    report.json                          every value of the PDF, written last

Definitions
    *Before* is the set of samples that entered selection (the rows of ``embeddings``: after
    corrupt files, exact duplicates and ``relevant_filenames_file`` were applied); *after* is
    the selected subset. *Removed* is before minus after (including samples dropped by
    THRESHOLD filters inside selection). Every distance is the L2 distance between
    L2-normalised embeddings, the distance selection works with, so it lies in ``[0, 2]``.

Filter decisions
    ``filter_decision_{P}.png`` shows the sample picked at 0-based position ``P`` of the
    selection order, for ``P = i * (k // n)`` with ``i < n = min(n_filter_decisions, k)`` and
    ``k`` samples selected (lightly's ``0, 11, 22, ...``): early and late picks alike.

Bounded cost at any N
    Nothing is ever ``N x N``. Pairwise-distance histograms and statistics use a seeded
    subsample of at most ``max_pairwise_points`` samples per set; nearest-neighbour statistics
    use at most ``max_nn_queries`` seeded query samples, each searched exactly against the
    *whole* set in row blocks (so they are unbiased estimates of the full distribution; cost
    ``max_nn_queries x N x D``); PCA and UMAP are fitted on, and scatter plots draw, at most
    ``max_scatter_points`` seeded samples. Blocks are normalised on the fly, so the
    ``(N, D)`` embeddings are never copied whole. Every subsample is stated in the JSON and in
    the plot titles.

Projections (``data/projections.csv``)
    The points of the scatter plots, so that a viewer can draw them interactively: one row
    per drawn sample (the ``max_scatter_points`` subsample, ascending embedding row), header
    ``filename,pca_x,pca_y,umap_k{K}_x,umap_k{K}_y``. ``pca_*`` are the PCA coordinates
    (present when the PCA plot is drawn); ``umap_k{K}_*`` those of the UMAP with
    ``n_neighbors = K`` as actually used (after clipping to ``N - 1``): the plot of requested
    ``n_neighbors = 15`` when drawn, else the first UMAP drawn; absent without UMAP. Names are
    RFC 4180 quoted; numbers have 7 significant digits. Without any scatter plot the file is
    not written (and one of an earlier report in the folder is deleted).

Atomicity
    Plots are written first (each atomically), then ``report.pdf``, then ``report.json``.
    An exception in any step propagates before ``report.json`` is written, so an existing
    ``report.json`` means the report is complete. Plot files of an earlier report in the same
    folder that the new report does not produce are deleted afterwards (only names this module
    writes: ``distance_distr_*``, ``scatter_*``, ``filter_decision_*``).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from selfsup.curation import plots
from selfsup.curation._pdf import write_report_pdf
from selfsup.curation.report_data import (
    QUALITY_EXAMPLES_PLOT,
    Analysis,
    CostAssumptions,
    FilterDecision,
    JobInfo,
    ReportInputs,
    ReportOptions,
    SampleCounts,
    analyse,
    build_report,
    folder_image_loader,
    job_section,
    k_nearest,
    plot_plan,
    quality_example_rows,
)
from selfsup.runfolder import REPORT_FORMAT, REPORT_VERSION, RunFolder
from selfsup.utils.vectors import l2_normalize

__all__ = [
    "REPORT_FORMAT",
    "REPORT_VERSION",
    "CostAssumptions",
    "FilterDecision",
    "JobInfo",
    "ReportInputs",
    "ReportOptions",
    "SampleCounts",
    "build_report",
    "folder_image_loader",
    "k_nearest",
    "plot_plan",
    "write_plots",
    "write_report",
    "write_report_pdf",
]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- output


def _render_plots(
    inputs: ReportInputs,
    analysis: Analysis,
    plots_dir: Path,
    options: ReportOptions,
    coordinates: dict[str, NDArray[np.float64]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Draw the planned plots; fills ``coordinates`` (when given) with the scatter points:
    ``"pca"`` and ``"umap_k{K}"`` (K as used) -> ``(len(scatter_rows), 2)``; ``progress``
    gets a line as each kind of plot starts."""
    say = progress or _silent
    say(f"report: drawing {len(analysis.plot_files)} plots")
    emb = inputs.embeddings
    n = emb.shape[0]
    stats = analysis.report["statistics"]
    written: list[Path] = []
    names = set(analysis.plot_files)

    def save(fig: Any, name: str) -> None:
        if name not in names:
            raise AssertionError(f"plot {name} was drawn but not planned")
        path = plots_dir / name
        plots.save_figure(fig, path, dpi=options.dpi)
        written.append(path)

    if analysis.pairwise_before is not None and analysis.bin_edges is not None:
        save(
            plots.distance_histogram_figure(
                analysis.pairwise_before,
                analysis.bin_edges,
                title="Pairwise distances before selection",
                subtitle=_pairs_subtitle(stats["before"], n),
            ),
            "distance_distr_before.png",
        )
        if analysis.pairwise_after is not None:
            save(
                plots.distance_histogram_figure(
                    analysis.pairwise_after,
                    analysis.bin_edges,
                    title="Pairwise distances after selection",
                    subtitle=_pairs_subtitle(stats["after"], inputs.counts.n_selected),
                    reference=analysis.pairwise_before,
                ),
                "distance_distr_after.png",
            )

    rows = analysis.scatter_rows
    selected_mask = np.zeros(n, dtype=bool)
    selected_mask[inputs.selected] = True
    shown_selected = selected_mask[rows]
    shown_labels = None if inputs.labels is None else [str(inputs.labels[int(r)]) for r in rows]
    shown = f"{rows.size:,} of {n:,} samples shown" if rows.size < n else f"{n:,} samples"
    wanted = "scatter_pca.png" in names or options.umap_neighbors
    x = l2_normalize(emb[rows]) if wanted else None

    projections: list[tuple[str, str, NDArray[np.float64], tuple[str, str]]] = []
    if x is not None and "scatter_pca.png" in names:
        coords, ratio = plots.pca_2d(x, seed=options.seed)
        axes = (f"PC 1 ({ratio[0]:.0%} of variance)", f"PC 2 ({ratio[1]:.0%} of variance)")
        projections.append(("scatter_pca", "PCA of the embeddings", coords, axes))
        if coordinates is not None:
            coordinates["pca"] = coords
    # One UMAP goes to projections.csv: the k = 15 one, else the first drawn.
    csv_umap: tuple[int, NDArray[np.float64]] | None = None
    for k in options.umap_neighbors:
        if x is None or f"scatter_umap_k_{k}.png" not in names:
            continue
        k_eff = min(k, x.shape[0] - 1)
        say(f"report: UMAP with n_neighbors={k_eff}")
        coords = plots.umap_2d(x, n_neighbors=k_eff, seed=options.seed)
        note = f"n_neighbors = {k_eff}" + ("" if k_eff == k else f" (clipped from {k})")
        if k == _PROJECTION_UMAP_K or csv_umap is None:
            csv_umap = (k_eff, coords)
        projections.append(
            (f"scatter_umap_k_{k}", f"UMAP of the embeddings, {note}", coords, ("UMAP 1", "UMAP 2"))
        )
    if coordinates is not None and csv_umap is not None:
        coordinates[f"umap_k{csv_umap[0]}"] = csv_umap[1]
    for stem, title, coords, axis_labels in projections:
        save(
            plots.scatter_figure(
                coords,
                selected=shown_selected,
                title=title,
                subtitle=f"{shown}; selected vs removed",
                axis_labels=axis_labels,
            ),
            f"{stem}.png",
        )
        save(
            plots.scatter_figure(
                coords,
                selected=None,
                labels=shown_labels,
                title=title,
                subtitle=shown if shown_labels is None else f"{shown}; coloured by label",
                axis_labels=axis_labels,
            ),
            f"{stem}_no_overlay.png",
        )

    if analysis.filter_decisions:
        say(f"report: {len(analysis.filter_decisions)} filter-decision plots")
    for decision in analysis.filter_decisions:
        save(
            plots.filter_decision_figure(
                kept=_thumbnail(inputs, decision.kept_row),
                neighbors=[
                    _thumbnail(inputs, r, f"d = {d:.3f}")
                    for r, d in zip(decision.neighbor_rows, decision.distances, strict=True)
                ],
                position=decision.position,
                n_selected=inputs.counts.n_selected,
            ),
            decision.plot_name,
        )
    if QUALITY_EXAMPLES_PLOT in names:
        save(
            plots.quality_examples_figure(
                [
                    (issue, [_thumbnail(inputs, r) for r in rows])
                    for issue, rows in quality_example_rows(inputs)
                ]
            ),
            QUALITY_EXAMPLES_PLOT,
        )
    missing = names - {p.name for p in written}
    if missing:
        raise AssertionError(f"planned plots not drawn: {sorted(missing)}")
    order = {name: i for i, name in enumerate(analysis.plot_files)}
    return sorted(written, key=lambda p: order[p.name])


def _pairs_subtitle(stats: Mapping[str, Any], n_set: int) -> str:
    pw = stats["pairwise_distance"]
    if pw["sampled"]:
        return f"{pw['n_pairs']:,} pairs of {pw['n_points']:,} samples drawn from {n_set:,}"
    return f"all {pw['n_pairs']:,} pairs of {n_set:,} samples"


def _thumbnail(inputs: ReportInputs, row: int, caption: str = "") -> plots.Tile:
    name = inputs.filenames[row]
    image: Image.Image | None = None
    if inputs.load_image is not None:
        try:
            image = inputs.load_image(name)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            # One unreadable thumbnail must not cost the whole report: draw a placeholder.
            logger.warning("cannot load a thumbnail of %s for the report: %s", name, err)
    return plots.Tile(image=image, filename=name, caption=caption)


def write_plots(
    inputs: ReportInputs, plots_dir: str | Path, options: ReportOptions | None = None
) -> list[Path]:
    """Draw every planned plot (:func:`plot_plan`) into ``plots_dir`` as PNG, atomically.

    Returns the written paths in PDF order. UMAP is imported only when ``umap_neighbors``
    is non-empty and there are enough samples.
    """
    opts = options or ReportOptions()
    analysis = analyse(inputs, opts)
    return _render_plots(inputs, analysis, Path(plots_dir), opts)


_PROJECTION_UMAP_K: Final = 15


#: The plots a report draws (:func:`plot_plan`): a rewrite removes those it no longer plans.
_OWN_PLOT = re.compile(
    r"distance_distr_\w+\.png|scatter_\w+\.png|filter_decision_\d+\.png|"
    + re.escape(QUALITY_EXAMPLES_PLOT)
)


def _silent(message: str) -> None:
    """The default progress callback of :func:`write_report`: nothing to print to."""


def write_report(
    inputs: ReportInputs,
    output_dir: str | Path,
    options: ReportOptions | None = None,
    *,
    progress: Callable[[str], None] = _silent,
    finish_job: Callable[[], JobInfo] | None = None,
) -> dict[str, Any]:
    """Write ``plots/``, ``data/projections.csv``, ``report.pdf`` and, last, ``report.json``.

    See the module docstring for the files and the atomicity guarantee. Returns the report
    dict that ``report.json`` holds.

    Args:
        inputs: The run's arrays and facts.
        output_dir: The run folder.
        options: What is computed and drawn.
        progress: Called with a line for each part as it starts (statistics, each plot
            family, the PDF): UMAP and the PDF can take a minute on a large run.
        finish_job: Called once after the plots, right before ``report.pdf`` and
            ``report.json`` are written; its :class:`JobInfo` replaces ``inputs.job`` in both
            (the run's final timings, which then include the report's own time).
    """
    opts = options or ReportOptions()
    folder = RunFolder(output_dir)
    progress("report: statistics")
    analysis = analyse(inputs, opts)
    report = analysis.report
    warning = report["statistics"]["embedding_health"]["warning"]
    if warning:
        # In the run's log as well as the report: nothing else about the run looks wrong.
        logger.warning("%s", warning)
    plots_dir = folder.plots_dir
    coordinates: dict[str, NDArray[np.float64]] = {}
    written = _render_plots(inputs, analysis, plots_dir, opts, coordinates, progress)
    folder.write_projections(inputs.filenames, analysis.scatter_rows, coordinates)
    progress(f"report: writing {folder.report_pdf.name} and {folder.report_json.name}")
    if finish_job is not None:
        report["job"] = job_section(finish_job())
    write_report_pdf(report, written, folder.report_pdf)
    folder.write_report(report)
    keep = {p.name for p in written}
    for stale in plots_dir.glob("*.png"):
        if _OWN_PLOT.fullmatch(stale.name) and stale.name not in keep:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
    return report
