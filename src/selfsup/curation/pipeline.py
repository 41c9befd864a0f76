"""``selfsup run``: the curation pipeline over a folder, as one recorded run.

Steps, each reading the manifest and the previous step's arrays and writing its own outputs
(see DESIGN.md, "A curation run is a pure pipeline over a manifest")::

    config      config/config.yaml, config/overrides.yaml
    check       data/manifest.jsonl, filenames/corrupt_filenames.txt, duplicate_filenames.txt
    model       <output_dir>/selfsup_epoch_<n>.ckpt (when training)
    embed       data/embeddings.csv, data/normalized_embeddings.csv
    select      data/selected_embeddings.csv, filenames/sampled_filenames_excluding_datapool.txt,
                filenames/removed_filenames.txt
    report      plots/*.png, report.pdf, report.json (written last: its presence means done)

Every file is written atomically. A rerun of the same command reuses the manifest (unchanged
files are not decoded again), the trained checkpoint and the embeddings when their inputs are
unchanged (recorded in ``.selfsup/state.json``), and redoes everything else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from selfsup import __version__
from selfsup.config import RunConfig, to_yaml
from selfsup.errors import ConfigError, DataError
from selfsup.utils.atomic import atomic_write_text

logger = logging.getLogger(__name__)

STATE_FILE = Path(".selfsup") / "state.json"


@dataclass(frozen=True)
class RunResult:
    """What a finished run produced."""

    output_dir: Path
    selected: list[str]
    report: dict[str, Any]


def default_run_dir() -> Path:
    """``./selfsup_runs/<date>_<time>`` when no output_dir is given."""
    return Path.cwd() / "selfsup_runs" / time.strftime("%Y-%m-%d_%H-%M-%S")


def check_preconditions(cfg: RunConfig) -> None:
    """Fail on configurations that cannot run, before anything is written."""
    if not cfg.input_dir:
        raise ConfigError("input_dir is required: the folder of images or videos to curate")
    if not Path(cfg.input_dir).is_dir():
        raise ConfigError(f"input_dir {cfg.input_dir!r} is not an existing folder")
    if cfg.pretagging or cfg.pretagging_debug:
        raise ConfigError(
            "pretagging=true needs an object detector, and selfsup ships none (no weights are "
            "downloaded); set pretagging=false, or supply detections as an object-detection "
            "task in predictions_dir and use object_level.task_name"
        )
    if cfg.object_level.task_name:
        raise ConfigError(
            f"object_level.task_name={cfg.object_level.task_name!r}: object-level selection "
            "is not implemented yet in selfsup run; leave object_level.task_name empty"
        )
    if cfg.active_learning.task_name:
        raise ConfigError(
            f"active_learning.task_name={cfg.active_learning.task_name!r}: reading prediction "
            "files is not implemented yet in selfsup run; leave active_learning.task_name "
            "empty or pass scores through the Python API (selfsup.selection.select)"
        )
    if cfg.selected_sequence_length != 1:
        raise ConfigError(
            "selected_sequence_length > 1 is not implemented yet in selfsup run; use 1"
        )
    if cfg.datapool.name:
        raise ConfigError(
            f"datapool.name={cfg.datapool.name!r}: datapools are not implemented yet in "
            "selfsup run; leave datapool.name empty"
        )
    for key in ("checkpoint", "embeddings", "relevant_filenames_file"):
        value = getattr(cfg, key)
        if value and not Path(value).is_file():
            raise ConfigError(f"{key} {value!r} does not exist")
    if cfg.embeddings and cfg.checkpoint:
        raise ConfigError("give either embeddings= (precomputed) or checkpoint=, not both")


class _State:
    """Fingerprints of finished steps, so a rerun can tell what is still valid."""

    def __init__(self, output_dir: Path) -> None:
        self.path = output_dir / STATE_FILE
        self.data: dict[str, Any] = {}
        if self.path.is_file():
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                loaded = {}  # a broken state file only means we redo the work
            if isinstance(loaded, dict):
                self.data = loaded

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        atomic_write_text(self.path, json.dumps(self.data, indent=2, sort_keys=True))


def _fingerprint(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def _file_fingerprint(path: Path) -> list[Any]:
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def _num_workers(n: int) -> int:
    return (os.cpu_count() or 1) if n == -1 else n


def _write_list(path: Path, names: Sequence[str]) -> None:
    atomic_write_text(path, "".join(f"{n}\n" for n in names))


def _l2_normalized(x: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: NDArray[np.float32] = (x / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


def _precomputed_embeddings(
    path: str, samples: Sequence[str]
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Rows of a user's embeddings CSV in ``samples`` order; every sample must have a row."""
    from selfsup.utils.io import load_embeddings

    emb, labels, names = load_embeddings(path)
    row_of = {name: i for i, name in enumerate(names)}
    missing = [s for s in samples if s not in row_of]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5])
        raise DataError(
            f"embeddings file {path!r} has no row for {len(missing)} of the {len(samples)} "
            f"samples (e.g. {shown}); it must hold one row per sample filename"
        )
    extra = len(names) - len(samples)
    if extra > 0:
        warnings.warn(
            f"embeddings file {path!r} has {extra} rows for files not in this run; ignored",
            stacklevel=3,
        )
    rows = np.fromiter((row_of[s] for s in samples), dtype=np.int64, count=len(samples))
    return emb[rows], np.asarray(labels, dtype=np.int64)[rows]


