"""``report.pdf`` from the report dict and the plot PNGs, with matplotlib alone.

Layout (A4 portrait): page 1 summarises the run (job, sample funnel, before/after
statistics, estimated savings, selection); page 2 lists details (labels, metadata, skipped
plots) and the resolved configuration; then one page per group of plots (:func:`plot_pages`),
at most two plots per page, each with a heading and a sentence on how to read it. Text that
does not fit a page is cut with a note pointing to ``report.json``, which holds every value.
"""

from __future__ import annotations

import functools
import json
import math
import re
import textwrap
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties, findfont, get_font
from matplotlib.lines import Line2D
from PIL import Image

from selfsup.curation.plots import COLORS, report_style, shorten
from selfsup.utils.atomic import atomic_path
from selfsup.utils.names import display_name
from selfsup.utils.report_units import format_duration, format_mass

__all__ = ["plot_pages", "write_report_pdf"]

_PAGE_W: Final = 8.27  # A4, inches
_PAGE_H: Final = 11.69
_MARGIN: Final = 0.75
_ROW: Final = 0.2  # height of a text row, inches

_CAPTIONS: Final[dict[str, tuple[str, str]]] = {
    "quality_examples": (
        "Image-quality issues",
        "Examples of the samples flagged with each issue, most extreme first "
        "(filenames/quality_issues.txt lists them all; thresholds on the details page).",
    ),
    "distance_distr_before": (
        "Pairwise distances before selection",
        "Distances between the samples that entered selection. A heavy tail at short distances "
        "points to dense regions of near-identical samples, which bias a model trained on them.",
    ),
    "distance_distr_after": (
        "Pairwise distances after selection",
        "The same for the selected samples; the dashed outline is the distribution before "
        "selection. Removing near-identical samples lowers the short-distance tail and makes "
        "the histogram more symmetric.",
    ),
    "scatter_pca": (
        "PCA projection",
        "The embeddings projected on their two principal components: selected samples blue, "
        "removed samples grey. Selected samples should cover every region.",
    ),
    "scatter_pca_no_overlay": (
        "PCA projection without selection",
        "The same points without the selection overlay, to show the structure of the data.",
    ),
    "scatter_umap": (
        "UMAP projection (k = {k})",
        "A non-linear 2-D map that keeps each sample near its {k} nearest neighbours: selected "
        "samples blue, removed grey. Clusters far apart are different kinds of data.",
    ),
    "scatter_umap_no_overlay": (
        "UMAP projection (k = {k}) without selection",
        "The same map without the selection overlay.",
    ),
    "filter_decision": (
        "Filter decisions",
        "Selected samples (blue frames) beside the removed samples nearest to them (red frames), "
        "with embedding distances. Removed samples should look like near-copies of the kept one.",
    ),
}


def _plot_key(stem: str) -> tuple[str, str, dict[str, str]]:
    """``(family, caption key, format fields)`` of a plot file stem."""
    if m := re.fullmatch(r"scatter_umap_k_(\d+)(_no_overlay)?", stem):
        key = "scatter_umap" + (m.group(2) or "")
        return f"umap_{m.group(1)}", key, {"k": m.group(1)}
    if m := re.fullmatch(r"filter_decision_(\d+)", stem):
        return "filter_decision", "filter_decision", {"n": str(int(m.group(1)) + 1)}
    if stem.startswith("distance_distr"):
        return "distance", stem, {}
    if stem.startswith("scatter_pca"):
        return "pca", stem, {}
    return stem, stem, {}


def plot_pages(plot_paths: Sequence[Path]) -> list[list[Path]]:
    """Plots grouped into PDF pages: consecutive plots of one family share a page.

    Families: the two distance histograms; the two PCA plots; the two plots of each UMAP
    ``k`` (two per page); the filter decisions (three per page). The PDF has
    ``2 + len(plot_pages(plot_paths))`` pages.
    """
    pages: list[list[Path]] = []
    last_family = None
    for path in plot_paths:
        family = _plot_key(Path(path).stem)[0]
        per_page = 3 if family == "filter_decision" else 2
        if pages and family == last_family and len(pages[-1]) < per_page:
            pages[-1].append(Path(path))
        else:
            pages.append([Path(path)])
        last_family = family
    return pages


