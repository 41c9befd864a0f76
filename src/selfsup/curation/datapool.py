"""Datapools: a named memory of what earlier curation runs selected.

A run with ``datapool.name=<name>`` reads the pool before it selects and writes to it after:
samples selected by earlier runs count as already chosen (``select(..., preselected=...)``), so
diversity is measured from them and the new picks fill the gaps they leave; ``n_samples``
counts new samples only. A pool also keeps what makes a later run on a grown folder cheap: the
manifest of the last scan of each input folder (unchanged files are not decoded again) and the
embeddings of every processed sample per model (only new samples are embedded).

Identity of a sample
    A selected sample is remembered by its name (``filename`` of the manifest record) and the
    hash of its decoded pixels (``pixel_hash``). When a later run looks the pool up
    (:meth:`Datapool.match`):

    * same name, same pixels: the sample is selected;
    * a file whose content changed (same name, other pixels) is *no longer* selected: it is a
      new sample that may be selected again; its old entry is dropped when the run records
      its selection (``changed``);
    * a renamed or moved file (another name, pixels of a selected entry whose name no longer
      matches) is still selected, and its entry follows the new name (``renamed``); each entry
      matches one record at most, so a second copy of a selected image is a new sample (the
      duplicate check normally removes it anyway);
    * entries whose sample is not in the run (deleted, or outside ``relevant_filenames_file``)
      stay in the pool (``absent``) and count again when the file comes back.

    A record without a ``pixel_hash`` (never decoded) never matches.

Reruns of one run
    Every selected entry carries the ``run_id`` of the run that selected it. Recording a run id
    that is already in the pool replaces that run (its entries and its history row), and
    :meth:`Datapool.match` with ``ignore_run=<run id>`` ignores its entries, so rerunning an
    interrupted run in the same output folder selects the same samples again instead of
    treating its own earlier picks as preselected.

Embedding cache
    Embeddings are keyed by ``(pixel_hash, model key)``: an embedding depends only on the
    pixels and on the model and its input settings, which :func:`model_fingerprint` folds into
    one key. A renamed file or a copy therefore hits the cache too. Each key's embeddings are
    stored as append-only float32 chunks; more than :data:`MAX_CHUNKS` chunks are merged into
    one (the latest row of a hash wins), and only the :data:`MAX_MODELS` most recently written
    model keys are kept (a retrained model makes the old embeddings useless).

Storage (``$SELFSUP_HOME/datapools/<name>/``, ``SELFSUP_HOME`` defaults to ``~/.selfsup``)::

    datapool.json                         the state; replaced atomically, the only file
                                          readers trust (format below)
    .lock                                 fcntl lock of the run using the pool; holds its pid
    embeddings/<model dir>/<chunk>.npy    (k, D) float32, immutable once referenced
    embeddings/<model dir>/<chunk>.keys.json
                                          {"pixel_hash": [k hashes], "filename": [k names]}
    manifests/<input dir digest>.jsonl    last manifest of an input folder (a cache)

    ``<model dir>`` is the first 32 hex digits of blake2b(model key); ``<input dir digest>``
    the same of the resolved input folder path.

``datapool.json`` (UTF-8 JSON)::

    {"format": "selfsup-datapool", "version": 1, "name": ..., "created_at": ...,
     "updated_at": ..., "generation": n,
     "selected": [{"filename": ..., "pixel_hash": ..., "run_id": ...}, ...],
     "runs": [{"run_id", "time", "input_dir", "output_dir", "n_samples", "n_preselected",
               "n_selected", "n_selected_total", "n_changed", "n_renamed"}, ...],
     "embeddings": {"<model key>": {"dim": D, "added_at": ...,
                                    "chunks": [{"id": ..., "rows": k}, ...]}, ...}}

    Readers ignore keys they do not know and fill missing optional keys with defaults, so
    older pools keep loading; a pool with a newer ``version`` is refused with an error.

Crash safety and concurrency
    An update writes every new file first (chunk files under fresh names), then replaces
    ``datapool.json`` atomically, then deletes files the new state no longer references. A
    crash at any point leaves the previous state readable; files it left unreferenced are
    deleted the next time the pool is opened for writing. A writer holds an exclusive
    ``fcntl.flock`` on ``.lock`` from :meth:`Datapool.open` until :meth:`Datapool.close`
    (a read-only open holds a shared one); a second run gets :class:`DatapoolBusyError`
    naming the holder instead of waiting. The kernel drops the lock when a process dies, so
    a crash never leaves a stale lock. Locks work on local file systems (NFS only with
    working ``flock``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import socket
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from selfsup.config.worker_config import validate_datapool_name
from selfsup.curation.manifest import Manifest, SampleRecord, read_manifest, write_manifest
from selfsup.errors import DataError, SelfsupError
from selfsup.home import selfsup_home
from selfsup.utils.atomic import atomic_open_bytes, atomic_write_text
from selfsup.utils.names import dumps_json

__all__ = [
    "DATAPOOL_FORMAT",
    "DATAPOOL_VERSION",
    "MAX_CHUNKS",
    "MAX_MODELS",
    "Datapool",
    "DatapoolBusyError",
    "KeyedSample",
    "PoolMatch",
    "PoolSample",
    "RunEntry",
    "RunInfo",
    "datapool_dir",
    "default_datapool_root",
    "model_fingerprint",
    "validate_datapool_name",
]

DATAPOOL_FORMAT: Final = "selfsup-datapool"
DATAPOOL_VERSION: Final = 1

#: Chunks per model key before they are merged into one.
MAX_CHUNKS: Final = 8
#: Model keys whose embeddings are kept (the most recently written ones).
MAX_MODELS: Final = 3

STATE_FILE: Final = "datapool.json"
LOCK_FILE: Final = ".lock"
EMBEDDINGS_DIR: Final = "embeddings"
MANIFESTS_DIR: Final = "manifests"

_DIGEST_HEX: Final = 32


class DatapoolBusyError(SelfsupError):
    """Another process holds the datapool's lock (a run is using it)."""


