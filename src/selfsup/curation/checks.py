"""Scan, corruptness check, content hashes, metadata and exact duplicates: one decode pass.

The first steps of a curation run, as functions over a folder and a list of records::

    entries = scan_files(root, relevant=patterns)          # list + stat, no decoding
    result = check_files(root, entries, previous=manifest, num_workers=2)
    records = mark_exact_duplicates(result.records)       # pure
    raise_if_all_corrupt(records, root)

or all of it with :func:`build_manifest`. Every file is read once and decoded once; that one
pass gives its corrupt reason (or none), both content hashes and the metadata.

What "corrupt" means (reason codes, :class:`~selfsup.curation.manifest.CorruptReason`):
zero bytes (``empty``); cannot be stat-ed, opened or read (``unreadable``); content that is
no image PIL can identify, e.g. a text file named ``.png`` (``unknown_format``); the file
ends before the pixel data does (``truncated``: PIL raises on ``load()`` with
``LOAD_TRUNCATED_IMAGES`` forced off, or the file starts with an image signature but is too
short for its header); any other decoder error (``decode_error``); more pixels than
``max_image_pixels`` (``too_large``: a decompression-bomb guard); the checking process died
(``worker_crashed``). Videos: see :mod:`selfsup.curation.video`.

A file whose content does not match its extension (a PNG named ``.jpg``) decodes, so it is
*not* corrupt: datasets open files by content, not by name. The record's ``warning`` says
so, and the report can list it.

What "identical" means for exact duplicates
    Two samples are exact duplicates when their decoded pixels are identical: same canonical
    mode, same size, same bytes (``pixel_hash``). The same picture saved as PNG and as BMP,
    or with different EXIF or PNG text chunks, is one duplicate group, because every later
    step (embedding, training, labeling) sees only the pixels. Files with identical bytes
    always have identical pixels, so the file-bytes hash (``file_hash``, also recorded) finds
    a subset of these groups; :func:`mark_exact_duplicates` can use it with ``by="bytes"``.
    Video frames take part like images: identical frames (a static scene, a frozen stream)
    are duplicates of the first of them.
    Both are blake2b with a 128-bit digest, with a collision probability that is negligible
    for any data set size. Hashing is a small part of the pass (about 15 us of ~400 us for a
    12 kB PNG); blake2b is fast everywhere in software (measured here: 877 MB/s, MD5 714 MB/s)
    although SHA-256 is faster on CPUs with SHA extensions (1690 MB/s on this machine).

Reuse across runs
    With ``previous`` records, a file whose size and modification time (nanoseconds) are
    unchanged and that was not corrupt keeps its records without being read again (the
    quick check make and rsync use). Records from a manifest written by another
    :data:`~selfsup.curation.manifest.CHECK_VERSION` are never reused.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from selfsup.config.worker_config import DEFAULT_FILE_TIMEOUT_S
from selfsup.curation._decode import (
    DEFAULT_MAX_IMAGE_PIXELS,
    CheckOptions,
    FileEntry,
    _check_task,
    _crashed,
    _timed_out,
    canonical_pixels,
    check_file,
    file_hash,
    pixel_hash,
)
from selfsup.curation._pool import map_isolating_crashes
from selfsup.curation.manifest import (
    CHECK_VERSION,
    CorruptReason,
    Manifest,
    SampleRecord,
    assign_ids,
    count_by_reason,
)
from selfsup.curation.relevant import RelevantPattern, filter_relevant, read_relevant_filenames_file
from selfsup.errors import DataError
from selfsup.utils.cpus import resolve_num_workers
from selfsup.utils.names import display_name

logger = logging.getLogger(__name__)


# _lazy_files_note: selfsup.data.files is imported inside the functions that use it. Worker
# processes import the parent's main module, and a script importing this module at the top
# must not make every worker import torch; selfsup/data/__init__.py now loads its torch parts
# lazily, so this is a second line of defence.

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "CheckOptions",
    "CheckResult",
    "FileEntry",
    "build_manifest",
    "canonical_pixels",
    "check_file",
    "check_files",
    "duplicate_groups",
    "file_hash",
    "mark_exact_duplicates",
    "pixel_hash",
    "raise_if_all_corrupt",
    "resolve_num_workers",
    "scan_files",
]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Records of a check (manifest order, ids assigned) and what the check did.

    Attributes:
        records: One record per sample.
        n_files: Files checked (decoded or reused).
        n_decoded: Files read and decoded in this call.
        n_reused: Files whose records were reused from ``previous``.
        seconds: Wall-clock time of the check.
        classes: Class names of the input folder in target order, from the scan's full
            listing (before a relevant-filenames filter), as
            :attr:`selfsup.data.LightlyDataset.classes` gives them; filled by
            :func:`build_manifest` so that later steps need not list the folder again
            (:class:`selfsup.data.ManifestDataset`).
        n_not_relevant: Sample files of the folder that the relevant filenames left out
            (never opened, so not in ``records`` nor ``n_files``); filled by
            :func:`build_manifest`.
    """

    records: list[SampleRecord]
    n_files: int
    n_decoded: int
    n_reused: int
    seconds: float
    classes: tuple[str, ...] = ()
    n_not_relevant: int = 0