# --------------------------------------------------------------------------- text layout


def _int(n: Any) -> str:
    return "–" if n is None else f"{int(n):,}"


def _num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{float(x):.{digits}f}"


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "–"


def _money(x: float, currency: str) -> str:
    return f"{x:,.2f} {currency}"


_FONT: Final = FontProperties(family="DejaVu Sans")


#: matplotlib shares one FreeType face per font file; measuring sets its size and text.
_FONT_LOCK: Final = threading.Lock()
_MEASURE_SCALE: Final = 16


@functools.lru_cache(maxsize=4096)
def _text_width(s: str, size: float) -> float:
    """Width in inches of ``s`` drawn in DejaVu Sans at ``size`` points (the report's font).

    FreeType's layout box of the string, as matplotlib's Agg renderer measures text: ~1 ms a
    string, where building its glyph outlines (``TextPath``, used before) took ~70 ms and
    made 11 of the 56 s a small run spent writing its report (cProfile of
    tests/cli/test_train_vit.py's run). The layout box is up to ~1 % wider than the ink
    (side bearings), never narrower, so text measured to fit is drawn inside its column.
    """
    if not s:
        return 0.0
    with _FONT_LOCK:
        font = get_font(findfont(_FONT))
        # Laid out at 16 x 72 dpi (a pixel is 1/16 point): at 72 dpi hinting rounds every
        # glyph to whole pixels, 7 % too wide at 7 points.
        font.set_size(size, 72 * _MEASURE_SCALE)
        font.set_text(display_name(s), 0.0)
        width, _ = font.get_width_height()  # 26.6 fixed point: 1/64 pixel
    return float(width) / 64.0 / _MEASURE_SCALE / 72.0


def wrap_to_width(text: str, width: float, size: float, max_lines: int) -> list[str]:
    """``text`` wrapped at spaces into lines at most ``width`` inches wide at ``size`` points.

    A word wider than a line is split between characters (a path, a long name); past
    ``max_lines`` the last line ends in "…". ``""`` gives ``[""]``.
    """
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if _text_width(candidate, size) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for char in word:  # only a word wider than a whole line gets here with chars left
            if line and _text_width(line + char, size) > width:
                lines.append(line)
                line = ""
            line += char
    lines.append(line)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and _text_width(last + "…", size) > width:
            last = last[:-1]
        lines = [*lines[: max_lines - 1], last.rstrip() + "…"]
    return lines


