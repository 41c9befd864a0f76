"""RunOutputs: statuses, pages, explanations, neighbours, maps, files and the cache, checked
against values recomputed here from the files of small run folders."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from PIL import Image

from _imports import loaded_after
from selfsup.curation.manifest import CorruptReason, SampleRecord, assign_ids, write_manifest
from selfsup.curation.pipeline import write_selection_csv
from selfsup.utils.io import save_embeddings
from selfsup.web import outputs as outputs_module
from selfsup.web.outputs import STATUSES, OutputsError, RunOutputs

# --------------------------------------------------------------------------- run folders


@dataclass
class Run:
    """A run folder written here, and the truth its files were made from."""

    folder: Path
    names: list[str]  # candidate rows
    unit: NDArray[np.float64]  # (R, D) normalised embeddings
    picks: list[int]  # rows in pick order
    distances: list[float]  # pick distances
    preselected: list[int] = field(default_factory=list)
    filtered: list[int] = field(default_factory=list)
    index_of: dict[str, int] = field(default_factory=dict)  # sample filename -> index

    def sample_of_row(self, row: int) -> int:
        return self.index_of[self.names[row]]


def _record(name: str, **extra: Any) -> SampleRecord:
    return SampleRecord(
        id=0, filename=name, source=name, frame_index=None, file_size=100, mtime_ns=5, **extra
    )


def _greedy(
    unit: NDArray[np.float64], k: int, pre: list[int], banned: set[int]
) -> tuple[list[int], list[float]]:
    """k-center greedy: the candidate farthest from everything chosen (row 0 first)."""
    chosen = list(pre)
    picks: list[int] = []
    dists: list[float] = []
    for _ in range(k):
        best, best_d = -1, -1.0
        for row in range(len(unit)):
            if row in banned or row in chosen:
                continue
            d = (
                float(np.linalg.norm(unit[chosen] - unit[row], axis=1).min())
                if chosen
                else float("inf")
            )
            if d > best_d:
                best, best_d = row, d
        picks.append(best)
        dists.append(best_d)
        chosen.append(best)
    return picks, dists


def make_run(
    root: Path,
    *,
    n: int = 30,
    dim: int = 8,
    k: int = 6,
    seed: int = 0,
    n_preselected: int = 0,
    n_filtered: int = 0,
    not_candidates: int = 0,
    selection_csv: bool = True,
    umap_rows: list[int] | None = None,
) -> Run:
    """A format-exact run folder: 3 clusters of ``n`` images, 2 corrupt files, a duplicate."""
    out = root / "out"
    rng = np.random.default_rng(seed)
    names = [f"cls_{i % 3}/Img_{i:03d}.png" for i in range(n)]
    centres = np.eye(dim)[:3] * 4
    raw = np.stack([centres[i % 3] + rng.normal(size=dim) for i in range(n)]).astype(np.float32)
    unit = raw.astype(np.float64) / np.linalg.norm(raw.astype(np.float64), axis=1, keepdims=True)
    records = [_record(name, width=32, height=24) for name in names]
    records += [
        _record(
            "broken/bad_0.jpg",
            status="corrupt",
            reason=CorruptReason.TRUNCATED,
            detail="OSError: image file is truncated (3 bytes not processed)",
        ),
        _record(
            "broken/bad_1.png",
            status="corrupt",
            reason=CorruptReason.EMPTY,
            detail="the file has 0 bytes",
        ),
        _record("cls_0/zz_copy.png", status="duplicate", duplicate_of=names[0]),
    ]
    records += [_record(f"extra/not_candidate_{j}.png") for j in range(not_candidates)]
    records = assign_ids(records)
    index_of = {r.filename: r.id for r in records}

    pre = list(range(n - n_preselected, n))
    filtered = list(range(1, 1 + n_filtered))
    picks, dists = _greedy(unit, k, pre, set(filtered) | set(pre))
    removed = [r for r in range(n) if r not in picks and r not in pre]

    write_manifest(out / "data" / "manifest.jsonl", records)
    save_embeddings(out / "data" / "embeddings.csv", raw, [0] * n, names)
    save_embeddings(
        out / "data" / "normalized_embeddings.csv", unit.astype(np.float32), [0] * n, names
    )
    if selection_csv:
        removed_by = np.full(n, -1)
        removed_by[filtered] = 0
        write_selection_csv(
            out / "data" / "selection.csv",
            names,
            np.asarray(picks),
            np.asarray(dists, dtype=np.float32),
            -np.arange(len(picks), dtype=np.float64),
            removed_by,
            ("THRESHOLD METADATA lightly.brightness: keep value > 0.4 (missing values removed)",),
            np.asarray(pre, dtype=np.int64),
        )
    lists = out / "filenames"
    lists.mkdir(parents=True)
    (lists / "sampled_filenames_excluding_datapool.txt").write_text(
        "".join(names[r] + "\n" for r in picks)
    )
    (lists / "removed_filenames.txt").write_text("".join(names[r] + "\n" for r in removed))
    if umap_rows is not None:
        lines = ["filename,pca_x,pca_y,umap_k15_x,umap_k15_y"]
        lines += [f"{names[r]},0,0,{r}.5,{-r}" for r in umap_rows]
        (out / "data" / "projections.csv").write_text("\n".join(lines) + "\n")
    (out / "plots").mkdir()
    (out / "plots" / "scatter_pca.png").write_bytes(b"\x89PNG fake")
    (out / "config").mkdir()
    (out / "config" / "config.yaml").write_text("input_dir: /x\n")
    (out / "selfsup_epoch_1.ckpt").write_bytes(b"ckpt")
    (out / ".selfsup").mkdir()
    (out / ".selfsup" / "state.json").write_text("{}")
    (out / "plots" / ".scatter.png.tmp").write_bytes(b"half")
    (out / "report.pdf").write_bytes(b"%PDF-1.4")
    report = {
        "format": "selfsup-report",
        "counts": {
            "n_corrupt": 2,
            "n_duplicates": 1,
            "n_input_to_selection": n,
            "n_selected": k,
            "n_removed": n - k,
        },
        "selection": {"stop_reason": "n_samples", "n_selected": k},
        "statistics": {
            "removed_to_selected_distance": {
                "median": 0.25,
                "max": 0.5,
                "n_queries": 7,
                "sampled": True,
            }
        },
        "job": {"config": {"object_level": {"task_name": ""}}, "input_dir": "/x"},
    }
    (out / "report.json").write_text(json.dumps(report))
    return Run(out, names, unit, picks, dists, pre, filtered, index_of)


@pytest.fixture
def run_folder(tmp_path: Path) -> Run:
    return make_run(tmp_path, n_preselected=2, n_filtered=2, not_candidates=1, umap_rows=[4, 0, 9])


def _open(run: Run, cache: Path) -> RunOutputs:
    return RunOutputs.open(run.folder, cache)


# --------------------------------------------------------------------------- statuses


def test_statuses_and_counts(run_folder: Run, tmp_path: Path) -> None:
    outputs = _open(run_folder, tmp_path / "cache")
    run = run_folder
    assert len(outputs.samples) == 30 + 3 + 1
    assert all(s.index == i for i, s in enumerate(outputs.samples))
    selected = {run.sample_of_row(r) for r in run.picks + run.preselected}
    status = {s.index: s.status for s in outputs.samples}
    assert {i for i, s in status.items() if s == "selected"} == selected
    assert status[run.index_of["broken/bad_0.jpg"]] == "corrupt"
    assert status[run.index_of["cls_0/zz_copy.png"]] == "duplicate"
    assert status[run.index_of["extra/not_candidate_0.png"]] == "removed"
    assert outputs.counts() == {
        "all": 34,
        "selected": 6 + 2,  # new picks and the datapool's preselected samples
        "removed": 30 - 8 + 1,
        "corrupt": 2,
        "duplicate": 1,
    }
    sample = outputs.sample(run.index_of[run.names[3]])
    assert (sample.width, sample.height, sample.file_size, sample.embedding_row) == (32, 24, 100, 3)
    assert outputs.sample(run.index_of["broken/bad_0.jpg"]).embedding_row is None
    for bad in (-1, 34, 10**9):
        with pytest.raises(IndexError):
            outputs.sample(bad)
    assert outputs.report["counts"]["n_selected"] == 6


@pytest.mark.parametrize("vectorised", [True, False])
def test_page_filters_by_status_and_query(
    run_folder: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vectorised: bool
) -> None:
    if not vectorised:  # names too long for one fixed-width array: plain str search
        monkeypatch.setattr(outputs_module, "_MAX_QUERY_ARRAY_BYTES", 0)
    outputs = _open(run_folder, tmp_path / "cache")
    everything = list(outputs.samples)
    for status in (None, *STATUSES):
        expected = [s for s in everything if status is None or s.status == status]
        page, total = outputs.page(status, 0, 1000)
        assert page == expected
        assert total == len(expected)
        page, total = outputs.page(status, 2, 3)
        assert page == expected[2:5]
        assert total == len(expected)
    # Case-insensitive substring on the filename, combined with the status.
    page, total = outputs.page("removed", 0, 100, "IMG_00")
    expected = [s for s in everything if s.status == "removed" and "img_00" in s.filename.lower()]
    assert page == expected
    assert total == len(expected) > 0
    assert outputs.page(None, 0, 100, "cls_1/")[1] == 10
    assert outputs.page(None, 0, 100, ".PNG")[1] == 34 - 1  # all but the .jpg
    assert outputs.page(None, 0, 100, "no such name") == ([], 0)
    assert outputs.page(None, 1000, 10) == ([], 34)
    assert outputs.page("corrupt", 0, 10, "\x00")[1] == 0
    with pytest.raises(ValueError, match="status"):
        outputs.page("kept", 0, 10)  # type: ignore[arg-type]  # deliberately wrong
    with pytest.raises(ValueError, match="offset"):
        outputs.page(None, -1, 10)


# --------------------------------------------------------------------------- explanations


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"\d+\.\d+", text)]


def test_explain_selected(run_folder: Run, tmp_path: Path) -> None:
    run = run_folder
    outputs = _open(run, tmp_path / "cache")
    k = len(run.picks)
    for rank, row in enumerate(run.picks, start=1):
        e = outputs.explain(run.sample_of_row(row))
        assert e.headline == f"Selected: pick {rank} of {k}"
        text = " ".join(e.details)
        earlier = run.picks[: rank - 1] + run.preselected
        d = np.linalg.norm(run.unit[earlier] - run.unit[row], axis=1)
        nearest = earlier[int(np.argmin(d))]
        assert f"was {d.min():.3f} away" in text
        assert ("nearest earlier pick", run.sample_of_row(nearest)) in e.related
        assert f"{run.distances[-1]:.3f}" in text  # compared with the last pick's distance
        assert "2 samples preselected from the datapool" in text
    pre = outputs.explain(run.sample_of_row(run.preselected[0]))
    assert pre.headline == "Selected: preselected from the datapool"
    # Sequence runs record the distance of the whole sequence, not of a frame.
    outputs.report["job"]["config"]["selected_sequence_length"] = 3
    e = outputs.explain(run.sample_of_row(run.picks[2]))
    assert "sequence of 3 consecutive frames" in e.details[1]
    assert f"{run.distances[2]:.3f} from the nearest earlier pick" in e.details[1]


def test_explain_removed_names_the_nearest_selected_sample(run_folder: Run, tmp_path: Path) -> None:
    run = run_folder
    outputs = _open(run, tmp_path / "cache")
    chosen = run.picks + run.preselected
    last = run.distances[-1]
    covered = 0
    for row in range(len(run.names)):
        if row in chosen or row in run.filtered:
            continue
        e = outputs.explain(run.sample_of_row(row))
        d = np.linalg.norm(run.unit[chosen] - run.unit[row], axis=1)
        nearest = chosen[int(np.argmin(d))]
        assert e.related == [("nearest selected sample", run.sample_of_row(nearest))]
        text = " ".join(e.details)
        assert f"{run.names[nearest]}, {d.min():.3f} away" in text
        if d.min() <= last:  # k-center greedy: every removed sample is within the last radius
            covered += 1
            assert e.headline == "Removed: covered by a selected sample"
            assert f"within {last:.3f}" in text
        assert "median 0.250 and maximum 0.500" in text  # the report's coverage summary
        assert "requested number of samples was reached" in text
    assert covered == len(run.names) - len(chosen) - len(run.filtered)
    for row in run.filtered:
        e = outputs.explain(run.sample_of_row(row))
        assert e.headline == "Removed by a filter"
        assert "THRESHOLD METADATA lightly.brightness: keep value > 0.4" in e.details[0]


def test_explain_corrupt_duplicate_and_not_candidate(run_folder: Run, tmp_path: Path) -> None:
    run = run_folder
    outputs = _open(run, tmp_path / "cache")
    e = outputs.explain(run.index_of["broken/bad_0.jpg"])
    assert e.headline == "Corrupt: truncated"
    assert "image file is truncated (3 bytes not processed)" in e.details[0]
    assert "100 bytes" in e.details[1]
    e = outputs.explain(run.index_of["broken/bad_1.png"])
    assert e.headline == "Corrupt: empty"
    e = outputs.explain(run.index_of["cls_0/zz_copy.png"])
    assert e.headline == f"Exact duplicate of {run.names[0]}"
    assert e.related == [("duplicate of", run.index_of[run.names[0]])]
    e = outputs.explain(run.index_of["extra/not_candidate_0.png"])
    assert e.headline == "Removed: not a selection candidate"
    assert "normalized_embeddings.csv" in e.details[0]
    assert outputs.neighbours(run.index_of["extra/not_candidate_0.png"]) == []
    assert outputs.neighbours(run.index_of["cls_0/zz_copy.png"]) == []


def test_older_folder_without_selection_csv(tmp_path: Path) -> None:
    """Selected and rank from the filename lists; pick distances computed from embeddings;
    candidates in neither list were preselected by a datapool."""
    run = make_run(tmp_path, n_preselected=1, selection_csv=False)
    outputs = _open(run, tmp_path / "cache")
    assert outputs.counts()["selected"] == 6 + 1
    rank, row = 3, run.picks[2]
    e = outputs.explain(run.sample_of_row(row))
    assert e.headline == f"Selected: pick {rank} of 6"
    earlier = run.picks[:2] + run.preselected
    d = np.linalg.norm(run.unit[earlier] - run.unit[row], axis=1).min()
    assert f"was {d:.3f} away (computed from the embeddings" in " ".join(e.details)
    assert outputs.explain(run.sample_of_row(run.preselected[0])).headline.endswith("datapool")


# --------------------------------------------------------------------------- neighbours, maps


def test_neighbours_are_exact(run_folder: Run, tmp_path: Path) -> None:
    run = run_folder
    outputs = _open(run, tmp_path / "cache")
    for row in (0, 7, 29):
        index = run.sample_of_row(row)
        found = outputs.neighbours(index, k=5)
        d = np.linalg.norm(run.unit - run.unit[row], axis=1)
        d[row] = np.inf
        expected = np.argsort(d, kind="stable")[:5]
        assert [n.sample.index for n in found] == [run.sample_of_row(int(r)) for r in expected]
        np.testing.assert_allclose([n.distance for n in found], d[expected], atol=1e-5)
    assert len(outputs.neighbours(run.sample_of_row(0), k=100)) == 29
    assert outputs.neighbours(run.sample_of_row(0), k=0) == []


def test_pca_projection_of_all_embeddings(run_folder: Run, tmp_path: Path) -> None:
    run = run_folder
    outputs = _open(run, tmp_path / "cache")
    assert outputs.projection_methods() == ["pca", "umap"]
    p = outputs.projection("pca")
    assert p.method == "pca"
    assert p.xy.dtype == np.float32
    assert p.xy.shape == (30, 2)
    assert [int(i) for i in p.indices] == [run.sample_of_row(r) for r in range(30)]
    centred = run.unit - run.unit.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    reference = centred @ vt[:2].T
    for axis in range(2):
        assert abs(np.corrcoef(p.xy[:, axis], reference[:, axis])[0, 1]) > 1 - 1e-5
    ratio = s[:2] ** 2 / (s**2).sum()
    assert p.description == (
        f"PCA of all 30 embeddings (PC1 {ratio[0]:.0%}, PC2 {ratio[1]:.0%} of the variance)"
    )
    # Cached: a reopened folder reads the map back instead of computing it.
    again = _open(run, tmp_path / "cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(outputs_module, "_pca_2d", lambda x: pytest.fail("recomputed"))
        np.testing.assert_array_equal(again.projection("pca").xy, p.xy)


def test_pca_is_fitted_on_a_subsample_of_large_runs(
    run_folder: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outputs_module, "_PCA_FIT_ROWS", 12)
    p = _open(run_folder, tmp_path / "cache").projection("pca")
    assert p.xy.shape == (30, 2)  # every candidate is projected
    assert p.description.endswith("of the variance, fitted on 12 of them)")


def test_umap_comes_from_the_report(run_folder: Run, tmp_path: Path) -> None:
    outputs = _open(run_folder, tmp_path / "cache")
    p = outputs.projection("umap")
    assert p.description == "UMAP (n_neighbors=15) of 3 of 30 samples, from the report"
    assert [int(i) for i in p.indices] == [run_folder.sample_of_row(r) for r in (4, 0, 9)]
    np.testing.assert_allclose(p.xy, [[4.5, -4], [0.5, 0], [9.5, -9]])
    with pytest.raises(KeyError):
        outputs.projection("tsne")


def test_no_umap_without_projections_csv(tmp_path: Path) -> None:
    outputs = _open(make_run(tmp_path), tmp_path / "cache")
    assert outputs.projection_methods() == ["pca"]
    with pytest.raises(KeyError, match="umap"):
        outputs.projection("umap")


# --------------------------------------------------------------------------- object level


def test_object_level_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    images = ["a.jpg", "b.jpg", "c.jpg", "sub/d-det-1.jpg"]
    records = assign_ids(
        [_record(name) for name in images]
        + [_record("z.png", status="corrupt", reason=CorruptReason.EMPTY, detail="0 bytes")]
    )
    write_manifest(out / "data" / "manifest.jsonl", records)
    crops = [
        "a-det-0-jpg.png",
        "a-det-1-jpg.png",
        "a-det-2-jpg.png",
        "b-det-0-jpg.png",
        "sub/d-det-1-det-0-jpg.png",
    ]
    emb = np.eye(5, 4, dtype=np.float32) + 0.1
    save_embeddings(out / "data" / "normalized_embeddings.csv", emb, [0] * 5, crops)
    report = {"job": {"config": {"object_level": {"task_name": "det"}}}, "counts": {}}
    (out / "report.json").write_text(json.dumps(report))
    lists = out / "filenames"
    lists.mkdir()
    (lists / "sampled_filenames_excluding_datapool.txt").write_text(
        "a-det-2-jpg.png\nsub/d-det-1-det-0-jpg.png\na-det-0-jpg.png\n"
    )
    (lists / "removed_filenames.txt").write_text("a-det-1-jpg.png\nb-det-0-jpg.png\n")
    index = {r.filename: r.id for r in records}

    def check(outputs: RunOutputs) -> None:
        status = {s.filename: s.status for s in outputs.samples}
        assert status == {
            "a.jpg": "selected",
            "b.jpg": "removed",
            "c.jpg": "removed",
            "sub/d-det-1.jpg": "selected",  # the task name inside a file name is no problem
            "z.png": "corrupt",
        }
        e = outputs.explain(index["a.jpg"])
        assert e.headline == "Selected: 2 of its 3 object crops"
        assert "task 'det'" in e.details[0]
        assert "(picks #1, #3 of 3)" in e.details[0]
        assert outputs.explain(index["b.jpg"]).headline.startswith("Removed: none of its 1")
        assert outputs.explain(index["c.jpg"]).headline == "Removed: no object crop"
        assert outputs.neighbours(index["a.jpg"]) == []
        assert outputs.projection_methods() == []
        assert all(s.embedding_row is None for s in outputs.samples)
        with pytest.raises(KeyError):
            outputs.projection("pca")

    check(RunOutputs.open(out, tmp_path / "cache1"))  # crops mapped by their names
    write_selection_csv(  # and by the selection.csv "sample" column
        out / "data" / "selection.csv",
        crops,
        np.array([2, 4, 0]),
        np.array([np.inf, 1.0, 0.5]),
        np.zeros(3),
        np.full(5, -1),
        (),
        np.zeros(0, np.int64),
        samples=["a.jpg", "a.jpg", "a.jpg", "b.jpg", "sub/d-det-1.jpg"],
    )
    check(RunOutputs.open(out, tmp_path / "cache2"))


# --------------------------------------------------------------------------- files


def test_files_lists_everything_but_hidden_state(run_folder: Run, tmp_path: Path) -> None:
    outputs = _open(run_folder, tmp_path / "cache")
    os.symlink("/etc/passwd", run_folder.folder / "plots" / "escape.png")
    os.symlink("../.selfsup/state.json", run_folder.folder / "plots" / "state.png")
    os.symlink("scatter_pca.png", run_folder.folder / "plots" / "alias.png")
    files = {f.path: f for f in outputs.files()}
    assert list(files)[:2] == ["report.pdf", "report.json"]
    assert set(files) == {
        "report.pdf",
        "report.json",
        "config/config.yaml",
        "data/embeddings.csv",
        "data/manifest.jsonl",
        "data/normalized_embeddings.csv",
        "data/projections.csv",
        "data/selection.csv",
        "filenames/removed_filenames.txt",
        "filenames/sampled_filenames_excluding_datapool.txt",
        "plots/alias.png",
        "plots/scatter_pca.png",
        "selfsup_epoch_1.ckpt",
    }
    assert files["report.pdf"].size == len(b"%PDF-1.4")
    kinds = {path: f.kind for path, f in files.items()}
    assert kinds["report.json"] == "report"
    assert kinds["plots/scatter_pca.png"] == "plot"
    assert kinds["data/normalized_embeddings.csv"] == "embeddings"
    assert kinds["data/selection.csv"] == "data"
    assert kinds["filenames/removed_filenames.txt"] == "filenames"
    assert kinds["config/config.yaml"] == "config"
    assert kinds["selfsup_epoch_1.ckpt"] == "checkpoint"


RESOLVE_BAD = [
    "",
    "..",
    "../out/report.json",
    "plots/../../secret.txt",
    "/etc/passwd",
    "plots//scatter_pca.png",
    "plots/",
    "./report.json",
    "plots\\..\\report.json",
    "report.json\x00.png",
    ".selfsup/state.json",
    "plots/.scatter.png.tmp",
    "plots",
    "missing.txt",
    "plots/escape.png",
    "plots/state.png",
    "plots/loop.png",
]


def test_resolve_file(run_folder: Run, tmp_path: Path) -> None:
    out = run_folder.folder
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink("/etc/passwd", out / "plots" / "escape.png")
    os.symlink("../.selfsup/state.json", out / "plots" / "state.png")
    os.symlink("loop.png", out / "plots" / "loop.png")
    os.symlink("scatter_pca.png", out / "plots" / "alias.png")
    outputs = _open(run_folder, tmp_path / "cache")
    assert outputs.resolve_file("report.json") == (out / "report.json").resolve()
    assert outputs.resolve_file("plots/alias.png") == (out / "plots" / "scatter_pca.png").resolve()
    for bad in RESOLVE_BAD:
        with pytest.raises(FileNotFoundError):
            outputs.resolve_file(bad)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.sampled_from(
            [
                "..",
                ".",
                "",
                "plots",
                "report.json",
                ".selfsup",
                "state.json",
                "escape.png",
                "scatter_pca.png",
                "\\",
                "\x00",
                "/",
                "out",
                "secret.txt",
                "data",
            ]
        ),
        min_size=1,
        max_size=6,
    ).map("/".join)
    | st.text(alphabet="./\\\x00rpotjsn", max_size=16)
)
def test_resolve_file_never_escapes(
    adversarial_folder: tuple[RunOutputs, Path], relative: str
) -> None:
    outputs, root = adversarial_folder
    try:
        path = outputs.resolve_file(relative)
    except FileNotFoundError:
        return
    assert path.is_file()
    assert path.is_relative_to(root)
    assert not any(part.startswith(".") for part in path.relative_to(root).parts)


@pytest.fixture
def adversarial_folder(run_folder: Run, tmp_path: Path) -> tuple[RunOutputs, Path]:
    out = run_folder.folder
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", out / "plots" / "escape.png")
    os.symlink("../.selfsup/state.json", out / "plots" / "state.json")
    os.symlink(tmp_path, out / "data" / "out")
    return _open(run_folder, tmp_path / "cache"), out.resolve()


# --------------------------------------------------------------------------- errors, cache


def test_unfinished_or_broken_folders(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    (run.folder / "report.json").rename(run.folder / "report.json.bak")
    with pytest.raises(OutputsError, match=r"report\.json.*has not finished"):
        _open(run, tmp_path / "cache")
    (run.folder / "report.json.bak").rename(run.folder / "report.json")
    (run.folder / "data" / "manifest.jsonl").unlink()
    with pytest.raises(OutputsError, match=r"manifest\.jsonl"):
        _open(run, tmp_path / "cache")
    with pytest.raises(OutputsError, match="not a folder"):
        RunOutputs.open(tmp_path / "nowhere", tmp_path / "cache")


def test_selection_csv_disagreeing_with_the_embeddings(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    path = run.folder / "data" / "selection.csv"
    path.write_text(path.read_text().replace("cls_0/Img_000.png", "cls_0/other.png"))
    with pytest.raises(OutputsError, match=r"selection\.csv, line 2.*other\.png"):
        _open(run, tmp_path / "cache")


def test_warm_cache_is_used_and_rebuilt_when_a_source_changes(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    cache = tmp_path / "cache"
    first = _open(run, cache)
    folders = [p.name for p in cache.iterdir()]
    assert len(folders) == 1
    assert {p.name for p in (cache / folders[0]).iterdir()} >= {
        "arrays.npz",
        "embeddings.npy",
        "strings.json",
        "meta.json",
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(outputs_module, "_build_index", lambda *a: pytest.fail("re-parsed"))
        warm = _open(run, cache)
    assert list(warm.samples) == list(first.samples)
    first_image = run.index_of[run.names[0]]
    before = warm.neighbours(first_image, k=3)
    assert before

    # Rewrite the embeddings (a rerun into the folder): the cache is stale, rebuilt, and the
    # old cache folder is removed.
    reversed_unit = run.unit[::-1].astype(np.float32)
    save_embeddings(
        run.folder / "data" / "normalized_embeddings.csv", reversed_unit, [0] * 30, run.names
    )
    os.utime(run.folder / "data" / "normalized_embeddings.csv", ns=(1, 1))  # coarse clocks
    rebuilt = _open(run, cache)
    assert rebuilt.neighbours(first_image, k=3) != before
    assert [p.name for p in cache.iterdir()] != folders
    assert len(list(cache.iterdir())) == 1


def test_unwritable_cache_only_costs_speed(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    outputs = RunOutputs.open(run.folder, blocker)
    assert outputs.counts()["all"] == 33
    assert outputs.projection("pca").xy.shape == (30, 2)


def test_web_modules_do_not_import_torch() -> None:
    # selfsup.selection may load: RunConfig holds the typed (torch-free) selection config,
    # and the web reads run configs. What must never load is torch and what builds on it.
    code = "import selfsup.web.outputs, selfsup.web.thumbnails, selfsup.web.sources"
    heavy = ["torch", "torchvision", "pytorch_lightning", "sklearn"]
    assert loaded_after(code, heavy) == []


# --------------------------------------------------------------------------- at scale


def _large_run(root: Path, n: int, dim: int, k: int) -> Path:
    """A 100,000-sample folder written directly (random picks; only what open() reads)."""
    out = root / "large"
    names = [f"d{i // 1000:03d}/frame_{i:06d}.png" for i in range(n)]
    records = [
        SampleRecord(id=i, filename=name, source=name, frame_index=None, file_size=1, mtime_ns=1)
        for i, name in enumerate(names)
    ]
    write_manifest(out / "data" / "manifest.jsonl", records)
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    save_embeddings(out / "data" / "normalized_embeddings.csv", emb, [0] * n, names)
    picks = rng.choice(n, size=k, replace=False)
    write_selection_csv(
        out / "data" / "selection.csv",
        names,
        picks,
        np.linspace(1.4, 0.6, k).astype(np.float32),
        np.zeros(k),
        np.full(n, -1),
        (),
        np.zeros(0, np.int64),
    )
    (out / "report.json").write_text(json.dumps({"counts": {}, "job": {}}))
    return out


def _best_ms(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * min(times)


@pytest.mark.slow
def test_large_folder_timings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n, dim = 100_000, 128
    folder = _large_run(tmp_path, n, dim, k=5000)
    cache = tmp_path / "cache"
    t = time.perf_counter()
    RunOutputs.open(folder, cache)
    cold = time.perf_counter() - t
    warm_ms = _best_ms(lambda: RunOutputs.open(folder, cache), repeat=3)
    outputs = RunOutputs.open(folder, cache)
    assert outputs.counts() == {
        "all": n,
        "selected": 5000,
        "removed": n - 5000,
        "corrupt": 0,
        "duplicate": 0,
    }
    page_ms = _best_ms(lambda: outputs.page("removed", 50_000, 200))
    t = time.perf_counter()
    outputs.page(None, 0, 200, "FRAME_0")  # first query: one O(N) pass, then cached
    first_query_ms = 1000 * (time.perf_counter() - t)
    query_ms = _best_ms(lambda: outputs.page("selected", 100, 200, "FRAME_0"))
    neighbours_ms = _best_ms(lambda: outputs.neighbours(12_345, k=8))
    t = time.perf_counter()
    pca = outputs.projection("pca")
    pca_s = time.perf_counter() - t
    assert pca.xy.shape == (n, 2)
    assert "fitted on 20,000 of them" in pca.description
    reopened = RunOutputs.open(folder, cache)
    t = time.perf_counter()
    reopened.projection("pca")
    pca_cached_ms = 1000 * (time.perf_counter() - t)
    with capsys.disabled():
        print(
            f"\n100k x 128: open cold {cold:.2f} s, open warm {warm_ms:.0f} ms, page "
            f"{page_ms:.2f} ms, first query {first_query_ms:.0f} ms, next pages of a query "
            f"{query_ms:.2f} ms, neighbours "
            f"{neighbours_ms:.1f} ms, PCA {pca_s:.2f} s (from its cache {pca_cached_ms:.0f} ms)"
        )
    # Generous bounds: the machine is shared; typical figures are far below them.
    assert warm_ms < 1000
    assert page_ms < 10
    assert query_ms < 10
    assert neighbours_ms < 50


# --------------------------------------------------------------------------- a real run


@pytest.mark.slow
def test_real_run_with_images_a_video_and_broken_files(
    tmp_path: Path,
    make_image_folder: Callable[..., Path],
    make_video: Callable[..., Path],
    corrupt_files: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pipeline's own folder: counts agree with report.json, statuses with the filename
    lists, and every usable sample (video frames included) gets its thumbnail."""
    import matplotlib.pyplot as plt

    from selfsup.config import RunConfig, resolve
    from selfsup.curation import plots, report
    from selfsup.curation.checks import build_manifest
    from selfsup.curation.manifest import read_filename_list
    from selfsup.curation.pipeline import run as run_pipeline
    from selfsup.web.sources import LocalSourceReader
    from selfsup.web.thumbnails import ThumbnailCache, ThumbnailError

    monkeypatch.setattr(plots, "save_figure", lambda fig, path, dpi: plt.close(fig))
    monkeypatch.setattr(report, "write_report_pdf", lambda *args, **kwargs: None)
    root = make_image_folder(n_classes=2, n_per_class=5, size=(24, 16))
    make_video(name="clips/walk.mp4", n_frames=8, root=root)
    corrupt_files(root / "broken")
    shutil.copy(root / "class_0" / "img_0_0.png", root / "class_0" / "zz_copy.png")
    usable = [r.filename for r in build_manifest(root, progress=False).records if r.is_ok]
    rng = np.random.default_rng(0)
    emb_csv = tmp_path / "emb.csv"
    save_embeddings(
        emb_csv, rng.normal(size=(len(usable), 6)).astype(np.float32), [0] * len(usable), usable
    )
    out = tmp_path / "out"
    run_pipeline(
        resolve(
            RunConfig,
            overrides=[
                f"input_dir={root}",
                f"output_dir={out}",
                "umap=false",
                "num_workers=0",
                f"embeddings={emb_csv}",
                "method=coreset",
                "stopping_condition.n_samples=7",
            ],
        ),
        progress=False,
    )
    outputs = RunOutputs.open(out, tmp_path / "cache")
    counts = outputs.report["counts"]
    assert outputs.counts() == {
        "all": counts["n_samples_found"],
        "selected": counts["n_selected"],
        "removed": counts["n_input_to_selection"] - counts["n_selected"],
        "corrupt": counts["n_corrupt"],
        "duplicate": counts["n_duplicates"],
    }
    sampled = read_filename_list(out / "filenames" / "sampled_filenames_excluding_datapool.txt")
    removed = set(read_filename_list(out / "filenames" / "removed_filenames.txt"))
    status = {s.filename: s.status for s in outputs.samples}
    assert {n for n, s in status.items() if s == "selected"} == set(sampled)
    assert {n for n, s in status.items() if s == "removed"} == removed
    for rank, name in enumerate(sampled, start=1):
        index = next(s.index for s in outputs.samples if s.filename == name)
        assert outputs.explain(index).headline == f"Selected: pick {rank} of 7"

    assert outputs.projection_methods() == ["pca"]  # umap=false: no UMAP in the report
    cache = ThumbnailCache(tmp_path / "thumbs", size=16)
    reader = LocalSourceReader(Path(outputs.report["job"]["input_dir"]))
    frames = 0
    for sample in outputs.samples:
        if sample.status == "corrupt":
            with pytest.raises(ThumbnailError):
                cache.thumbnail(sample, reader)
            continue
        with Image.open(cache.thumbnail(sample, reader)) as thumb:
            arr = np.asarray(thumb.convert("RGB")).astype(float)
        if sample.frame_index is not None:  # write_video: frame i has brightness 255 i / 7
            frames += 1
            level = arr[arr.shape[0] // 2 :, arr.shape[1] // 2 :].mean()
            assert int(np.argmin(np.abs(255 * np.arange(8) / 7 - level))) == sample.frame_index
    assert frames == 8


def test_kinds_of_the_seed_004_outputs() -> None:
    # The clean dataset is a list of names; the AL-score embeddings are embeddings.
    from selfsup.web.outputs import _kind

    assert _kind("data/clean_filenames.txt") == "filenames"
    assert _kind("data/al_score_embeddings.csv") == "embeddings"
    assert _kind("data/quality.csv") == "data"
