"""The run report: numbers of report.json, the files written, the PDF, atomicity, tiny inputs."""

from __future__ import annotations

import enum
import json
import logging
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from selfsup.curation import plots, report_data
from selfsup.curation._pdf import plot_pages
from selfsup.curation.report import (
    CostAssumptions,
    JobInfo,
    ReportInputs,
    ReportOptions,
    SampleCounts,
    build_report,
    folder_image_loader,
    k_nearest,
    plot_plan,
    write_plots,
    write_report,
    write_report_pdf,
)

FAST = ReportOptions(umap_neighbors=(), dpi=40)


def _job(**overrides: Any) -> JobInfo:
    values: dict[str, Any] = {
        "run_name": "test-run",
        "started_at": "2024-05-01T12:00:00+00:00",
        "finished_at": "2024-05-01T12:00:42+00:00",
        "duration_s": 42.0,
        "input_dir": "/data/images",
        "config": {"selection": {"n_samples": 3}},
    }
    values.update(overrides)
    return JobInfo(**values)


def _inputs(
    emb: NDArray[np.float32],
    selected: list[int] | NDArray[np.int64],
    *,
    names: list[str] | None = None,
    load_image: Callable[[str], Image.Image | None] | None = None,
    **overrides: Any,
) -> ReportInputs:
    n = emb.shape[0]
    sel = np.asarray(selected, dtype=np.int64)
    counts = SampleCounts(
        n_files_found=n + 3,
        n_corrupt=2,
        corrupt_reasons={"truncated": 1, "empty": 1},
        n_duplicates=1,
        n_input_to_selection=n,
        n_selected=sel.size,
    )
    overrides.setdefault("job", _job())
    return ReportInputs(
        counts=counts,
        embeddings=emb,
        filenames=names if names is not None else [f"img_{i:03d}.png" for i in range(n)],
        selected_indices=sel,
        load_image=load_image,
        **overrides,
    )


def _clusters(n: int = 40, d: int = 8, seed: int = 0) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(4, d))
    return (centers[np.arange(n) % 4] + 0.2 * rng.normal(size=(n, d))).astype(np.float32)