class _Page:
    """A page of text laid out top to bottom; rows past the bottom margin are cut."""

    def __init__(self, fig: Figure, run_name: str, page: int, n_pages: int) -> None:
        self.fig = fig
        self.y = _MARGIN  # inches from the top
        self.truncated = False
        fig.text(
            _MARGIN / _PAGE_W, 1 - 0.4 / _PAGE_H, f"selfsup report · {shorten(run_name, 60)}",
            fontsize=7.5, color=COLORS["muted"], va="center",
        )  # fmt: skip
        fig.text(
            1 - _MARGIN / _PAGE_W, 0.4 / _PAGE_H, f"page {page} of {n_pages}",
            fontsize=7.5, color=COLORS["muted"], ha="right", va="center",
        )  # fmt: skip

    def _fits(self, height: float) -> bool:
        if self.truncated:
            return False  # nothing is drawn below (or over) the "more in report.json" note
        if self.y + height > _PAGE_H - _MARGIN - _ROW:
            if not self.truncated:
                self.truncated = True
                self.text(0.0, "… more in report.json", color=COLORS["muted"], size=8, force=True)
            return False
        return True

    def text(
        self,
        x: float,
        s: str,
        *,
        size: float = 9,
        weight: str = "normal",
        color: str = COLORS["text"],
        ha: str = "left",
        family: str = "DejaVu Sans",
        force: bool = False,
        advance: float | None = None,
    ) -> None:
        """Write ``s`` at ``x`` inches right of the margin on the current row.

        Bytes of names that are not UTF-8 are drawn as ``\\xNN`` (a font has no glyph for
        them; :func:`selfsup.utils.names.display_name`).
        """
        if not force and not self._fits(_ROW):
            return
        self.fig.text(
            (_MARGIN + x) / _PAGE_W, 1 - (self.y + 0.15) / _PAGE_H, display_name(s), fontsize=size,
            fontweight=weight, color=color, ha=ha, family=family,
        )  # fmt: skip
        if advance is not None:
            self.y += advance

    def newline(self, rows: float = 1.0) -> None:
        self.y += _ROW * rows

    def rule(self, color: str = "#CCCCCC", width: float = 0.6) -> None:
        y = 1 - (self.y + 0.04) / _PAGE_H
        self.fig.add_artist(
            Line2D([_MARGIN / _PAGE_W, 1 - _MARGIN / _PAGE_W], [y, y], color=color, linewidth=width)
        )

    def heading(self, s: str) -> None:
        if not self._fits(3 * _ROW):
            return
        self.y += 0.1
        self.text(0.0, s, size=11.5, weight="bold", color=COLORS["selected"])
        self.newline(1.05)
        self.rule()
        self.y += 0.04

    def rows(
        self, items: Iterable[tuple[str, str]], key_width: float = 2.1, max_lines: int = 2
    ) -> None:
        """Key-value rows; a key or value wider than its column wraps onto more lines (at
        most ``max_lines``; a longer value ends in "…"), so that no key is cut mid-word."""
        value_width = _PAGE_W - 2 * _MARGIN - key_width
        for key, value in items:
            keys = wrap_to_width(key, key_width - 0.1, 9, max_lines)
            values = wrap_to_width(value, value_width, 9, max_lines)
            if not self._fits(_ROW * max(len(keys), len(values))):
                return
            for i in range(max(len(keys), len(values))):
                if i < len(keys):
                    self.text(0.0, keys[i], color=COLORS["muted"])
                if i < len(values):
                    self.text(key_width, values[i])
                self.newline()

    def table(
        self, header: Sequence[str], body: Iterable[Sequence[str]], columns: Sequence[float]
    ) -> None:
        """Right-aligned numeric columns at ``columns`` (inches); the first is left-aligned."""
        if not self._fits(2 * _ROW):
            return
        for i, h in enumerate(header):
            self.text(columns[i], h, weight="bold", ha="left" if i == 0 else "right", size=8.5)
        self.newline()
        self.rule(color="#999999")
        self.y += 0.03
        rows = [list(row) for row in body]
        # The first column wraps before the widest cell right-aligned at columns[1]: a label
        # is never cut mid-word nor drawn over the numbers.
        if len(columns) > 1:
            widest = max(
                (_text_width(r[1], 9) for r in [list(header), *rows] if len(r) > 1), default=0.0
            )
            first_width = columns[1] - columns[0] - widest - 0.15
        else:
            first_width = _PAGE_W - 2 * _MARGIN - columns[0]
        for row in rows:
            labels = wrap_to_width(row[0], first_width, 9, 2) if row else []
            if not self._fits(_ROW * max(1, len(labels))):
                return
            for i, cell in enumerate(row):
                if i == 0:
                    for j, line in enumerate(labels):
                        self.text(columns[0], line, advance=_ROW if j < len(labels) - 1 else None)
                    self.y -= _ROW * (len(labels) - 1)
                else:
                    self.text(columns[i], cell, ha="right")
            self.newline(max(1, len(labels)))

    def paragraph(self, s: str, width: int = 110, size: float = 8, color: str = "") -> None:
        for line in textwrap.wrap(s, width=width):
            if not self._fits(_ROW * 0.85):
                return
            self.text(0.0, line, size=size, color=color or COLORS["muted"])
            self.newline(0.85)


# --------------------------------------------------------------------------- pages


def _label(key: str) -> str:
    """A report.json key as a row label: ``n_preselected_from_datapool`` -> ``Preselected
    from datapool`` (words, so that a narrow column wraps it between them)."""
    words = key.removeprefix("n_").replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def _empty(value: Any) -> bool:
    """Nothing to show: ``""``, ``None``, ``0``, an empty list, or a dict of empty values."""
    if value is None or value == "" or value == [] or value == 0:
        return True  # 0: e.g. no samples preselected from a datapool without one
    return isinstance(value, Mapping) and all(_empty(v) for v in value.values())


