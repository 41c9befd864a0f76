"""SIMILARITY from ``selfsup run``: query sets by name, file, folder inside and outside."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from selfsup.config import RunConfig, resolve
from selfsup.config.run_configs import validate_run_configs
from selfsup.curation.pipeline import run
from selfsup.curation.queries import build_queries, check_queries
from selfsup.errors import ConfigError
from selfsup.utils.io import load_embeddings, save_embeddings

FAST = ["umap=false", "num_workers=0"]
TINY_MODEL = [
    "lightly.trainer.max_epochs=1",
    "lightly.model.name=resnet-9",
    "lightly.model.width=0.125",
    "lightly.collate.input_size=32",
    "lightly.loader.num_workers=0",
    "lightly.loader.batch_size=8",
]


def _similarity(query: str, n: int = 5) -> str:
    return (
        f"selection_config={{n_samples: {n}, strategies: [{{input: {{type: EMBEDDINGS, "
        f"query: {query}}}, strategy: {{type: SIMILARITY}}}}]}}"
    )


@pytest.fixture
def folder(make_image_folder: Callable[..., Path], corrupt_files: Callable[..., list[str]]) -> Path:
    root = make_image_folder(n_classes=3, n_per_class=6, size=(32, 32))
    corrupt_files(root / "class_2", names=("truncated.jpg",))
    return root


def _embeddings_csv(folder: Path, path: Path, dim: int = 6) -> Path:
    """Random embeddings for every usable image (no cluster structure: the picks depend on
    the queries alone)."""
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("img_*.png"))
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(len(names), dim)).astype(np.float32)
    save_embeddings(path, emb, [0] * len(names), names)
    return path


def _cfg(folder: Path, out: Path, *overrides: str) -> RunConfig:
    return resolve(
        RunConfig, overrides=[f"input_dir={folder}", f"output_dir={out}", *FAST, *overrides]
    )


def _closeness(candidates: NDArray[np.float32], queries: NDArray[np.float32]) -> NDArray[Any]:
    """``(N,)`` cosine of each candidate to its nearest query (float64)."""
    c = candidates / np.linalg.norm(candidates, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    out: NDArray[Any] = (c.astype(np.float64) @ q.T.astype(np.float64)).max(axis=1)
    return out


def _nearest(candidates: NDArray[np.float32], queries: NDArray[np.float32], n: int) -> list[int]:
    """Reference: the ``n`` candidates closest (cosine) to their nearest query, ties to the
    lowest index, as SIMILARITY alone ranks them."""
    closeness = _closeness(candidates, queries)
    return [int(i) for i in np.argsort(-closeness, kind="stable")[:n]]


def _assert_picks(selected: list[str], reference: list[str], n_queries: int) -> None:
    """The picks are the reference; the first ``n_queries`` (samples that are queries, each
    at closeness 1 up to rounding) in any order."""
    assert set(selected[:n_queries]) == set(reference[:n_queries])
    assert selected[n_queries:] == reference[n_queries:]


def _written(out: Path) -> tuple[NDArray[np.float32], list[str]]:
    emb, _, names = load_embeddings(out / "data" / "normalized_embeddings.csv")
    return emb, names


def test_a_string_query_is_refused_before_work_with_the_accepted_forms(
    folder: Path, tmp_path: Path
) -> None:
    # Issue 12: a named query set used to pass the config and fail in the engine with
    # "no query set"; a run has no named sets, so it is refused before anything is written.
    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.input\.query.*\{samples: \[names\]\}"):
        run(_cfg(folder, out, f"embeddings={csv}", _similarity("q")))
    assert not out.exists()


def test_query_by_names_picks_the_nearest_neighbours(folder: Path, tmp_path: Path) -> None:
    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    out = tmp_path / "out"
    queries = ["class_0/img_0_1.png", "class_2/img_2_3.png"]
    result = run(
        _cfg(folder, out, f"embeddings={csv}", _similarity(f"{{samples: [{', '.join(queries)}]}}"))
    )
    emb, names = _written(out)
    reference = _nearest(emb, emb[[names.index(q) for q in queries]], 5)
    _assert_picks(result.selected, [names[i] for i in reference], 2)
    # The queries themselves are samples of the input and the closest to themselves.
    assert set(result.selected[:2]) == set(queries)
    extra = json.loads((out / "report.json").read_text())["job"]["extra"]
    assert extra["queries"] == [
        {
            "source": "2 samples",
            "where": "input",
            "n_queries": 2,
            "n_corrupt": 0,
            "n_not_candidates": 0,
            "names": queries,
            "corrupt": [],
            "not_candidates": [],
        }
    ]


def test_query_by_samples_file_and_folder_inside(folder: Path, tmp_path: Path) -> None:
    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    names_file = tmp_path / "queries.txt"
    names_file.write_text("# query images\nclass_1/img_1_0.png\n\nclass_1/img_1_4.png\n")
    by_file = run(
        _cfg(
            folder,
            tmp_path / "file",
            f"embeddings={csv}",
            _similarity(f"{{samples_file: {names_file}}}", n=4),
        )
    )
    emb, names = _written(tmp_path / "file")
    wanted = ["class_1/img_1_0.png", "class_1/img_1_4.png"]
    reference = _nearest(emb, emb[[names.index(w) for w in wanted]], 4)
    _assert_picks(by_file.selected, [names[i] for i in reference], 2)

    # A folder relative to input_dir: its samples are the queries.
    inside = run(
        _cfg(
            folder, tmp_path / "inside", f"embeddings={csv}", _similarity("{folder: class_2}", n=8)
        )
    )
    emb, names = _written(tmp_path / "inside")
    in_class_2 = [i for i, n in enumerate(names) if n.startswith("class_2/")]
    assert len(in_class_2) == 6  # the corrupt file of class_2 is no query
    _assert_picks(inside.selected, [names[i] for i in _nearest(emb, emb[in_class_2], 8)], 6)
    queries = inside.report["job"]["extra"]["queries"][0]
    assert (queries["where"], queries["n_queries"]) == ("input", 6)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("{samples: [class_0/img_0_1.png, class_0/nope.png]}", "no sample 'class_0/nope.png'"),
        ("{samples_file: missing.txt}", "file .*missing.txt' does not exist"),
        ("{folder: no_such_folder}", "'no_such_folder' is not a folder"),
        ("{folde: class_0}", "unknown query key; did you mean 'folder'"),
        (
            "{samples: [a.png], folder: class_0}",
            "give exactly one of samples, samples_file, folder",
        ),
    ],
)
def test_a_bad_query_fails_before_work(
    folder: Path, tmp_path: Path, query: str, message: str
) -> None:
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=message):
        run(_cfg(folder, out, "checkpoint=" + str(_fake_checkpoint(tmp_path)), _similarity(query)))
    assert not out.exists()


def _fake_checkpoint(tmp_path: Path) -> Path:
    # check_preconditions only needs the file to exist; no bad-query run gets to load it.
    path = tmp_path / "model.ckpt"
    path.write_bytes(b"")
    return path


def test_a_folder_outside_needs_a_model_and_an_allowed_root(
    folder: Path, tmp_path: Path, make_image_folder: Callable[..., Path]
) -> None:
    outside = make_image_folder(n_classes=1, n_per_class=2, flat=True, root=tmp_path / "qs")
    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    with pytest.raises(ConfigError, match="precomputed embeddings= has no model"):
        check_queries(
            _cfg(folder, tmp_path / "o", f"embeddings={csv}", _similarity(f"{{folder: {outside}}}"))
        )
    cfg = _cfg(
        folder,
        tmp_path / "o",
        f"allowed_roots=[{folder}]",
        _similarity(f"{{folder: {outside}}}"),
    )
    with pytest.raises(ConfigError, match="outside the allowed roots"):
        check_queries(cfg)
    # The run folder of a tag too (a scheduled run reads no folder its owner may not use).
    tagged = _cfg(
        folder,
        tmp_path / "o",
        f"allowed_roots=[{folder}]",
        _similarity(f"{{tag: t, run: {outside}}}"),
    )
    with pytest.raises(ConfigError, match=r"query\.run '.*' lies outside the input and outside"):
        check_queries(tagged)


def test_queries_that_are_no_candidates_are_reported(folder: Path, tmp_path: Path) -> None:
    cfg = _cfg(
        folder,
        tmp_path / "o",
        _similarity("{samples: [class_0/img_0_0.png, class_2/truncated.jpg]}"),
    )
    check_queries(cfg)  # both are files of the input
    queries = build_queries(
        cfg, cfg.selection(), ["class_0/img_0_0.png", "class_0/img_0_1.png"], None
    )
    (info,) = queries.sets
    assert info.names == ["class_0/img_0_0.png"]
    assert info.not_candidates == ["class_2/truncated.jpg"]
    assert queries.arrays[info.key].tolist() == [0]


def test_the_query_survives_the_scheduled_runs_config_validation(tmp_path: Path) -> None:
    by_folder = {
        "input": {"type": "EMBEDDINGS", "query": {"folder": "queries"}},
        "strategy": {"type": "SIMILARITY", "strength": 2.0},
    }
    by_name = {"type": "EMBEDDINGS", "query": {"samples": ["a.png"]}}
    selection = {
        "n_samples": 3,
        "strategies": [by_folder, {"input": by_name, "strategy": {"type": "SIMILARITY"}}],
    }
    configs = validate_run_configs({}, {}, selection, check_selection=True)
    assert configs.selection_config is not None
    # What the worker builds from the stored job (worker.loop._prepare): the same selection.
    data = dict(configs.worker_config)
    data["selection_config"] = configs.selection_config
    cfg = RunConfig.model_validate(
        {**data, "input_dir": str(tmp_path), "output_dir": str(tmp_path / "o")}
    )
    assert cfg.selection().to_dict() == {
        "n_samples": 3,
        "strategies": [
            by_folder,
            {"input": by_name, "strategy": {"type": "SIMILARITY", "strength": 1.0}},
        ],
    }
    # The dumped form (config/config.yaml, the job sent to the worker) parses back the same.
    again = RunConfig.model_validate(json.loads(json.dumps(cfg.model_dump(mode="json"))))
    assert again.selection() == cfg.selection()
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.input\.query\.folder"):
        validate_run_configs(
            {},
            {},
            {
                "n_samples": 3,
                "strategies": [
                    {
                        "input": {"type": "EMBEDDINGS", "query": {"folder": 3}},
                        "strategy": {"type": "SIMILARITY"},
                    }
                ],
            },
            check_selection=True,
        )


@pytest.mark.slow
def test_query_folder_outside_is_embedded_with_the_runs_model_and_never_a_candidate(
    folder: Path,
    tmp_path: Path,
    make_image_folder: Callable[..., Path],
    corrupt_files: Callable[..., list[str]],
) -> None:
    from selfsup.core import embed

    outside = tmp_path / "outside_q"
    make_image_folder(n_classes=1, n_per_class=3, flat=True, root=outside, seed=7)
    for p in sorted(outside.glob("*.png")):
        p.rename(p.with_name("qimg_" + p.name))
    corrupt_files(outside, names=("empty.png",))
    out = tmp_path / "out"
    result = run(_cfg(folder, out, *TINY_MODEL, _similarity(f"{{folder: {outside}}}", n=6)))

    extra = result.report["job"]["extra"]
    (queries,) = extra["queries"]
    assert queries["where"] == "outside"
    assert queries["n_queries"] == 3
    assert queries["names"] == sorted(p.name for p in outside.glob("qimg_*.png"))
    assert (queries["n_corrupt"], queries["corrupt"]) == (1, ["empty.png: empty"])

    # Reference: the query images embedded with the run's checkpoint, nearest candidates.
    # The embed step's description names the checkpoint it embedded with (and handed on).
    assert extra["model"].startswith("checkpoint ")
    ckpt = extra["model"].removeprefix("checkpoint ")
    assert Path(ckpt).is_file()
    cfg = _cfg(folder, out, *TINY_MODEL, "stopping_condition.n_samples=1")
    lightly = cfg.lightly.model_copy(deep=True)
    lightly.input_dir = str(outside)
    q, _, q_names = embed(lightly, checkpoint=ckpt, filenames=queries["names"])
    assert list(q_names) == queries["names"]
    emb, names = _written(out)
    # A model trained for one epoch maps these images close together: closeness values of
    # different candidates may differ by float32 rounding only, so the picks are compared
    # by their closeness (float64 here, float32 in the engine) rather than by name.
    closeness = _closeness(emb, q.astype(np.float32))
    picked = [names.index(n) for n in result.selected]
    reference = _nearest(emb, q.astype(np.float32), 6)
    np.testing.assert_allclose(closeness[picked], closeness[reference], rtol=0, atol=1e-5)
    assert np.all(np.diff(closeness[picked]) <= 1e-5)
    # The check discriminates: the candidates are not all equally close to the queries.
    assert closeness.max() - closeness.min() > 1e-3

    # The outside images are never candidates: no output list names them.
    for path in out.rglob("*"):
        if not path.is_file() or path.name in ("report.json", "report.pdf"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        assert "qimg_" not in text, path
    shutil.rmtree(out)


@pytest.mark.slow
def test_query_folder_outside_is_embedded_with_pretrained_weights(
    folder: Path, tmp_path: Path, make_image_folder: Callable[..., Path]
) -> None:
    # A run that embeds with model.weights without training has a model for the outside
    # queries too (check_queries accepts it, so the run must not refuse it later).
    import torch

    from selfsup.core import embed
    from selfsup.models.backbones import get_backbone

    outside = tmp_path / "outside_q"
    make_image_folder(n_classes=1, n_per_class=2, flat=True, root=outside, seed=7)
    torch.manual_seed(0)
    weights = tmp_path / "backbone.pth"
    torch.save(get_backbone("resnet-9", width=0.125).state_dict(), weights)
    pretrained = [*TINY_MODEL, "enable_training=false", f"lightly.model.weights={weights}"]
    out = tmp_path / "out"
    result = run(_cfg(folder, out, *pretrained, _similarity(f"{{folder: {outside}}}", n=4)))

    (queries,) = result.report["job"]["extra"]["queries"]
    assert (queries["where"], queries["n_queries"]) == ("outside", 2)
    assert result.report["job"]["extra"]["model"].startswith("pretrained weights")
    cfg = _cfg(folder, out, *pretrained, "stopping_condition.n_samples=1")
    lightly = cfg.lightly.model_copy(deep=True)
    lightly.input_dir = str(outside)
    q, _, _ = embed(lightly, filenames=queries["names"])
    emb, names = _written(out)
    closeness = _closeness(emb, q.astype(np.float32))
    picked = [names.index(n) for n in result.selected]
    reference = _nearest(emb, q.astype(np.float32), 4)
    np.testing.assert_allclose(closeness[picked], closeness[reference], rtol=0, atol=1e-5)


def test_query_by_tag_of_the_web_app(folder: Path, tmp_path: Path) -> None:
    from selfsup.runfolder import RunFolder

    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    tagged = ["class_1/img_1_2.png", "class_0/img_0_5.png"]
    # The tags selfsup view kept in a run folder; the next run into that folder reads them.
    out = tmp_path / "out"
    out.mkdir()
    RunFolder(out).write_tags({"cats": tagged, "other": ["class_2/img_2_0.png"]})
    result = run(_cfg(folder, out, f"embeddings={csv}", _similarity("{tag: cats}", n=5)))
    emb, names = _written(out)
    reference = _nearest(emb, emb[[names.index(t) for t in tagged]], 5)
    _assert_picks(result.selected, [names[i] for i in reference], 2)
    (queries,) = result.report["job"]["extra"]["queries"]
    assert (queries["source"], queries["names"]) == ("tag cats", sorted(tagged))
    assert RunFolder(out).read_tags()["cats"] == sorted(tagged)  # the run keeps the tags

    # The tag of another run folder, and a tag that does not exist there.
    again = run(
        _cfg(
            folder,
            tmp_path / "o2",
            f"embeddings={csv}",
            f"{_similarity(f'{{tag: cats, run: {out}}}', n=5)}",
        )
    )
    assert again.selected == result.selected
    with pytest.raises(ConfigError, match=r"no sample is tagged 'dogs'.*tags there: cats, other"):
        run(
            _cfg(
                folder,
                tmp_path / "o3",
                f"embeddings={csv}",
                _similarity(f"{{tag: dogs, run: {out}}}"),
            )
        )
    assert not (tmp_path / "o3").exists()


#: tests/worker/_tiny.py's model: one epoch of a tiny network on 32 px images.
LIGHTLY_CONFIG: dict[str, Any] = {
    "model": {"name": "resnet-9", "width": 0.125},
    "collate": {"input_size": 32},
    "trainer": {"max_epochs": 1, "gpus": 0},
    "loader": {"num_workers": 0, "batch_size": 8},
}


@pytest.mark.slow
def test_a_scheduled_run_selects_by_query_through_the_worker(
    tmp_path: Path, make_image_folder: Callable[..., Path]
) -> None:
    from selfsup.openapi_generated.swagger_client.models.datasource_purpose import (
        DatasourcePurpose,
    )
    from selfsup.server.testing import ServerHarness
    from selfsup.worker import Worker, WorkerSettings

    roots = tmp_path / "roots"
    images = make_image_folder(n_classes=2, n_per_class=4, root=roots / "input")
    (roots / "lightly").mkdir()
    harness = ServerHarness(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "data", (roots,))
    try:
        token = harness.token()
        client = harness.client(token)
        client.create_dataset("queries")
        client.set_local_config(str(images), purpose=DatasourcePurpose.INPUT)
        client.set_local_config(str(roots / "lightly"), purpose=DatasourcePurpose.LIGHTLY)
        similar = {"type": "SIMILARITY"}
        by_folder = {"type": "EMBEDDINGS", "query": {"folder": "class_1"}}
        good = client.schedule_compute_worker_run(
            lightly_config=LIGHTLY_CONFIG,
            selection_config={
                "n_samples": 5,
                "strategies": [{"input": by_folder, "strategy": similar}],
            },
        )
        settings = WorkerSettings(
            token=token,
            server_url="",
            name="w",
            poll_interval=0.1,
            work_dir=tmp_path / "work",
            umap=False,
            num_workers=0,
        )
        worker = Worker(settings, api=harness.worker_client(token))
        assert worker.run_once()
        run_data = client.get_compute_worker_run_from_scheduled_run(good)
        assert run_data.state == "COMPLETED", run_data.message
        report = tmp_path / "report.json"
        client.download_compute_worker_run_report_json(run_data, report)
        (queries,) = json.loads(report.read_text())["job"]["extra"]["queries"]
        assert (queries["where"], queries["n_queries"]) == ("input", 4)
        # Each query is its own nearest query: the four samples of class_1 come first.
        selected = client.get_compute_worker_run_selected_filenames(run_data)
        assert sorted(selected[:4]) == sorted(queries["names"])

        # A name that is not in the input fails the run before any work, with the name.
        by_name = {"type": "EMBEDDINGS", "query": {"samples": ["class_1/nope.png"]}}
        bad = client.schedule_compute_worker_run(
            lightly_config=LIGHTLY_CONFIG,
            selection_config={
                "n_samples": 5,
                "strategies": [{"input": by_name, "strategy": similar}],
            },
        )
        assert worker.run_once()
        failed = client.get_compute_worker_run_from_scheduled_run(bad)
        assert failed.state == "FAILED"
        assert "no sample 'class_1/nope.png'" in failed.message
        worker.api.close()
        client.close()
    finally:
        harness.close()


# ------------------------------------------------------------------ preselected and excluded


def _diversity(n: int, *extra: str) -> str:
    more = "".join(f", {e}" for e in extra)
    return (
        f"selection_config={{n_samples: {n}, strategies: [{{input: {{type: EMBEDDINGS}}, "
        f"strategy: {{type: DIVERSITY}}}}]{more}}}"
    )


def _selection_rows(out: Path) -> dict[str, dict[str, str]]:
    import csv

    with (out / "data" / "selection.csv").open(encoding="utf-8") as handle:
        return {row["filename"]: row for row in csv.DictReader(handle)}


def test_a_tag_as_preselected_keeps_its_samples_selected_first(
    folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from selfsup.runfolder import RunFolder

    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    out = tmp_path / "out"
    out.mkdir()
    keep = ["class_1/img_1_2.png", "class_0/img_0_5.png"]
    # A tagged sample deleted since the tag was given: a warning, not an error.
    RunFolder(out).write_tags({"keep": [*keep, "class_0/gone.png"]})
    plain = run(_cfg(folder, tmp_path / "plain", f"embeddings={csv}", _diversity(5)))
    assert not set(keep) <= set(plain.selected)  # without preselection they are not both picked
    with caplog.at_level("WARNING"):
        result = run(
            _cfg(folder, out, f"embeddings={csv}", _diversity(5, "preselected: [{tag: keep}]"))
        )
    # They count toward n_samples and come first; the engine picks the rest from them.
    assert len(result.selected) == 5
    assert set(result.selected[:2]) == set(keep)
    rows = _selection_rows(out)
    for name in keep:
        assert rows[name]["selected"] == "1"
        assert rows[name]["rank"] in ("1", "2")
        assert rows[name]["score"] == ""
        assert rows[name]["preselected"] == "0"  # the column of the datapool's samples
    assert "1 named sample(s) are no candidates" in caplog.text
    assert "gone.png" in caplog.text
    inputs = result.report["job"]["extra"]["selection_inputs"]
    assert (inputs["n_preselected"], inputs["n_excluded"]) == (2, 0)
    assert inputs["preselected"][0]["source"] == "tag keep"
    assert inputs["preselected"][0]["not_candidates"] == ["class_0/gone.png"]
    # The written config keeps the input; a run without one writes no such key.
    import yaml

    def written(run_dir: Path) -> dict[str, Any]:
        data = yaml.safe_load((run_dir / "config" / "config.yaml").read_text(encoding="utf-8"))
        selection: dict[str, Any] = data["selection_config"]
        return selection

    assert written(out)["preselected"] == [{"tag": "keep"}]
    assert "preselected" not in written(tmp_path / "plain")
    assert "selection_inputs" not in plain.report["job"]["extra"]


def test_excluded_samples_are_never_selected(folder: Path, tmp_path: Path) -> None:
    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    plain = run(_cfg(folder, tmp_path / "plain", f"embeddings={csv}", _diversity(4)))
    drop = plain.selected[:2]
    names_file = tmp_path / "drop.txt"
    names_file.write_text("\n".join([*drop, "not/there.png"]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    # Every usable sample but 4 excluded (a file list and a folder of the input): the 4 left
    # are the selection, whatever DIVERSITY would have picked.
    result = run(
        _cfg(
            folder,
            out,
            f"embeddings={csv}",
            _diversity(20, f"excluded: [{{samples_file: {names_file}}}, {{folder: class_2}}]"),
        )
    )
    assert not set(drop) & set(result.selected)
    assert not any(n.startswith("class_2/") for n in result.selected)
    assert len(result.selected) == 12 - 2  # classes 0 and 1 without the two dropped
    rows = _selection_rows(out)
    assert rows[drop[0]]["removed_by"] == f"EXCLUDED samples_file {names_file}"
    assert rows["class_2/img_2_0.png"]["removed_by"] == "EXCLUDED folder class_2"
    inputs = result.report["job"]["extra"]["selection_inputs"]
    assert inputs["n_excluded"] == 2 + 6  # the 6 images of class_2 (its corrupt file is none)
    assert inputs["excluded"][0]["not_candidates"] == ["not/there.png"]


def test_preselected_and_excluded_together(folder: Path, tmp_path: Path) -> None:
    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    keep = ["class_2/img_2_1.png"]
    result = run(
        _cfg(
            folder,
            tmp_path / "out",
            f"embeddings={csv}",
            _diversity(
                3,
                f"preselected: [{{samples: [{keep[0]}]}}]",
                "excluded: [{folder: class_0}, {folder: class_1}]",
            ),
        )
    )
    # The 6 class_2 images are left: the preselected one first, two more of class_2.
    assert result.selected[0] == keep[0]
    assert len(result.selected) == 3
    assert all(n.startswith("class_2/") for n in result.selected)
    inputs = result.report["job"]["extra"]["selection_inputs"]
    assert (inputs["n_preselected"], inputs["n_excluded"]) == (1, 12)


def test_preselected_filling_n_samples_leaves_no_new_pick(folder: Path, tmp_path: Path) -> None:
    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    keep = ["class_0/img_0_0.png", "class_1/img_1_1.png", "class_2/img_2_2.png"]
    result = run(
        _cfg(
            folder,
            tmp_path / "out",
            f"embeddings={csv}",
            _diversity(2, f"preselected: [{{samples: [{', '.join(keep)}]}}]"),
        )
    )
    assert result.selected == keep


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (
            "preselected: [{samples: [class_0/img_0_1.png]}], excluded: [{folder: class_0}]",
            r"excluded\[0\]: 'class_0/img_0_1.png'.* also preselected "
            r"\(selection_config.preselected\[0\]\).*both always selected and never",
        ),
        (
            "preselected: [{tag: dogs}]",
            r"preselected\[0\]\.tag: no sample is tagged 'dogs'.*tags there: cats",
        ),
        ("excluded: [{folder: /}]", r"excluded\[0\]\.folder: '/' lies outside input_dir"),
        ("excluded: [{samples_file: nope.txt}]", r"excluded\[0\]\.samples_file: file"),
        ("excluded: [{tagg: x}]", r"selection_config\.excluded\[0\]\.tagg: unknown query key"),
    ],
)
def test_bad_preselected_or_excluded_fail_before_work(
    folder: Path, tmp_path: Path, extra: str, match: str
) -> None:
    from selfsup.runfolder import RunFolder

    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    tagged = tmp_path / "tagged"
    tagged.mkdir()
    RunFolder(tagged).write_tags({"cats": ["class_0/img_0_0.png"]})
    out = tmp_path / "out"
    extra = extra.replace("{tag: dogs}", f"{{tag: dogs, run: {tagged}}}")
    with pytest.raises(ConfigError, match=match):
        run(_cfg(folder, out, f"embeddings={csv}", _diversity(3, extra)))
    assert not out.exists()
