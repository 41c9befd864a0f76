"""data/selection.csv and data/projections.csv: the per-candidate selection record and the
report's scatter coordinates, written for the web app."""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from selfsup.config import RunConfig, resolve
from selfsup.curation import plots
from selfsup.curation.checks import build_manifest
from selfsup.curation.manifest import read_manifest
from selfsup.curation.pipeline import SELECTION_CSV_COLUMNS, run, write_selection_csv
from selfsup.curation.report import (
    JobInfo,
    ReportInputs,
    ReportOptions,
    SampleCounts,
    write_report,
)
from selfsup.utils.io import load_embeddings, save_embeddings


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture
def folder(make_image_folder: Callable[..., Path], corrupt_files: Callable[..., list[str]]) -> Path:
    root = make_image_folder(n_classes=3, n_per_class=8, size=(32, 32))
    shutil.copy(root / "class_0" / "img_0_0.png", root / "class_0" / "zz_copy_of_0.png")
    corrupt_files(root / "class_1")
    return root


def _embeddings_csv(folder: Path, path: Path) -> Path:
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("img_*.png"))
    rng = np.random.default_rng(0)
    centers = np.eye(8, dtype=np.float32)[:3] * 10
    emb = np.stack([centers[int(n.split("/")[0][-1])] + rng.normal(size=8) for n in names])
    save_embeddings(path, emb.astype(np.float32), [0] * len(names), names)
    return path


def _unit(x: NDArray[Any]) -> NDArray[np.float64]:
    y = np.asarray(x, dtype=np.float64)
    out: NDArray[np.float64] = y / np.linalg.norm(y, axis=1, keepdims=True)
    return out


@pytest.mark.slow
def test_pipeline_writes_selection_and_projections(
    no_drawing: None, folder: Path, tmp_path: Path
) -> None:
    """One real run with DIVERSITY and a THRESHOLD: every column checked against values
    recomputed here from the run's other files."""
    out = tmp_path / "out"
    emb_csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    # The threshold keeps the brighter half of the usable images, measured by a scan here.
    scanned = [r for r in build_manifest(folder, progress=False).records if r.is_ok]
    threshold = float(np.median([r.brightness for r in scanned]))
    selection = (
        "selection_config={n_samples: 5, strategies: ["
        "{input: {type: EMBEDDINGS}, strategy: {type: DIVERSITY}},"
        "{input: {type: METADATA, key: lightly.brightness}, "
        f"strategy: {{type: THRESHOLD, threshold: {threshold!r}, operation: BIGGER}}}}]}}"
    )
    result = run(
        resolve(
            RunConfig,
            overrides=[
                f"input_dir={folder}",
                f"output_dir={out}",
                "umap=false",
                "num_workers=0",
                f"embeddings={emb_csv}",
                selection,
            ],
        ),
        progress=False,
    )

    header, rows = _rows(out / "data" / "selection.csv")
    assert tuple(header) == SELECTION_CSV_COLUMNS
    norm, _, names = load_embeddings(out / "data" / "normalized_embeddings.csv")
    assert [r["filename"] for r in rows] == names  # candidate order
    assert [r["sample"] for r in rows] == names
    assert all(r["preselected"] == "0" for r in rows)

    picked = sorted((r for r in rows if r["rank"]), key=lambda r: int(r["rank"]))
    assert [r["filename"] for r in picked] == result.selected
    assert [int(r["rank"]) for r in picked] == list(range(1, len(result.selected) + 1))
    assert {r["filename"] for r in rows if r["selected"] == "1"} == set(result.selected)

    # pick_distance: distance of each pick to the nearest earlier pick, recomputed here.
    unit = _unit(norm)
    row_of = {n: i for i, n in enumerate(names)}
    order = [row_of[n] for n in result.selected]
    assert picked[0]["pick_distance"] == "inf"
    for i in range(1, len(order)):
        expected = np.linalg.norm(unit[order[:i]] - unit[order[i]], axis=1).min()
        assert float(picked[i]["pick_distance"]) == pytest.approx(expected, abs=1e-5)
    assert all(math.isfinite(float(r["score"])) for r in picked)
    assert all(r["score"] == "" and r["pick_distance"] == "" for r in rows if not r["rank"])

    # removed_by: exactly the candidates at or below the brightness threshold.
    usable = [r for r in read_manifest(out / "data" / "manifest.jsonl").records if r.is_ok]
    brightness = {r.filename: r.brightness for r in usable}
    filtered = {r["filename"] for r in rows if r["removed_by"]}
    # THRESHOLD removes missing values too (none here: every image decodes).
    assert filtered == {n for n in names if not (brightness[n] or math.nan) > threshold}
    assert 0 < len(filtered) < len(names)
    assert all(
        r["removed_by"].startswith("THRESHOLD METADATA lightly.brightness")
        for r in rows
        if r["removed_by"]
    )
    assert not filtered & set(result.selected)
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["n_removed_by_filters"] == len(filtered)

    # projections.csv: the scatter subsample (all 24 here) with PCA coordinates.
    header, points = _rows(out / "data" / "projections.csv")
    assert header == ["filename", "pca_x", "pca_y"]  # umap=false: no UMAP columns
    assert [p["filename"] for p in points] == names
    xy = np.array([[float(p["pca_x"]), float(p["pca_y"])] for p in points])
    # Independent PCA: the coordinates span the same plane as the top two principal axes of
    # the centred normalised embeddings, with the same variances.
    centred = unit - unit.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    reference = centred @ vt[:2].T
    for axis in range(2):
        corr = np.corrcoef(xy[:, axis], reference[:, axis])[0, 1]
        assert abs(corr) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(xy.var(axis=0), (s[:2] ** 2) / len(names), rtol=1e-4)