def _extras(job: Mapping[str, Any], *, structured: bool) -> list[tuple[str, Any]]:
    """The non-empty ``job.extra`` facts whose values are lists or dicts (``structured``)
    or not."""
    return [
        (str(k), v)
        for k, v in job["extra"].items()
        if not _empty(v) and isinstance(v, list | dict) == structured
    ]


def _summary_page(page: _Page, report: Mapping[str, Any]) -> None:
    job = report["job"]
    counts = report["counts"]
    stats = report["statistics"]
    savings = report["savings"]
    selection = report["selection"]

    page.text(0.0, "selfsup report", size=22, weight="bold", advance=0.36)
    page.text(0.0, shorten(job["run_name"], 70), size=12, color=COLORS["muted"])
    page.newline(1.2)
    page.rule(color=COLORS["selected"], width=1.5)
    page.y += 0.08
    health = stats.get("embedding_health")
    if health and health.get("warning"):
        # A collapsed model makes every figure below meaningless: say so before them.
        page.paragraph("Warning: " + str(health["warning"]), size=9, color=COLORS["neighbor"])

    page.heading("Job")
    # Each step with its own time (report.json's job.step_durations_s, as the log says).
    steps = " · ".join(f"{k} {format_duration(v)}" for k, v in job["step_durations_s"].items())
    items = [
        ("Input folder", job["input_dir"]),
        ("Started", job["started_at"]),
        ("Finished", job["finished_at"]),
        ("Duration", format_duration(job["duration_s"])),
        *([("Steps", steps)] if steps else []),
    ]
    # Plain facts here; structured ones (lists, dicts) on the details page.
    items += [(_label(str(k)), str(v)) for k, v in _extras(job, structured=False)]
    page.rows(items)

    page.heading("Samples")
    found = counts["n_samples_found"]
    reasons = ", ".join(f"{k} {v:,}" for k, v in counts["corrupt_reasons"].items())
    funnel = [
        ("Files found", counts["n_files_found"], None),
        ("Samples found (images and video frames)", found, found),
        ("Corrupt" + (f" ({shorten(reasons, 40)})" if reasons else ""), counts["n_corrupt"], found),
        ("Exact duplicates", counts["n_duplicates"], found),
        ("Not in relevant filenames", counts["n_not_relevant"], found),
        ("Entered selection (before)", counts["n_input_to_selection"], found),
        ("Removed by selection filters", counts["n_removed_by_filters"], found),
        ("Selected (after)", counts["n_selected"], found),
    ]
    page.table(
        ["", "samples", "share of found"],
        [[label, _int(n), "" if whole is None else _pct(n, whole)] for label, n, whole in funnel],
        columns=[0.0, 5.2, 6.75],
    )

    page.heading("Before and after selection")
    before, after = stats["before"], stats["after"]

    def stat(part: Mapping[str, Any], group: str, key: str) -> str:
        value = part.get(group)
        return "–" if value is None else _num(value.get(key))

    body = [["Samples", _int(before["n_samples"]), _int(after["n_samples"])]]
    for label, group, key in (
        ("Nearest-neighbour distance, mean", "nearest_neighbor_distance", "mean"),
        ("Nearest-neighbour distance, median", "nearest_neighbor_distance", "median"),
        ("Nearest-neighbour distance, minimum", "nearest_neighbor_distance", "min"),
        ("Pairwise distance, mean", "pairwise_distance", "mean"),
        ("Pairwise distance, standard deviation", "pairwise_distance", "std"),
        ("Pairwise distance, skewness", "pairwise_distance", "skewness"),
    ):
        body.append([label, stat(before, group, key), stat(after, group, key)])
    page.table(["", "before", "after"], body, columns=[0.0, 5.2, 6.75])
    page.y += 0.05
    note = f"Distances: {stats['distance']}."
    cov = stats.get("removed_to_selected_distance")
    if cov:
        note += (
            f" Every removed sample lies within {_num(cov['max'])} of a selected one "
            f"(median {_num(cov['median'])}, 95th percentile {_num(cov['p95'])}"
            + (f", over {cov['n_queries']:,} sampled removed samples" if cov["sampled"] else "")
            + ")."
        )
    nn = before.get("nearest_neighbor_distance")
    if nn and nn["sampled"]:
        note += f" Nearest-neighbour statistics of {nn['n_queries']:,} sampled queries."
    page.paragraph(note)

    page.heading("Estimated savings")
    page.rows(
        [
            (
                "Samples not to label",
                f"{savings['samples_saved']:,} of {savings['baseline_samples']:,} "
                f"({100 * savings['fraction_saved']:.1f} %)",
            ),
            ("Labelling cost saved", _money(savings["labeling_cost_saved"], savings["currency"])),
            ("Training emissions saved", format_mass(savings["kg_co2e_saved"])),
        ],
        key_width=2.1,
    )
    page.paragraph("Assumptions: " + savings["assumptions"]["note"])

    page.heading("Selection")
    items = [
        ("Selected", f"{selection['n_selected']:,}"),
        ("Requested at most", _int(selection.get("n_requested"))),
        ("Stopped because", str(selection.get("stop_reason") or "–")),
    ]
    pick = selection.get("pick_distance")
    if pick:
        items.append(("Distance of the last pick", _num(pick["last"])))
    page.rows(items)