# --------------------------------------------------------------------------- scan


def scan_files(
    root: str | os.PathLike[str],
    *,
    relevant: Sequence[str | RelevantPattern] | None = None,
    videos: bool = True,
    allowed_roots: Sequence[str | os.PathLike[str]] = (),
    exclude: Sequence[str | os.PathLike[str]] = (),
) -> list[FileEntry]:
    """List the sample files below ``root`` (sorted), keep the relevant ones, stat them.

    Entries named like samples that are not regular files (or links to one inside
    ``allowed_roots``) are returned too, with ``error`` and ``reason`` set, so the check
    reports them as skipped without ever opening them
    (:func:`selfsup.data.files.scan_sample_files` has the kinds). Folders holding a selfsup
    run and the ``exclude`` folders are left out, and logged.

    Args:
        root: Input folder.
        relevant: Lines of a relevant-filenames file (see :mod:`selfsup.curation.relevant`);
            ``None`` keeps every file.
        videos: Whether video files are samples too.
        allowed_roots: Folders symbolic links may point into; empty: anywhere.
        exclude: Folders to leave out (e.g. the run's own output folder).

    Raises:
        FileNotFoundError, NotADirectoryError: ``root`` is missing or a file.
    """
    entries, _, _ = _scan(
        root, relevant=relevant, videos=videos, allowed_roots=allowed_roots, exclude=exclude
    )
    return entries


def _scan(
    root: str | os.PathLike[str],
    *,
    relevant: Sequence[str | RelevantPattern] | None,
    videos: bool,
    allowed_roots: Sequence[str | os.PathLike[str]],
    exclude: Sequence[str | os.PathLike[str]],
) -> tuple[list[FileEntry], tuple[str, ...], int]:
    """:func:`scan_files`, the folder's class names (see :attr:`CheckResult.classes`) and
    the number of sample files the relevant filenames left out."""
    from selfsup.data.files import (  # see _lazy_files_note
        find_classes,
        is_video_file,
        scan_sample_files,
    )

    base = Path(root)
    scan = scan_sample_files(base, videos=videos, allowed_roots=allowed_roots, exclude=exclude)
    for folder in scan.excluded:
        logger.warning(
            "not scanning %s: it is a selfsup run folder or the run's output folder",
            display_name(os.path.join(os.fspath(base), folder)),
        )
    for folder, reason in scan.unlisted:
        logger.warning(
            "cannot list %s (%s): its files are not part of this run",
            display_name(os.path.join(os.fspath(base), folder)),
            reason,
        )
    if scan.folder_links:
        logger.info(
            "not following %d link(s) to folders in %s (e.g. %s)",
            len(scan.folder_links),
            display_name(os.fspath(base)),
            display_name(scan.folder_links[0]),
        )
    names = scan.files
    # The classes LightlyDataset(root) finds: every listed sample file counts, relevant or
    # not, and links outside allowed_roots too (the dataset follows every link).
    classes = find_classes(
        [*names, *(s.path for s in scan.skipped if s.kind == "symlink_outside_roots")]
    )
    skipped = {s.path: s for s in scan.skipped}
    listed = len(names) + len(skipped)
    if relevant is not None:
        names = filter_relevant(names, relevant)
        skipped = {p: skipped[p] for p in filter_relevant(list(skipped), relevant)}
    not_relevant = listed - len(names) - len(skipped)
    for entry in skipped.values():
        logger.warning("skipping %s: %s (%s)", display_name(entry.path), entry.kind, entry.detail)
    entries: list[FileEntry] = [
        FileEntry(s.path, 0, 0, is_video_file(s.path), s.detail, CorruptReason(s.kind))
        for s in skipped.values()
    ]
    for name in names:
        try:
            st = os.stat(base / name)
        except OSError as exc:
            entries.append(
                FileEntry(name, 0, 0, is_video_file(name), f"cannot stat the file: {exc.strerror}")
            )
        else:
            entries.append(FileEntry(name, st.st_size, st.st_mtime_ns, is_video_file(name)))
    entries.sort(key=lambda e: e.path)
    return entries, tuple(classes), not_relevant