@pytest.fixture
def no_drawing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip rendering PNGs and the PDF: these tests are about data/projections.csv only."""
    import matplotlib.pyplot as plt

    from selfsup.curation import report

    monkeypatch.setattr(plots, "save_figure", lambda fig, path, dpi: plt.close(fig))
    monkeypatch.setattr(report, "write_report_pdf", lambda *args, **kwargs: None)


def _report_inputs(n: int, dim: int = 6) -> ReportInputs:
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    sel = np.arange(0, n, 3, dtype=np.int64)
    return ReportInputs(
        job=JobInfo(
            run_name="t",
            started_at="2024-05-01T12:00:00+00:00",
            finished_at="2024-05-01T12:00:01+00:00",
            duration_s=1.0,
            input_dir="/data",
        ),
        counts=SampleCounts(
            n_files_found=n,
            n_corrupt=0,
            n_duplicates=0,
            n_input_to_selection=n,
            n_selected=sel.size,
        ),
        embeddings=emb,
        filenames=[f"dir,with comma/img_{i:02d}.png" for i in range(n)],
        selected_indices=sel,
    )


@pytest.mark.parametrize(
    ("neighbors", "n", "column"),
    [
        ((5, 15, 50), 40, "umap_k15"),  # the n_neighbors=15 plot, whatever the order
        ((50, 5), 40, "umap_k39"),  # no 15: the first drawn, under the k actually used
        ((15,), 10, "umap_k9"),  # 15 clipped to N - 1 = 9
    ],
)
def test_projections_csv_umap_column(
    no_drawing: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    neighbors: tuple[int, ...],
    n: int,
    column: str,
) -> None:
    calls: dict[int, NDArray[np.float64]] = {}

    def fake_umap(x: NDArray[Any], n_neighbors: int, seed: int = 0) -> NDArray[np.float64]:
        # Coordinates that identify the call: (n_neighbors, row position).
        coords = np.stack([np.full(x.shape[0], float(n_neighbors)), np.arange(x.shape[0])], 1)
        calls[n_neighbors] = coords
        return coords

    monkeypatch.setattr(plots, "umap_2d", fake_umap)
    write_report(
        _report_inputs(n),
        tmp_path,
        ReportOptions(umap_neighbors=neighbors, dpi=20, n_filter_decisions=1),
    )
    header, points = _rows(tmp_path / "data" / "projections.csv")
    assert header == ["filename", "pca_x", "pca_y", f"{column}_x", f"{column}_y"]
    k = int(column.removeprefix("umap_k"))
    assert [float(p[f"{column}_x"]) for p in points] == [float(k)] * n
    assert [float(p[f"{column}_y"]) for p in points] == list(map(float, range(n)))
    assert points[0]["filename"] == "dir,with comma/img_00.png"  # quoted, round-trips


def test_projections_csv_is_a_subsample_when_the_plot_is(no_drawing: None, tmp_path: Path) -> None:
    inputs = _report_inputs(30)
    report = write_report(
        inputs, tmp_path, ReportOptions(umap_neighbors=(), dpi=30, max_scatter_points=12)
    )
    _, points = _rows(tmp_path / "data" / "projections.csv")
    assert report["plots"]["scatter_points"] == len(points) == 12
    names = [p["filename"] for p in points]
    assert names == sorted(names)  # ascending embedding row
    assert len(set(names)) == 12


def test_projections_csv_removed_when_nothing_is_drawn(no_drawing: None, tmp_path: Path) -> None:
    stale = tmp_path / "data" / "projections.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("filename,pca_x,pca_y\nold.png,1,2\n")
    write_report(_report_inputs(2), tmp_path, ReportOptions(umap_neighbors=(), dpi=30))
    assert not stale.exists()


def test_selection_csv_preselected_objects_and_nan(tmp_path: Path) -> None:
    """Rows a datapool preselected, crops of an object-level run, unmeasured distances."""
    path = tmp_path / "selection.csv"
    names = ["a-det-0-jpg.png", "a-det-1-jpg.png", 'b "q"-det-0-png.png', "c-det-0-png.png"]
    write_selection_csv(
        path,
        names,
        indices=np.array([2, 0]),
        distances=np.array([np.inf, np.nan], dtype=np.float32),
        scores=np.array([0.5, -1.25]),
        removed_by=np.array([-1, 0, -1, -1]),
        filters=("THRESHOLD SCORES det/objectness: keep value > 0.5 (missing values removed)",),
        preselected=np.array([3]),
        samples=["a.jpg", "a.jpg", 'b "q".png', "c.png"],
    )
    header, rows = _rows(path)
    assert tuple(header) == SELECTION_CSV_COLUMNS
    assert [r["filename"] for r in rows] == names
    assert [r["selected"] for r in rows] == ["1", "0", "1", "1"]
    assert [r["rank"] for r in rows] == ["2", "", "1", ""]
    assert [r["pick_distance"] for r in rows] == ["", "", "inf", ""]  # NaN is written empty
    assert [r["score"] for r in rows] == ["-1.25", "", "0.5", ""]
    assert rows[1]["removed_by"].startswith("THRESHOLD SCORES det/objectness")
    assert [r["preselected"] for r in rows] == ["0", "0", "0", "1"]
    assert [r["sample"] for r in rows] == ["a.jpg", "a.jpg", 'b "q".png', "c.png"]
    with pytest.raises(ValueError, match="removed_by"):
        write_selection_csv(
            path,
            names,
            np.array([0]),
            np.array([1.0]),
            np.array([0.0]),
            np.array([-1]),
            (),
            np.zeros(0, np.int64),
        )