def _details_page(page: _Page, report: Mapping[str, Any]) -> None:
    stats = report["statistics"]
    page.text(0.0, "Details", size=18, weight="bold", advance=0.35)
    health = stats.get("embedding_health")
    if health:
        # selfsup.utils.embedding_stats: the collapse figures and their thresholds.
        limits = health["thresholds"]
        page.heading("Embeddings")
        page.rows(
            [
                (
                    "Std of L2-normalised x sqrt(D)",
                    f"{_num(health['std_of_l2_normalized_times_sqrt_dim'])}  (std "
                    f"{_num(health['std_of_l2_normalized'])}; 0 = collapsed, 1 = spread over "
                    f"the sphere; warning below {limits['std_of_l2_normalized_times_sqrt_dim']})",
                ),
                (
                    "Effective rank",
                    f"{_num(health['effective_rank'])} of {health['dim']} dimensions "
                    f"(warning below {limits['effective_rank']})",
                ),
                ("Verdict", "collapsed" if health["collapsed"] else "not collapsed"),
            ],
            key_width=2.1,
        )
    labels = stats.get("labels")
    if labels:
        page.heading(f"Labels ({labels['n_labels']:,})")
        page.table(
            ["label", "before", "after", "kept"],
            [
                [
                    r["label"],
                    _int(r["before"]),
                    _int(r["after"]),
                    _pct(r["after"], r["before"]),
                ]
                for r in labels["counts"][:12]
            ],
            columns=[0.0, 4.2, 5.45, 6.75],
        )
    if stats.get("metadata"):
        page.heading("Metadata (mean ± std)")
        body = []
        for key, entry in stats["metadata"].items():
            cells = [key]
            for part in (entry["before"], entry["after"]):
                cells.append("–" if part is None else f"{part['mean']:.4g} ± {part['std']:.3g}")
            body.append(cells)
        page.table(["key", "before", "after"], body, columns=[0.0, 5.0, 6.75])
    near = report.get("near_duplicates")
    if near:
        # selfsup.curation.near_duplicates: reported, never removed by the run.
        page.heading("Near duplicates")
        used, suggested = near["embedding_distance"], near["suggested_embedding_distance"]
        if near["nn_distance_histogram"] is None:
            suggestion = "–"
        else:
            suggestion = "none (no separated low mode)" if suggested is None else _num(suggested)
        page.rows(
            [
                (
                    "Groups",
                    f"{near['n_groups']:,} with {near['n_members']:,} samples "
                    f"({near['n_removable']:,} besides the kept ones)",
                ),
                (
                    "Hash distance",
                    f"at most {near['hash_distance']} of 64 bits ({near['n_hash_pairs']:,} pairs)",
                ),
                (
                    "Embedding distance",
                    "–"
                    if used is None
                    else f"at most {_num(used)} ({near['n_embedding_pairs']:,} pairs)",
                ),
                ("Suggested embedding distance", suggestion),
                ("Groups listed in", near["file"]),
            ],
            key_width=2.1,
        )
    quality = report.get("quality")
    if quality:
        # selfsup.curation.quality: flagged in the check step; removed only when excluded.
        page.heading("Image quality")
        page.table(
            ["issue", "flagged", "threshold", "from", "excluded", "e.g."],
            [
                [
                    issue,
                    _int(entry["count"]),
                    f"{entry['score']} {'<' if entry['flagged_when'] == 'below' else '>'} "
                    f"{_num(entry['threshold'])}",
                    entry["threshold_source"],
                    "yes" if entry["excluded"] else "no",
                    shorten(entry["examples"][0], 24) if entry["examples"] else "",
                ]
                for issue, entry in quality.items()
            ],
            columns=[0.0, 1.7, 3.6, 4.25, 4.95, 6.75],
        )
    page.heading("Run details")
    page.rows(
        [
            ("selfsup version", str(report["job"]["selfsup_version"])),
            *((_label(k), json.dumps(v)) for k, v in _extras(report["job"], structured=True)),
        ],
        max_lines=3,
    )
    skipped = report["plots"]["skipped"]
    if skipped:
        page.heading("Plots not drawn")
        page.rows(skipped.items(), key_width=2.1)
    page.heading("Configuration")
    config = report["job"]["config"]
    if not config:
        page.paragraph("No configuration was recorded.", size=9)
        return
    for line in json.dumps(config, indent=2, ensure_ascii=False).splitlines():
        for chunk in textwrap.wrap(line, width=100, subsequent_indent="    ") or [""]:
            if not page._fits(_ROW * 0.7):
                return
            page.text(0.0, chunk, size=7, family="DejaVu Sans Mono")
            page.newline(0.7)