class KeyedSample(Protocol):
    """Anything with a sample name and a pixel hash: a manifest record, a :class:`PoolSample`."""

    @property
    def filename(self) -> str: ...

    @property
    def pixel_hash(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class PoolSample:
    """A selected sample as the pool remembers it.

    Attributes:
        filename: Sample name (relative path of an image, or a frame name).
        pixel_hash: Hash of its decoded pixels when it was selected.
        run_id: The run that selected it.
    """

    filename: str
    pixel_hash: str
    run_id: str


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What a run tells the pool about itself when it records its selection.

    Attributes:
        run_id: Unique id of the run; the pipeline uses the resolved output folder, so a rerun
            in the same folder replaces its earlier record.
        input_dir: The folder the run curated.
        output_dir: Where the run wrote its outputs.
    """

    run_id: str
    input_dir: str = ""
    output_dir: str = ""


@dataclass(frozen=True, slots=True)
class RunEntry:
    """One row of a pool's run history.

    Attributes:
        run_id, input_dir, output_dir: From :class:`RunInfo`.
        time: When the selection was recorded (ISO 8601, UTC).
        n_samples: Samples the run selected from (the records given).
        n_preselected: Of these, samples the pool already held.
        n_selected: Samples the run added.
        n_selected_total: Samples in the pool afterwards.
        n_changed: Entries dropped because their file's content changed.
        n_renamed: Entries that followed a renamed file.
    """

    run_id: str
    time: str
    input_dir: str
    output_dir: str
    n_samples: int
    n_preselected: int
    n_selected: int
    n_selected_total: int
    n_changed: int = 0
    n_renamed: int = 0


@dataclass(frozen=True)
class PoolMatch:
    """How the records of a run relate to the pool (see the module docstring).

    Attributes:
        indices: ``(k,)`` sorted indices of the records that count as selected.
        renamed: ``(old name, new name)`` for entries found under another name.
        changed: Names of selected entries whose file now has other pixels.
        absent: Entries with no record in the run.
    """

    indices: NDArray[np.int64]
    renamed: tuple[tuple[str, str], ...]
    changed: tuple[str, ...]
    absent: tuple[PoolSample, ...]


@dataclass(frozen=True, slots=True)
class _Chunk:
    id: str
    rows: int


@dataclass(frozen=True, slots=True)
class _ModelCache:
    dim: int
    added_at: str
    chunks: tuple[_Chunk, ...]


@dataclass(frozen=True)
class _State:
    name: str
    created_at: str
    updated_at: str
    generation: int
    selected: tuple[PoolSample, ...]
    runs: tuple[RunEntry, ...]
    models: Mapping[str, _ModelCache]  # insertion order = order of last write, oldest first


# --------------------------------------------------------------------------- names and paths


def default_datapool_root() -> Path:
    """``$SELFSUP_HOME/datapools``; ``SELFSUP_HOME`` defaults to ``~/.selfsup``."""
    return selfsup_home() / "datapools"


def datapool_dir(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder of datapool ``name`` under ``root`` (default :func:`default_datapool_root`)."""
    base = Path(root).expanduser() if root is not None else default_datapool_root()
    return base / validate_datapool_name(name)


def model_fingerprint(checkpoint: str | os.PathLike[str] | None, **settings: Any) -> str:
    """A key naming one embedding function: the checkpoint's bytes plus the settings given.

    Pass everything that changes an embedding besides the pixels, e.g.
    ``model_fingerprint(ckpt, input_size=64, model="resnet-18")``. The checkpoint is hashed by
    content, not path or time, so a copied checkpoint gives the same key and a retrained one
    another.

    Returns:
        ``"blake2b:<32 hex digits>"``.
    """
    digest = hashlib.blake2b(digest_size=_DIGEST_HEX // 2)
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode("utf-8"))
    if checkpoint is not None:
        with open(checkpoint, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return f"blake2b:{digest.hexdigest()}"


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=_DIGEST_HEX // 2).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- state as JSON


def _state_to_json(state: _State) -> str:
    data = {
        "format": DATAPOOL_FORMAT,
        "version": DATAPOOL_VERSION,
        "name": state.name,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "generation": state.generation,
        "selected": [
            {"filename": s.filename, "pixel_hash": s.pixel_hash, "run_id": s.run_id}
            for s in state.selected
        ],
        "runs": [
            {
                "run_id": r.run_id,
                "time": r.time,
                "input_dir": r.input_dir,
                "output_dir": r.output_dir,
                "n_samples": r.n_samples,
                "n_preselected": r.n_preselected,
                "n_selected": r.n_selected,
                "n_selected_total": r.n_selected_total,
                "n_changed": r.n_changed,
                "n_renamed": r.n_renamed,
            }
            for r in state.runs
        ],
        "embeddings": {
            key: {
                "dim": m.dim,
                "added_at": m.added_at,
                "chunks": [{"id": c.id, "rows": c.rows} for c in m.chunks],
            }
            for key, m in state.models.items()
        },
    }
    return dumps_json(data, indent=1) + "\n"  # paths may hold bytes that are not UTF-8


def _get(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise DataError(f"{where}: missing key {key!r}")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        expected = (
            kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        )
        raise DataError(f"{where}: key {key!r} must be {expected}, got {value!r}")
    return value


def _opt(data: Mapping[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    return _get(data, key, kind, where) if key in data else default


def _state_from_json(text: str, where: str) -> _State:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict) or data.get("format") != DATAPOOL_FORMAT:
        raise DataError(f"{where}: not a selfsup datapool state (no format {DATAPOOL_FORMAT!r})")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version > DATAPOOL_VERSION:
        raise DataError(
            f"{where}: datapool format version {version!r} is not supported; this selfsup "
            f"reads versions up to {DATAPOOL_VERSION} (upgrade selfsup to use this pool)"
        )
    selected: list[PoolSample] = []
    for i, item in enumerate(_get(data, "selected", list, where)):
        at = f"{where}: selected[{i}]"
        if not isinstance(item, dict):
            raise DataError(f"{at}: expected an object, got {item!r}")
        selected.append(
            PoolSample(
                filename=_get(item, "filename", str, at),
                pixel_hash=_get(item, "pixel_hash", str, at),
                run_id=_opt(item, "run_id", str, "", at),
            )
        )
    runs: list[RunEntry] = []
    for i, item in enumerate(_opt(data, "runs", list, [], where)):
        at = f"{where}: runs[{i}]"
        if not isinstance(item, dict):
            raise DataError(f"{at}: expected an object, got {item!r}")
        runs.append(
            RunEntry(
                run_id=_get(item, "run_id", str, at),
                time=_opt(item, "time", str, "", at),
                input_dir=_opt(item, "input_dir", str, "", at),
                output_dir=_opt(item, "output_dir", str, "", at),
                n_samples=_opt(item, "n_samples", int, 0, at),
                n_preselected=_opt(item, "n_preselected", int, 0, at),
                n_selected=_opt(item, "n_selected", int, 0, at),
                n_selected_total=_opt(item, "n_selected_total", int, 0, at),
                n_changed=_opt(item, "n_changed", int, 0, at),
                n_renamed=_opt(item, "n_renamed", int, 0, at),
            )
        )
    models: dict[str, _ModelCache] = {}
    for key, item in _opt(data, "embeddings", dict, {}, where).items():
        at = f"{where}: embeddings[{key!r}]"
        if not isinstance(item, dict):
            raise DataError(f"{at}: expected an object, got {item!r}")
        chunks: list[_Chunk] = []
        for j, chunk in enumerate(_get(item, "chunks", list, at)):
            cat = f"{at}.chunks[{j}]"
            if not isinstance(chunk, dict):
                raise DataError(f"{cat}: expected an object, got {chunk!r}")
            chunk_id = _get(chunk, "id", str, cat)
            if not re.fullmatch(r"[A-Za-z0-9_-]+", chunk_id):
                raise DataError(f"{cat}: chunk id {chunk_id!r} is not a plain file stem")
            chunks.append(_Chunk(chunk_id, _get(chunk, "rows", int, cat)))
        models[key] = _ModelCache(
            dim=_get(item, "dim", int, at),
            added_at=_opt(item, "added_at", str, "", at),
            chunks=tuple(chunks),
        )
    return _State(
        name=_opt(data, "name", str, "", where),
        created_at=_opt(data, "created_at", str, "", where),
        updated_at=_opt(data, "updated_at", str, "", where),
        generation=_opt(data, "generation", int, 0, where),
        selected=tuple(selected),
        runs=tuple(runs),
        models=models,
    )


# --------------------------------------------------------------------------- matching (pure)


def _match(
    entries: Sequence[PoolSample], records: Sequence[KeyedSample]
) -> tuple[dict[int, PoolSample], list[tuple[str, str]], list[str], list[PoolSample]]:
    """Pair pool entries with records: (record index -> entry, renamed, changed, absent)."""
    row_of: dict[str, int] = {}
    for i, record in enumerate(records):
        row_of.setdefault(record.filename, i)
    matched: dict[int, PoolSample] = {}
    rest: list[PoolSample] = []
    for entry in entries:
        at = row_of.get(entry.filename)
        if at is not None and at not in matched and records[at].pixel_hash == entry.pixel_hash:
            matched[at] = entry
        else:
            rest.append(entry)
    # Second pass by content: moved or renamed files, including swapped names.
    by_hash: dict[str, list[PoolSample]] = {}
    for entry in rest:
        by_hash.setdefault(entry.pixel_hash, []).append(entry)
    renamed: list[tuple[str, str]] = []
    if by_hash:
        for i, record in enumerate(records):
            if i in matched or record.pixel_hash is None:
                continue
            waiting = by_hash.get(record.pixel_hash)
            if waiting:
                entry = waiting.pop(0)
                matched[i] = entry
                renamed.append((entry.filename, record.filename))
    unmatched = [e for group in by_hash.values() for e in group]
    unmatched.sort(key=lambda e: e.filename)
    changed = [e.filename for e in unmatched if e.filename in row_of]
    absent = [e for e in unmatched if e.filename not in row_of]
    return matched, renamed, changed, absent


# --------------------------------------------------------------------------- the pool


class Datapool:
    """A named datapool opened for one run; use :meth:`open`, ideally as a context manager.

    Example::

        with Datapool.open("street-scenes") as pool:
            pre = pool.selected(records)
            result = select(inputs, config, preselected=pre)
            pool.record_selection(records, result.indices, RunInfo(run_id=str(out)))
    """

    def __init__(self, path: Path, lock_fd: int, readonly: bool, state: _State) -> None:
        """Use :meth:`open`; the constructor takes an already locked and loaded pool."""
        self._path = path
        self._lock_fd: int | None = lock_fd
        self._readonly = readonly
        self._state = state
        self._index: dict[str, tuple[tuple[str, ...], dict[str, tuple[int, int]]]] = {}

    # ----------------------------------------------------------------- open / close

    @classmethod
    def open(
        cls, name: str, root: str | os.PathLike[str] | None = None, *, readonly: bool = False
    ) -> Datapool:
        """Open (and create if missing) datapool ``name`` under ``root``, taking its lock.

        Args:
            name: Datapool name (see :func:`validate_datapool_name`).
            root: Folder holding datapools; default ``$SELFSUP_HOME/datapools``.
            readonly: Take a shared lock and refuse writes; the pool must exist.

        Raises:
            ConfigError: ``name`` is not a valid name.
            DatapoolBusyError: another process holds the lock.
            DataError: the pool's state file is unreadable or of a newer format, or a
                read-only open names a pool that does not exist.
        """
        path = datapool_dir(name, root)
        state_path = path / STATE_FILE
        if readonly and not state_path.is_file():
            raise DataError(f"datapool {name!r} does not exist (no {state_path})")
        path.mkdir(parents=True, exist_ok=True)
        fd = _lock(path / LOCK_FILE, name, exclusive=not readonly)
        pool: Datapool | None = None
        try:
            if state_path.is_file():
                state = _state_from_json(state_path.read_text(encoding="utf-8"), str(state_path))
            else:
                now = _now()
                state = _State(name, now, now, 0, (), (), {})
                atomic_write_text(state_path, _state_to_json(state))
            pool = cls(path, fd, readonly, state)
            if not readonly:
                pool._collect_garbage()
        except BaseException:
            if pool is not None:
                pool.close()  # the pool owns the descriptor now; close it exactly once
            else:
                os.close(fd)
            raise
        return pool

    def close(self) -> None:
        """Release the lock; the pool object cannot be used afterwards."""
        fd = getattr(self, "_lock_fd", None)  # None also when __init__ never ran
        if fd is not None:
            self._lock_fd = None
            os.close(fd)  # closing the descriptor drops the flock

    def __del__(self) -> None:
        # A pool dropped without close() must not keep other runs locked out.
        self.close()

    def __enter__(self) -> Datapool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self, write: bool = False) -> None:
        if self._lock_fd is None:
            raise RuntimeError(f"datapool {self.name!r} is closed")
        if write and self._readonly:
            raise RuntimeError(f"datapool {self.name!r} was opened read-only")

    # ----------------------------------------------------------------- what it holds

    @property
    def name(self) -> str:
        """The datapool's name (its folder name)."""
        return self._path.name

    @property
    def path(self) -> Path:
        """The datapool's folder."""
        return self._path

    @property
    def samples(self) -> tuple[PoolSample, ...]:
        """Every selected sample so far, in the order they were recorded."""
        return self._state.selected

    def selected_filenames(self) -> list[str]:
        """Names of every selected sample so far (lightly's datapool filename list)."""
        return [s.filename for s in self._state.selected]

    @property
    def runs(self) -> tuple[RunEntry, ...]:
        """The run history, oldest first."""
        return self._state.runs

    @property
    def model_keys(self) -> tuple[str, ...]:
        """Model keys with cached embeddings, least recently written first."""
        return tuple(self._state.models)

    # ----------------------------------------------------------------- selection

    def match(self, records: Sequence[KeyedSample], *, ignore_run: str | None = None) -> PoolMatch:
        """How ``records`` (one run's samples) relate to the pool; see the module docstring.

        Args:
            records: The run's samples (e.g. the ``ok`` manifest records, in array order).
            ignore_run: Leave out entries recorded by this run id (a rerun of that run).
        """
        self._check_open()
        entries = [e for e in self._state.selected if ignore_run is None or e.run_id != ignore_run]
        matched, renamed, changed, absent = _match(entries, records)
        return PoolMatch(
            indices=np.asarray(sorted(matched), dtype=np.int64),
            renamed=tuple(renamed),
            changed=tuple(changed),
            absent=tuple(absent),
        )

    def selected(
        self, records: Sequence[KeyedSample], *, ignore_run: str | None = None
    ) -> NDArray[np.int64]:
        """``(k,)`` sorted indices of ``records`` already selected: ``preselected`` for select."""
        return self.match(records, ignore_run=ignore_run).indices

    def record_selection(
        self,
        records: Sequence[KeyedSample],
        indices: Sequence[int] | NDArray[np.integer[Any]],
        run: RunInfo,
    ) -> RunEntry:
        """Add ``records[indices]`` to the pool as selected by ``run``; atomic.

        Entries that follow renamed files take the new names; entries whose files changed
        content are dropped; entries of a run id recorded before are replaced. Indices of
        samples the pool already holds are accepted and not counted again.

        Args:
            records: The same records the selection indexed.
            indices: The run's new picks (``SelectionResult.indices``).
            run: The run's id and folders.

        Returns:
            The history row written.

        Raises:
            DataError: an index is out of range, or a picked record has no ``pixel_hash``.
        """
        self._check_open(write=True)
        if not run.run_id:
            raise ValueError("RunInfo.run_id must not be empty")
        picks = np.asarray(indices, dtype=np.int64).reshape(-1)
        if picks.size and (picks.min() < 0 or picks.max() >= len(records)):
            raise DataError(
                f"selection indices must lie in [0, {len(records)}), got "
                f"[{picks.min()}, {picks.max()}]"
            )
        others = [e for e in self._state.selected if e.run_id != run.run_id]
        # Absent entries (file not in this run) are kept as they are.
        matched, renamed, changed, _absent = _match(others, records)
        changed_set = set(changed)
        # Keep the pool's order: surviving entries in place (renamed ones under their new
        # name), then this run's picks.
        new_name = {id(entry): records[i].filename for i, entry in matched.items()}
        kept: list[PoolSample] = []
        for entry in others:
            if id(entry) in new_name:
                kept.append(replace(entry, filename=new_name[id(entry)]))
            elif entry.filename not in changed_set:
                kept.append(entry)
        added: list[PoolSample] = []
        seen: set[int] = set()
        for i in picks.tolist():
            if i in matched or i in seen:
                continue
            seen.add(i)
            record = records[i]
            if record.pixel_hash is None:
                raise DataError(
                    f"cannot record {record.filename!r} in datapool {self.name!r}: it has no "
                    "pixel_hash (only checked samples, manifest status 'ok', can be recorded)"
                )
            added.append(PoolSample(record.filename, record.pixel_hash, run.run_id))
        row = RunEntry(
            run_id=run.run_id,
            time=_now(),
            input_dir=run.input_dir,
            output_dir=run.output_dir,
            n_samples=len(records),
            n_preselected=len(matched),
            n_selected=len(added),
            n_selected_total=len(kept) + len(added),
            n_changed=len(changed),
            n_renamed=len(renamed),
        )
        state = replace(
            self._state,
            updated_at=row.time,
            generation=self._state.generation + 1,
            selected=(*kept, *added),
            runs=(*(r for r in self._state.runs if r.run_id != run.run_id), row),
        )
        self._commit(state, [])
        return row

    # ----------------------------------------------------------------- embedding cache

    def cached_embeddings(
        self, records: Sequence[KeyedSample], model_key: str
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Cached embeddings of ``records`` under ``model_key``.

        Returns:
            ``rows``: ``(k,)`` ascending indices of the records found, and ``embeddings``:
            ``(k, D)`` float32, row ``j`` belonging to ``records[rows[j]]``. With nothing
            cached for ``model_key`` the embeddings have shape ``(0, 0)``.

        Raises:
            DataError: a chunk file is missing or does not match the state (names it).
        """
        self._check_open()
        model = self._state.models.get(model_key)
        if model is None:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        index = self._hash_index(model_key, model)
        found_rows: list[int] = []
        where: list[tuple[int, int]] = []
        for i, record in enumerate(records):
            if record.pixel_hash is not None:
                hit = index.get(record.pixel_hash)
                if hit is not None:
                    found_rows.append(i)
                    where.append(hit)
        out = np.empty((len(found_rows), model.dim), dtype=np.float32)
        if where:
            located = np.asarray(where, dtype=np.int64)
            for c in np.unique(located[:, 0]).tolist():
                mask = located[:, 0] == c
                array = self._load_chunk(model_key, model.chunks[c], model.dim)
                out[mask] = array[located[mask, 1]]
        return np.asarray(found_rows, dtype=np.int64), out

    def add_embeddings(
        self, records: Sequence[KeyedSample], embeddings: ArrayLike, model_key: str
    ) -> int:
        """Cache ``(N, D)`` embeddings of ``records`` under ``model_key``; atomic.

        Records without a ``pixel_hash`` are skipped (they cannot be looked up); for a hash
        given twice the last row wins. Values are stored as float32.

        Returns:
            The number of rows written.

        Raises:
            DataError: shapes disagree, a value is not finite, or ``D`` differs from what the
                pool holds for ``model_key``.
        """
        self._check_open(write=True)
        if not model_key:
            raise ValueError("model_key must not be empty (see model_fingerprint)")
        array = np.asarray(embeddings)
        if array.ndim != 2 or array.shape[0] != len(records):
            raise DataError(
                f"embeddings must have shape ({len(records)}, D), one row per record, "
                f"got {array.shape}"
            )
        if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
            raise DataError("embeddings must be finite floating-point values")
        dim = int(array.shape[1])
        model = self._state.models.get(model_key)
        if model is not None and model.dim != dim:
            raise DataError(
                f"datapool {self.name!r} holds {model.dim}-dimensional embeddings for model key "
                f"{model_key!r}, got {dim}; a model key must identify one model"
            )
        last: dict[str, int] = {}
        for i, record in enumerate(records):
            if record.pixel_hash is not None:
                last.pop(record.pixel_hash, None)  # re-insert so order follows the last row
                last[record.pixel_hash] = i
        if not last:
            return 0
        rows = np.fromiter(last.values(), dtype=np.int64, count=len(last))
        hashes = list(last)
        filenames = [records[i].filename for i in rows.tolist()]
        generation = self._state.generation + 1
        chunk = _Chunk(f"{generation:06d}-{uuid.uuid4().hex[:8]}", len(hashes))
        written = self._write_chunk(
            model_key, chunk.id, array[rows].astype(np.float32), hashes, filenames
        )
        try:
            chunks = (*(model.chunks if model is not None else ()), chunk)
            if len(chunks) > MAX_CHUNKS:
                merged, merged_files = self._merge_chunks(model_key, chunks, dim, generation)
                written += merged_files
                chunks = (merged,)
            models = {k: v for k, v in self._state.models.items() if k != model_key}
            models[model_key] = _ModelCache(dim=dim, added_at=_now(), chunks=chunks)
            while len(models) > MAX_MODELS:
                del models[next(iter(models))]
            state = replace(self._state, updated_at=_now(), generation=generation, models=models)
        except BaseException:
            _remove_quietly(written)
            raise
        self._commit(state, written)
        return len(hashes)

    def _hash_index(self, model_key: str, model: _ModelCache) -> dict[str, tuple[int, int]]:
        """pixel_hash -> (chunk position, row); later chunks win. Cached per chunk list."""
        ids = tuple(c.id for c in model.chunks)
        cached = self._index.get(model_key)
        if cached is not None and cached[0] == ids:
            return cached[1]
        index: dict[str, tuple[int, int]] = {}
        for c, chunk in enumerate(model.chunks):
            hashes, _ = self._load_keys(model_key, chunk)
            for row, h in enumerate(hashes):
                index[h] = (c, row)
        self._index[model_key] = (ids, index)
        return index

    def _model_dir(self, model_key: str) -> Path:
        return self._path / EMBEDDINGS_DIR / _digest(model_key)

    def _load_keys(self, model_key: str, chunk: _Chunk) -> tuple[list[str], list[str]]:
        path = self._model_dir(model_key) / f"{chunk.id}.keys.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise DataError(f"datapool {self.name!r}: chunk key file {path} is missing") from exc
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc.msg})") from exc
        hashes = data.get("pixel_hash") if isinstance(data, dict) else None
        names = data.get("filename") if isinstance(data, dict) else None
        if (
            not isinstance(hashes, list)
            or not isinstance(names, list)
            or len(hashes) != chunk.rows
            or len(names) != chunk.rows
        ):
            raise DataError(
                f"{path}: expected {{'pixel_hash': [...], 'filename': [...]}} with "
                f"{chunk.rows} entries each, as datapool.json records"
            )
        return [str(h) for h in hashes], [str(n) for n in names]

    def _load_chunk(self, model_key: str, chunk: _Chunk, dim: int) -> NDArray[np.float32]:
        path = self._model_dir(model_key) / f"{chunk.id}.npy"
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError as exc:
            raise DataError(f"datapool {self.name!r}: embedding chunk {path} is missing") from exc
        except ValueError as exc:
            raise DataError(f"{path}: not a readable .npy array ({exc})") from exc
        if array.shape != (chunk.rows, dim) or array.dtype != np.float32:
            raise DataError(
                f"{path}: holds {array.dtype} {array.shape}, datapool.json expects float32 "
                f"({chunk.rows}, {dim})"
            )
        result: NDArray[np.float32] = array
        return result

    def _write_chunk(
        self,
        model_key: str,
        chunk_id: str,
        embeddings: NDArray[np.float32],
        hashes: list[str],
        filenames: list[str],
    ) -> list[Path]:
        folder = self._model_dir(model_key)
        array_path = folder / f"{chunk_id}.npy"
        keys_path = folder / f"{chunk_id}.keys.json"
        written = [array_path, keys_path]
        try:
            with atomic_open_bytes(array_path) as handle:
                np.save(handle, np.ascontiguousarray(embeddings, dtype=np.float32))
            atomic_write_text(
                keys_path, json.dumps({"pixel_hash": hashes, "filename": filenames}) + "\n"
            )
        except BaseException:
            _remove_quietly(written)
            raise
        return written

    def _merge_chunks(
        self, model_key: str, chunks: Sequence[_Chunk], dim: int, generation: int
    ) -> tuple[_Chunk, list[Path]]:
        """One chunk holding the latest row of every hash of ``chunks`` (memory: the result)."""
        latest: dict[str, tuple[int, int, str]] = {}
        for c, chunk in enumerate(chunks):
            hashes, names = self._load_keys(model_key, chunk)
            for row, (h, n) in enumerate(zip(hashes, names, strict=True)):
                latest.pop(h, None)
                latest[h] = (c, row, n)
        located = np.asarray([(c, r) for c, r, _ in latest.values()], dtype=np.int64)
        merged = np.empty((len(latest), dim), dtype=np.float32)
        for c in np.unique(located[:, 0]).tolist():
            mask = located[:, 0] == c
            merged[mask] = self._load_chunk(model_key, chunks[c], dim)[located[mask, 1]]
        chunk = _Chunk(f"{generation:06d}-{uuid.uuid4().hex[:8]}", len(latest))
        files = self._write_chunk(
            model_key, chunk.id, merged, list(latest), [n for _, _, n in latest.values()]
        )
        return chunk, files

    # ----------------------------------------------------------------- manifest cache

    def _manifest_path(self, input_dir: str | os.PathLike[str]) -> Path:
        resolved = str(Path(input_dir).expanduser().resolve())
        return self._path / MANIFESTS_DIR / f"{_digest(resolved)}.jsonl"

    def previous_manifest(self, input_dir: str | os.PathLike[str]) -> Manifest | None:
        """The manifest :meth:`save_manifest` kept for ``input_dir``, or None.

        Pass it as ``build_manifest(previous=...)`` so unchanged files are not decoded again.
        An unreadable cached manifest is reported with a warning and ignored (the check then
        redoes the work).
        """
        self._check_open()
        path = self._manifest_path(input_dir)
        if not path.is_file():
            return None
        try:
            return read_manifest(path)
        except DataError as exc:
            warnings.warn(
                f"datapool {self.name!r}: ignoring unreadable cached manifest: {exc}",
                stacklevel=2,
            )
            return None

    def save_manifest(
        self, input_dir: str | os.PathLike[str], records: Iterable[SampleRecord]
    ) -> None:
        """Keep the full manifest of a scan of ``input_dir`` (all records, any status)."""
        self._check_open(write=True)
        write_manifest(self._manifest_path(input_dir), records)

    # ----------------------------------------------------------------- commit

    def _commit(self, state: _State, written: list[Path]) -> None:
        """Make ``state`` current: state file first, in-memory state only after it succeeded."""
        try:
            atomic_write_text(self._path / STATE_FILE, _state_to_json(state))
        except BaseException:
            _remove_quietly(written)
            raise
        self._state = state
        self._collect_garbage()

    def _collect_garbage(self) -> None:
        """Delete files the state does not reference (left by crashes, or merged away).

        Only called with the exclusive lock held, so no other process can be writing them.
        """
        for folder in (self._path, self._path / MANIFESTS_DIR):
            if folder.is_dir():
                # temporary files of atomic writes a killed process never renamed
                _remove_quietly(p for p in folder.glob(".*.tmp*") if p.is_file())
        root = self._path / EMBEDDINGS_DIR
        if not root.is_dir():
            return
        keep: set[Path] = set()
        for key, model in self._state.models.items():
            folder = self._model_dir(key)
            for chunk in model.chunks:
                keep.add(folder / f"{chunk.id}.npy")
                keep.add(folder / f"{chunk.id}.keys.json")
        for folder in root.iterdir():
            for path in folder.iterdir() if folder.is_dir() else [folder]:
                if path not in keep:
                    _remove_quietly([path])
            if folder.is_dir() and not any(folder.iterdir()):
                _remove_quietly([folder])


# --------------------------------------------------------------------------- helpers


def _remove_quietly(paths: Iterable[Path]) -> None:
    """Best-effort cleanup of files nothing references; a failure is only worth a warning."""
    for path in paths:
        try:
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink(missing_ok=True)
        except OSError as exc:
            warnings.warn(f"could not remove {path}: {exc}", stacklevel=3)


def _lock(path: Path, name: str, *, exclusive: bool) -> int:
    """Open and flock ``path`` without waiting; write the holder's identity when exclusive."""
    fd = os.open(path, (os.O_RDWR if exclusive else os.O_RDONLY) | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _describe_holder(fd)
        os.close(fd)
        raise DatapoolBusyError(
            f"datapool {name!r} ({path.parent}) is in use by another run{holder}; wait for it "
            "to finish or use another datapool name"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    if exclusive:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
    return fd


def _describe_holder(fd: int) -> str:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return ""  # only decorates the message; the lock itself is what matters
    if not isinstance(data, dict) or "pid" not in data:
        return ""  # a reader (shared lock) holds it, and readers do not write their identity
    return f" (pid {data.get('pid')} on {data.get('host')}, since {data.get('since')})"
