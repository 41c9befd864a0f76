"""``selfsup run``: the curation pipeline over a folder, as one recorded run.

A run is the loop of :func:`_run` over the declared :data:`STEPS`. Each :class:`Step` names
the :class:`RunContext` fields it reads (set by earlier steps) and sets, the run-folder files
it writes (paths and formats: :mod:`selfsup.runfolder`) and when a rerun reuses its work;
each reads the manifest and the previous steps' arrays and writes its own outputs (see
DESIGN.md, "A curation run is a pure pipeline over a manifest")::

    config      .selfsup/run-folder, config/config.yaml, config/overrides.yaml
    check       data/manifest.jsonl, filenames/corrupt_filenames.txt, duplicate_filenames.txt,
                near_duplicate_filenames.txt (perceptual hashes; rewritten by embed with the
                embedding pairs, see selfsup.curation.near_duplicates), data/quality.csv,
                filenames/quality_issues.txt (selfsup.curation.quality),
                data/clean_filenames.txt (enable_corruptness_check=true only)
    embed       <output_dir>/selfsup_epoch_<n>.ckpt (when training), data/embeddings.csv,
                data/normalized_embeddings.csv, data/al_score_embeddings.csv (when the
                selection reads active-learning scores)
    select      data/selected_embeddings.csv, data/selection.csv,
                filenames/sampled_filenames_excluding_datapool.txt,
                filenames/removed_filenames.txt (+ data/frames/ with extract_frames=true,
                data/crops/<task>/ for object-level runs)
    report      plots/*.png, data/projections.csv (see selfsup.curation.report), report.pdf,
                report.json (written last: its presence means done)

What a run prints (``progress``: on stderr, as ``selfsup run``; else the ``selfsup`` log,
as the worker's run log): each step as it starts and ends with its own time, ``train``
apart from ``embed``, the report's parts (statistics, plots, UMAP, the PDF) as they start,
and the run's total. The times are report.json's ``job.step_durations_s`` and
``duration_s`` (the report step's time is taken once its plots are drawn, right before
report.pdf and report.json are written, so those two files show it too). Lightning's
messages that say nothing about the run are silenced while training
(:mod:`selfsup.curation._quiet`); corrupt files are a warning.

Every file is written atomically. A rerun of the same command reuses the manifest (unchanged
files are not decoded again), the trained checkpoint and the embeddings when their inputs are
unchanged (recorded in ``.selfsup/state.json``), and redoes everything else.

``data/selection.csv`` (:func:`write_selection_csv`) records, per selection candidate (the rows
of ``normalized_embeddings.csv``), whether and when it was picked and why not, so that a viewer
can explain each decision without rerunning the selection.

Optional inputs: prediction folders (``predictions_dir``, docs/predictions.md) feed
active-learning scores, class balance and object-level selection; a datapool
(``datapool.name``) preselects what earlier runs chose and caches embeddings per model;
``selected_sequence_length`` selects runs of consecutive video frames.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray

from selfsup import __version__, runfolder
from selfsup.config import RunConfig, to_yaml
from selfsup.curation._quiet import quiet_training, say
from selfsup.curation.checks import CheckResult, build_manifest
from selfsup.curation.datapool import Datapool, RunInfo, validate_datapool_name
from selfsup.curation.manifest import (
    CorruptReason,
    SampleRecord,
    count_by_reason,
    count_by_status,
    read_manifest,
)
from selfsup.curation.metadata import metadata_table
from selfsup.curation.near_duplicates import (
    NearDuplicates,
    find_groups,
    write_near_duplicate_filenames,
)
from selfsup.curation.predictions import (
    DetectionPredictions,
    load_predictions,
    load_task_schema,
    referenced_tasks,
    resolve_predictions_dir,
    selection_prediction_inputs,
)
from selfsup.curation.quality import QualityAssessment, assess_quality, quality_report
from selfsup.curation.queries import (
    RunQueries,
    SampleInputs,
    build_queries,
    build_sample_inputs,
    check_queries,
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
from selfsup.errors import ConfigError, DataError
from selfsup.home import timestamped_output_dir
from selfsup.runfolder import RUN_MARKER_TEXT as RUN_MARKER_TEXT
from selfsup.runfolder import SELECTION_COLUMNS, RunFolder
from selfsup.runfolder import write_selection_csv as write_selection_csv
from selfsup.selection.config import SelectionConfig
from selfsup.utils.atomic import atomic_path
from selfsup.utils.cpus import resolve_num_workers
from selfsup.utils.io import load_embeddings, save_embeddings
from selfsup.utils.names import display_name
from selfsup.utils.report_units import format_duration
from selfsup.utils.safe_open import ReadTimeoutError, read_timeout
from selfsup.utils.vectors import l2_normalize

if TYPE_CHECKING:
    from selfsup.selection import SelectionInputs, SelectionResult

logger = logging.getLogger(__name__)

STATE_FILE = Path(runfolder.STATE)

#: Largest number of samples the default method weights by typicality where its kNN search is
#: approximate (faiss IVF, :mod:`selfsup.selection.knn_index`). An estimate: 10,000 of
#: 1,000,000 x 128 took 227 s on 2 CPU threads with faiss (``benchmarks/selection_scale.py``,
#: docs/scale.md), and the search grows about as N^1.5.
MAX_DEFAULT_TYPICALITY_SAMPLES_APPROXIMATE = 20_000_000


def max_default_typicality_samples(n: int) -> int:
    """The sample count past which the default ``typicality_coreset`` runs as ``coreset``, for
    a run of ``n`` samples on the selection device.

    Asks :func:`selfsup.selection.knn_index.plan_knn` how TYPICALITY's kNN search would run,
    so the limit follows the search that will really run (and ``SELFSUP_SELECTION_DEVICE``):
    approximate (faiss) up to :data:`MAX_DEFAULT_TYPICALITY_SAMPLES_APPROXIMATE`, exact on a
    GPU up to its exact limit, exact on the CPU up to ``EXACT_KNN_MAX_SAMPLES``.
    """
    from selfsup.selection.greedy import resolve_device
    from selfsup.selection.knn_index import EXACT_KNN_MAX_SAMPLES, GPU_EXACT_MAX_SAMPLES, plan_knn
    from selfsup.selection.strategies import DEFAULT_TYPICALITY_K

    plan = plan_knn(n, DEFAULT_TYPICALITY_K, "auto", resolve_device("auto"))
    if plan.method == "faiss_ivf":
        return MAX_DEFAULT_TYPICALITY_SAMPLES_APPROXIMATE
    return GPU_EXACT_MAX_SAMPLES if plan.device == "cuda" else EXACT_KNN_MAX_SAMPLES


@dataclass(frozen=True)
class RunResult:
    """What a finished run produced."""

    output_dir: Path
    selected: list[str]
    report: dict[str, Any]


def default_run_dir() -> Path:
    """``./selfsup_runs/<date>_<time>`` when no output_dir is given."""
    return timestamped_output_dir("selfsup_runs")


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
    for key in ("checkpoint", "embeddings", "relevant_filenames_file"):
        value = getattr(cfg, key)
        if value and not Path(value).is_file():
            raise ConfigError(f"{key} {value!r} does not exist")
    if cfg.embeddings and cfg.checkpoint:
        raise ConfigError("give either embeddings= (precomputed) or checkpoint=, not both")
    _check_prediction_tasks(cfg)
    check_queries(cfg)
    if cfg.object_level.task_name:
        if cfg.embeddings:
            raise ConfigError(
                "object_level.task_name embeds crops with a model: give checkpoint= or let the "
                "run train one, not embeddings="
            )
        if cfg.datapool.name or cfg.selected_sequence_length != 1:
            raise ConfigError(
                "object-level runs select crops: they cannot use datapool.name or "
                "selected_sequence_length (leave those unset)"
            )
    if cfg.datapool.name:
        validate_datapool_name(cfg.datapool.name)
    if cfg.extract_frames and cfg.frames_dir:
        frames = Path(cfg.frames_dir).resolve()
        if frames.is_relative_to(Path(cfg.input_dir).resolve()):
            raise ConfigError(
                f"frames_dir {cfg.frames_dir!r} is inside input_dir: the extracted frames would "
                "become samples of the next run; choose a folder outside it"
            )


def _check_prediction_tasks(cfg: RunConfig) -> None:
    """Every prediction task the config names exists, with the right task type."""
    tasks = set(referenced_tasks(cfg.selection()))
    if cfg.object_level.task_name:
        tasks.add(cfg.object_level.task_name)
    if not tasks:
        return
    folder = resolve_predictions_dir(cfg.input_dir, cfg.predictions_dir)
    for task in sorted(tasks):
        schema = load_task_schema(folder, task)
        if task == cfg.object_level.task_name and schema.task_type != "object-detection":
            raise ConfigError(
                f"object_level.task_name={task!r} is a {schema.task_type} task; object-level "
                "selection needs an object-detection task"
            )


def _fingerprint(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


@dataclass(frozen=True)
class ReuseRule:
    """When a rerun reuses one piece of a step's work, as data that :class:`RunState` executes.

    A rule is a fingerprint of the values the work depends on and the files it left: a rerun
    reuses the work when ``.selfsup/state.json`` holds the same fingerprint under :attr:`key`
    and every file the rule names still exists; otherwise the work is redone and the new
    fingerprint recorded. A step declares its rules in :attr:`Step.rules`.

    Attributes:
        key: The entry of ``.selfsup/state.json`` holding the fingerprint.
        inputs: The names of the values the fingerprint reads (the keys :meth:`fingerprint`
            is given): context fields of the step, or values it computes on the way (the
            checkpoint the embeddings come from).
        parts: The JSON-able parts hashed, from those values.
        outputs: Run-folder files (relative, :mod:`selfsup.runfolder`) that must exist.
        recorded: Entries of the recorded state that name a file which must exist (the
            trained checkpoint, whose name the trainer chooses).
        description: The rule in words.
    """

    key: str
    inputs: tuple[str, ...]
    parts: Callable[[Mapping[str, Any]], list[Any]]
    outputs: tuple[str, ...]
    recorded: tuple[str, ...]
    description: str

    def fingerprint(self, values: Mapping[str, Any]) -> str:
        """The fingerprint of ``values`` (exactly the names in :attr:`inputs`)."""
        if set(values) != set(self.inputs):
            raise AssertionError(
                f"reuse rule {self.key!r} reads {sorted(self.inputs)}, given {sorted(values)}"
            )
        return _fingerprint(self.key, *self.parts(values))


class RunState:
    """The fingerprints of finished work (``.selfsup/state.json``, through :class:`RunFolder`),
    checked and recorded by :class:`ReuseRule`; a missing or broken state file only means
    the work is redone.

    :func:`_run` sets :attr:`allowed` to the running step's declared rules, so a step can only
    reuse or record what it declares.
    """

    def __init__(self, folder: RunFolder) -> None:
        self.folder = folder
        self.data: dict[str, Any] = folder.read_state()
        self.allowed: tuple[ReuseRule, ...] = ()

    def _declared(self, rule: ReuseRule) -> None:
        if rule not in self.allowed:
            raise AssertionError(f"reuse rule {rule.key!r} is not declared by the running step")

    def reusable(self, rule: ReuseRule, key: str) -> dict[str, Any] | None:
        """The previous run's record when its fingerprint is ``key`` and the rule's files
        exist, else ``None`` (the work is redone)."""
        self._declared(rule)
        previous = self.data.get(rule.key)
        if not isinstance(previous, dict) or previous.get("key") != key:
            return None
        if not all((self.folder / output).is_file() for output in rule.outputs):
            return None
        if not all(Path(str(previous.get(entry))).is_file() for entry in rule.recorded):
            return None
        return previous

    def record(self, rule: ReuseRule, key: str, **entries: str) -> None:
        """Record that the work of ``rule`` with fingerprint ``key`` is done; ``entries`` are
        the files named in :attr:`ReuseRule.recorded`."""
        self._declared(rule)
        if set(entries) != set(rule.recorded):
            raise AssertionError(f"reuse rule {rule.key!r} records {rule.recorded}, got {entries}")
        self.data[rule.key] = {"key": key, **entries}
        self.folder.write_state(self.data)


def _file_fingerprint(path: Path) -> list[Any]:
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def _training_config(cfg: RunConfig) -> Any:
    """The trainer's config of a run: ``cfg.lightly`` over the run's input, fine-tuning from
    ``cfg.checkpoint`` when one is given."""
    lightly = cfg.lightly.model_copy(deep=True)
    lightly.input_dir = cfg.input_dir
    lightly.checkpoint = cfg.checkpoint
    return lightly


def _train_parts(values: Mapping[str, Any]) -> list[Any]:
    cfg: RunConfig = values["cfg"]
    return [
        # output_dir is where this run trains, not what it trains on; the embedding engine
        # does not change the model.
        _training_config(cfg).model_dump(
            mode="json", exclude={"output_dir", "embeddings", "embedding"}
        ),
        _file_fingerprint(Path(cfg.checkpoint)) if cfg.checkpoint else None,
        values["samples"],
    ]


def _embed_parts(values: Mapping[str, Any]) -> list[Any]:
    cfg: RunConfig = values["cfg"]
    return [
        _file_fingerprint(Path(values["checkpoint"])),
        cfg.lightly.loader.batch_size,
        cfg.lightly.collate.input_size,
        values["samples"],
    ]


#: The trained checkpoint is reused when the training config, the checkpoint fine-tuned
#: from and the samples are unchanged, and the checkpoint file is still there.
TRAIN_REUSE: Final = ReuseRule(
    key="train",
    inputs=("cfg", "samples"),
    parts=_train_parts,
    outputs=(),
    recorded=("checkpoint",),
    description="the trained checkpoint when the training config (cfg.lightly but output_dir "
    "and embeddings), the given checkpoint file (path, size, mtime) and the samples are "
    "unchanged and the checkpoint is still there (.selfsup/state.json, key 'train')",
)

#: data/embeddings.csv is reused when the model file, the batch size, the input size and the
#: samples are unchanged (and the file still lists exactly those samples).
EMBEDDINGS_REUSE: Final = ReuseRule(
    key="embed",
    inputs=("cfg", "checkpoint", "samples"),
    parts=_embed_parts,
    outputs=(runfolder.EMBEDDINGS,),
    recorded=(),
    description="data/embeddings.csv when the checkpoint file (path, size, mtime), the batch "
    "size, the input size and the samples are unchanged (.selfsup/state.json, key 'embed')",
)


#: How often the embedding (and training) step is retried after input files vanished.
MAX_LOST_FILE_RETRIES: Final = 3


def _lost_files(root: str, records: Sequence[Any]) -> dict[str, tuple[str, str]]:
    """Sources of ``records`` that vanished or changed since the check: source -> (reason, detail).

    Only ``stat`` calls: a file counts as changed when its size or modification time differs
    from the manifest's, as the check's reuse test does.
    """
    lost: dict[str, tuple[str, str]] = {}
    seen: set[str] = set()
    for record in records:
        if record.source in seen:
            continue  # every frame of a video shares its file: one stat
        seen.add(record.source)
        try:
            st = os.stat(os.path.join(root, record.source))
        except OSError as exc:
            lost[record.source] = (
                "vanished",
                f"the file disappeared after the check ({exc.strerror or exc})",
            )
            continue
        if st.st_size != record.file_size or st.st_mtime_ns != record.mtime_ns:
            lost[record.source] = (
                "changed",
                f"the file changed after the check (size {record.file_size} -> {st.st_size}, "
                f"mtime_ns {record.mtime_ns} -> {st.st_mtime_ns})",
            )
    return lost


class _LostFiles:
    """The run's records, with files that vanish or change after the check marked corrupt.

    :meth:`check` stats the files of the usable records; each one that vanished or changed
    becomes a corrupt record (reason ``vanished`` / ``changed``), is logged with its name,
    and ``data/manifest.jsonl`` and ``filenames/corrupt_filenames.txt`` are rewritten, so the
    run's outputs say what happened while the run goes on without the file.
    """

    def __init__(
        self, root: str, out: Path, records: Sequence[Any], classes: Sequence[str] | None = None
    ) -> None:
        self.root = root
        self.out = out
        self.records = list(records)
        # The input folder's classes from the check's listing (CheckResult.classes): later
        # steps read samples through the records (dataset()), never listing the folder again.
        self.classes = None if classes is None else list(classes)
        self.lost: dict[str, tuple[str, str]] = {}

    def dataset(self, records: Sequence[Any] | None = None) -> Any:
        """A :class:`selfsup.data.ManifestDataset` of ``records`` (default: the usable ones)."""
        from selfsup.data import ManifestDataset

        chosen = self.usable() if records is None else records
        return ManifestDataset(self.root, chosen, classes=self.classes)

    def usable(self) -> list[Any]:
        """The records later steps use (status ``ok``), in manifest order."""
        return [r for r in self.records if r.is_ok]

    def check(self, timed_out: str | None = None) -> set[str]:
        """Mark files lost since the last check; return their sources (empty: none).

        ``timed_out`` is the path a read just gave up on (the input folder joined with the
        file's source, absolute or relative to the working directory) whose read just
        overran the per-file time limit: it is marked lost with reason ``timeout``.
        """
        new = _lost_files(self.root, self.usable())
        if timed_out is not None:
            # The path the dataset read (root/source): relative if input_dir was given so.
            source = os.path.relpath(os.path.abspath(timed_out), os.path.abspath(self.root))
            if any(r.source == source for r in self.usable()):
                new.setdefault(
                    source,
                    (
                        "timeout",
                        "reading the file overran the per-file time limit (check_timeout_s)",
                    ),
                )
        for source, (reason, detail) in new.items():
            logger.warning("%s: %s; the run goes on without it", display_name(source), detail)
            self.lost[source] = (reason, detail)
        if new:
            self.records = [
                replace(
                    r,
                    status="corrupt",
                    reason=CorruptReason(new[r.source][0]),
                    detail=new[r.source][1],
                )
                if r.is_ok and r.source in new
                else r
                for r in self.records
            ]
            folder = RunFolder(self.out)
            folder.write_manifest(self.records)
            folder.write_corrupt_filenames(self.records)
        return set(new)

    def summary(self) -> dict[str, list[str]]:
        """Lost files by reason (``vanished``, ``changed``, ``timeout``), for report.json."""
        out: dict[str, list[str]] = {"vanished": [], "changed": [], "timeout": []}
        for source, (reason, _) in sorted(self.lost.items()):
            out[reason].append(source)
        return out


def _embed_tolerating_lost_files(
    cfg: RunConfig, out: Path, lost: _LostFiles, state: RunState, pool: Any, step: StepCallback
) -> tuple[NDArray[np.float32], NDArray[np.int64], str, str | None, list[Any]]:
    """:func:`_embed_step` over the usable samples, going on when input files disappear.

    Training and embedding read every file again, each read bounded by ``check_timeout_s``
    (:func:`run` sets the process's read timeout).
    When one of them fails with a :class:`DataError` and files have vanished or changed since
    the check, or a read overran the time limit, those files are marked
    (:class:`_LostFiles`) and the step is redone without them, up to
    :data:`MAX_LOST_FILE_RETRIES` times; any other failure is raised. Files lost while their
    embedding succeeded are dropped from the result afterwards.

    Returns:
        Embeddings (N, D), labels (N,), the model description, the checkpoint embedded with
        (``None`` for precomputed embeddings and untrained pretrained weights) and the N
        usable records.
    """
    for attempt in range(MAX_LOST_FILE_RETRIES + 1):
        usable = lost.usable()
        try:
            emb, labels, description, checkpoint = _embed_step(
                cfg, out, usable, state, pool, step, lost.dataset(usable)
            )
        except DataError as exc:
            gone = lost.check(timed_out=ReadTimeoutError.path_of(exc))
            if not gone or attempt == MAX_LOST_FILE_RETRIES:
                raise
            logger.warning(
                "%s; %d input file(s) vanished or changed, embedding again without them",
                exc,
                len(gone),
            )
            continue
        gone = lost.check()
        if gone:
            keep = [i for i, r in enumerate(usable) if r.source not in gone]
            usable = [usable[i] for i in keep]
            emb, labels = emb[keep], labels[keep]
            save_embeddings(RunFolder(out).embeddings, emb, labels, [r.filename for r in usable])
        if not usable:
            raise DataError(
                f"every usable file of input_dir {cfg.input_dir!r} vanished or changed during "
                "the run; nothing is left to select"
            )
        return emb, labels, description, checkpoint, usable
    raise AssertionError("unreachable: the last attempt returns or raises")


#: Columns of ``data/selection.csv``; the format belongs to :mod:`selfsup.runfolder`.
SELECTION_CSV_COLUMNS: Final = SELECTION_COLUMNS


def _precomputed_embeddings(
    path: str, samples: Sequence[str]
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Rows of a user's embeddings CSV in ``samples`` order; every sample must have a row."""
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


def _model_step(
    cfg: RunConfig,
    out: Path,
    samples: list[str],
    state: RunState,
    step: StepCallback,
    dataset: Any = None,
) -> str:
    """The checkpoint to embed with: the given one, or one trained on the samples.

    ``dataset`` is the samples' ManifestDataset (read without listing the folder); ``None``
    trains on the folder restricted to ``samples``.
    """
    from selfsup.core import train

    if cfg.checkpoint and not cfg.enable_training:
        return cfg.checkpoint
    if not cfg.checkpoint and not cfg.enable_training and cfg.lightly.model.weights:
        # Pretrained weights without training: embed with the backbone itself ("").
        return ""
    # Without a checkpoint or weights the run trains: run() set enable_training=true then.
    key = TRAIN_REUSE.fingerprint({"cfg": cfg, "samples": samples})
    previous = state.reusable(TRAIN_REUSE, key)
    if previous is not None:
        kept = str(previous["checkpoint"])
        logger.info("reusing checkpoint %s from the previous run", kept)
        return kept
    lightly = _training_config(cfg)  # fine-tunes from cfg.checkpoint when given
    step("TRAINING")
    train_dir = RunFolder(out).training_dir
    lightly.output_dir = str(train_dir)
    fresh = _empty_training_dir(train_dir, keep=cfg.checkpoint)
    try:
        with quiet_training(
            explicit_gpus="gpus" in cfg.lightly.trainer.model_fields_set, fresh_dir=fresh
        ):
            best = Path(
                train(lightly, filenames=samples)
                if dataset is None
                else train(lightly, samples=dataset)
            )
    except RuntimeError as exc:
        # torch reports a failed checkpoint write as a RuntimeError; say what it was.
        if _disk_full(train_dir):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(train_dir)) from exc
        raise
    final = out / best.name
    with atomic_path(final) as tmp:
        shutil.copyfile(best, tmp)
    state.record(TRAIN_REUSE, key, checkpoint=str(final))
    return str(final)


def _empty_training_dir(train_dir: Path, keep: str) -> bool:
    """Remove the checkpoints of an earlier training of this run folder (they were not
    reused, or training would not run) so that this training starts in an empty folder;
    returns whether it does. A folder holding ``keep`` (the checkpoint to fine-tune from) is
    left alone."""
    if not train_dir.exists():
        return True
    if keep and Path(keep).resolve().is_relative_to(train_dir.resolve()):
        return not any(train_dir.iterdir())
    shutil.rmtree(train_dir)
    return True


def _disk_full(path: Path) -> bool:
    """True when the file system holding ``path`` has (almost) no space left (< 1 MiB)."""
    try:
        usage = shutil.disk_usage(path if path.exists() else path.parent)
    except OSError:
        return False
    return usage.free < (1 << 20)


def _embed_samples(
    cfg: RunConfig,
    checkpoint: str,
    samples: list[str],
    records: Sequence[Any],
    pool: Any,
    dataset: Any = None,
    parquet_dir: Path | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Embed ``samples`` with ``checkpoint``; with a datapool only samples it has not cached.

    ``dataset`` is the ManifestDataset of ``records`` (read without listing the folder);
    ``None`` reads the folder restricted to ``samples``. ``parquet_dir``: where the Ray
    engine writes its shards (``lightly.embedding.engine=ray``).
    """
    from selfsup.core import embed

    lightly = cfg.lightly.model_copy(deep=True)
    lightly.input_dir = cfg.input_dir
    if pool is None:
        emb, labels, names = (
            embed(lightly, checkpoint=checkpoint, filenames=samples, parquet_dir=parquet_dir)
            if dataset is None
            else embed(lightly, checkpoint=checkpoint, samples=dataset, parquet_dir=parquet_dir)
        )
        if list(names) != samples:
            # The dataset skips files that no longer read as images (rewritten since the
            # check): a data problem, which the caller may retry without those files.
            missing = sorted(set(samples) - set(names))
            raise DataError(
                f"embedding returned {len(names)} of the {len(samples)} requested samples; "
                f"unreadable now: {', '.join(repr(m) for m in missing[:5])}"
            )
        return emb.astype(np.float32), labels
    from selfsup.curation.datapool import model_fingerprint
    from selfsup.data import LightlyDataset, ManifestDataset

    key = model_fingerprint(
        checkpoint or _weights_path(cfg),
        input_size=lightly.collate.input_size,
        model=lightly.model.model_dump(mode="json"),
    )
    rows, cached = pool.cached_embeddings(records, key)
    todo = np.setdiff1d(np.arange(len(samples)), rows)
    logger.info("datapool: %d cached embeddings, %d to compute", len(rows), len(todo))
    new = np.zeros((0, 0), dtype=np.float32)
    if len(todo):
        emb, _, _ = (
            embed(lightly, checkpoint=checkpoint, filenames=[samples[i] for i in todo])
            if dataset is None
            else embed(
                lightly,
                checkpoint=checkpoint,
                samples=ManifestDataset(
                    cfg.input_dir, [records[i] for i in todo], classes=dataset.classes
                ),
            )
        )
        new = emb.astype(np.float32)
        pool.add_embeddings([records[i] for i in todo], new, key)
    dim = new.shape[1] if len(todo) else cached.shape[1]
    out = np.empty((len(samples), dim), dtype=np.float32)
    if len(rows):
        out[rows] = cached
    if len(todo):
        out[todo] = new
    labels = np.asarray(
        LightlyDataset(cfg.input_dir, filenames=samples).targets
        if dataset is None
        else dataset.targets,
        dtype=np.int64,
    )
    return out, labels


def _embed_step(
    cfg: RunConfig,
    out: Path,
    usable: Sequence[Any],
    state: RunState,
    pool: Any,
    step: StepCallback,
    dataset: Any = None,
) -> tuple[NDArray[np.float32], NDArray[np.int64], str, str | None]:
    """Embeddings (N, D), labels (N,), a description of the model, and the checkpoint used.

    ``dataset``: the ManifestDataset of ``usable`` that training and embedding read.
    """
    samples = [r.filename for r in usable]
    csv = RunFolder(out).embeddings
    if cfg.embeddings:
        step("EMBEDDING")
        emb, labels = _precomputed_embeddings(cfg.embeddings, samples)
        save_embeddings(csv, emb, labels, samples)
        return emb, labels, f"precomputed embeddings from {cfg.embeddings}", None
    checkpoint = _model_step(cfg, out, samples, state, step, dataset)
    step("EMBEDDING")
    key = EMBEDDINGS_REUSE.fingerprint(
        {"cfg": cfg, "checkpoint": checkpoint or _weights_path(cfg), "samples": samples}
    )
    if state.reusable(EMBEDDINGS_REUSE, key) is not None:
        emb, labels_list, names = load_embeddings(csv)
        if names == samples:
            logger.info("reusing embeddings %s from the previous run", csv)
            labels = np.asarray(labels_list, dtype=np.int64)
            return emb, labels, _model_description(cfg, checkpoint), checkpoint or None
    emb, labels = _embed_samples(
        cfg, checkpoint, samples, usable, pool, dataset, RunFolder(out).embeddings_parquet
    )
    save_embeddings(csv, emb, labels, samples)
    state.record(EMBEDDINGS_REUSE, key)
    return emb, labels, _model_description(cfg, checkpoint), checkpoint or None


def _weights_path(cfg: RunConfig) -> str:
    """The file of ``model.weights`` (what an untrained pretrained embedding depends on)."""
    from selfsup.models.weights import weights_file

    return str(weights_file(cfg.lightly.model.weights))


def _model_description(cfg: RunConfig, checkpoint: str) -> str:
    """How the run's embeddings were made, for the report ("" checkpoint: pretrained)."""
    if checkpoint:
        return f"checkpoint {checkpoint}"
    from selfsup.core import resolve_model

    model = resolve_model(cfg.lightly.model)  # a zoo entry names its own backbone
    return f"pretrained weights {model.weights} ({model.name}), not trained"


def _metadata_columns(records: Sequence[Any]) -> dict[str, NDArray[np.float64]]:
    """Computed metadata per sample, under plain and ``lightly.``-prefixed keys."""
    table = metadata_table([r.metadata() for r in records])
    columns: dict[str, NDArray[np.float64]] = {}
    for key, values in table.items():
        columns[key] = values
        columns[f"lightly.{key}"] = values
    return columns


def _image_sizes(records: Sequence[Any]) -> list[tuple[int, int] | None]:
    return [
        None if r.width is None or r.height is None else (int(r.width), int(r.height))
        for r in records
    ]


@dataclass
class _Candidates:
    """What selection chooses among: whole samples, or object crops of an object-level run."""

    names: list[str]
    embeddings: NDArray[np.float32]
    labels: NDArray[np.int64]
    metadata: dict[str, NDArray[np.float64]]
    scores: dict[str, dict[str, NDArray[np.float64]]]
    predictions: dict[str, Any]
    load_image: Any
    crops: list[Any] | None = None


def _object_candidates(
    cfg: RunConfig,
    out: Path,
    samples: list[str],
    usable: Sequence[Any],
    state: RunState,
    step: StepCallback,
    dataset: Any = None,
) -> tuple[_Candidates, str, str | None]:
    """Crops of the detected objects, embedded with the run's model; with the model's
    description and its checkpoint (``None``: pretrained weights, not trained).

    ``dataset``: the ManifestDataset of ``usable`` the crops are read from.
    """
    from selfsup.curation.object_level import (
        CropDataset,
        crop_boxes,
        crop_class_counts,
        crop_scores,
        embed_crops,
    )

    task = cfg.object_level.task_name
    folder = resolve_predictions_dir(cfg.input_dir, cfg.predictions_dir)
    sizes = _image_sizes(usable)
    detections = load_predictions(folder, task, samples, sizes)
    if not isinstance(detections, DetectionPredictions):
        raise ConfigError(f"object_level.task_name={task!r} must be an object-detection task")
    crops = crop_boxes(detections, sizes, padding=cfg.object_level.crop_padding)
    if not crops:
        raise DataError(
            f"object_level.task_name={task!r}: no boxes found in the predictions of the "
            f"{len(samples)} usable samples, so there is nothing to select"
        )
    checkpoint = _model_step(cfg, out, samples, state, step, dataset)
    step("EMBEDDING_OBJECT_CROPS")
    lightly = cfg.lightly.model_copy(deep=True)
    lightly.input_dir = cfg.input_dir
    emb, labels, names = embed_crops(lightly, crops, checkpoint, samples=dataset)
    save_embeddings(RunFolder(out).embeddings, emb, labels, names)
    images = CropDataset(cfg.input_dir, crops, images=dataset)
    index = {name: i for i, name in enumerate(names)}

    def load_crop(name: str) -> Any:
        i = index.get(name)
        return None if i is None else images.crop_image(i)

    candidates = _Candidates(
        names=names,
        embeddings=emb,
        labels=labels,
        metadata={},
        scores={task: crop_scores(detections, crops)},
        predictions={task: crop_class_counts(detections, crops)},
        load_image=load_crop,
        crops=crops,
    )
    description = f"{_model_description(cfg, checkpoint)} (object crops of task {task!r})"
    return candidates, description, checkpoint or None


def _prediction_inputs(
    cfg: RunConfig, selection_config: Any, samples: list[str], usable: Sequence[Any]
) -> tuple[dict[str, dict[str, NDArray[np.float64]]], dict[str, Any]]:
    """Scores and class counts of the prediction tasks the selection reads."""
    tasks = referenced_tasks(selection_config)
    if not tasks:
        return {}, {}
    return selection_prediction_inputs(
        resolve_predictions_dir(cfg.input_dir, cfg.predictions_dir),
        tasks,
        samples,
        _image_sizes(usable),
        frequency_penalty=cfg.scorer_config.frequency_penalty,
        min_score=cfg.scorer_config.min_score,
    )


StepCallback = Callable[[str], None]


def _no_step(state: str) -> None:
    """The default step callback: nothing to report to."""


def run(
    cfg: RunConfig,
    overrides: Sequence[str] = (),
    progress: bool = True,
    on_step: StepCallback | None = None,
) -> RunResult:
    """Run the whole curation pipeline as ``cfg`` says and return what it selected.

    ``on_step`` is called with the name of each step as it starts, in the run states of the
    server: ``CHECKING_CORRUPTNESS``, ``TRAINING`` (only when a model is trained),
    ``EMBEDDING`` (``EMBEDDING_OBJECT_CROPS`` for object-level runs), ``SAMPLING`` and
    ``GENERATING_REPORT``. The worker reports them; an exception it raises stops the run.

    Raises:
        ConfigError: a setting cannot be honoured (checked before anything is written).
        DataError: the input cannot be used (e.g. every file is corrupt).
    """
    check_preconditions(cfg)
    out = Path(cfg.output_dir) if cfg.output_dir else default_run_dir()
    step = on_step or _no_step
    resolved = cfg.model_copy(update={"output_dir": str(out)})
    if _trains_implicitly(cfg):
        # No pretrained weights ship with selfsup (nothing is downloaded), so the only model
        # that knows this data is one trained on it. The config the run writes (config.yaml,
        # report.json, the web app) says what ran: enable_training=true.
        resolved = resolved.model_copy(update={"enable_training": True})
        say(
            progress,
            "no checkpoint, embeddings or model.weights given: training a self-supervised "
            "model on the input (enable_training=true; pass checkpoint=... to embed with an "
            "existing model)",
        )
    # Every image read after the check (training, embedding, the report's thumbnails) is
    # bounded like the check's own (the check bounds each file in its worker processes).
    with read_timeout(cfg.check_timeout_s or None):
        if not cfg.datapool.name:
            return _run(resolved, out, overrides, progress, None, step)
        with Datapool.open(cfg.datapool.name, cfg.datapool.root or None) as pool:
            return _run(resolved, out, overrides, progress, pool, step)


def _trains_implicitly(cfg: RunConfig) -> bool:
    """The run must train though ``enable_training`` is false: nothing else gives a model
    (a checkpoint, precomputed embeddings or pretrained ``model.weights``)."""
    return not (
        cfg.enable_training or cfg.checkpoint or cfg.embeddings or cfg.lightly.model.weights
    )


@dataclass
class RunContext:
    """What the steps of one run read and write, field by field.

    The first fields are the run's arguments; each later field is set by the step that
    declares it in :attr:`Step.provides` and read by the steps that declare it in
    :attr:`Step.inputs` (an unset field raises AttributeError, so a step that reads
    ahead of its inputs fails loudly).
    """

    cfg: RunConfig
    out: Path
    overrides: Sequence[str]
    progress: bool
    pool: Any
    on_step: StepCallback
    selection_config: SelectionConfig = field(init=False)
    started: float = field(init=False)
    started_iso: str = field(init=False)
    folder: RunFolder = field(init=False)
    run_id: str = field(init=False)
    state: RunState = field(init=False)
    durations: dict[str, float] = field(init=False)
    step_started: float = field(init=False)
    substeps: set[str] = field(init=False)
    checked: CheckResult = field(init=False)
    lost_log: _LostFiles = field(init=False)
    usable: list[SampleRecord] = field(init=False)
    samples: list[str] = field(init=False)
    near_duplicates: NearDuplicates = field(init=False)
    records: list[SampleRecord] = field(init=False)
    candidates: _Candidates = field(init=False)
    model_description: str = field(init=False)
    checkpoint: str | None = field(init=False)
    names: list[str] = field(init=False)
    normalized: NDArray[np.float32] = field(init=False)
    quality: QualityAssessment = field(init=False)
    queries: RunQueries = field(init=False)
    preselected: NDArray[np.int64] = field(init=False)
    sample_inputs: SampleInputs = field(default_factory=SampleInputs)
    selection_note: str = field(init=False)
    result: SelectionResult = field(init=False)
    order: NDArray[np.int64] = field(init=False)
    selected: list[str] = field(init=False)
    frames_note: str = field(init=False)
    report: dict[str, Any] = field(init=False)


def _iso(seconds: float) -> str:
    """``seconds`` since the epoch as the run's local ISO 8601 time, e.g.
    ``2024-05-01T12:00:00+0200`` (report.json's ``started_at`` / ``finished_at``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds))


def _step_config(ctx: RunContext) -> None:
    """Open the run folder: marker first, the previous report removed, the config."""
    ctx.selection_config = ctx.cfg.selection()
    ctx.started = time.time()
    ctx.started_iso = _iso(ctx.started)
    ctx.out.mkdir(parents=True, exist_ok=True)
    ctx.folder = RunFolder(ctx.out)
    ctx.folder.write_marker()
    ctx.run_id = str(ctx.out.resolve())
    # report.json is written last; removing it first means an interrupted rerun never
    # leaves the previous run's report beside this run's partial outputs.
    ctx.folder.remove_report()
    ctx.folder.write_config(to_yaml(ctx.cfg), ctx.overrides)
    ctx.state = RunState(ctx.folder)
    # The steps' times (report.json job.step_durations_s): _run sets step_started as each
    # step starts; a part timed as a step of its own (train) is named in substeps.
    ctx.durations = {}
    ctx.substeps = set()
    ctx.step_started = ctx.started


def _step_check(ctx: RunContext) -> None:
    """Scan, decode and hash every file; the manifest, the corrupt and duplicate lists."""
    manifest_path = ctx.folder.manifest
    previous = None
    if manifest_path.is_file():
        try:
            previous = read_manifest(manifest_path)
        except DataError as exc:
            # stacklevel 3: attributed to run(), the caller of _run, as before the steps.
            warnings.warn(f"ignoring unreadable manifest of the previous run: {exc}", stacklevel=3)
    if previous is None and ctx.pool is not None:
        previous = ctx.pool.previous_manifest(ctx.cfg.input_dir)
    ctx.checked = build_manifest(
        ctx.cfg.input_dir,
        relevant_filenames_file=ctx.cfg.relevant_filenames_file or None,
        previous=previous,
        remove_exact_duplicates=ctx.cfg.remove_exact_duplicates,
        num_workers=resolve_num_workers(ctx.cfg.num_workers),
        progress=ctx.progress,
        file_timeout=ctx.cfg.check_timeout_s or None,
        allowed_roots=ctx.cfg.allowed_roots,
        # The run's own folders are never its input (they may lie inside input_dir).
        exclude=[ctx.out, *([ctx.cfg.frames_dir] if ctx.cfg.frames_dir else [])],
    )
    ctx.records = list(ctx.checked.records)
    ctx.folder.write_manifest(ctx.records)
    _say_checked(ctx)
    if ctx.pool is not None:
        ctx.pool.save_manifest(ctx.cfg.input_dir, ctx.records)
    ctx.folder.write_duplicate_filenames(ctx.records)
    ctx.folder.write_corrupt_filenames(ctx.records)
    if ctx.cfg.enable_corruptness_check:
        ctx.folder.write_clean_filenames(ctx.records)
    else:
        ctx.folder.clean_filenames.unlink(missing_ok=True)  # an earlier run's, not this one's
    # Quality issues of the usable samples, thresholds from their own statistics unless the
    # config sets them (selfsup.curation.quality); data/quality.csv, quality_issues.txt.
    ctx.quality = assess_quality(ctx.records, ctx.cfg.quality)
    ctx.folder.write_quality(ctx.quality)
    # Files that vanish or change from here on are marked in the records (and the manifest
    # and corrupt list rewritten) by _LostFiles; the run goes on without them.
    ctx.lost_log = _LostFiles(ctx.cfg.input_dir, ctx.out, ctx.records, ctx.checked.classes)
    ctx.usable = ctx.lost_log.usable()
    ctx.samples = [r.filename for r in ctx.usable]
    # Near duplicates by perceptual hash: reported, never removed (issue 12).
    ctx.near_duplicates = find_groups(ctx.usable, ctx.cfg.near_duplicates.hash_distance)
    write_near_duplicate_filenames(ctx.folder.near_duplicate_filenames, ctx.near_duplicates.groups)


#: What ``enable_corruptness_check=false`` means (report.json ``job.extra.corruptness_check``
#: and docs): lightly's worker then skips its corruptness check and writes no clean version
#: of the dataset. selfsup decodes every file once anyway (for its hashes, metadata and
#: quality scores), and a file that cannot be decoded cannot be embedded: such files are
#: still skipped with their reason in filenames/corrupt_filenames.txt (the run never fails
#: on them). Off, no data/clean_filenames.txt is written and the log does not call them
#: corrupt.
CORRUPTNESS_CHECK_OFF: Final = (
    "off: files that cannot be decoded are still skipped (they cannot be embedded) and listed "
    f"in {runfolder.CORRUPT_FILENAMES}; no {runfolder.CLEAN_FILENAMES}"
)
CORRUPTNESS_CHECK_ON: Final = (
    f"on: corrupt files skipped and listed in {runfolder.CORRUPT_FILENAMES}; the clean "
    f"dataset in {runfolder.CLEAN_FILENAMES}"
)


def _say_checked(ctx: RunContext) -> None:
    """What the check found, in the run's output; corrupt files as a warning (the one real
    problem of the input a user must see without opening the report)."""
    by_status = count_by_status(ctx.records)
    say(
        ctx.progress,
        f"check: {len(ctx.records):,} samples in {ctx.checked.n_files:,} files: "
        + ", ".join(f"{n:,} {status}" for status, n in by_status.items()),
    )
    if by_status["corrupt"]:
        reasons = count_by_reason(ctx.records)
        logger.warning(
            "%d %s skipped (%s); listed with their reasons in %s",
            by_status["corrupt"],
            # Off, the run does not look for corruption; what it cannot decode it still
            # cannot embed (CORRUPTNESS_CHECK_OFF).
            "corrupt file(s)"
            if ctx.cfg.enable_corruptness_check
            else "file(s) that cannot be decoded (so cannot be embedded)",
            ", ".join(f"{reason} {n}" for reason, n in reasons.items()),
            runfolder.CORRUPT_FILENAMES,
        )


def _step_embed(ctx: RunContext) -> None:
    """Embeddings of the candidates (training first when needed): samples or crops."""
    # Training is timed as a step of its own: the embed step's time is embedding alone.
    clock = _TrainClock(ctx)
    if ctx.cfg.object_level.task_name:
        ctx.candidates, ctx.model_description, ctx.checkpoint = _object_candidates(
            ctx.cfg,
            ctx.out,
            ctx.samples,
            ctx.usable,
            ctx.state,
            clock,
            ctx.lost_log.dataset(ctx.usable),
        )
    else:
        embeddings, labels, ctx.model_description, ctx.checkpoint, ctx.usable = (
            _embed_tolerating_lost_files(ctx.cfg, ctx.out, ctx.lost_log, ctx.state, ctx.pool, clock)
        )
        ctx.samples = [r.filename for r in ctx.usable]
        scores, predictions = _prediction_inputs(
            ctx.cfg, ctx.selection_config, ctx.samples, ctx.usable
        )
        ctx.candidates = _Candidates(
            names=ctx.samples,
            embeddings=embeddings,
            labels=labels,
            metadata=_metadata_columns(ctx.usable),
            scores=scores,
            predictions=predictions,
            load_image=folder_image_loader(ctx.cfg.input_dir),
        )
        # The hash groups extended by embedding pairs, over the samples that were embedded.
        ctx.near_duplicates = find_groups(
            ctx.usable,
            ctx.cfg.near_duplicates.hash_distance,
            embeddings=embeddings,
            embedding_distance=ctx.cfg.near_duplicates.embedding_distance,
        )
        write_near_duplicate_filenames(
            ctx.folder.near_duplicate_filenames, ctx.near_duplicates.groups
        )
    ctx.names = ctx.candidates.names
    _write_al_score_embeddings(ctx)
    ctx.normalized = l2_normalize(ctx.candidates.embeddings, min_norm=1e-12)
    save_embeddings(
        ctx.folder.normalized_embeddings, ctx.normalized, ctx.candidates.labels, ctx.names
    )
    # SIMILARITY's query sets: samples of the input by index, or images outside the input
    # embedded with the same model and transform (never candidates): its checkpoint, or ""
    # for untrained pretrained weights (model.weights); None when there is no model.
    model = None if ctx.cfg.embeddings else (ctx.checkpoint or "")
    ctx.queries = build_queries(ctx.cfg, ctx.selection_config, ctx.names, model, exclude=[ctx.out])


def _write_al_score_embeddings(ctx: RunContext) -> None:
    """``data/al_score_embeddings.csv`` when the selection reads active-learning scores
    (lightly's worker writes it then): the candidates' embeddings with one column per score
    (:meth:`selfsup.runfolder.RunFolder.write_al_score_embeddings`). Otherwise an earlier
    run's file is removed, so the folder holds only this run's outputs."""
    columns = {
        f"{task}.{name}": values
        for task, by_name in ctx.candidates.scores.items()
        for name, values in by_name.items()
    }
    if not columns:
        ctx.folder.al_score_embeddings.unlink(missing_ok=True)
        return
    ctx.folder.write_al_score_embeddings(
        ctx.names, ctx.candidates.embeddings, ctx.candidates.labels, columns
    )


def _quality_excluded_by(ctx: RunContext) -> NDArray[np.int64] | None:
    """Per candidate, the index into ``quality.exclude`` of its first excluded issue (-1:
    none); ``None`` when nothing is excluded. A crop has the issues of its image."""
    if not ctx.quality.exclude:
        return None
    code_of = dict(zip(ctx.quality.filenames, ctx.quality.excluded_by().tolist(), strict=True))
    crops = ctx.candidates.crops
    sources = ctx.names if crops is None else [c.source for c in crops]
    excluded_by = np.fromiter(
        (code_of.get(name, -1) for name in sources), dtype=np.int64, count=len(sources)
    )
    return excluded_by if bool((excluded_by >= 0).any()) else None


def _without_rows(
    inputs: SelectionInputs, excluded_by: NDArray[np.int64], preselected: NDArray[np.int64]
) -> tuple[NDArray[np.int64], SelectionInputs, NDArray[np.int64]]:
    """The selection inputs without the excluded rows (preselected rows are kept: exclusion,
    like THRESHOLD, does not apply to them).

    Returns:
        The kept rows ``(K,)`` of the full inputs, the inputs of those rows (query sets given
        by sample index become their embeddings, so an excluded sample can still be a
        query), and ``preselected`` as positions among the kept rows.
    """
    from selfsup.selection import ClassCounts, SelectionInputs

    keep = excluded_by < 0
    keep[preselected] = True
    rows = np.flatnonzero(keep).astype(np.int64)
    position = np.full(keep.size, -1, dtype=np.int64)
    position[rows] = np.arange(rows.size)
    kept = SelectionInputs(
        embeddings=None if inputs.embeddings is None else np.asarray(inputs.embeddings)[rows],
        scores={
            task: {name: np.asarray(v)[rows] for name, v in by_name.items()}
            for task, by_name in inputs.scores.items()
        },
        metadata={key: np.asarray(v)[rows] for key, v in inputs.metadata.items()},
        predictions={
            task: ClassCounts(c.names, c.counts[rows]) for task, c in inputs.predictions.items()
        },
        queries={name: inputs.query_embeddings(name) for name in inputs.queries},
        n_samples=int(rows.size),
    )
    return rows, kept, position[preselected]


def _restore_quality_rows(
    result: SelectionResult,
    rows: NDArray[np.int64],
    excluded_by: NDArray[np.int64],
    exclude: Sequence[str],
) -> SelectionResult:
    """``result`` of a selection over ``rows`` as a result over every candidate: indices map
    back, and the excluded rows are ``removed_by`` the ``exclude`` descriptions
    (``QUALITY <issue>``, ``NEAR_DUPLICATE``), listed before the selection's own THRESHOLD
    filters."""
    removed = np.where(excluded_by >= 0, excluded_by, -1).astype(np.int16)
    inner = np.asarray(result.removed_by, dtype=np.int64)
    removed[rows] = np.where(inner >= 0, inner + len(exclude), -1)
    return replace(
        result,
        indices=rows[np.asarray(result.indices, dtype=np.int64)],
        removed_by=removed,
        filters=(*exclude, *result.filters),
    )


def _config_after_preselected(
    config: SelectionConfig, n_rows: int, n_first: int
) -> SelectionConfig | None:
    """``config`` for the new picks after ``n_first`` samples of ``selection_config.preselected``
    (they count toward ``n_samples`` / ``proportion_samples``, unlike a datapool's): the same
    config with the count left as ``n_samples``; ``config`` itself without a count or without
    such samples; None when they fill the count (no new pick).

    Args:
        config: The selection that runs.
        n_rows: Rows the engine selects among (a fraction is of these, as in the engine).
        n_first: Samples preselected by the config.
    """
    if not n_first or (config.n_samples is None and config.proportion_samples is None):
        return config
    left = config.resolve_n_new(n_rows) - n_first
    if left <= 0:
        return None
    return replace(config, n_samples=left, proportion_samples=None)


def _step_select(ctx: RunContext) -> None:
    """Choose among the candidates; the selection's tables, lists, crops and frames."""
    # Imported here: selection imports torch, and importing the pipeline must not.
    from selfsup.selection import SelectionInputs, select

    inputs = SelectionInputs(
        embeddings=ctx.normalized,
        metadata=ctx.candidates.metadata,
        scores=ctx.candidates.scores,
        predictions=ctx.candidates.predictions,
        queries=ctx.queries.arrays,
    )
    ctx.preselected = (
        ctx.pool.selected(ctx.usable, ignore_run=ctx.run_id)
        if ctx.pool is not None
        else np.zeros(0, np.int64)
    )
    # selection_config.preselected / excluded (selfsup.curation.queries) as candidate rows; a
    # crop goes with its image. A sample the datapool preselected stays the datapool's.
    crops = ctx.candidates.crops
    ctx.sample_inputs = build_sample_inputs(
        ctx.cfg, ctx.names if crops is None else [c.source for c in crops]
    )
    first = ctx.sample_inputs.preselected
    first = first[~np.isin(first, ctx.preselected)]
    # Typicality's kNN search is O(N^2 D) when it can only be exact on the CPU: past this size
    # the default method runs as coreset. The config that runs is resolved (method,
    # selection_config, selection_note), logged and recorded in config/config.yaml and
    # report.json before selecting: never a silent change of method.
    limit = max_default_typicality_samples(len(ctx.names))
    sized = ctx.cfg.for_sample_count(len(ctx.names), limit)
    ctx.selection_note = ""
    if sized is not ctx.cfg:
        ctx.cfg = sized
        # Where the kNN is already approximate, installing faiss would not help.
        faster = (
            ""
            if limit == MAX_DEFAULT_TYPICALITY_SAMPLES_APPROXIMATE
            else "install selfsup[faiss] for an approximate kNN, or "
        )
        ctx.selection_note = (
            f"{ctx.cfg.selection_note} (DIVERSITY + TYPICALITY -> DIVERSITY: N="
            f"{len(ctx.names)} > limit {limit}; {faster}set selection_config with a "
            "TYPICALITY strategy to keep it)"
        )
        logger.warning(ctx.selection_note)
        ctx.selection_config = ctx.cfg.selection()
        ctx.folder.write_config(to_yaml(ctx.cfg), ctx.overrides)
    # Samples with an issue of quality.exclude are removed before selecting: the selection
    # runs over the other rows, and selection.csv names the issue in removed_by.
    excluded_by = _quality_excluded_by(ctx)
    exclusions = [f"QUALITY {issue}" for issue in ctx.quality.exclude]
    if ctx.cfg.near_duplicates.remove:
        # near_duplicates.remove: every group member but the kept one goes the same way
        # (a crop goes with its image); a sample already excluded keeps its quality reason.
        removable = ctx.near_duplicates.removable()
        crops = ctx.candidates.crops
        sources = ctx.names if crops is None else [c.source for c in crops]
        near = np.fromiter((name in removable for name in sources), bool, len(sources))
        if near.any():
            base = np.full(len(sources), -1, np.int64) if excluded_by is None else excluded_by
            excluded_by = np.where((base < 0) & near, len(exclusions), base)
            exclusions.append("NEAR_DUPLICATE")
    named = ctx.sample_inputs.excluded_by
    if named is not None:
        # selection_config.excluded goes the same way (removed_by: EXCLUDED <source>); a
        # sample already excluded keeps its earlier reason.
        base = np.full(len(ctx.names), -1, np.int64) if excluded_by is None else excluded_by
        excluded_by = np.where((base < 0) & (named >= 0), named + len(exclusions), base)
        exclusions.extend(ctx.sample_inputs.exclusions)
    # The engine starts from the datapool's samples and the config's preselected ones.
    engine_pre = np.concatenate([np.asarray(ctx.preselected, dtype=np.int64), first])
    rows: NDArray[np.int64] | None = None
    kept_inputs, kept_preselected = inputs, engine_pre
    if excluded_by is not None:
        rows, kept_inputs, kept_preselected = _without_rows(inputs, excluded_by, engine_pre)
    config = _config_after_preselected(ctx.selection_config, kept_inputs.n, int(first.size))
    if config is None:
        logger.warning(
            "selection_config.preselected: its %d sample(s) fill the %d samples to select; "
            "no new sample is picked",
            first.size,
            ctx.selection_config.resolve_n_new(kept_inputs.n),
        )
    if ctx.cfg.selected_sequence_length > 1:
        # Imported here: it imports torch, and importing the pipeline must not.
        from selfsup.curation.sequences import select_sequences

        usable = ctx.usable if rows is None else [ctx.usable[i] for i in rows.tolist()]
        result = select_sequences(
            kept_inputs,
            ctx.selection_config,
            [r.source for r in usable],
            [r.frame_index for r in usable],
            ctx.cfg.selected_sequence_length,
            kept_preselected,
        ).frames
    elif config is None:
        # Run for the filters' removed_by; the preselected samples are the whole selection.
        one = replace(ctx.selection_config, n_samples=1, proportion_samples=None)
        result = select(kept_inputs, one, preselected=kept_preselected)
        result = replace(
            result,
            indices=result.indices[:0],
            distances=result.distances[:0],
            scores=result.scores[:0],
            n_requested=0,
            stop_reason="n_samples",
        )
    else:
        result = select(kept_inputs, config, preselected=kept_preselected)
    ctx.result = (
        result
        if rows is None or excluded_by is None
        else _restore_quality_rows(result, rows, excluded_by, exclusions)
    )
    if first.size:
        # The config's preselected samples are this run's first picks (ranks 1..P in
        # selection.csv), with no pick distance or score: nothing chose them.
        ctx.result = replace(
            ctx.result,
            indices=np.concatenate([first, np.asarray(ctx.result.indices, dtype=np.int64)]),
            distances=np.concatenate(
                [np.full(first.size, np.nan, np.float32), ctx.result.distances]
            ),
            scores=np.concatenate([np.full(first.size, np.nan, np.float64), ctx.result.scores]),
            n_requested=ctx.result.n_requested + int(first.size),
        )
    ctx.order = np.asarray(ctx.result.indices, dtype=np.int64)
    chosen = set(ctx.order.tolist()) | set(np.asarray(ctx.preselected).tolist())
    ctx.selected = [ctx.names[i] for i in ctx.order.tolist()]
    removed = [n for i, n in enumerate(ctx.names) if i not in chosen]
    save_embeddings(
        ctx.folder.selected_embeddings,
        ctx.candidates.embeddings[ctx.order],
        ctx.candidates.labels[ctx.order],
        ctx.selected,
    )
    ctx.folder.write_selection(
        ctx.names,
        ctx.order,
        ctx.result.distances,
        ctx.result.scores,
        ctx.result.removed_by,
        ctx.result.filters,
        np.asarray(ctx.preselected, dtype=np.int64),
        None if ctx.candidates.crops is None else [c.source for c in ctx.candidates.crops],
    )
    ctx.folder.write_filename_list(ctx.folder.sampled_filenames, ctx.selected)
    ctx.folder.write_filename_list(ctx.folder.removed_filenames, removed)
    if ctx.pool is not None:
        ctx.pool.record_selection(
            ctx.usable,
            ctx.order,
            RunInfo(ctx.run_id, str(Path(ctx.cfg.input_dir).resolve()), str(ctx.out)),
        )
    if ctx.candidates.crops is not None:
        # Imported here: it imports torch, and importing the pipeline must not.
        from selfsup.curation.object_level import save_crops

        picked = [ctx.candidates.crops[i] for i in ctx.order.tolist()]
        save_crops(
            ctx.cfg.input_dir,
            picked,
            ctx.folder.crops_dir(ctx.cfg.object_level.task_name),
            images=ctx.lost_log.dataset(),
        )
    ctx.frames_note = ""
    if ctx.cfg.extract_frames:
        # Imported here: it imports torch, and importing the pipeline must not.
        from selfsup.curation.frames import extract_frames

        frame_of = {r.filename: r.frame_index for r in ctx.usable}
        frames = [n for n in ctx.selected if frame_of.get(n) is not None]
        target = Path(ctx.cfg.frames_dir) if ctx.cfg.frames_dir else ctx.folder.frames_dir
        try:
            extract_frames(
                ctx.cfg.input_dir,
                frames,
                target,
                ctx.cfg.frames_format,
                progress=ctx.progress,
                samples=ctx.lost_log.dataset(),
            )
        except DataError as exc:
            # A video that vanished or changed since it was checked: the selection stands,
            # its frames cannot be written; the report says so instead of losing the run.
            ctx.lost_log.check()
            ctx.frames_note = f"frame extraction stopped: {exc}"
            logger.error("%s", ctx.frames_note)


def _step_report(ctx: RunContext) -> None:
    """Statistics, plots, report.pdf and, last, report.json."""
    # The funnel counts what selection saw; files lost from here on are named in
    # report.json (job.extra.lost_files), the manifest and the corrupt list.
    ctx.records = ctx.lost_log.records
    ctx.lost_log.check()

    def job_at(now: float) -> JobInfo:
        return JobInfo(
            run_name=ctx.out.name,
            started_at=ctx.started_iso,
            finished_at=_iso(now),
            duration_s=now - ctx.started,
            input_dir=str(Path(ctx.cfg.input_dir).resolve()),
            selfsup_version=__version__,
            config=ctx.cfg.model_dump(mode="json"),
            step_durations_s=dict(ctx.durations),
            extra=extra,
        )

    def finish_job() -> JobInfo:
        # Called once the statistics and plots are done, right before report.pdf and
        # report.json are written: the report's own time is in the run's duration, and the
        # PDF, report.json, the log and the web app show the same figures.
        _record_step(ctx, "report")
        return job_at(time.time())

    extra: dict[str, Any] = {
        "model": ctx.model_description,
        "n_preselected_from_datapool": len(ctx.preselected),
        "candidates": "object crops" if ctx.candidates.crops is not None else "samples",
        "selection_note": ctx.selection_note,
        "corruptness_check": CORRUPTNESS_CHECK_ON
        if ctx.cfg.enable_corruptness_check
        else CORRUPTNESS_CHECK_OFF,
        # how size-dependent terms ran (TYPICALITY's kNN: exact/approximate, recall)
        "selection_methods": [dict(m) for m in ctx.result.methods],
        "selection_device": ctx.result.device,
        "frames_note": ctx.frames_note,
        "lost_files": ctx.lost_log.summary(),
        **ctx.queries.report(),
        **ctx.sample_inputs.report(),
    }
    job = job_at(time.time())
    n_corrupt = sum(1 for r in ctx.records if r.status == "corrupt")
    n_duplicates = sum(1 for r in ctx.records if r.status == "duplicate")
    if ctx.candidates.crops is None:
        # Files outside relevant_filenames_file were found but never opened: each counts as
        # one sample found and not relevant (a video's frames are not counted unopened).
        counts = SampleCounts(
            n_files_found=ctx.checked.n_files + ctx.checked.n_not_relevant,
            n_samples_found=len(ctx.records) + ctx.checked.n_not_relevant,
            n_not_relevant=ctx.checked.n_not_relevant,
            n_corrupt=n_corrupt,
            n_duplicates=n_duplicates,
            n_input_to_selection=len(ctx.names),
            n_selected=len(ctx.selected),
            corrupt_reasons=count_by_reason(ctx.records),
            n_removed_by_filters=int(np.count_nonzero(ctx.result.removed_by >= 0)),
        )
    else:
        # Object-level runs select among crops: the funnel counts crops, not files.
        counts = SampleCounts(
            n_files_found=len(ctx.names),
            n_corrupt=0,
            n_duplicates=0,
            n_input_to_selection=len(ctx.names),
            n_selected=len(ctx.selected),
            n_removed_by_filters=int(np.count_nonzero(ctx.result.removed_by >= 0)),
        )
    # Trained by this run: embedded with a checkpoint that the config did not give. Its
    # epochs are the ones the training ran for (the recipe chooses them when the config does
    # not set lightly.trainer.max_epochs), recorded in the checkpoint.
    trained = ctx.checkpoint is not None and not ctx.cfg.checkpoint
    epochs = 0
    if trained and ctx.checkpoint:
        from selfsup.core import trained_epochs

        recorded = trained_epochs(ctx.checkpoint)
        epochs = ctx.cfg.lightly.trainer.max_epochs if recorded is None else recorded
    report_inputs = ReportInputs(
        job=job,
        counts=counts,
        embeddings=ctx.candidates.embeddings,
        filenames=ctx.names,
        selected_indices=ctx.order,
        selection_distances=ctx.result.distances,
        stop_reason=str(ctx.result.stop_reason),
        n_requested=ctx.result.n_requested,
        metadata={k: v for k, v in ctx.candidates.metadata.items() if not k.startswith("lightly.")},
        costs=CostAssumptions(training_epochs=epochs),
        load_image=ctx.candidates.load_image,
        near_duplicates=ctx.near_duplicates.summary(),
        quality=quality_report(ctx.quality),
    )
    neighbors = (5, 15, 50) if ctx.cfg.umap else ()
    ctx.report = write_report(
        report_inputs,
        ctx.out,
        ReportOptions(umap_neighbors=neighbors),
        progress=lambda message: say(ctx.progress, message),
        finish_job=finish_job,
    )


@dataclass(frozen=True)
class Step:
    """One declared step of a run (see the module docstring and :data:`STEPS`).

    Attributes:
        name: The step's name; its duration is ``job.step_durations_s[name]`` in report.json.
        state: The run state reported through ``on_step`` as the step starts; ``None`` when
            the step reports its own states (the embed step: ``TRAINING`` only when it
            trains, then ``EMBEDDING`` or ``EMBEDDING_OBJECT_CROPS``) or none.
        inputs: The :class:`RunContext` fields the step reads: the run's arguments and what
            earlier steps provide. :func:`_run` checks they are set before the step runs.
        provides: The :class:`RunContext` fields the step sets for later steps.
        outputs: The files the step writes, relative to the run folder
            (:mod:`selfsup.runfolder`); some only in some runs (a checkpoint when training,
            crops for object-level runs, frames with ``extract_frames``).
        reuse: When a rerun into the same folder reuses a previous run's outputs instead of
            redoing the work, in words (the check step's per-file reuse of the manifest is
            the manifest's own, see :func:`selfsup.curation.checks.build_manifest`).
        run: The step: reads its inputs from the context and sets what it provides.
        timed: Whether its duration goes into ``job.step_durations_s``.
        rules: The executable reuse rules of the step's work in ``.selfsup/state.json``;
            the step may check and record only these (:func:`_run` hands them to
            :class:`RunState`). Each rule guards one piece of work rather than the whole
            step: the embed step reuses its checkpoint while it redoes its embeddings, and
            redoes both without the files that vanish mid-step.
    """

    name: str
    state: str | None
    inputs: tuple[str, ...]
    provides: tuple[str, ...]
    outputs: tuple[str, ...]
    reuse: str
    run: Callable[[RunContext], None]
    timed: bool = True
    rules: tuple[ReuseRule, ...] = ()


#: The steps of every run, in order.
STEPS: Final = (
    Step(
        name="config",
        state=None,
        inputs=(
            "cfg",
            "out",
            "overrides",
        ),
        provides=(
            "durations",
            "folder",
            "run_id",
            "selection_config",
            "started",
            "started_iso",
            "state",
            "step_started",
            "substeps",
        ),
        outputs=(runfolder.MARKER, runfolder.CONFIG_YAML, runfolder.OVERRIDES_YAML),
        reuse="never: every run writes them afresh, and removes the previous report.json first",
        run=_step_config,
        timed=False,
    ),
    Step(
        name="check",
        state="CHECKING_CORRUPTNESS",
        inputs=(
            "cfg",
            "folder",
            "out",
            "pool",
            "progress",
        ),
        provides=(
            "checked",
            "lost_log",
            "near_duplicates",
            "quality",
            "records",
            "samples",
            "usable",
        ),
        outputs=(
            runfolder.MANIFEST,
            runfolder.CORRUPT_FILENAMES,
            runfolder.DUPLICATE_FILENAMES,
            runfolder.NEAR_DUPLICATE_FILENAMES,
            runfolder.QUALITY_CSV,
            runfolder.QUALITY_ISSUES,
            runfolder.CLEAN_FILENAMES,
        ),
        reuse="a file whose size and mtime match its record in the previous manifest (this "
        "folder's, else the datapool's) keeps that record without being decoded again",
        run=_step_check,
    ),
    Step(
        name="embed",
        state=None,
        inputs=(
            "cfg",
            "folder",
            "lost_log",
            "on_step",
            "out",
            "pool",
            "samples",
            "selection_config",
            "state",
            "substeps",
            "usable",
        ),
        provides=(
            "candidates",
            "checkpoint",
            "model_description",
            "names",
            "near_duplicates",
            "normalized",
            "queries",
            "samples",
            "usable",
        ),
        outputs=(
            "selfsup_epoch_<n>.ckpt",
            runfolder.EMBEDDINGS,
            runfolder.NORMALIZED_EMBEDDINGS,
            runfolder.NEAR_DUPLICATE_FILENAMES,
            runfolder.AL_SCORE_EMBEDDINGS,
        ),
        reuse=f"{TRAIN_REUSE.description}; {EMBEDDINGS_REUSE.description}; with a "
        "datapool, its embeddings cached per model",
        run=_step_embed,
        rules=(TRAIN_REUSE, EMBEDDINGS_REUSE),
    ),
    Step(
        name="select",
        state="SAMPLING",
        inputs=(
            "candidates",
            "cfg",
            "folder",
            "lost_log",
            "names",
            "near_duplicates",
            "normalized",
            "out",
            "overrides",
            "pool",
            "progress",
            "quality",
            "queries",
            "run_id",
            "selection_config",
            "usable",
        ),
        provides=(
            "cfg",
            "frames_note",
            "order",
            "preselected",
            "result",
            "sample_inputs",
            "selected",
            "selection_config",
            "selection_note",
        ),
        outputs=(
            runfolder.SELECTED_EMBEDDINGS,
            runfolder.SELECTION_CSV,
            runfolder.SAMPLED_FILENAMES,
            runfolder.REMOVED_FILENAMES,
            f"{runfolder.CROPS_DIR}/<task>/",
            f"{runfolder.FRAMES_DIR}/",
        ),
        reuse="never: redone by every run",
        run=_step_select,
    ),
    Step(
        name="report",
        state="GENERATING_REPORT",
        inputs=(
            "candidates",
            "cfg",
            "checked",
            "checkpoint",
            "durations",
            "frames_note",
            "lost_log",
            "model_description",
            "names",
            "near_duplicates",
            "order",
            "out",
            "preselected",
            "quality",
            "queries",
            "records",
            "result",
            "sample_inputs",
            "selected",
            "selection_note",
            "started",
            "started_iso",
            "step_started",
            "substeps",
        ),
        provides=(
            "records",
            "report",
        ),
        outputs=(
            f"{runfolder.PLOTS_DIR}/*.png",
            runfolder.PROJECTIONS_CSV,
            runfolder.REPORT_PDF,
            runfolder.REPORT_JSON,
        ),
        reuse="never: redone by every run; report.json is written last",
        run=_step_report,
    ),
)


def _record_step(ctx: RunContext, name: str) -> None:
    """Record step ``name`` as ended now, in ``ctx.durations`` (report.json's
    ``job.step_durations_s``) and the log, less the time of the parts of it recorded as
    steps of their own meanwhile (``train`` inside ``embed``): each second counts once."""
    elapsed = time.time() - ctx.step_started
    inner = sum(seconds for key, seconds in ctx.durations.items() if key in ctx.substeps)
    ctx.durations[name] = max(elapsed - inner, 0.0)
    ctx.substeps.clear()
    say(ctx.progress, f"{name} done in {format_duration(ctx.durations[name])}")


class _TrainClock:
    """An ``on_step`` callback that also times training: from the ``TRAINING`` state to the
    next state (``EMBEDDING``); recorded as the ``train`` step of the run."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.since: float | None = None

    def __call__(self, state: str) -> None:
        if state == "TRAINING":
            self.since = time.time()
            say(self.ctx.progress, "train ...")
        elif self.since is not None:
            seconds = time.time() - self.since
            self.since = None
            # A retry without vanished files trains again: both trainings count.
            self.ctx.durations["train"] = self.ctx.durations.get("train", 0.0) + seconds
            self.ctx.substeps.add("train")
            say(self.ctx.progress, f"train done in {format_duration(seconds)}")
        self.ctx.on_step(state)


def _run(
    cfg: RunConfig,
    out: Path,
    overrides: Sequence[str],
    progress: bool,
    pool: Any,
    step: StepCallback,
) -> RunResult:
    """Run :data:`STEPS` in order over one :class:`RunContext`."""
    ctx = RunContext(
        cfg=cfg, out=out, overrides=overrides, progress=progress, pool=pool, on_step=step
    )
    for declared in STEPS:
        missing = [name for name in declared.inputs if not hasattr(ctx, name)]
        if missing:
            raise AssertionError(f"step {declared.name!r} runs before {missing} are set")
        if hasattr(ctx, "state"):
            # Set by the config step: each later step may reuse only what it declares.
            ctx.state.allowed = declared.rules
        elif declared.rules:
            raise AssertionError(f"step {declared.name!r} declares reuse rules before 'state'")
        if declared.state is not None:
            ctx.on_step(declared.state)
        ctx.step_started = time.time()
        if declared.timed:
            say(ctx.progress, f"{declared.name} ...")
        declared.run(ctx)
        if declared.timed and declared.name not in ctx.durations:
            # The report step records its own time before it writes report.json.
            _record_step(ctx, declared.name)
    say(
        ctx.progress,
        f"run finished in {format_duration(ctx.report['job']['duration_s'])}: "
        f"{len(ctx.selected)} of {len(ctx.names)} selected",
    )
    return RunResult(output_dir=ctx.out, selected=ctx.selected, report=ctx.report)