# --------------------------------------------------------------------------- many files


def _reusable(
    previous: Manifest | Sequence[SampleRecord] | None,
) -> dict[str, list[SampleRecord]]:
    if previous is None:
        return {}
    if isinstance(previous, Manifest):
        if previous.check_version != CHECK_VERSION:
            return {}
        records: Sequence[SampleRecord] = previous.records
    else:
        records = previous
    by_source: dict[str, list[SampleRecord]] = defaultdict(list)
    for record in records:
        by_source[record.source].append(record)
    return by_source


def _can_reuse(entry: FileEntry, old: list[SampleRecord], options: CheckOptions) -> bool:
    if entry.error is not None or not old:
        return False
    limit = options.max_image_pixels
    for record in old:
        if record.status == "corrupt" or record.file_size != entry.size:
            return False
        if record.mtime_ns != entry.mtime_ns:
            return False
        if limit is not None and (record.width or 0) * (record.height or 0) > limit:
            return False
    return True


def _check_in_thread(
    root: str | os.PathLike[str], entry: FileEntry, options: CheckOptions, timeout: float | None
) -> list[SampleRecord]:
    """:func:`check_file` in this process, bounded by ``timeout`` seconds when given.

    The check runs in a daemon thread; when it overruns, the thread is abandoned (a thread
    cannot be killed: it may go on reading a hung file in the background, but it holds up
    neither the run nor the interpreter's exit) and the file is reported as ``timeout``.
    Worker processes (``num_workers >= 1``) are killed instead.
    """
    if timeout is None:
        return check_file(root, entry, options)
    outcome: list[list[SampleRecord]] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(check_file(root, entry, options))
        except BaseException as exc:  # noqa: BLE001  # re-raised in the calling thread below
            failure.append(exc)

    thread = threading.Thread(target=target, name=f"check {entry.path!r}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        logger.warning(
            "checking %s took longer than %g s: reported as timeout, the check abandoned",
            display_name(entry.path),
            timeout,
        )
        return _timed_out(
            entry,
            f"reading and decoding took longer than {timeout:g} s; the check was abandoned",
        )
    if failure:
        raise failure[0]
    return outcome[0]


