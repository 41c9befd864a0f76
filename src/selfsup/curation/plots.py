"""Figures of the run report, and the 2-D projections they draw.

Every function builds a :class:`matplotlib.figure.Figure` directly (no ``pyplot``): no global
figure registry, no GUI backend, nothing to close, safe in worker threads. PNGs are rendered
by Agg through :func:`save_figure`, which writes atomically. The figures share one look
(:data:`STYLE`) and one colour code: selected samples blue, removed samples grey, the removed
neighbours of a filter decision red.

:func:`pca_2d` and :func:`umap_2d` are the projections of the scatter plots; ``umap`` is
imported only inside :func:`umap_2d` because importing it takes seconds.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import NDArray
from PIL import Image

from selfsup.utils.atomic import atomic_path
from selfsup.utils.names import display_name
from selfsup.utils.vectors import knn, pca

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

__all__ = [
    "COLORS",
    "STYLE",
    "Tile",
    "distance_histogram_figure",
    "filter_decision_figure",
    "pca_2d",
    "report_style",
    "save_figure",
    "scatter_figure",
    "shorten",
    "umap_2d",
]

COLORS: Final = {
    "selected": "#1565C0",
    "removed": "#B0B7C0",
    "before": "#6B7A8F",
    "neighbor": "#C62828",
    "text": "#222222",
    "muted": "#666666",
    "placeholder": "#E3E6EA",
}
"""The colour code shared by every figure and the PDF."""

STYLE: Final[dict[RcKeyType, Any]] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "axes.edgecolor": "#888888",
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#DDDDDD",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "xtick.color": "#555555",
    "ytick.color": "#555555",
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "pdf.fonttype": 42,
}
"""matplotlib rc settings of the report (TrueType fonts in the PDF: selectable text)."""

# Top labels coloured individually in a labelled scatter plot; the rest are "other".
_MAX_LABEL_COLORS: Final = 10


@contextmanager
def report_style() -> Iterator[None]:
    """Apply :data:`STYLE` for the duration of the block (axes read rc at creation)."""
    with mpl.rc_context(STYLE):
        yield


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters keeping both ends: ``"abc…xyz"``."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 150) -> None:
    """Render ``fig`` to ``path`` (format from the suffix); it appears complete or not at all."""
    target = os.fspath(path)
    fmt = os.path.splitext(target)[1].lstrip(".").lower() or "png"
    with report_style(), atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=dpi, format=fmt)


def _titles(fig: Figure, ax: Axes, title: str, subtitle: str) -> None:
    fig.suptitle(title, x=0.02, ha="left", fontsize=12, fontweight="bold", color=COLORS["text"])
    ax.set_title(subtitle, loc="left", fontsize=8.5, color=COLORS["muted"])


# --------------------------------------------------------------------------- histograms


def distance_histogram_figure(
    distances: NDArray[np.floating[Any]],
    bin_edges: NDArray[np.floating[Any]],
    *,
    title: str,
    subtitle: str,
    reference: NDArray[np.floating[Any]] | None = None,
) -> Figure:
    """Density histogram of pairwise distances, with median and moment statistics.

    Args:
        distances: ``(P,)`` pairwise distances of the set shown (filled bars).
        bin_edges: ``(B + 1,)`` edges, shared by the before and after plots so that they can
            be compared bar by bar.
        title, subtitle: Figure title and the line below it (which pairs were used); the
            mean, standard deviation and skewness of ``distances`` are appended to it.
        reference: ``(P',)`` distances of the set before selection, drawn as a dashed outline
            (for the after plot).
    """
    d = np.asarray(distances, dtype=np.float64)
    edges = [float(e) for e in bin_edges]
    with report_style():
        fig = Figure(figsize=(7.0, 4.2), layout="constrained")
        ax = fig.add_subplot()
        color = COLORS["before"] if reference is None else COLORS["selected"]
        label = "before selection" if reference is None else "after selection"
        ax.hist(
            d, bins=edges, density=True, color=color, alpha=0.85, edgecolor="white",
            linewidth=0.4, label=label,
        )  # fmt: skip
        if reference is not None:
            ax.hist(
                np.asarray(reference, dtype=np.float64), bins=edges, density=True,
                histtype="step", color=COLORS["before"], linestyle="--", linewidth=1.3,
                label="before selection",
            )  # fmt: skip
        median = float(np.median(d))
        ax.axvline(
            median, color=COLORS["text"], linestyle=":", linewidth=1.2, label=f"median {median:.3f}"
        )
        centred = d - d.mean()
        m2 = float(np.mean(centred**2))
        skew = f"{np.mean(centred**3) / m2**1.5:+.2f}" if m2 > 1e-24 else "n/a"
        subtitle = f"{subtitle}  ·  mean {d.mean():.3f}, std {d.std():.3f}, skewness {skew}"
        ax.set_xlim(float(bin_edges[0]), float(bin_edges[-1]))
        ax.set_xlabel("distance between L2-normalised embeddings")
        ax.set_ylabel("density")
        ax.legend(loc="upper left")
        _titles(fig, ax, title, subtitle)
    return fig


# --------------------------------------------------------------------------- scatter plots


def pca_2d(
    x: NDArray[np.floating[Any]], seed: int = 0
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """First two principal components of ``(M, D)`` points (``M >= 3``, ``D >= 2``).

    Returns ``(M, 2)`` float64 coordinates and the ``(2,)`` explained-variance ratios, by
    scikit-learn's PCA (:func:`selfsup.utils.vectors.pca` with ``solver="sklearn"``).
    """
    result = pca(x, 2, solver="sklearn", seed=seed)
    return np.asarray(result.coords, dtype=np.float64), result.explained_variance_ratio


def umap_2d(x: NDArray[np.floating[Any]], n_neighbors: int, seed: int = 0) -> NDArray[np.float64]:
    """``(M, 2)`` UMAP embedding of ``(M, D)`` points with ``2 <= n_neighbors < M``.

    UMAP as ``umap.UMAP(n_neighbors, metric="euclidean", random_state=seed)`` runs it, in
    three steps: the exact ``n_neighbors`` nearest neighbours
    (:func:`selfsup.utils.vectors.knn`, each point its own first), UMAP's fuzzy graph of them
    (:func:`selfsup.curation.umap_graph.umap_graph`, umap-learn's graph to within 1e-6), and
    umap-learn's layout of that graph (``simplicial_set_embedding`` with UMAP's defaults:
    min_dist 0.1, spread 1, learning rate 1, repulsion 1, 5 negative samples, 500 epochs up
    to 10,000 points, else 200). The first two replace umap-learn's numba kernels, whose
    compilation took about 15 s in every process (benchmarks/umap_first_call.py). The layout
    is not bit-identical to ``UMAP().fit_transform``'s (its edge sampling depends on the
    weights to the last bit), and above 4,096 points umap-learn approximates the neighbours
    where these are exact.

    Seeded, hence single-threaded. Spectral initialisation needs more points than
    eigenvectors; for tiny ``M`` the layout starts from random positions instead.
    """
    m = x.shape[0]
    if not 2 <= n_neighbors < m:
        raise ValueError(
            f"UMAP n_neighbors must lie in [2, {m - 1}] for {m} points, got {n_neighbors}"
        )
    from umap.umap_ import find_ab_params, simplicial_set_embedding

    from selfsup.curation.umap_graph import umap_graph

    data = np.asarray(x, dtype=np.float32)
    neighbours = knn(data, data, n_neighbors, distance_dtype=np.float32)
    a, b = find_ab_params(1.0, 0.1)
    coords, _ = simplicial_set_embedding(
        data=data,
        graph=umap_graph(neighbours.indices, neighbours.distances),
        n_components=2,
        initial_alpha=1.0,
        a=a,
        b=b,
        gamma=1.0,
        negative_sample_rate=5,
        n_epochs=500 if m <= 10_000 else 200,  # umap-learn's default, any version
        init="spectral" if m > 16 else "random",
        random_state=np.random.RandomState(seed),
        metric="euclidean",
        metric_kwds={},
        densmap=False,
        densmap_kwds={},
        output_dens=False,
        parallel=False,
    )
    return np.asarray(coords, dtype=np.float64)


def _marker_size(n: int) -> float:
    return float(np.clip(6000.0 / max(n, 1), 2.0, 36.0))


def scatter_figure(
    coords: NDArray[np.floating[Any]],
    *,
    title: str,
    subtitle: str,
    axis_labels: tuple[str, str],
    selected: NDArray[np.bool_] | None = None,
    labels: Sequence[str] | None = None,
) -> Figure:
    """2-D scatter plot of projected embeddings.

    Args:
        coords: ``(M, 2)`` projected points.
        selected: ``(M,)`` mask; when given (the "overlay" plot) removed points are grey and
            selected points blue, drawn on top so that a few remain visible among many.
        labels: ``(M,)`` class names for the no-overlay plot: the ten most frequent get a
            colour each, the rest are "other". Ignored when ``selected`` is given.
        title, subtitle, axis_labels: Texts.
    """
    c = np.asarray(coords, dtype=np.float64)
    m = c.shape[0]
    size = _marker_size(m)
    with report_style():
        fig = Figure(figsize=(7.0, 5.6), layout="constrained")
        ax = fig.add_subplot()
        if selected is not None:
            sel = np.asarray(selected, dtype=bool)
            ax.scatter(
                c[~sel, 0], c[~sel, 1], s=size, c=COLORS["removed"], linewidths=0,
                label=f"removed ({int((~sel).sum()):,})",
            )  # fmt: skip
            ax.scatter(
                c[sel, 0], c[sel, 1], s=size * 1.6, c=COLORS["selected"], linewidths=0,
                label=f"selected ({int(sel.sum()):,})",
            )  # fmt: skip
        elif labels is not None:
            counts = Counter(labels)
            top = [lab for lab, _ in counts.most_common(_MAX_LABEL_COLORS)]
            names = np.asarray(list(labels), dtype=object)
            other = ~np.isin(names, top)
            if other.any():
                ax.scatter(
                    c[other, 0], c[other, 1], s=size, c=COLORS["removed"], linewidths=0,
                    label=f"other ({int(other.sum()):,})",
                )  # fmt: skip
            palette = mpl.colormaps["tab10"]
            for i, lab in enumerate(top):
                mask = names == lab
                ax.scatter(
                    c[mask, 0], c[mask, 1], s=size, color=palette(i), linewidths=0,
                    label=f"{shorten(lab, 24)} ({int(mask.sum()):,})",
                )  # fmt: skip
        else:
            ax.scatter(c[:, 0], c[:, 1], s=size, c=COLORS["before"], linewidths=0, alpha=0.8)
        if selected is not None or labels is not None:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), markerscale=max(1.0, 5 / size))
        ax.set_xlabel(axis_labels[0])
        ax.set_ylabel(axis_labels[1])
        ax.tick_params(labelsize=7)
        _titles(fig, ax, title, subtitle)
    return fig


# --------------------------------------------------------------------------- filter decisions


@dataclass(frozen=True)
class Tile:
    """One image panel: a thumbnail (``None``: a grey placeholder), its name and a caption."""

    image: Image.Image | None
    filename: str
    caption: str = ""


def _draw_tile(ax: Axes, tile: Tile, heading: str, color: str) -> None:
    """A square panel framed in ``color``; the thumbnail is fitted inside, aspect kept."""
    ax.set_facecolor(COLORS["placeholder"])
    if tile.image is not None:
        rgb = np.asarray(tile.image.convert("RGB"))
        h, w = rgb.shape[:2]
        fw, fh = (1.0, h / w) if w >= h else (w / h, 1.0)
        extent = ((1 - fw) / 2, (1 + fw) / 2, (1 - fh) / 2, (1 + fh) / 2)
        ax.imshow(rgb, extent=extent, interpolation="lanczos" if max(h, w) > 64 else "nearest")
    else:
        ax.text(
            0.5, 0.5, "no preview", ha="center", va="center", fontsize=8,
            color=COLORS["muted"],
        )  # fmt: skip
    # After imshow, which autoscales to the image extent: the frame stays the unit square.
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color(color)
        spine.set_linewidth(3.0)
    ax.set_title(heading, fontsize=8.5, color=color, fontweight="bold")
    # Names that are not UTF-8 cannot be drawn as they are: show their bytes as \xNN.
    ax.set_xlabel(shorten(display_name(tile.filename), 30), fontsize=7, color=COLORS["text"])


def quality_examples_figure(rows: Sequence[tuple[str, Sequence[Tile]]]) -> Figure:
    """Example thumbnails of image-quality issues: one row per issue, its examples left to
    right, most extreme first (:mod:`selfsup.curation.quality`)."""
    n_cols = max(len(tiles) for _, tiles in rows)
    with report_style():
        fig = Figure(figsize=(max(4.5, 1.7 * n_cols), 2.3 * len(rows)), layout="constrained")
        axes = fig.subplots(len(rows), n_cols, squeeze=False)
        for (issue, tiles), line in zip(rows, axes, strict=True):
            for col, ax in enumerate(line):
                if col < len(tiles):
                    _draw_tile(ax, tiles[col], issue, COLORS["neighbor"])
                else:
                    ax.set_axis_off()
        fig.suptitle(
            "Image-quality issues: examples",
            x=0.02,
            ha="left",
            fontsize=11,
            fontweight="bold",
            color=COLORS["text"],
        )
    return fig


def filter_decision_figure(
    kept: Tile, neighbors: Sequence[Tile], *, position: int, n_selected: int
) -> Figure:
    """The kept sample (blue frame) beside its nearest removed samples (red frames).

    Args:
        kept: The selected sample.
        neighbors: Its nearest removed samples, nearest first; each caption holds the distance.
        position: 0-based position of ``kept`` in the selection order.
        n_selected: Size of the selection, for the title.
    """
    n_panels = 1 + len(neighbors)
    with report_style():
        fig = Figure(figsize=(max(4.5, 1.9 * n_panels), 2.9), layout="constrained")
        axes = fig.subplots(1, n_panels, squeeze=False)[0]
        _draw_tile(axes[0], kept, f"kept (pick {position + 1})", COLORS["selected"])
        for ax, tile in zip(axes[1:], neighbors, strict=True):
            _draw_tile(ax, tile, f"removed, {tile.caption}", COLORS["neighbor"])
        fig.suptitle(
            f"Filter decision: pick {position + 1} of {n_selected:,} "
            "and its nearest removed samples",
            x=0.02,
            ha="left",
            fontsize=11,
            fontweight="bold",
            color=COLORS["text"],
        )
    return fig