def _model_step(cfg: RunConfig, out: Path, samples: list[str], state: _State) -> str:
    """The checkpoint to embed with: the given one, or one trained on the samples."""
    from selfsup.core import train

    if cfg.checkpoint and not cfg.enable_training:
        return cfg.checkpoint
    if not cfg.checkpoint and not cfg.enable_training:
        # No pretrained weights ship with selfsup (nothing is downloaded), so the only model
        # that knows this data is one trained on it.
        logger.warning(
            "no checkpoint given: training a self-supervised model on the input "
            "(pass checkpoint=... to embed with an existing model)"
        )
    lightly = cfg.lightly.model_copy(deep=True)
    lightly.input_dir = cfg.input_dir
    lightly.checkpoint = cfg.checkpoint  # fine-tune from it when given
    key = _fingerprint(
        "train",
        lightly.model_dump(mode="json", exclude={"output_dir", "embeddings"}),
        _file_fingerprint(Path(cfg.checkpoint)) if cfg.checkpoint else None,
        samples,
    )
    previous = state.get("train")
    if isinstance(previous, dict) and previous.get("key") == key:
        kept = Path(str(previous.get("checkpoint")))
        if kept.is_file():
            logger.info("reusing checkpoint %s from the previous run", kept)
            return str(kept)
    train_dir = out / ".selfsup" / "training"
    lightly.output_dir = str(train_dir)
    best = Path(train(lightly, filenames=samples))
    final = out / best.name
    shutil.copyfile(best, out / f".{best.name}.tmp")
    os.replace(out / f".{best.name}.tmp", final)
    state.set("train", {"key": key, "checkpoint": str(final)})
    return str(final)


def _embed_step(
    cfg: RunConfig, out: Path, samples: list[str], state: _State
) -> tuple[NDArray[np.float32], NDArray[np.int64], str]:
    """Embeddings (N, D) and labels (N,) of ``samples``; also the model's description."""
    from selfsup.core import embed
    from selfsup.utils.io import load_embeddings, save_embeddings

    csv = out / "data" / "embeddings.csv"
    if cfg.embeddings:
        emb, labels = _precomputed_embeddings(cfg.embeddings, samples)
        save_embeddings(csv, emb, labels, samples)
        return emb, labels, f"precomputed embeddings from {cfg.embeddings}"
    checkpoint = _model_step(cfg, out, samples, state)
    lightly = cfg.lightly.model_copy(deep=True)
    lightly.input_dir = cfg.input_dir
    key = _fingerprint(
        "embed",
        _file_fingerprint(Path(checkpoint)),
        lightly.loader.batch_size,
        lightly.collate.input_size,
        samples,
    )
    previous = state.get("embed")
    if isinstance(previous, dict) and previous.get("key") == key and csv.is_file():
        emb, labels_list, names = load_embeddings(csv)
        if names == samples:
            logger.info("reusing embeddings %s from the previous run", csv)
            return emb, np.asarray(labels_list, dtype=np.int64), f"checkpoint {checkpoint}"
    emb64, labels, names = embed(lightly, checkpoint=checkpoint, filenames=samples)
    if list(names) != samples:
        raise RuntimeError("embedding returned samples in another order than requested")
    emb = emb64.astype(np.float32)
    save_embeddings(csv, emb, labels, samples)
    state.set("embed", {"key": key})
    return emb, labels, f"checkpoint {checkpoint}"


def _metadata_columns(records: Sequence[Any]) -> dict[str, NDArray[np.float64]]:
    """Computed metadata per sample, under plain and ``lightly.``-prefixed keys."""
    from selfsup.curation.metadata import metadata_table

    table = metadata_table([r.metadata() for r in records])
    columns: dict[str, NDArray[np.float64]] = {}
    for key, values in table.items():
        columns[key] = values
        columns[f"lightly.{key}"] = values
    return columns