def check_files(
    root: str | os.PathLike[str],
    entries: Sequence[FileEntry],
    *,
    previous: Manifest | Sequence[SampleRecord] | None = None,
    num_workers: int = 0,
    chunksize: int | None = None,
    progress: bool = True,
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    file_timeout: float | None = DEFAULT_FILE_TIMEOUT_S,
) -> CheckResult:
    """Decode every file once: corrupt reasons, hashes and metadata of all samples.

    Args:
        root: Input folder the entries are relative to.
        entries: Files from :func:`scan_files`.
        previous: Records of an earlier scan (e.g. :func:`read_manifest`) to reuse for
            unchanged files.
        num_workers: Worker processes; 0 checks in this process, -1 uses all cores.
        chunksize: Files per task sent to a worker; default aims at ~8 tasks per worker,
            between 1 and 32 files.
        progress: Show a tqdm progress bar.
        max_image_pixels: Decompression-bomb guard (see :class:`CheckOptions`).
        file_timeout: Seconds reading and decoding one file may take; a file that takes
            longer is reported as corrupt with reason ``timeout`` and the run goes on: an
            alarm stops its check in the worker process (a worker stuck in C code is
            killed, see :mod:`selfsup.curation._pool`), or with ``num_workers=0`` the thread
            checking it is abandoned (:func:`_check_in_thread`). ``None`` or 0: no limit.

    Returns:
        All records (status ``ok`` or ``corrupt``; duplicates are marked separately by
        :func:`mark_exact_duplicates`) in manifest order with ids assigned.
    """
    start = time.perf_counter()
    options = CheckOptions(max_image_pixels=max_image_pixels)
    old = _reusable(previous)
    reused: list[SampleRecord] = []
    todo: list[FileEntry] = []
    n_reused = 0
    for entry in entries:
        previous_records = old.get(entry.path, [])
        if _can_reuse(entry, previous_records, options):
            n_reused += 1
            reused.extend(
                replace(r, id=-1, status="ok", reason=None, detail="", duplicate_of=None)
                for r in previous_records
            )
        else:
            todo.append(entry)
    workers = resolve_num_workers(num_workers)
    timeout = file_timeout or None
    # Entries the scan skipped are never opened: their records need no worker.
    todo_skipped = [e for e in todo if e.error is not None]
    todo = [e for e in todo if e.error is None]
    checked: list[list[SampleRecord]] = [check_file(root, e, options) for e in todo_skipped]
    with tqdm(total=len(todo), unit="file", desc="Checking files", disable=not progress) as bar:
        if workers == 0 or len(todo) <= 1:
            for entry in todo:
                checked.append(_check_in_thread(root, entry, options, timeout))
                bar.update(1)
        elif todo:
            size = chunksize or max(1, min(32, math.ceil(len(todo) / (workers * 8))))
            checked += map_isolating_crashes(
                functools.partial(_check_task, root=os.fspath(root), options=options),
                todo,
                num_workers=min(workers, math.ceil(len(todo) / size)),
                chunksize=size,
                on_crash=_crashed,
                on_done=bar.update,
                timeout=timeout,
                on_timeout=_timed_out,
            )
    records = reused + [record for group in checked for record in group]
    return CheckResult(
        records=assign_ids(records),
        n_files=len(entries),
        n_decoded=len(todo) + len(todo_skipped),
        n_reused=n_reused,
        seconds=time.perf_counter() - start,
    )


# --------------------------------------------------------------------------- duplicates


def mark_exact_duplicates(
    records: Sequence[SampleRecord], *, by: Literal["pixels", "bytes"] = "pixels"
) -> list[SampleRecord]:
    """Mark all but one sample of each group of identical samples as ``duplicate``.

    Pure: returns new records in the same order. Corrupt samples take no part. Within a
    group the sample whose filename sorts first is kept (so the choice does not depend on
    the order of ``records``); the others get ``status="duplicate"`` and ``duplicate_of``
    set to the kept filename. Earlier duplicate marks are cleared first, so marking is
    idempotent.

    Args:
        records: Records with hashes, e.g. ``check_files(...).records``.
        by: ``"pixels"`` (default) groups by decoded pixels (:func:`pixel_hash`);
            ``"bytes"`` by file bytes, and for video frames by (video bytes, frame index).
    """
    if by not in ("pixels", "bytes"):
        raise ValueError(f"by must be 'pixels' or 'bytes', got {by!r}")
    out = [
        replace(r, status="ok", duplicate_of=None) if r.status == "duplicate" else r
        for r in records
    ]
    groups: dict[tuple[str, int | None], list[int]] = defaultdict(list)
    for index, record in enumerate(out):
        if record.status != "ok":
            continue
        if by == "pixels":
            if record.pixel_hash is None:
                continue
            key: tuple[str, int | None] = (record.pixel_hash, None)
        else:
            if record.file_hash is None:
                continue
            key = (record.file_hash, record.frame_index)
        groups[key].append(index)
    for members in groups.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda i: (out[i].filename, out[i].id))
        kept = out[members[0]].filename
        for index in members[1:]:
            out[index] = replace(out[index], status="duplicate", duplicate_of=kept)
    return out


