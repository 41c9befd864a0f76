"""selfsup run end to end on small generated folders with planted corrupt files and duplicates."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from selfsup import runfolder
from selfsup.cli.main import main
from selfsup.config import RunConfig, resolve
from selfsup.curation import pipeline
from selfsup.curation.pipeline import STEPS, RunContext, Step, run
from selfsup.errors import ConfigError, DataError
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


@pytest.fixture
def folder(make_image_folder: Callable[..., Path], corrupt_files: Callable[..., list[str]]) -> Path:
    root = make_image_folder(n_classes=3, n_per_class=8, size=(32, 32))
    shutil.copy(root / "class_0" / "img_0_0.png", root / "class_0" / "zz_copy_of_0.png")
    corrupt_files(root / "class_1")
    return root


def _embeddings_csv(folder: Path, path: Path, dim: int = 8) -> Path:
    """Embeddings for every usable image: one cluster per class, so selection is checkable."""
    names = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("img_*.png")  # corrupt and duplicate files are excluded by name
    )
    rng = np.random.default_rng(0)
    centers = np.eye(dim, dtype=np.float32)[:3] * 10
    emb = np.stack([centers[int(n.split("/")[0][-1])] + rng.normal(size=dim) for n in names])
    save_embeddings(path, emb.astype(np.float32), [0] * len(names), names)
    return path


def _cfg(folder: Path, out: Path, *overrides: str) -> RunConfig:
    return resolve(
        RunConfig,
        overrides=[f"input_dir={folder}", f"output_dir={out}", *FAST, *overrides],
    )


def test_run_with_precomputed_embeddings(folder: Path, tmp_path: Path) -> None:
    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    out = tmp_path / "out"
    result = run(_cfg(folder, out, f"embeddings={csv}", "stopping_condition.n_samples=6"))

    corrupt = (out / "filenames" / "corrupt_filenames.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in corrupt) == [
        "class_1/empty.png",
        "class_1/notimage.png",
        "class_1/truncated.jpg",
    ]
    dups = (out / "filenames" / "duplicate_filenames.txt").read_text().splitlines()
    assert [line.split("\t") for line in dups] == [
        ["class_0/zz_copy_of_0.png", "class_0/img_0_0.png"]
    ]

    assert len(result.selected) == 6
    sampled = (out / "filenames" / "sampled_filenames_excluding_datapool.txt").read_text()
    assert sampled.splitlines() == result.selected
    removed = (out / "filenames" / "removed_filenames.txt").read_text().splitlines()
    assert sorted(removed + result.selected) == sorted(load_embeddings(csv)[2])
    # Diversity over three well separated clusters covers all of them in the first three picks.
    assert {name.split("/")[0] for name in result.selected[:3]} == {
        "class_0",
        "class_1",
        "class_2",
    }

    _, _, names = load_embeddings(out / "data" / "selected_embeddings.csv")
    assert names == result.selected
    norm, _, _ = load_embeddings(out / "data" / "normalized_embeddings.csv")
    np.testing.assert_allclose(np.linalg.norm(norm, axis=1), 1.0, rtol=1e-5)

    report = json.loads((out / "report.json").read_text())
    assert report == result.report
    counts = report["counts"]
    assert counts["n_corrupt"] == 3
    assert counts["n_duplicates"] == 1
    assert counts["n_input_to_selection"] == 24
    assert counts["n_selected"] == 6
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")
    for plot in ("distance_distr_before", "distance_distr_after", "scatter_pca"):
        assert (out / "plots" / f"{plot}.png").is_file()
    assert "input_dir" in (out / "config" / "config.yaml").read_text()


def test_precomputed_embeddings_train_nothing_whatever_their_path(
    folder: Path, tmp_path: Path
) -> None:
    # The report's training cost comes from the checkpoint the embed step hands on, not from
    # words in the model description: a precomputed file named like a checkpoint trains
    # nothing, and no checkpoint is handed to the query sets.
    csv = _embeddings_csv(folder, tmp_path / "checkpoint_embeddings.csv")
    result = run(
        _cfg(folder, tmp_path / "out", f"embeddings={csv}", "stopping_condition.n_samples=2")
    )
    assert result.report["job"]["extra"]["model"] == f"precomputed embeddings from {csv}"
    assert result.report["savings"]["assumptions"]["training_epochs"] == 0


def test_fraction_and_min_distance(folder: Path, tmp_path: Path) -> None:
    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    result = run(
        _cfg(folder, tmp_path / "a", f"embeddings={csv}", "stopping_condition.n_samples=0.25")
    )
    assert len(result.selected) == 6  # 25% of the 24 usable samples
    # The clusters are ~14 apart before normalisation; after it, far points are ~1.4 apart
    # and points within a cluster much closer: min_distance=1.0 keeps one per cluster.
    result = run(
        _cfg(folder, tmp_path / "b", f"embeddings={csv}", "stopping_condition.min_distance=1.0")
    )
    assert len(result.selected) == 3


def test_selection_config_strategies(folder: Path, tmp_path: Path) -> None:
    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    sel = (
        "selection_config={n_samples: 4, strategies: ["
        "{input: {type: EMBEDDINGS}, strategy: {type: DIVERSITY}},"
        "{input: {type: METADATA, key: lightly.brightness}, "
        "strategy: {type: THRESHOLD, threshold: 0, operation: BIGGER}}]}"
    )
    result = run(_cfg(folder, tmp_path / "o", f"embeddings={csv}", sel))
    assert len(result.selected) == 4


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("pretagging=true", "needs an object detector"),
        ("stopping_condition.n_sample=3", "did you mean 'stopping_condition.n_samples'"),
        ("method=corset", "for 'method'"),
        ("lightly.trainer.max_epoch=1", "did you mean 'lightly.trainer.max_epochs'"),
        ("checkpoint=/does/not/exist.ckpt", "does not exist"),
        (
            "selection_config={n_samples: 3, strategies: [{input: {type: EMBEDDINGS}, "
            "strategy: {type: DIVERSTY}}]}",
            "did you mean 'DIVERSITY'",
        ),
    ],
)
def test_bad_config_fails_before_writing(
    folder: Path, tmp_path: Path, override: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["run", f"input_dir={folder}", f"output_dir={out}", "umap=false", override]
    if "stopping_condition" not in override and "selection_config" not in override:
        args.append("stopping_condition.n_samples=3")
    rc = main(args)
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_missing_stopping_condition_is_explained(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"set stopping_condition\.n_samples"):
        _cfg(folder, tmp_path / "out")


def test_all_corrupt_input_stops_with_clear_error(
    tmp_path: Path, corrupt_files: Callable[..., list[str]]
) -> None:
    corrupt_files(tmp_path / "bad")
    with pytest.raises(DataError, match="bad"):
        run(_cfg(tmp_path / "bad", tmp_path / "out", "stopping_condition.n_samples=1"))


def test_precomputed_embeddings_must_cover_samples(folder: Path, tmp_path: Path) -> None:
    csv = tmp_path / "partial.csv"
    save_embeddings(csv, np.ones((1, 4), dtype=np.float32), [0], ["class_0/img_0_1.png"])
    with pytest.raises(DataError, match="has no row for 23 of the 24 samples"):
        run(_cfg(folder, tmp_path / "out", f"embeddings={csv}", "stopping_condition.n_samples=2"))


def test_missing_input_dir() -> None:
    with pytest.raises(ConfigError, match="not an existing folder"):
        run(
            resolve(
                RunConfig, overrides=["input_dir=/no/such/dir", "stopping_condition.n_samples=2"]
            )
        )


@pytest.mark.slow
def test_run_trains_then_rerun_reuses_checkpoint_and_embeddings(
    folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = run(_cfg(folder, out, "stopping_condition.n_samples=5", *TINY_MODEL))
    # Trained without enable_training=true (nothing else gives a model): the config it
    # records says so, and training has its own time, not counted in embed's.
    assert first.report["job"]["config"]["enable_training"] is True
    assert "enable_training: true" in (out / "config" / "config.yaml").read_text()
    steps = first.report["job"]["step_durations_s"]
    assert list(steps) == ["check", "train", "embed", "select", "report"]
    checkpoints = sorted(out.glob("selfsup_epoch_*.ckpt"))
    assert len(checkpoints) == 1
    stamp = checkpoints[0].stat().st_mtime_ns
    emb_stamp = (out / "data" / "embeddings.csv").stat().st_mtime_ns
    emb, _, _ = load_embeddings(out / "data" / "embeddings.csv")
    assert emb.shape == (24, 32)
    assert first.report["job"]["extra"]["model"].startswith("checkpoint")

    second = run(_cfg(folder, out, "stopping_condition.n_samples=5", *TINY_MODEL))
    assert checkpoints[0].stat().st_mtime_ns == stamp, "an unchanged rerun must not retrain"
    assert "train" not in second.report["job"]["step_durations_s"]
    assert (out / "data" / "embeddings.csv").stat().st_mtime_ns == emb_stamp
    assert second.selected == first.selected

    # The checkpoint of the first run embeds a new folder without training.
    third = run(
        _cfg(
            folder,
            tmp_path / "o3",
            f"checkpoint={checkpoints[0]}",
            "stopping_condition.n_samples=5",
            *TINY_MODEL[1:],
        )
    )
    assert not list((tmp_path / "o3").glob("selfsup_epoch_*.ckpt"))
    assert len(third.selected) == 5


@pytest.mark.slow
def test_report_counts_the_epochs_the_recipe_chose(folder: Path, tmp_path: Path) -> None:
    # Without lightly.trainer.max_epochs the recipe chooses the epochs (here: those that fit
    # a 2 s budget); the report's CO2 estimate counts them, not lightly's default 100.
    from selfsup.core import trained_epochs

    out = tmp_path / "out"
    no_epochs = [key for key in TINY_MODEL if not key.startswith("lightly.trainer.max_epochs")]
    result = run(
        _cfg(
            folder,
            out,
            "stopping_condition.n_samples=5",
            "lightly.trainer.max_time=0.03",
            *no_epochs,
        )
    )
    (checkpoint,) = out.glob("selfsup_epoch_*.ckpt")
    chosen = trained_epochs(checkpoint)
    assert chosen is not None
    assert 1 <= chosen <= 200
    assert result.report["savings"]["assumptions"]["training_epochs"] == chosen
    assert result.report["job"]["config"]["lightly"]["trainer"]["max_epochs"] == 100


def _write_predictions(folder: Path, samples: list[str], task: str, kind: str) -> None:
    """A prediction task for ``samples``: confident on class_0 images, unsure elsewhere."""
    root = folder / ".lightly" / "predictions"
    (root / task).mkdir(parents=True, exist_ok=True)
    tasks_file = root / "tasks.json"
    tasks = json.loads(tasks_file.read_text()) if tasks_file.is_file() else []
    tasks_file.write_text(json.dumps([*tasks, task]))
    categories = [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}]
    (root / task / "schema.json").write_text(
        json.dumps({"task_type": kind, "categories": categories})
    )
    for name in samples:
        sure = name.startswith("class_0")
        if kind == "classification":
            preds = [{"category_id": 0, "probabilities": [0.99, 0.01] if sure else [0.5, 0.5]}]
        else:
            preds = [
                {"category_id": 0, "bbox": [2, 2, 10, 12], "score": 0.9},
                {"category_id": 1, "bbox": [16, 8, 12, 10], "score": 0.6},
            ]
        target = root / task / Path(name).with_suffix(".json")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({"file_name": name, "predictions": preds}))


def test_active_learning_prefers_uncertain_samples(folder: Path, tmp_path: Path) -> None:
    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    samples = load_embeddings(csv)[2]
    _write_predictions(folder, samples, "cls", "classification")
    # Pure uncertainty weighting: class_0 predictions are confident, so none is chosen.
    sel = (
        "selection_config={n_samples: 8, strategies: [{input: {type: SCORES, task: cls, "
        "score: uncertainty_entropy}, strategy: {type: WEIGHTS}}]}"
    )
    result = run(_cfg(folder, tmp_path / "o", f"embeddings={csv}", sel))
    assert len(result.selected) == 8
    assert not [n for n in result.selected if n.startswith("class_0")]
    # The legacy keys do the same through DIVERSITY x WEIGHTS.
    legacy = run(
        _cfg(
            folder,
            tmp_path / "o2",
            f"embeddings={csv}",
            "stopping_condition.n_samples=8",
            "active_learning.task_name=cls",
            "active_learning.score_name=uncertainty_margin",
        )
    )
    assert len(legacy.selected) == 8
    # Seed 004: data/al_score_embeddings.csv, embeddings.csv's format plus the scores read.
    al_csv = tmp_path / "o2" / "data" / "al_score_embeddings.csv"
    rows = al_csv.read_text().splitlines()
    header = rows[0].split(",")
    assert header[0] == "filenames"
    scores = header[header.index("labels") + 1 :]
    assert "cls.uncertainty_margin" in scores
    assert all(name.startswith("cls.") for name in scores)
    plain, _, names = load_embeddings(tmp_path / "o2" / "data" / "embeddings.csv")
    assert [r.split(",")[0] for r in rows[1:]] == names
    from selfsup.utils.io import check_embeddings

    check_embeddings(al_csv, remove_additional_columns=True)  # lightly's extra columns
    emb, _, al_names = load_embeddings(al_csv)
    assert al_names == names
    np.testing.assert_array_equal(emb, plain)
    # A run that reads no scores writes none (and removes an earlier run's).
    run(_cfg(folder, tmp_path / "o2", f"embeddings={csv}", "stopping_condition.n_samples=8"))
    assert not al_csv.exists()


@pytest.mark.slow
def test_corruptness_check_off_still_skips_what_cannot_be_decoded(
    folder: Path, tmp_path: Path
) -> None:
    # Seed 004: with enable_corruptness_check=true the data folder holds a clean version of
    # the dataset; false is honoured: no clean list, and the report says what still
    # happens to files that cannot be decoded (skipped with their reason: not embeddable).
    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    on = run(_cfg(folder, tmp_path / "on", f"embeddings={csv}", "stopping_condition.n_samples=4"))
    clean = (tmp_path / "on" / "data" / "clean_filenames.txt").read_text().splitlines()
    assert clean == load_embeddings(tmp_path / "on" / "data" / "embeddings.csv")[2]
    assert on.report["job"]["extra"]["corruptness_check"] == pipeline.CORRUPTNESS_CHECK_ON

    off = run(
        _cfg(
            folder,
            tmp_path / "on",  # a rerun into the same folder: the earlier clean list goes
            f"embeddings={csv}",
            "stopping_condition.n_samples=4",
            "enable_corruptness_check=false",
        )
    )
    assert not (tmp_path / "on" / "data" / "clean_filenames.txt").exists()
    assert off.report["job"]["extra"]["corruptness_check"] == pipeline.CORRUPTNESS_CHECK_OFF
    assert off.report["job"]["config"]["enable_corruptness_check"] is False
    corrupt = (tmp_path / "on" / "filenames" / "corrupt_filenames.txt").read_text()
    assert len(corrupt.splitlines()) == 3
    assert off.report["counts"]["n_corrupt"] == 3
    assert off.selected == on.selected


def test_unknown_prediction_task_fails_before_writing(folder: Path, tmp_path: Path) -> None:
    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    _write_predictions(folder, load_embeddings(csv)[2], "cls", "classification")
    out = tmp_path / "out"
    with pytest.raises(DataError, match="did you mean 'cls'"):
        run(
            _cfg(
                folder,
                out,
                f"embeddings={csv}",
                "stopping_condition.n_samples=3",
                "active_learning.task_name=clss",
            )
        )
    assert not out.exists()


def test_datapool_fills_gaps_on_a_grown_folder(
    folder: Path, tmp_path: Path, make_image_folder: Callable[..., Path]
) -> None:
    pools = tmp_path / "pools"
    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    first = run(
        _cfg(
            folder,
            tmp_path / "run1",
            f"embeddings={csv}",
            "stopping_condition.n_samples=3",
            "datapool.name=cars",
            f"datapool.root={pools}",
        )
    )
    # The folder grows by a fourth class; embeddings put it in a new cluster.
    make_image_folder(n_classes=1, n_per_class=5, seed=7, root=folder / "class_3")
    names, emb = [], []
    old_emb, _, old_names = load_embeddings(csv)
    for path in sorted((folder / "class_3").rglob("*.png")):
        names.append(path.relative_to(folder).as_posix())
        emb.append(
            np.eye(8, dtype=np.float32)[3] * 10 + np.random.default_rng(len(names)).normal(size=8)
        )
    save_embeddings(
        csv,
        np.concatenate([old_emb, np.asarray(emb, dtype=np.float32)]),
        [0] * (len(old_names) + len(names)),
        old_names + names,
    )
    second = run(
        _cfg(
            folder,
            tmp_path / "run2",
            f"embeddings={csv}",
            "stopping_condition.n_samples=1",
            "datapool.name=cars",
            f"datapool.root={pools}",
        )
    )
    assert second.report["job"]["extra"]["n_preselected_from_datapool"] == 3
    assert not set(second.selected) & set(first.selected)
    # The first run covered classes 0-2; the one new pick fills the new cluster.
    assert second.selected[0].startswith("class_3/")


def test_video_sequences_and_frame_extraction(
    tmp_path: Path, make_video: Callable[..., Path]
) -> None:
    from selfsup.data import LightlyDataset

    videos = tmp_path / "videos"
    make_video(name="a.mp4", n_frames=12, root=videos)
    make_video(name="b.mp4", n_frames=8, root=videos)
    names = LightlyDataset(input_dir=str(videos)).get_filenames()
    rng = np.random.default_rng(0)
    csv = tmp_path / "emb.csv"
    save_embeddings(
        csv, rng.normal(size=(len(names), 6)).astype(np.float32), [0] * len(names), names
    )
    out = tmp_path / "out"
    result = run(
        _cfg(
            videos,
            out,
            f"embeddings={csv}",
            "stopping_condition.n_samples=8",
            "selected_sequence_length=4",
            "extract_frames=true",
            "remove_exact_duplicates=false",
        )
    )
    assert len(result.selected) == 8
    frames = sorted(result.selected)
    by_video: dict[str, list[int]] = {}
    for name in frames:
        stem, number, _ = name.rsplit("-", 2)
        by_video.setdefault(stem, []).append(int(number))
    for numbers in by_video.values():
        numbers.sort()
        assert len(numbers) % 4 == 0
        for start in range(0, len(numbers), 4):
            run_ = numbers[start : start + 4]
            assert run_ == list(range(run_[0], run_[0] + 4)), numbers
    extracted = sorted(
        p.relative_to(out / "data" / "frames").as_posix()
        for p in (out / "data" / "frames").rglob("*.png")
    )
    assert extracted == frames


@pytest.mark.slow
def test_object_level_selects_crops(folder: Path, tmp_path: Path) -> None:
    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    samples = load_embeddings(csv)[2]
    _write_predictions(folder, samples, "det", "object-detection")
    out = tmp_path / "out"
    result = run(
        _cfg(
            folder,
            out,
            "stopping_condition.n_samples=5",
            "object_level.task_name=det",
            *TINY_MODEL,
        )
    )
    assert len(result.selected) == 5
    assert all("-det-" in name for name in result.selected)
    crops = sorted((out / "data" / "crops" / "det").rglob("*.png"))
    assert len(crops) == 5
    _, _, names = load_embeddings(out / "data" / "embeddings.csv")
    assert len(names) == 2 * len(samples)  # two boxes per image
    assert result.report["job"]["extra"]["candidates"] == "object crops"


@pytest.mark.slow
def test_object_level_with_pretrained_weights_trains_nothing(folder: Path, tmp_path: Path) -> None:
    # Untrained pretrained weights hand on no checkpoint: the report names the weights, not
    # an empty checkpoint, and counts no training cost.
    import torch

    from selfsup.models.backbones import get_backbone

    samples = load_embeddings(_embeddings_csv(folder, tmp_path / "emb.csv"))[2]
    _write_predictions(folder, samples, "det", "object-detection")
    weights = tmp_path / "backbone.pth"
    torch.save(get_backbone("resnet-9", width=0.125).state_dict(), weights)
    result = run(
        _cfg(
            folder,
            tmp_path / "out",
            "stopping_condition.n_samples=3",
            "object_level.task_name=det",
            "enable_training=false",
            f"lightly.model.weights={weights}",
            *TINY_MODEL,
        )
    )
    assert len(result.selected) == 3
    model = result.report["job"]["extra"]["model"]
    assert model.startswith(f"pretrained weights {weights} (resnet-9), not trained"), model
    assert model.endswith("(object crops of task 'det')")
    assert result.report["savings"]["assumptions"]["training_epochs"] == 0
    assert not list((tmp_path / "out").rglob("*.ckpt"))


def test_relevant_filenames_and_yaml_config(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    relevant = tmp_path / "relevant.txt"
    relevant.write_text(
        "# only two classes, minus one file\nclass_0/*\nclass_2/\n!class_2/img_2_0.png\n"
    )
    config = tmp_path / "run.yaml"
    config.write_text(
        f"input_dir: {folder}\n"
        f"embeddings: {csv}\n"
        f"relevant_filenames_file: {relevant}\n"
        "umap: false\nnum_workers: 0\n"
        "stopping_condition:\n  n_samples: 0.5\n"
    )
    out = tmp_path / "out"
    assert main(["run", "--config", str(config), f"output_dir={out}"]) == 0
    assert "Selected 8 of 15 samples" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    # class_0: 8 images + a duplicate; class_2: 8 images minus the negated one. Every file
    # found counts, the 12 others (class_1's 8 images and 3 corrupt files, the negated one)
    # as not relevant: before, "found" was 16 and "not relevant" 0.
    counts = report["counts"]
    assert counts["n_files_found"] == 28
    assert counts["n_samples_found"] == 28
    assert counts["n_not_relevant"] == 12
    assert counts["n_corrupt"] == 0
    assert counts["n_input_to_selection"] == 15
    used, _, _ = load_embeddings(out / "data" / "embeddings.csv")
    assert used.shape[0] == 15
    removed = (out / "filenames" / "removed_filenames.txt").read_text().split()
    sampled = (out / "filenames" / "sampled_filenames_excluding_datapool.txt").read_text().split()
    assert all(n.startswith(("class_0/", "class_2/")) for n in removed + sampled)
    assert "class_2/img_2_0.png" not in removed + sampled
    assert (out / "config" / "config.yaml").read_text().count("relevant_filenames_file") == 1


def test_steps_are_reported_in_order(folder: Path, tmp_path: Path) -> None:
    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    seen: list[str] = []
    run(
        _cfg(folder, tmp_path / "o", f"embeddings={csv}", "stopping_condition.n_samples=2"),
        on_step=seen.append,
    )
    assert seen == ["CHECKING_CORRUPTNESS", "EMBEDDING", "SAMPLING", "GENERATING_REPORT"]
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    # Every step has its own duration, the report's included, and they make up the run's.
    job = report["job"]
    assert list(job["step_durations_s"]) == ["check", "embed", "select", "report"]
    assert job["step_durations_s"]["report"] > 0
    assert 0 <= job["duration_s"] - sum(job["step_durations_s"].values()) < 1.0

    def stop_at_sampling(state: str) -> None:
        if state == "SAMPLING":
            raise KeyboardInterrupt

    out = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        run(
            _cfg(folder, out, f"embeddings={csv}", "stopping_condition.n_samples=2"),
            on_step=stop_at_sampling,
        )
    assert (out / "data" / "embeddings.csv").is_file()
    assert not (out / "report.json").exists(), "an interrupted run must not look complete"


def test_default_method_falls_back_to_coreset_on_large_inputs(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import selfsup.curation.pipeline as pipeline

    csv = _embeddings_csv(folder, tmp_path / "emb.csv")
    import selfsup.selection.knn_index as knn_index

    # the exact limit of the search; where faiss makes it approximate, the pipeline's limit
    monkeypatch.setattr(knn_index, "EXACT_KNN_MAX_SAMPLES", 10)
    monkeypatch.setattr(pipeline, "MAX_DEFAULT_TYPICALITY_SAMPLES_APPROXIMATE", 10)
    result = run(
        _cfg(folder, tmp_path / "o", f"embeddings={csv}", "stopping_condition.n_samples=3")
    )
    note = result.report["job"]["extra"]["selection_note"]
    assert "ran as coreset" in note
    # the note names N, the limit and the key that keeps typicality
    assert "> limit 10" in note
    assert "selection_config" in note
    assert result.report["job"]["extra"]["selection_methods"] == []
    explicit = run(
        _cfg(
            folder,
            tmp_path / "p",
            f"embeddings={csv}",
            "stopping_condition.n_samples=3",
            "method=coreset",
        )
    )
    assert explicit.selected == result.selected


# --------------------------------------------------------------------------- declared steps

ARGUMENTS = {"cfg", "out", "overrides", "progress", "pool", "on_step"}


def test_each_step_reads_only_what_earlier_steps_provide() -> None:
    assert [s.name for s in STEPS] == ["config", "check", "embed", "select", "report"]
    fields = {f.name for f in dataclasses.fields(RunContext)}
    available = set(ARGUMENTS)
    for step in STEPS:
        assert set(step.inputs) <= available, (step.name, set(step.inputs) - available)
        assert set(step.provides) <= fields, (step.name, set(step.provides) - fields)
        available |= set(step.provides)
    # Every field of the context is an argument or provided by some step.
    assert fields == available
    assert [s.state for s in STEPS if s.state] == [
        "CHECKING_CORRUPTNESS",
        "SAMPLING",
        "GENERATING_REPORT",
    ]


def test_step_outputs_are_run_folder_paths() -> None:
    known = {
        value
        for name, value in vars(runfolder).items()
        if name.isupper() and isinstance(value, str) and not name.startswith(("RUN_", "REPORT_F"))
    }
    for step in STEPS:
        assert step.outputs, step.name
        assert step.reuse, step.name
        for output in step.outputs:
            # A file of the folder, or a folder of it with a pattern inside.
            top = output.split("<", 1)[0].split("*", 1)[0].rstrip("/")
            assert output in known or top in known or output.endswith(".ckpt"), output
    assert STEPS[-1].outputs[-1] == runfolder.REPORT_JSON  # written last


def test_a_step_whose_inputs_are_not_set_does_not_run(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []
    early = Step(
        name="early",
        state=None,
        inputs=("cfg", "records"),
        provides=(),
        outputs=(runfolder.MANIFEST,),
        reuse="never",
        run=lambda ctx: ran.append("early"),
    )
    monkeypatch.setattr(pipeline, "STEPS", (early,))
    with pytest.raises(AssertionError, match=r"step 'early' runs before \['records'\] are set"):
        run(_cfg(folder, tmp_path / "o", "stopping_condition.n_samples=2"))
    assert ran == []


# --------------------------------------------------------------------------- reuse rules


def test_reuse_rules_are_declared_by_the_step_that_uses_them() -> None:
    rules = {step.name: step.rules for step in STEPS}
    assert rules == {
        "config": (),
        "check": (),
        "embed": (pipeline.TRAIN_REUSE, pipeline.EMBEDDINGS_REUSE),
        "select": (),
        "report": (),
    }
    embed = next(step for step in STEPS if step.name == "embed")
    for rule in embed.rules:
        assert set(rule.outputs) <= set(embed.outputs), rule.key
        assert rule.description in embed.reuse


def _rule_cfg(tmp_path: Path, *overrides: str) -> RunConfig:
    base = [f"input_dir={tmp_path}", "stopping_condition.n_samples=2", *TINY_MODEL]
    return resolve(RunConfig, overrides=[*base, *overrides])


def test_train_fingerprint_changes_with_what_training_reads(tmp_path: Path) -> None:
    rule = pipeline.TRAIN_REUSE
    samples = ["a.png", "b.png"]
    base = rule.fingerprint({"cfg": _rule_cfg(tmp_path), "samples": samples})
    same = [
        _rule_cfg(tmp_path, f"output_dir={tmp_path / 'elsewhere'}"),
        _rule_cfg(tmp_path, "stopping_condition.n_samples=3"),
    ]
    for cfg in same:
        assert rule.fingerprint({"cfg": cfg, "samples": samples}) == base
    ckpt = tmp_path / "given.ckpt"
    ckpt.write_bytes(b"weights")
    changed = [
        (_rule_cfg(tmp_path, "lightly.trainer.max_epochs=2"), samples),
        (_rule_cfg(tmp_path, "lightly.loader.batch_size=4"), samples),
        (_rule_cfg(tmp_path, f"checkpoint={ckpt}"), samples),
        (_rule_cfg(tmp_path), samples[:1]),
    ]
    for cfg, names in changed:
        assert rule.fingerprint({"cfg": cfg, "samples": names}) != base
    with_ckpt = rule.fingerprint({"cfg": changed[2][0], "samples": samples})
    ckpt.write_bytes(b"other weights")  # another size: another file fingerprint
    assert rule.fingerprint({"cfg": changed[2][0], "samples": samples}) != with_ckpt
    with pytest.raises(AssertionError, match="reads"):
        rule.fingerprint({"cfg": changed[0][0]})


def test_embeddings_fingerprint_changes_with_what_embedding_reads(tmp_path: Path) -> None:
    rule = pipeline.EMBEDDINGS_REUSE
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"weights")
    samples = ["a.png", "b.png"]

    def key(*overrides: str, names: list[str] = samples) -> str:
        cfg = _rule_cfg(tmp_path, *overrides)
        return rule.fingerprint({"cfg": cfg, "checkpoint": str(ckpt), "samples": names})

    base = key()
    # Training settings do not change what a given checkpoint embeds.
    assert key("lightly.trainer.max_epochs=3") == base
    assert key("lightly.loader.batch_size=4") != base
    assert key("lightly.collate.input_size=64") != base
    assert key(names=samples[::-1]) != base
    ckpt.write_bytes(b"retrained weights")
    assert key() != base


def test_run_state_reuses_only_matching_work_whose_files_exist(tmp_path: Path) -> None:
    folder = runfolder.RunFolder(tmp_path)
    state = pipeline.RunState(folder)
    train, embed = pipeline.TRAIN_REUSE, pipeline.EMBEDDINGS_REUSE
    with pytest.raises(AssertionError, match="not declared"):
        state.reusable(train, "k1")
    state.allowed = (train, embed)
    ckpt = tmp_path / "selfsup_epoch_1.ckpt"
    ckpt.write_bytes(b"weights")
    with pytest.raises(AssertionError, match="records"):
        state.record(train, "k1")  # the checkpoint must be named
    state.record(train, "k1", checkpoint=str(ckpt))
    state.record(embed, "k2")

    # A rerun reads the recorded fingerprints back from .selfsup/state.json.
    again = pipeline.RunState(folder)
    again.allowed = (train, embed)
    assert again.reusable(train, "k1") == {"key": "k1", "checkpoint": str(ckpt)}
    assert again.reusable(train, "other") is None
    assert again.reusable(embed, "k2") is None, "embeddings.csv does not exist"
    save_embeddings(folder.embeddings, np.zeros((1, 2), np.float32), [0], ["a.png"])
    assert again.reusable(embed, "k2") == {"key": "k2"}
    ckpt.unlink()
    assert again.reusable(train, "k1") is None, "the recorded checkpoint is gone"
    folder.state_file.write_text("not json")
    broken = pipeline.RunState(folder)
    broken.allowed = (embed,)
    assert broken.reusable(embed, "k2") is None


def test_the_typicality_limit_follows_the_knn_search_that_would_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import selfsup.curation.pipeline as pipeline
    import selfsup.selection.knn_index as knn_index

    monkeypatch.setenv("SELFSUP_SELECTION_DEVICE", "cpu")
    big = knn_index.EXACT_KNN_MAX_SAMPLES + 1
    monkeypatch.setattr(knn_index, "faiss_available", lambda: False)
    # exact on the CPU: past its exact limit the default runs as coreset
    assert pipeline.max_default_typicality_samples(big) == knn_index.EXACT_KNN_MAX_SAMPLES
    monkeypatch.setattr(knn_index, "faiss_available", lambda: True)
    assert (
        pipeline.max_default_typicality_samples(big)
        == pipeline.MAX_DEFAULT_TYPICALITY_SAMPLES_APPROXIMATE
    )