def _plot_page(page: _Page, paths: Sequence[Path]) -> None:
    """Each plot in an equal slot, scaled to fit, with its caption below."""
    top = page.y
    slot = (_PAGE_H - _MARGIN - 0.1 - top) / len(paths)
    width = _PAGE_W - 2 * _MARGIN
    for i, path in enumerate(paths):
        _, key, fields = _plot_key(path.stem)
        heading, caption = _CAPTIONS.get(key, (path.stem, ""))
        lines = textwrap.wrap(caption.format(**fields), width=118)
        # A plot of the same kind as the one above it on the page needs no second caption.
        repeated = i > 0 and _plot_key(paths[i - 1].stem)[1] == key
        if repeated:
            lines = []
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"))
        caption_h = 0.0 if repeated else 0.18 * (len(lines) + 1) + 0.15
        avail_h = slot - caption_h - 0.3
        aspect = rgb.shape[0] / rgb.shape[1]
        w = min(width, avail_h / aspect)
        h = w * aspect
        y0 = top + i * slot + 0.1
        ax = page.fig.add_axes(
            (
                (_MARGIN + (width - w) / 2) / _PAGE_W,
                1 - (y0 + h) / _PAGE_H,
                w / _PAGE_W,
                h / _PAGE_H,
            )
        )
        ax.imshow(rgb, interpolation="antialiased")
        ax.set_axis_off()
        page.y = y0 + h + 0.12
        if repeated:
            continue
        page.text(0.0, heading.format(**fields), size=9, weight="bold", force=True)
        page.newline(0.9)
        for line in lines:
            page.text(0.0, line, size=8, color=COLORS["muted"], force=True)
            page.newline(0.85)


def write_report_pdf(
    report: Mapping[str, Any], plot_paths: Sequence[str | Path], path: str | Path
) -> None:
    """Write ``report.pdf``: summary, details and configuration, then the plots; atomically.

    Args:
        report: The dict of :func:`selfsup.curation.report.build_report`.
        plot_paths: PNG files in the order they should appear (grouped by :func:`plot_pages`).
        path: Destination; replaced only once the PDF is complete.
    """
    pages = plot_pages([Path(p) for p in plot_paths])
    n_pages = 2 + len(pages)
    run_name = display_name(str(report["job"]["run_name"]))
    metadata = {
        "Title": f"selfsup report: {run_name}",
        "Creator": f"selfsup {report['job']['selfsup_version']}",
    }
    with report_style(), atomic_path(path) as tmp, PdfPages(tmp, metadata=metadata) as pdf:
        for number in range(1, n_pages + 1):
            fig = Figure(figsize=(_PAGE_W, _PAGE_H))
            page = _Page(fig, run_name, number, n_pages)
            if number == 1:
                _summary_page(page, report)
            elif number == 2:
                _details_page(page, report)
            else:
                _plot_page(page, pages[number - 3])
            pdf.savefig(fig)