def duplicate_groups(records: Sequence[SampleRecord]) -> dict[str, list[str]]:
    """Kept filename -> filenames marked as its duplicates (for reports)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for record in records:
        if record.status == "duplicate" and record.duplicate_of is not None:
            groups[record.duplicate_of].append(record.filename)
    return dict(groups)


# --------------------------------------------------------------------------- the whole step


def raise_if_all_corrupt(records: Sequence[SampleRecord], root: str | os.PathLike[str]) -> None:
    """Stop a run that has no usable sample, with counts by reason and examples.

    Raises:
        DataError: ``records`` is empty, or every record is corrupt.
    """
    if not records:
        from selfsup.data.files import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS  # see _lazy_files_note

        raise DataError(
            f"no images or videos found in input folder {os.fspath(root)!r} (image extensions: "
            f"{', '.join(sorted(IMAGE_EXTENSIONS))}; video extensions: "
            f"{', '.join(sorted(VIDEO_EXTENSIONS))})"
        )
    if any(r.status != "corrupt" for r in records):
        return
    counts = ", ".join(f"{n} {reason}" for reason, n in count_by_reason(records).items())
    examples = "; ".join(f"{r.filename}: {r.detail}" for r in records[:3])
    raise DataError(
        f"all {len(records)} samples in input folder {os.fspath(root)!r} are corrupt "
        f"({counts}), nothing is left to process. Examples: {examples}"
    )


def build_manifest(
    root: str | os.PathLike[str],
    *,
    relevant_filenames_file: str | os.PathLike[str] | None = None,
    relevant: Sequence[str | RelevantPattern] | None = None,
    previous: Manifest | Sequence[SampleRecord] | None = None,
    remove_exact_duplicates: bool = True,
    duplicates_by: Literal["pixels", "bytes"] = "pixels",
    videos: bool = True,
    num_workers: int = 0,
    chunksize: int | None = None,
    progress: bool = True,
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    file_timeout: float | None = DEFAULT_FILE_TIMEOUT_S,
    allowed_roots: Sequence[str | os.PathLike[str]] = (),
    exclude: Sequence[str | os.PathLike[str]] = (),
) -> CheckResult:
    """Scan ``root``, check every file, mark exact duplicates: the records of a run.

    Args:
        root: Input folder.
        relevant_filenames_file: A relevant-filenames file restricting the run.
        relevant: The same as lines (alternative to ``relevant_filenames_file``).
        previous: Records of an earlier run to reuse for unchanged files.
        remove_exact_duplicates: Mark exact duplicates (else every decodable sample is ok).
        duplicates_by: What "identical" means, see :func:`mark_exact_duplicates`.
        videos: Treat video files as samples (their frames).
        num_workers, chunksize, progress, max_image_pixels, file_timeout: See
            :func:`check_files`.
        allowed_roots, exclude: See :func:`scan_files`.

    Raises:
        DataError: the relevant-filenames file is invalid or selects nothing, the folder
            holds no sample, or every sample is corrupt.
    """
    patterns: Sequence[str | RelevantPattern] | None = relevant
    if relevant_filenames_file is not None:
        if relevant is not None:
            raise ValueError("give relevant_filenames_file or relevant, not both")
        patterns = read_relevant_filenames_file(relevant_filenames_file)
    entries, classes, not_relevant = _scan(
        root, relevant=patterns, videos=videos, allowed_roots=allowed_roots, exclude=exclude
    )
    if not entries and patterns is not None:
        from selfsup.data.files import list_sample_files  # see _lazy_files_note

        total = len(list_sample_files(root, videos=videos))
        source = (
            os.fspath(relevant_filenames_file)
            if relevant_filenames_file is not None
            else "the relevant filenames"
        )
        raise DataError(
            f"{source} selects none of the {total} files in input folder {os.fspath(root)!r}; "
            "entries are paths relative to the input folder, e.g. 'image_1.png' or 'subdir/*'"
        )
    result = check_files(
        root,
        entries,
        previous=previous,
        num_workers=num_workers,
        chunksize=chunksize,
        progress=progress,
        max_image_pixels=max_image_pixels,
        file_timeout=file_timeout,
    )
    records = result.records
    if remove_exact_duplicates:
        records = mark_exact_duplicates(records, by=duplicates_by)
    raise_if_all_corrupt(records, root)
    return replace(result, records=records, classes=classes, n_not_relevant=not_relevant)