def run(cfg: RunConfig, overrides: Sequence[str] = (), progress: bool = True) -> RunResult:
    """Run the whole curation pipeline as ``cfg`` says and return what it selected.

    Raises:
        ConfigError: a setting cannot be honoured (checked before anything is written).
        DataError: the input cannot be used (e.g. every file is corrupt).
    """
    from selfsup.curation.checks import build_manifest
    from selfsup.curation.manifest import (
        count_by_reason,
        default_manifest_path,
        read_manifest,
        write_corrupt_filenames,
        write_duplicate_filenames,
        write_manifest,
    )
    from selfsup.curation.report import (
        CostAssumptions,
        JobInfo,
        ReportInputs,
        ReportOptions,
        SampleCounts,
        folder_image_loader,
        write_report,
    )
    from selfsup.selection import SelectionInputs, select
    from selfsup.utils.io import save_embeddings

    check_preconditions(cfg)
    selection_config = cfg.selection()
    started = time.time()
    started_iso = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    out = Path(cfg.output_dir) if cfg.output_dir else default_run_dir()
    out.mkdir(parents=True, exist_ok=True)
    cfg = cfg.model_copy(update={"output_dir": str(out)})
    # report.json is written last; removing it first means an interrupted rerun never
    # leaves the previous run's report beside this run's partial outputs.
    (out / "report.json").unlink(missing_ok=True)
    atomic_write_text(out / "config" / "config.yaml", to_yaml(cfg))
    atomic_write_text(out / "config" / "overrides.yaml", "".join(f"- {o}\n" for o in overrides))
    state = _State(out)
    durations: dict[str, float] = {}

    # --- check: scan, decode, hash, metadata, duplicates
    t = time.time()
    manifest_path = default_manifest_path(out)
    previous = None
    if manifest_path.is_file():
        try:
            previous = read_manifest(manifest_path)
        except DataError as exc:
            warnings.warn(f"ignoring unreadable manifest of the previous run: {exc}", stacklevel=2)
    checked = build_manifest(
        cfg.input_dir,
        relevant_filenames_file=cfg.relevant_filenames_file or None,
        previous=previous,
        remove_exact_duplicates=cfg.remove_exact_duplicates,
        num_workers=_num_workers(cfg.num_workers),
        progress=progress,
    )
    records = list(checked.records)
    write_manifest(manifest_path, records)
    write_corrupt_filenames(out / "filenames" / "corrupt_filenames.txt", records)
    write_duplicate_filenames(out / "filenames" / "duplicate_filenames.txt", records)
    usable = [r for r in records if r.is_ok]
    samples = [r.filename for r in usable]
    n_corrupt = sum(1 for r in records if r.status == "corrupt")
    n_duplicates = sum(1 for r in records if r.status == "duplicate")
    durations["check"] = time.time() - t

    # --- embed (training first when needed)
    t = time.time()
    embeddings, labels, model_description = _embed_step(cfg, out, samples, state)
    normalized = _l2_normalized(embeddings)
    save_embeddings(out / "data" / "normalized_embeddings.csv", normalized, labels, samples)
    durations["embed"] = time.time() - t

    # --- select
    t = time.time()
    metadata = _metadata_columns(usable)
    inputs = SelectionInputs(embeddings=normalized, metadata=metadata)
    result = select(inputs, selection_config)
    chosen = result.indices
    chosen_set = set(int(i) for i in chosen)
    selected = [samples[int(i)] for i in chosen]
    removed = [s for i, s in enumerate(samples) if i not in chosen_set]
    order = np.asarray(chosen, dtype=np.int64)
    save_embeddings(
        out / "data" / "selected_embeddings.csv",
        embeddings[order],
        labels[order],
        selected,
    )
    _write_list(out / "filenames" / "sampled_filenames_excluding_datapool.txt", selected)
    _write_list(out / "filenames" / "removed_filenames.txt", removed)
    durations["select"] = time.time() - t

    # --- report (report.json last)
    t = time.time()
    finished = time.time()
    job = JobInfo(
        run_name=out.name,
        started_at=started_iso,
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        duration_s=finished - started,
        input_dir=str(Path(cfg.input_dir).resolve()),
        selfsup_version=__version__,
        config=cfg.model_dump(mode="json"),
        step_durations_s=dict(durations),
        extra={"model": model_description},
    )
    counts = SampleCounts(
        n_files_found=checked.n_files,
        n_samples_found=len(records),
        n_corrupt=n_corrupt,
        n_duplicates=n_duplicates,
        n_input_to_selection=len(samples),
        n_selected=len(selected),
        corrupt_reasons=count_by_reason(records),
        n_removed_by_filters=int(np.count_nonzero(result.removed_by >= 0)),
    )
    epochs = cfg.lightly.trainer.max_epochs if "checkpoint" in model_description else 0
    inputs_report = ReportInputs(
        job=job,
        counts=counts,
        embeddings=embeddings,
        filenames=samples,
        selected_indices=order,
        selection_distances=result.distances,
        stop_reason=str(result.stop_reason),
        n_requested=result.n_requested,
        metadata={k: v for k, v in metadata.items() if not k.startswith("lightly.")},
        costs=CostAssumptions(training_epochs=epochs),
        load_image=folder_image_loader(cfg.input_dir),
    )
    neighbors = (5, 15, 50) if cfg.umap else ()
    report = write_report(inputs_report, out, ReportOptions(umap_neighbors=neighbors))
    durations["report"] = time.time() - t
    logger.info(
        "run finished in %.1f s: %d of %d selected",
        time.time() - started,
        len(selected),
        len(samples),
    )
    return RunResult(output_dir=out, selected=selected, report=report)