def _unit(x: NDArray[Any]) -> NDArray[np.float64]:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _pdf_pages(path: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", path.read_bytes()))


# --------------------------------------------------------------------------- math


@pytest.mark.parametrize("block", [1 << 24, 1])
def test_k_nearest_matches_brute_force(monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    # block=1 forces 256-row blocks, so the merge across blocks is exercised.
    monkeypatch.setattr(report_data, "_BLOCK_ELEMENTS", block)
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(700, 6)).astype(np.float32) * rng.uniform(0.5, 3, size=(700, 1))
    emb = emb.astype(np.float32)
    queries = np.array([0, 5, 399, 699], dtype=np.intp)
    candidates = np.arange(0, 700, 2, dtype=np.intp)  # even rows: query 0 is a candidate
    rows, dist = k_nearest(emb, queries, candidates, 5)
    u = _unit(emb)
    for qi, q in enumerate(queries):
        d = np.linalg.norm(u[candidates] - u[q], axis=1)
        d[candidates == q] = np.inf  # a query never finds itself
        order = np.argsort(d, kind="stable")[:5]
        assert rows[qi].tolist() == candidates[order].tolist()
        np.testing.assert_allclose(dist[qi], d[order], atol=1e-9)
    assert emb.dtype == np.float32


def test_k_nearest_pads_when_few_candidates() -> None:
    emb = np.eye(3, dtype=np.float32)
    rows, dist = k_nearest(emb, np.array([0]), np.array([0, 1]), 3)
    assert rows.tolist() == [[1, -1, -1]]
    assert dist[0, 0] == pytest.approx(math.sqrt(2))
    assert np.isinf(dist[0, 1:]).all()


def test_k_nearest_finds_identical_embedding_of_another_row() -> None:
    emb = np.array([[1, 0], [2, 0], [0, 1]], dtype=np.float32)  # rows 0 and 1 normalise equal
    rows, dist = k_nearest(emb, np.array([0]), None, 1)
    assert rows.tolist() == [[1]]
    assert dist[0, 0] == pytest.approx(0.0, abs=1e-7)


def _angles(degrees: list[float], scales: list[float]) -> NDArray[np.float32]:
    rad = np.deg2rad(degrees)
    return (np.stack([np.cos(rad), np.sin(rad)], axis=1) * np.array(scales)[:, None]).astype(
        np.float32
    )


def test_statistics_on_hand_computed_example() -> None:
    # Unit vectors at 0, 10, 90 and 180 degrees (rows scaled: statistics must normalise).
    # Chord between angles a and b: 2 sin(|a - b| / 2).
    emb = _angles([0, 10, 90, 180], [1.0, 3.0, 0.5, 2.0])
    chord = lambda deg: 2 * math.sin(math.radians(deg) / 2)  # noqa: E731
    rep = build_report(_inputs(emb, [2, 0]), FAST)

    nn = rep["statistics"]["before"]["nearest_neighbor_distance"]
    expected_nn = [chord(10), chord(10), chord(80), chord(90)]
    assert nn["mean"] == pytest.approx(np.mean(expected_nn), abs=1e-6)
    assert nn["min"] == pytest.approx(chord(10), abs=1e-6)
    assert nn["max"] == pytest.approx(chord(90), abs=1e-6)
    assert nn["median"] == pytest.approx((chord(10) + chord(80)) / 2, abs=1e-6)
    assert nn["n_queries"] == 4
    assert nn["sampled"] is False

    after = rep["statistics"]["after"]["nearest_neighbor_distance"]
    assert after["mean"] == pytest.approx(chord(90), abs=1e-6)

    pairs = np.array([chord(a) for a in (10, 90, 180, 80, 170, 90)])
    pw = rep["statistics"]["before"]["pairwise_distance"]
    assert pw["n_pairs"] == 6
    assert pw["mean"] == pytest.approx(pairs.mean(), abs=1e-6)
    assert pw["std"] == pytest.approx(pairs.std(), abs=1e-6)
    centred = pairs - pairs.mean()
    skew = np.mean(centred**3) / np.mean(centred**2) ** 1.5
    assert pw["skewness"] == pytest.approx(skew, abs=1e-5)

    # Removed samples B (10 deg) and D (180 deg): nearest selected are A (0) and C (90).
    cov = rep["statistics"]["removed_to_selected_distance"]
    assert cov["max"] == pytest.approx(chord(90), abs=1e-6)
    assert cov["min"] == pytest.approx(chord(10), abs=1e-6)

    hist = rep["statistics"]["pairwise_distance_histogram"]
    assert sum(hist["before_counts"]) == 6
    assert sum(hist["after_counts"]) == 1
    assert len(hist["bin_edges"]) == FAST.histogram_bins + 1


def test_counts_and_savings_arithmetic() -> None:
    emb = _clusters(40)
    costs = CostAssumptions(
        labeling_cost_per_sample=2.0,
        currency="EUR",
        training_epochs=10,
        energy_kwh_per_sample_epoch=0.5,
        kg_co2e_per_kwh=0.1,
    )
    rep = build_report(_inputs(emb, list(range(10)), costs=costs), FAST)
    counts = rep["counts"]
    assert counts["n_files_found"] == 43
    assert counts["n_samples_found"] == 43
    assert counts["n_input_to_selection"] == counts["before"] == 40
    assert counts["n_selected"] == counts["after"] == 10
    assert counts["n_removed"] == 30
    assert counts["corrupt_reasons"] == {"truncated": 1, "empty": 1}
    s = rep["savings"]
    assert s["samples_saved"] == 30
    assert s["fraction_saved"] == pytest.approx(0.75)
    assert s["labeling_cost_saved"] == pytest.approx(60.0)
    assert s["currency"] == "EUR"
    assert s["kg_co2e_per_sample"] == pytest.approx(10 * 0.5 * 0.1)
    assert s["kg_co2e_saved"] == pytest.approx(30 * 0.5)


def test_default_cost_assumptions_are_documented_values() -> None:
    c = CostAssumptions()
    assert c.labeling_cost_per_sample == 0.5
    assert c.currency == "USD"
    assert c.kg_co2e_per_sample == pytest.approx(100 * 2.5e-7 * 0.4)


def test_sample_counts_must_add_up() -> None:
    with pytest.raises(ValueError, match=r"n_input_to_selection = 9"):
        SampleCounts(
            n_files_found=10, n_corrupt=1, n_duplicates=1, n_input_to_selection=9, n_selected=1
        )
    with pytest.raises(ValueError, match="corrupt_reasons sums to 2"):
        SampleCounts(
            n_files_found=10,
            n_corrupt=1,
            n_duplicates=0,
            n_input_to_selection=9,
            n_selected=1,
            corrupt_reasons={"empty": 2},
        )
    with pytest.raises(ValueError, match="exceeds n_input_to_selection"):
        SampleCounts(
            n_files_found=5,
            n_corrupt=0,
            n_duplicates=0,
            n_input_to_selection=5,
            n_selected=4,
            n_removed_by_filters=2,
        )
    # Video frames: more samples than files.
    c = SampleCounts(
        n_files_found=2,
        n_samples_found=30,
        n_corrupt=0,
        n_duplicates=5,
        n_not_relevant=5,
        n_input_to_selection=20,
        n_selected=3,
    )
    assert c.samples_found == 30


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"filenames": ["a.png"]}, "filenames has 1 names for 6"),
        ({"selected_indices": np.array([0, 0])}, "repeated rows"),
        ({"selected_indices": np.array([0, 6])}, r"must lie in \[0, 6\)"),
        ({"labels": ["x"]}, "labels has 1 labels"),
        ({"selection_distances": np.zeros(5)}, "selection_distances has 5 values"),
        ({"metadata": {"brightness": np.zeros(3)}}, r"metadata\['brightness'\]"),
    ],
)
def test_report_inputs_reject_inconsistent_arrays(change: dict[str, Any], message: str) -> None:
    emb = _clusters(6)
    base = _inputs(emb, [0, 1])
    values = {f: getattr(base, f) for f in base.__dataclass_fields__}
    values.update(change)
    if "selected_indices" in change:
        n_sel = len(change["selected_indices"])
        values["counts"] = SampleCounts(
            n_files_found=9, n_corrupt=2, n_duplicates=1, n_input_to_selection=6, n_selected=n_sel
        )
    with pytest.raises(ValueError, match=message):
        ReportInputs(**values)


