"""selfsup.runfolder: paths, readers and writers of a run folder, and older run folders.

The older shapes are written here explicitly, file by file, as the selfsup of their time wrote
them (git history of curation/pipeline.py and curation/report.py):

* layout 0 (first runs): no ``.selfsup/run-folder`` marker, no ``data/selection.csv``, no
  ``data/projections.csv``;
* layout 0 with ``selection.csv`` and ``projections.csv`` (before the marker);
* layout 1: the marker.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from _imports import loaded_after
from selfsup import runfolder
from selfsup.curation.manifest import SampleRecord, write_manifest
from selfsup.errors import DataError
from selfsup.runfolder import RunFolder, write_selection_csv
from selfsup.utils.io import save_embeddings

NAMES = ["a.png", "b.png", 'c d,"e".png', "sub/f.png"]


def _record(i: int, name: str) -> SampleRecord:
    return SampleRecord(
        id=i,
        filename=name,
        frame_index=None,
        source=name,
        file_size=10,
        mtime_ns=1,
        status="ok",
    )


def _write_common(folder: Path) -> None:
    """Files every layout has: config, manifest, embeddings, filename lists, report."""
    (folder / "config").mkdir(parents=True)
    (folder / "config" / "config.yaml").write_text("input_dir: /in\n", encoding="utf-8")
    (folder / "config" / "overrides.yaml").write_text("- input_dir=/in\n", encoding="utf-8")
    write_manifest(folder / "data" / "manifest.jsonl", [_record(i, n) for i, n in enumerate(NAMES)])
    emb = np.arange(8, dtype=np.float32).reshape(4, 2) + 1
    save_embeddings(folder / "data" / "embeddings.csv", emb, [0, 0, 1, 1], NAMES)
    norm = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    save_embeddings(folder / "data" / "normalized_embeddings.csv", norm, [0, 0, 1, 1], NAMES)
    (folder / "filenames").mkdir()
    (folder / "filenames" / "sampled_filenames_excluding_datapool.txt").write_text(
        "sub/f.png\na.png\n", encoding="utf-8"
    )
    (folder / "filenames" / "removed_filenames.txt").write_text(
        'b.png\nc d,"e".png\n', encoding="utf-8"
    )
    (folder / "filenames" / "corrupt_filenames.txt").write_text("", encoding="utf-8")
    (folder / "filenames" / "duplicate_filenames.txt").write_text("", encoding="utf-8")
    report = {
        "format": "selfsup-report",
        "version": 1,
        "job": {"run_name": folder.name, "config": {"input_dir": "/in"}},
        "counts": {"before": 4, "after": 2},
    }
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def _layout0_first(folder: Path) -> Path:
    _write_common(folder)
    return folder


def _layout0_with_tables(folder: Path) -> Path:
    _write_common(folder)
    (folder / "data" / "selection.csv").write_text(
        "filename,selected,rank,pick_distance,score,removed_by,preselected,sample\n"
        "a.png,1,2,0.5,-1.25,,0,a.png\n"
        "b.png,0,,,,min_score(x) < 0.5,0,b.png\n"
        '"c d,""e"".png",0,,,,,0,"c d,""e"".png"\n'
        "sub/f.png,1,1,inf,0,,0,sub/f.png\n",
        encoding="utf-8",
    )
    (folder / "data" / "projections.csv").write_text(
        "filename,pca_x,pca_y\na.png,0.1,-0.2\nsub/f.png,1e-07,3\n", encoding="utf-8"
    )
    return folder


def _layout1(folder: Path) -> Path:
    _layout0_with_tables(folder)
    (folder / ".selfsup").mkdir()
    (folder / ".selfsup" / "run-folder").write_text(
        '{"format": "selfsup-run-folder", "version": 1}\n', encoding="utf-8"
    )
    return folder


@pytest.mark.parametrize(
    ("build", "layout"), [(_layout0_first, 0), (_layout0_with_tables, 0), (_layout1, 1)]
)
def test_every_older_layout_loads(
    build: Callable[[Path], Path], layout: int, tmp_path: Path
) -> None:
    folder = RunFolder(build(tmp_path / "run"))
    assert folder.is_run_folder()
    assert folder.layout_version() == layout
    report = folder.read_report()
    assert report["counts"] == {"before": 4, "after": 2}
    assert [r.filename for r in folder.read_manifest().records] == NAMES
    emb, labels, names = folder.read_embeddings(folder.normalized_embeddings)
    assert names == NAMES
    assert labels == [0, 0, 1, 1]
    assert emb.shape == (4, 2)
    assert folder.read_overrides() == ["input_dir=/in"]
    picked, removed = folder.selection_from_lists()
    assert picked == ["sub/f.png", "a.png"]
    assert removed == ["b.png", 'c d,"e".png']
    selection = folder.read_selection()
    projections = folder.read_projections()
    if build is _layout0_first:
        assert selection is None
        assert projections is None
        return
    assert selection is not None
    assert projections is not None
    assert selection.filenames == NAMES
    assert selection.selected.tolist() == [True, False, False, True]
    assert selection.rank.tolist() == [2, 0, 0, 1]
    assert selection.pick_distance[0] == 0.5
    assert math.isinf(selection.pick_distance[3])
    assert math.isnan(selection.pick_distance[1])
    assert selection.filters == ["min_score(x) < 0.5"]
    assert selection.removed_by.tolist() == [-1, 0, -1, -1]
    assert selection.samples == NAMES
    assert projections.filenames == ["a.png", "sub/f.png"]
    np.testing.assert_allclose(projections.coordinates["pca"], [[0.1, -0.2], [1e-7, 3.0]])


@pytest.mark.parametrize("done", ["report_json", "manifest"])
def test_the_scan_recognises_older_folders_by_these_paths(tmp_path: Path, done: str) -> None:
    # selfsup.data.files (a lower layer, which cannot import this module) spells out the
    # paths of a folder written before the marker; they must stay these paths.
    folder = RunFolder(tmp_path / "run")
    getattr(folder, done).parent.mkdir(parents=True)
    getattr(folder, done).write_text("{}")
    assert not folder.is_run_folder(), "without config/config.yaml it is no run folder"
    folder.config_yaml.parent.mkdir(parents=True)
    folder.config_yaml.write_text("input_dir: /in\n")
    assert folder.is_run_folder()


def test_paths_are_the_documented_layout(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    rel = {
        "marker": ".selfsup/run-folder",
        "state_file": ".selfsup/state.json",
        "training_dir": ".selfsup/training",
        "config_yaml": "config/config.yaml",
        "overrides_yaml": "config/overrides.yaml",
        "data_dir": "data",
        "manifest": "data/manifest.jsonl",
        "embeddings": "data/embeddings.csv",
        "embeddings_parquet": "data/embeddings.parquet",
        "normalized_embeddings": "data/normalized_embeddings.csv",
        "selected_embeddings": "data/selected_embeddings.csv",
        "selection_csv": "data/selection.csv",
        "projections_csv": "data/projections.csv",
        "frames_dir": "data/frames",
        "corrupt_filenames": "filenames/corrupt_filenames.txt",
        "duplicate_filenames": "filenames/duplicate_filenames.txt",
        "sampled_filenames": "filenames/sampled_filenames_excluding_datapool.txt",
        "removed_filenames": "filenames/removed_filenames.txt",
        "plots_dir": "plots",
        "report_pdf": "report.pdf",
        "report_json": "report.json",
        "quality_csv": "data/quality.csv",
        "quality_issues": "filenames/quality_issues.txt",
        "near_duplicate_filenames": "filenames/near_duplicate_filenames.txt",
        "tags_json": "tags.json",
        "clean_filenames": "data/clean_filenames.txt",
        "al_score_embeddings": "data/al_score_embeddings.csv",
    }
    for attribute, path in rel.items():
        assert getattr(folder, attribute) == tmp_path / path, attribute
    # Every path attribute of RunFolder (but the folder itself) is listed above.
    attributes = {
        name
        for name in dir(RunFolder)
        if name != "path" and not name.startswith("_") and isinstance(getattr(folder, name), Path)
    }
    assert attributes == set(rel)
    assert folder.crops_dir("boxes") == tmp_path / "data" / "crops" / "boxes"
    assert folder.plot("scatter_pca.png") == tmp_path / "plots" / "scatter_pca.png"
    assert RunFolder(tmp_path) == folder
    assert RunFolder(tmp_path / "x") != folder


def test_marker_written_is_layout_1(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    folder.write_marker()
    assert folder.marker.read_text() == '{"format": "selfsup-run-folder", "version": 1}\n'
    assert folder.layout_version() == runfolder.RUN_FOLDER_VERSION
    assert folder.is_run_folder()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"format": "selfsup-run-folder", "version": 2}', "version 2 is not supported"),
        ('{"format": "other", "version": 1}', "'other' is not 'selfsup-run-folder'"),
        ("not json", "not JSON"),
    ],
)
def test_bad_or_newer_marker_is_refused(tmp_path: Path, text: str, message: str) -> None:
    folder = RunFolder(tmp_path)
    folder.marker.parent.mkdir()
    folder.marker.write_text(text)
    with pytest.raises(DataError, match=message) as info:
        folder.layout_version()
    assert str(folder.marker) in str(info.value)


@pytest.mark.parametrize(
    ("report", "message"),
    [
        ({"format": "selfsup-report", "version": 2}, "version 2 is not supported"),
        ({"format": "selfsup-report"}, "version None is not supported"),
        ({"job": {}}, "format None is not 'selfsup-report'"),
        ([1, 2], "format 'list' is not"),
    ],
)
def test_bad_or_newer_report_is_refused(tmp_path: Path, report: object, message: str) -> None:
    folder = RunFolder(tmp_path)
    folder.report_json.write_text(json.dumps(report))
    with pytest.raises(DataError, match=message):
        folder.read_report()


def test_lenient_report_reading_accepts_only_a_report_without_format(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    for lenient in ({"counts": {"n_selected": 2}}, {"format": "selfsup-report", "counts": {}}):
        folder.report_json.write_text(json.dumps(lenient))
        assert folder.read_report(strict=False) == lenient
        with pytest.raises(DataError, match=r"is not supported|is not 'selfsup-report'"):
            folder.read_report()
    refused = [
        ({"format": "selfsup-report", "version": 2}, "version 2 is not supported"),
        ({"format": "other", "version": 1}, "format 'other' is not 'selfsup-report'"),
        ({"format": "other"}, "format 'other' is not 'selfsup-report'"),
        ({"version": 1}, "format None is not 'selfsup-report'"),
        ([1, 2], "format 'list' is not"),
    ]
    for report, message in refused:
        folder.report_json.write_text(json.dumps(report))
        with pytest.raises(DataError, match=message):
            folder.read_report(strict=False)
    folder.report_json.write_text("{not json")
    with pytest.raises(DataError, match="not readable JSON"):
        folder.read_report(strict=False)


def test_report_round_trip_and_removal(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    with pytest.raises(FileNotFoundError):
        folder.read_report()
    report = {"format": "selfsup-report", "version": 1, "name": "caf\udce9"}
    folder.write_report(report)
    assert folder.report_json.read_bytes().endswith(b"}\n")
    assert folder.read_report()["name"] == "caf\udce9"
    with pytest.raises(ValueError, match="Out of range float values"):
        folder.write_report({**report, "x": float("nan")})
    folder.remove_report()
    folder.remove_report()  # twice: nothing to remove is fine
    assert not folder.report_json.exists()


def test_selection_round_trip(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    names = ["x", "y,z", "w", "v"]
    folder.write_selection(
        names,
        indices=np.array([3, 0]),
        distances=np.array([np.inf, 0.123456789123], dtype=np.float64),
        scores=np.array([np.nan, -2.5]),
        removed_by=np.array([-1, 0, -1, -1]),
        filters=["f < 1"],
        preselected=np.array([2]),
        samples=["x.png", "y.png", "w", "v"],
    )
    table = folder.read_selection()
    assert table is not None
    assert table.filenames == names
    assert table.selected.tolist() == [True, False, True, True]
    assert table.rank.tolist() == [2, 0, 0, 1]
    assert table.pick_distance[0] == pytest.approx(0.123456789)
    assert math.isinf(table.pick_distance[3])
    assert math.isnan(table.pick_distance[1])
    assert math.isnan(table.score[3])
    assert table.score[0] == -2.5
    assert table.removed_by.tolist() == [-1, 0, -1, -1]
    assert table.filters == ["f < 1"]
    assert table.preselected.tolist() == [False, False, True, False]
    assert table.samples == ["x.png", "y.png", "w", "v"]
    with pytest.raises(ValueError, match="removed_by has shape"):
        write_selection_csv(
            tmp_path / "s.csv",
            names,
            np.array([0]),
            np.ones(1),
            np.ones(1),
            np.zeros(2, np.int64),
            [],
            np.zeros(0, np.int64),
        )


def test_selection_errors_name_file_line_and_column(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    folder.selection_csv.parent.mkdir()
    folder.selection_csv.write_text("filename,selected\na,1\n")
    with pytest.raises(DataError, match="header must name the columns filename, selected, rank"):
        folder.read_selection()
    folder.selection_csv.write_text("filename,selected,rank\na,1,first\n")
    with pytest.raises(DataError, match=r"line 2, column rank: 'first' is not an integer"):
        folder.read_selection()
    folder.selection_csv.write_text("filename,selected,rank,score\na,1,1,high\n")
    with pytest.raises(DataError, match=r"line 2, column score: 'high' is not a number"):
        folder.read_selection()
    folder.selection_csv.write_text("filename,selected,rank\na,1\n")
    with pytest.raises(DataError, match="line 2: 2 cells for 3 columns"):
        folder.read_selection()


def test_projections_round_trip_and_stale_removal(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    coords = {
        "umap_k15": np.array([[1.0, 2.0], [3.0, 4.0]]),
        "pca": np.array([[0.123456789, -1.0], [5.0, 6.0]]),
    }
    folder.write_projections(["n0", "n,1", "n2"], np.array([0, 2]), coords)
    header = folder.projections_csv.read_text().splitlines()[0]
    assert header == "filename,pca_x,pca_y,umap_k15_x,umap_k15_y"
    read = folder.read_projections()
    assert read is not None
    assert read.filenames == ["n0", "n2"]
    np.testing.assert_allclose(read.coordinates["pca"], [[0.1234568, -1.0], [5.0, 6.0]])
    np.testing.assert_array_equal(read.coordinates["umap_k15"], coords["umap_k15"])
    folder.write_projections(["n0"], np.array([0]), {})
    assert not folder.projections_csv.exists()
    assert folder.read_projections() is None


def test_projections_bad_header(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    folder.projections_csv.parent.mkdir()
    folder.projections_csv.write_text("filename,pca_x,umap_y\na,1,2\n")
    with pytest.raises(DataError, match="no <key>_x,<key>_y pair"):
        folder.read_projections()


def test_config_state_and_lists(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    folder.write_config("a: 1\n", ["x=1", "y=two words"])
    assert folder.config_yaml.read_text() == "a: 1\n"
    assert folder.read_overrides() == ["x=1", "y=two words"]
    assert folder.read_state() == {}
    folder.write_state({"embed": {"key": "k"}})
    assert folder.read_state() == {"embed": {"key": "k"}}
    folder.state_file.write_text("{broken")
    assert folder.read_state() == {}  # a broken state only means the work is redone
    folder.write_filename_list(folder.sampled_filenames, ["a", "caf\udce9"])
    assert folder.sampled_filenames.read_bytes() == b"a\ncaf\xe9\n"
    assert folder.read_filename_list(folder.sampled_filenames) == ["a", "caf\udce9"]


def test_import_is_torch_free() -> None:
    assert loaded_after("import selfsup.runfolder", ["torch"]) == []


# --------------------------------------------------------------------------- tags.json


def test_tags_round_trip_sorted_and_with_undecodable_names(tmp_path: Path) -> None:
    from selfsup.runfolder import TAGS_FORMAT, TAGS_VERSION
    from selfsup.utils.names import name_from_bytes

    run = RunFolder(tmp_path)
    assert run.read_tags() == {}
    odd = name_from_bytes(b"caf\xe9.png")  # Latin-1 bytes: not UTF-8
    run.write_tags({"keep": ["b.png", odd, "a.png", "a.png"], "empty": []})
    assert run.read_tags() == {"keep": sorted(["a.png", "b.png", odd])}
    data = json.loads(run.tags_json.read_text(encoding="utf-8"))
    assert data["format"] == TAGS_FORMAT
    assert data["version"] == TAGS_VERSION
    assert "empty" not in data["tags"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{", "not readable JSON"),
        ('{"format": "other", "version": 1}', "is not 'selfsup-tags'"),
        ('{"format": "selfsup-tags", "version": 99}', "version 99 is not supported"),
        ('{"format": "selfsup-tags", "version": 1, "tags": []}', "'tags' must be an object"),
        ('{"format": "selfsup-tags", "version": 1, "tags": {"a": [1]}}', "tags['a']"),
    ],
)
def test_a_bad_tags_file_is_refused_naming_it(tmp_path: Path, text: str, says: str) -> None:
    run = RunFolder(tmp_path)
    run.tags_json.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(says)) as info:
        run.read_tags()
    assert "tags.json" in str(info.value)