def test_report_inputs_reject_non_finite_embeddings() -> None:
    emb = _clusters(6)
    emb[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        _inputs(emb, [0])


# --------------------------------------------------------------------------- filter decisions


def test_filter_decisions_show_the_truly_nearest_removed_samples() -> None:
    emb = _clusters(60, d=5, seed=3)
    selected = [7, 3, 50, 21, 33, 12, 40, 1, 58, 29, 44, 18, 9]  # selection order
    rep = build_report(
        _inputs(emb, selected), ReportOptions(umap_neighbors=(), n_filter_neighbors=3)
    )
    decisions = rep["plots"]["filter_decisions"]
    step = len(selected) // 6
    assert [d["position"] for d in decisions] == [i * step for i in range(6)]
    u = _unit(emb)
    removed = np.setdiff1d(np.arange(60), selected)
    for d in decisions:
        kept = selected[d["position"]]
        assert d["kept"] == f"img_{kept:03d}.png"
        assert d["plot"] == f"plots/filter_decision_{d['position']}.png"
        brute = np.linalg.norm(u[removed] - u[kept], axis=1)
        order = np.argsort(brute)[:3]
        assert [n["filename"] for n in d["neighbors"]] == [
            f"img_{r:03d}.png" for r in removed[order]
        ]
        np.testing.assert_allclose([n["distance"] for n in d["neighbors"]], brute[order], atol=1e-6)


def test_decision_positions_follow_lightly_spacing() -> None:
    files, _ = plot_plan(200, 8, 66, ReportOptions(umap_neighbors=()))
    decisions = [f for f in files if f.startswith("filter_decision")]
    assert decisions == [f"filter_decision_{p}.png" for p in (0, 11, 22, 33, 44, 55)]
    files, _ = plot_plan(200, 8, 2, ReportOptions(umap_neighbors=()))
    assert [f for f in files if f.startswith("filter")] == [
        "filter_decision_0.png",
        "filter_decision_1.png",
    ]


# --------------------------------------------------------------------------- files


def _expected_files(n_decisions: int, step: int) -> set[str]:
    return {
        "distance_distr_before.png",
        "distance_distr_after.png",
        "scatter_pca.png",
        "scatter_pca_no_overlay.png",
    } | {f"filter_decision_{i * step}.png" for i in range(n_decisions)}


def test_write_report_writes_every_file(
    tmp_path: Path, make_image_folder: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=10, size=(24, 16), flat=True)
    names = sorted(p.name for p in root.iterdir())
    (root / names[0]).write_bytes(b"not a png")  # unreadable thumbnail
    names.append("missing.png")  # a file that is not there
    names.append("raises.png")
    emb = _clusters(len(names), seed=5)
    # The missing and the raising file are the nearest removed neighbours of the first pick.
    emb[20] = 2.0 * emb[0]
    emb[21] = 3.0 * emb[0] + 0.01
    original = emb.copy()
    loader = folder_image_loader(root)

    def load(name: str) -> Image.Image | None:
        if name == "raises.png":
            raise OSError("disk on fire")
        return loader(name)

    selected = [0, 19, 5, 9, 13, 2, 17]
    labels = [f"class_{i % 3}" for i in range(len(names))]
    metadata = {"brightness": np.linspace(0, 1, len(names)), "width": np.full(len(names), np.nan)}
    inputs = _inputs(emb, selected, names=names, load_image=load, labels=labels, metadata=metadata)
    with caplog.at_level(logging.WARNING):
        rep = write_report(inputs, tmp_path / "out", FAST)
    out = tmp_path / "out"
    plot_files = {p.name for p in (out / "plots").iterdir()}
    assert plot_files == _expected_files(6, 1)
    assert sorted(rep["plots"]["files"]) == sorted(f"plots/{f}" for f in plot_files)
    for name in plot_files:
        with Image.open(out / "plots" / name) as img:
            assert img.format == "PNG"
            img.verify()
    on_disk = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert on_disk == rep
    assert on_disk["format"] == "selfsup-report"
    assert on_disk["version"] == 1
    assert on_disk["job"]["config"] == {"selection": {"n_samples": 3}}
    assert on_disk["statistics"]["labels"]["counts"][0]["before"] == 8
    assert sum(r["after"] for r in on_disk["statistics"]["labels"]["counts"]) == len(selected)
    brightness = on_disk["statistics"]["metadata"]["brightness"]
    assert brightness["after"]["mean"] == pytest.approx(
        np.linspace(0, 1, len(names))[selected].mean()
    )
    assert on_disk["statistics"]["metadata"]["width"]["before"] is None
    pdf = (out / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    pages = plot_pages([out / f for f in rep["plots"]["files"]])
    assert _pdf_pages(out / "report.pdf") == 2 + len(pages)
    np.testing.assert_array_equal(emb, original)  # input not modified
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    first = rep["plots"]["filter_decisions"][0]
    assert first["kept"] == names[0]  # itself an unreadable file
    assert [n["filename"] for n in first["neighbors"][:2]] == ["missing.png", "raises.png"]
    assert "disk on fire" in caplog.text  # logged, drawn as a placeholder, report complete


def test_build_report_is_deterministic_and_json_clean() -> None:
    emb = _clusters(30)
    dists = np.array([np.inf, 0.5, 0.4, np.nan], dtype=np.float32)
    inputs = _inputs(emb, [4, 9, 1, 20], selection_distances=dists, stop_reason="n_samples")
    first = build_report(inputs, FAST)
    assert first == build_report(inputs, FAST)
    text = json.dumps(first, allow_nan=False)  # raises on NaN/inf
    assert json.loads(text) == first
    assert first["selection"]["pick_distance"]["last"] is None  # NaN -> null
    assert first["selection"]["pick_distance"]["min"] == pytest.approx(0.4)
    assert first["selection"]["stop_reason"] == "n_samples"


class _Color(enum.Enum):
    RED = "red"


def test_config_is_converted_to_json_types() -> None:
    emb = _clusters(6)
    config = {
        "path": Path("/a/b"),
        "color": _Color.RED,
        "t": (1, 2.5),
        "x": np.float32(2.0),
        "inf": math.inf,
        "nested": {3: [np.int64(4)]},
    }
    inputs = _inputs(emb, [0], job=_job(config=config))
    rep = build_report(inputs, FAST)
    assert rep["job"]["config"] == {
        "path": "/a/b",
        "color": "red",
        "t": [1, 2.5],
        "x": 2.0,
        "inf": "inf",
        "nested": {"3": [4]},
    }
    with pytest.raises(TypeError, match=r"job\.config\.bad is a object"):
        build_report(_inputs(emb, [0], job=_job(config={"bad": object()})), FAST)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_tiny_inputs_skip_plots_with_reasons(tmp_path: Path, n: int) -> None:
    emb = _clusters(n)
    rep = write_report(_inputs(emb, [0]), tmp_path, ReportOptions(umap_neighbors=(5,), dpi=40))
    skipped = rep["plots"]["skipped"]
    assert "distance_distr_after" in skipped  # one selected sample has no pairs
    assert "scatter_umap_k_5" in skipped  # fewer than 4 samples
    assert ("distance_distr_before" in skipped) == (n < 2)
    assert ("scatter_pca" in skipped) == (n < 3)
    assert ("filter_decision" in skipped) == (n == 1)
    written = {p.name for p in (tmp_path / "plots").glob("*.png")} if n > 1 else set()
    assert {f"plots/{w}" for w in written} == set(rep["plots"]["files"])
    assert rep["statistics"]["after"]["pairwise_distance"] is None
    assert _pdf_pages(tmp_path / "report.pdf") == 2 + len(
        plot_pages([tmp_path / f for f in rep["plots"]["files"]])
    )
    json.loads((tmp_path / "report.json").read_text())


def test_nothing_selected_and_everything_selected(tmp_path: Path) -> None:
    emb = _clusters(8)
    none = write_report(_inputs(emb, []), tmp_path / "none", FAST)
    assert none["plots"]["skipped"]["filter_decision"] == "no sample was selected"
    assert none["savings"]["samples_saved"] == 8
    assert none["statistics"]["removed_to_selected_distance"] is None
    every = build_report(_inputs(emb, list(range(8))), FAST)
    assert every["plots"]["skipped"]["filter_decision"] == "no sample was removed"
    assert every["savings"]["labeling_cost_saved"] == 0.0


def test_large_input_is_subsampled() -> None:
    emb = np.random.default_rng(0).normal(size=(20_000, 4)).astype(np.float32)
    options = ReportOptions(
        umap_neighbors=(), max_nn_queries=50, max_pairwise_points=100, max_scatter_points=300
    )
    rep = build_report(_inputs(emb, np.arange(0, 20_000, 4)), options)
    before = rep["statistics"]["before"]
    assert before["nearest_neighbor_distance"]["n_queries"] == 50
    assert before["nearest_neighbor_distance"]["sampled"] is True
    assert before["pairwise_distance"]["n_pairs"] == 100 * 99 // 2
    assert rep["statistics"]["after"]["pairwise_distance"]["n_points"] == 100
    assert rep["plots"]["scatter_points"] == 300


def test_failing_plot_leaves_no_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text('{"old": true}')
    emb = _clusters(20)
    calls = {"n": 0}
    real_save = plots.save_figure

    def flaky(fig: Any, path: Any, dpi: int = 150) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        real_save(fig, path, dpi)

    monkeypatch.setattr(plots, "save_figure", flaky)
    with pytest.raises(OSError, match="disk full"):
        write_report(_inputs(emb, [0, 5, 10]), out, FAST)
    assert (out / "report.json").read_text() == '{"old": true}'
    assert not (out / "report.pdf").exists()
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_failing_savefig_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.figure import Figure

    def broken(self: Figure, fname: Any, **kwargs: Any) -> None:
        Path(fname).write_bytes(b"\x89PNG half")
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        write_report(_inputs(_clusters(10), [0, 1]), tmp_path, FAST)
    assert list(tmp_path.rglob("*.png")) == []
    assert not (tmp_path / "report.json").exists()
    assert not (tmp_path / "report.pdf").exists()


def test_rewrite_removes_stale_plots_only(tmp_path: Path) -> None:
    emb = _clusters(30)
    options = ReportOptions(umap_neighbors=(), dpi=30, n_filter_decisions=2)
    write_report(_inputs(emb, list(range(12))), tmp_path, options)
    assert (tmp_path / "plots" / "filter_decision_6.png").exists()
    (tmp_path / "plots" / "my_notes.png").write_bytes(b"x")
    rep = write_report(_inputs(emb, [3, 4, 5]), tmp_path, options)
    names = {p.name for p in (tmp_path / "plots").iterdir()}
    assert "filter_decision_6.png" not in names
    assert names == {f.removeprefix("plots/") for f in rep["plots"]["files"]} | {"my_notes.png"}


def test_rewrite_removes_a_stale_quality_examples_plot(tmp_path: Path) -> None:
    emb = _clusters(12)
    options = ReportOptions(umap_neighbors=(), dpi=30, n_filter_decisions=1)
    quality = {
        "dark": {
            "count": 1,
            "score": "brightness",
            "flagged_when": "below",
            "threshold": 20.0,
            "threshold_source": "config",
            "excluded": False,
            "meaning": "too dark",
            "examples": ["img_000.png"],
        }
    }
    first = write_report(_inputs(emb, [0, 3], quality=quality), tmp_path, options)
    assert "plots/quality_examples.png" in first["plots"]["files"]
    assert (tmp_path / "plots" / "quality_examples.png").exists()
    rep = write_report(_inputs(emb, [0, 3]), tmp_path, options)
    names = {p.name for p in (tmp_path / "plots").iterdir()}
    assert "quality_examples.png" not in names
    assert names == {f.removeprefix("plots/") for f in rep["plots"]["files"]}


def test_write_plots_returns_pdf_order(tmp_path: Path) -> None:
    paths = write_plots(_inputs(_clusters(12), [0, 3, 6]), tmp_path, FAST)
    assert [p.name for p in paths] == [
        "distance_distr_before.png",
        "distance_distr_after.png",
        "scatter_pca.png",
        "scatter_pca_no_overlay.png",
        "filter_decision_0.png",
        "filter_decision_1.png",
        "filter_decision_2.png",
    ]


def test_pdf_page_grouping_and_count(tmp_path: Path) -> None:
    names = [
        "distance_distr_before",
        "distance_distr_after",
        "scatter_pca",
        "scatter_pca_no_overlay",
        "scatter_umap_k_5",
        "scatter_umap_k_5_no_overlay",
        "scatter_umap_k_15",
        "scatter_umap_k_15_no_overlay",
    ] + [f"filter_decision_{i}" for i in (0, 11, 22, 33, 44, 55, 66)]
    paths = []
    for name in names:
        path = tmp_path / f"{name}.png"
        Image.new("RGB", (60, 40), "white").save(path)
        paths.append(path)
    pages = plot_pages(paths)
    assert [[p.stem for p in page] for page in pages] == [
        names[0:2],
        names[2:4],
        names[4:6],
        names[6:8],
        names[8:11],
        names[11:14],
        names[14:15],
    ]
    rep = build_report(_inputs(_clusters(10), [0, 1]), FAST)
    write_report_pdf(rep, paths, tmp_path / "r.pdf")
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF")
    assert _pdf_pages(tmp_path / "r.pdf") == 2 + 7


def test_folder_image_loader(tmp_path: Path) -> None:
    Image.new("L", (600, 300), 128).save(tmp_path / "big.png")
    (tmp_path / "bad.png").write_text("text")
    load = folder_image_loader(tmp_path, max_size=64)
    img = load("big.png")
    assert img is not None
    assert img.mode == "RGB"
    assert max(img.size) == 64
    assert load("bad.png") is None
    assert load("nope.png") is None


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="umap_neighbors must be >= 2"):
        ReportOptions(umap_neighbors=(1,))
    with pytest.raises(ValueError, match="max_pairwise_points must be >= 3"):
        ReportOptions(max_pairwise_points=2)


@pytest.mark.slow
def test_write_report_with_umap(tmp_path: Path) -> None:
    emb = _clusters(200, d=16)
    rep = write_report(
        _inputs(emb, list(range(0, 200, 5))), tmp_path, ReportOptions(umap_neighbors=(5, 15, 500))
    )
    for k in (5, 15, 500):
        for suffix in ("", "_no_overlay"):
            path = tmp_path / "plots" / f"scatter_umap_k_{k}{suffix}.png"
            with Image.open(path) as img:
                img.verify()
    assert rep["plots"]["umap_neighbors"] == {"5": 5, "15": 15, "500": 199}
    assert _pdf_pages(tmp_path / "report.pdf") == 2 + len(
        plot_pages([tmp_path / f for f in rep["plots"]["files"]])
    )


def test_collapsed_embeddings_are_reported_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(7)
    collapsed = (np.ones((30, 8)) + 1e-5 * rng.normal(size=(30, 8))).astype(np.float32)
    with caplog.at_level(logging.WARNING, logger="selfsup.curation.report"):
        report = write_report(_inputs(collapsed, [0, 1, 2]), tmp_path)
    health = report["statistics"]["embedding_health"]
    assert health["collapsed"] is True
    assert health["std_of_l2_normalized_times_sqrt_dim"] < 0.01
    assert health["effective_rank"] == pytest.approx(1.0, abs=0.01)
    assert "lr" in health["warning"]
    assert health["warning"] in caplog.text
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["statistics"]["embedding_health"] == health


def test_healthy_embeddings_carry_the_figures_without_warning() -> None:
    emb = np.random.default_rng(8).normal(size=(40, 8)).astype(np.float32)
    health = build_report(_inputs(emb, [0, 1]))["statistics"]["embedding_health"]
    assert health["collapsed"] is False
    assert health["warning"] is None
    assert health["dim"] == 8
    assert health["n_samples"] == 40
    assert health["effective_rank"] > 4


def _page_lines(report: dict[str, Any], page_number: int) -> list[str]:
    """The text lines one page of report.pdf draws (summary 1, details 2), top to bottom."""
    from matplotlib.figure import Figure

    from selfsup.curation import _pdf

    fig = Figure(figsize=(_pdf._PAGE_W, _pdf._PAGE_H))
    page = _pdf._Page(fig, "r", page_number, 2)
    (_pdf._summary_page if page_number == 1 else _pdf._details_page)(page, report)
    return [t.get_text() for t in fig.texts]


def test_write_report_records_the_final_job_before_pdf_and_json(tmp_path: Path) -> None:
    # The run's timings are taken after the plots, before report.pdf and report.json: both
    # show the job finish_job returns, the report step's time included (issue 12).
    emb = _clusters(30)
    lines: list[str] = []
    final = _job(duration_s=99.5, step_durations_s={"check": 1.25, "train": 70.0, "report": 28.25})

    def finish() -> JobInfo:
        lines.append("finished")
        return final

    rep = write_report(
        _inputs(emb, [0, 5, 9]), tmp_path, FAST, progress=lines.append, finish_job=finish
    )
    assert json.loads((tmp_path / "report.json").read_text())["job"] == rep["job"]
    assert rep["job"]["duration_s"] == 99.5
    assert rep["job"]["step_durations_s"] == {"check": 1.25, "train": 70.0, "report": 28.25}
    # Progress lines for each part, the plots before the timings are taken.
    assert lines[0] == "report: statistics"
    assert any(line.startswith("report: drawing") for line in lines)
    assert lines.index("finished") > lines.index("report: writing report.pdf and report.json")
    summary = " ".join(_page_lines(rep, 1))
    assert "1 min 40 s" in summary  # 99.5 s
    assert "check 1.2 s · train 1 min 10 s · report 28.2 s" in summary


def test_pdf_wraps_long_keys_instead_of_cutting_them() -> None:
    from selfsup.curation._pdf import wrap_to_width

    long_key = "key_" * 30  # wider than the metadata table's first column: split, not cut
    report = build_report(
        _inputs(
            _clusters(30),
            [0, 5, 9],
            job=_job(extra={"n_preselected_from_datapool": 3}),
            metadata={long_key: np.ones(30)},
        )
    )
    drawn = _page_lines(report, 1) + _page_lines(report, 2)
    # Before: "n_preselect…rom_datapool" (cut to 24 characters); now words, whole.
    assert "Preselected from datapool" in drawn
    assert not any("…" in line for line in drawn if "key_" in line or "datapool" in line)
    first = next(i for i, line in enumerate(drawn) if line.startswith("key_"))
    assert drawn[first] != long_key
    assert drawn[first] + drawn[first + 1] == long_key  # its second line, drawn next
    for width in (0.5, 1.0, 2.0):
        lines = wrap_to_width("n_preselected from datapool of the run", width, 9, 10)
        assert " ".join(lines) == "n_preselected from datapool of the run" or width < 1.0
        assert "".join(lines).replace(" ", "") == "n_preselectedfromdatapooloftherun"
    # Words wrap at spaces; only a word wider than a whole line is split.
    assert wrap_to_width("Preselected from datapool", 1.0, 9, 3) == [
        "Preselected",
        "from datapool",
    ]
    assert wrap_to_width("one two three four five six", 0.6, 9, 2)[-1].endswith("…")


def test_pdf_text_width_is_the_drawn_width() -> None:
    """The fast FreeType measure agrees with the glyph outlines' extent (the slow reference)
    to within 2 %, never narrower (text measured to fit is drawn inside its box), at the
    report's sizes, and grows with the text."""
    from matplotlib.textpath import TextPath

    from selfsup.curation._pdf import _FONT, _text_width

    for text in ("Preselected from datapool", "n_samples", "W" * 12, "1 min 40 s · 28.2 s"):
        for size in (7.0, 9.0, 12.0):
            drawn = float(TextPath((0, 0), text, size=size, prop=_FONT).get_extents().x1) / 72
            measured = _text_width(text, size)
            assert drawn <= measured <= 1.02 * drawn, (text, size, measured, drawn)
    assert _text_width("", 9.0) == 0.0
    assert _text_width("ab", 9.0) < _text_width("abc", 9.0) < _text_width("abc", 12.0)


def test_pdf_shows_co2e_in_the_app_s_unit() -> None:
    from selfsup.utils.report_units import format_mass

    report = build_report(_inputs(_clusters(30), [0, 5, 9]))
    saved = report["savings"]["kg_co2e_saved"]
    assert format_mass(saved) in " ".join(_page_lines(report, 1))
