"""The manifest: one typed record per sample, written once per run and read by every step.

A record holds what the first curation steps learn about a sample in one decode pass: where
it lives, its size and modification time, two content hashes, its width and height, the
computed metadata (:mod:`selfsup.curation.metadata`), and its status (``ok``, ``corrupt``
with a reason, or ``duplicate`` of a kept sample). Later steps (embed, select, report) read
the ``ok`` records and index their arrays by the record ``id``.

Samples and names
    An image file is one sample named by its POSIX path relative to the input folder. Every
    frame of a video is a sample named like lightly names frames,
    ``<video path without extension>-<frame index, zero-padded>-<extension>.png``; its
    ``source`` is the video's path and ``frame_index`` its position in display order.

Order and ids
    Records are ordered by ``(source, frame_index)``: sorted file paths as
    :func:`selfsup.data.files.list_sample_files` lists them, frames of a video in order.
    ``id`` is the position in that order, i.e. the row of the sample in per-sample arrays of
    the run; it is reassigned on every scan. The stable key across runs is ``filename``.

File format (``manifest.jsonl``)
    JSON lines, UTF-8. Names that are not valid UTF-8 (a file name is bytes on Linux) are
    written with ``\\udcXX`` escapes and read back exactly (:mod:`selfsup.utils.names`).
    The first line is a header
    ``{"format": "selfsup-manifest", "version": 1, "check_version": N}``; every further line
    is one record whose keys are the :class:`SampleRecord` field names. Readers ignore keys
    they do not know and fill missing optional keys with their defaults, so older manifests
    keep loading. Written atomically (:mod:`selfsup.utils.atomic`).

Filename lists (``filenames/corrupt_filenames.txt``, ``filenames/duplicate_filenames.txt``)
    One sample per line, columns separated by a TAB so that a plain ``cut -f1`` gives the
    lightly-style list of names: corrupt lines are ``filename<TAB>reason<TAB>detail``,
    duplicate lines ``filename<TAB>kept filename``. A backslash, TAB, CR or LF inside a name
    is written as ``\\\\``, ``\\t``, ``\\r``, ``\\n``; :func:`read_filename_table` undoes it.
    Bytes of a name that are not UTF-8 are written as they are (surrogateescape, see
    :mod:`selfsup.utils.names`).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Literal, get_args

from selfsup.errors import DataError
from selfsup.utils.atomic import atomic_open_text
from selfsup.utils.names import NAME_ERRORS, dumps_json

MANIFEST_FORMAT: Final = "selfsup-manifest"
MANIFEST_VERSION: Final = 1

#: Version of what the decode pass computes. Bump it when a hash or metadata definition
#: changes: records of a manifest with another version are never reused.
#: 3: records carry the quality scores (:mod:`selfsup.curation.quality`); 2 is the version
#: that adds ``phash`` (near duplicates); 4: ``overexposure`` counts clipped highlights,
#: records carry ``bhash``.
CHECK_VERSION: Final = 4

SampleStatus = Literal["ok", "corrupt", "duplicate"]
_STATUSES: Final[frozenset[str]] = frozenset(get_args(SampleStatus))


class CorruptReason(StrEnum):
    """Why a sample is corrupt. The value is what the filename list and report show."""

    EMPTY = "empty"
    """The file has zero bytes."""
    UNREADABLE = "unreadable"
    """The file cannot be stat-ed, opened or read (permission, broken link, I/O error)."""
    UNKNOWN_FORMAT = "unknown_format"
    """The content is no image PIL can identify, or no video container with a video stream."""
    TRUNCATED = "truncated"
    """The file ends before the image data (or, for a video, the container) is complete."""
    DECODE_ERROR = "decode_error"
    """The decoder failed on the data (damaged image, or a video frame that fails to decode)."""
    TOO_LARGE = "too_large"
    """More pixels than ``max_image_pixels``: refused as a possible decompression bomb."""
    NO_FRAMES = "no_frames"
    """A video container that opens but yields no decodable frame."""
    WORKER_CRASHED = "worker_crashed"
    """The process checking the file died (out of memory, crash in a codec)."""
    TIMEOUT = "timeout"
    """Reading and decoding the file took longer than the per-file time limit (the process
    checking it was stopped): a hung network file system, a pathological file."""
    VANISHED = "vanished"
    """The file was deleted (or became unreadable) after the check, while the run used it."""
    CHANGED = "changed"
    """The file's size or modification time changed after the check: what was checked is
    not what would be embedded."""
    # Entries named like samples that cannot be samples (selfsup.data.files.SKIP_KINDS);
    # they are never opened.
    FIFO = "not_a_regular_file:fifo"
    """A named pipe: opening it would block the run."""
    SOCKET = "not_a_regular_file:socket"
    """A Unix domain socket."""
    CHAR_DEVICE = "not_a_regular_file:char_device"
    """A character device (``/dev/zero`` linked in would never end)."""
    BLOCK_DEVICE = "not_a_regular_file:block_device"
    """A block device."""
    DIRECTORY = "not_a_regular_file:directory"
    """A link to a folder, named like an image or video (folder links are not followed)."""
    OTHER_FILE_TYPE = "not_a_regular_file:other"
    """Any other entry that is not a regular file, or one that cannot be stat-ed."""
    DANGLING_SYMLINK = "dangling_symlink"
    """A symbolic link whose target does not exist."""
    SYMLINK_LOOP = "symlink_loop"
    """A symbolic link that is part of a loop of links."""
    SYMLINK_OUTSIDE_ROOTS = "symlink_outside_roots"
    """A symbolic link whose resolved target lies outside every ``allowed_roots`` folder."""
    UNSUPPORTED_NAME = "unsupported_name"
    """A name holding a line break, which line-oriented outputs cannot store."""


@dataclass(frozen=True, slots=True)
class SampleRecord:
    """One sample (an image, or one frame of a video) and what the checks found out about it.

    Attributes:
        id: Row of the sample in the run's per-sample arrays (see module docstring).
        filename: Sample name: relative POSIX path of an image, or lightly's frame name.
        source: Relative POSIX path of the file on disk (the video for a frame).
        frame_index: Index of the frame in display order for a video frame; ``None`` for an
            image and for a record about a whole video (e.g. an unopenable one).
        file_size: Size of ``source`` in bytes.
        mtime_ns: Modification time of ``source`` in nanoseconds (``os.stat().st_mtime_ns``).
        file_hash: blake2b-128 hex digest of the bytes of ``source`` (the whole video for a
            frame); ``None`` when the file could not be read.
        pixel_hash: blake2b-128 hex digest of the decoded pixels in a canonical mode (see
            :func:`selfsup.curation.checks.pixel_hash`); defines exact duplicates.
        format: PIL format (``"PNG"``, ``"JPEG"``) or video codec (``"h264"``) as decoded.
        width, height: Size in pixels of the decoded image or frame.
        brightness, contrast, sharpness, saturation: see :mod:`selfsup.curation.metadata`.
        overexposure, blur, entropy, channel_spread: image-quality scores, see
            :mod:`selfsup.curation.quality`; ``None`` for a corrupt sample and in manifests
            of check versions before 3.
        status: ``"ok"``, ``"corrupt"`` or ``"duplicate"``.
        reason: Why a corrupt sample is corrupt; ``None`` otherwise.
        detail: Human-readable explanation for a corrupt sample (the decoder's message).
        duplicate_of: For a duplicate, the filename of the kept sample with identical pixels.
        warning: A problem that does not stop the sample from being used, e.g. a PNG file
            named ``.jpg``.
        phash: 64-bit perceptual (DCT) hash of the decoded pixels as 16 hex digits, for
            near duplicates (:mod:`selfsup.curation.near_duplicates`); ``None`` for a corrupt
            sample and in manifests of check version 1.
        bhash: 64-bit block hash of the same pixels as 16 hex digits, which confirms near
            duplicates a few bits past the ``phash`` distance (shifted copies); ``None`` for
            a corrupt sample and in manifests of check versions before 4.
    """

    id: int
    filename: str
    source: str
    frame_index: int | None
    file_size: int
    mtime_ns: int
    file_hash: str | None = None
    pixel_hash: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    brightness: float | None = None
    contrast: float | None = None
    sharpness: float | None = None
    saturation: float | None = None
    overexposure: float | None = None
    blur: float | None = None
    entropy: float | None = None
    channel_spread: float | None = None
    status: SampleStatus = "ok"
    reason: CorruptReason | None = None
    detail: str = ""
    duplicate_of: str | None = None
    warning: str | None = None
    phash: str | None = None
    bhash: str | None = None

    @property
    def is_ok(self) -> bool:
        """True for a sample later steps use (neither corrupt nor a duplicate)."""
        return self.status == "ok"

    def metadata(self) -> dict[str, float | int | None]:
        """The computed metadata by key (:data:`selfsup.curation.metadata.METADATA_KEYS`)."""
        return {
            "width": self.width,
            "height": self.height,
            "file_size": self.file_size,
            "brightness": self.brightness,
            "contrast": self.contrast,
            "sharpness": self.sharpness,
            "saturation": self.saturation,
        }

    def sort_key(self) -> tuple[str, int]:
        """Manifest order: by source path, then frame index (whole-file records first)."""
        return (self.source, -1 if self.frame_index is None else self.frame_index)


@dataclass(frozen=True, slots=True)
class Manifest:
    """Records of one scan together with the version of the checks that produced them."""

    records: tuple[SampleRecord, ...]
    check_version: int = CHECK_VERSION


def assign_ids(records: Iterable[SampleRecord]) -> list[SampleRecord]:
    """Records in manifest order with ``id`` set to their position (0..N-1)."""
    ordered = sorted(records, key=SampleRecord.sort_key)
    return [r if r.id == i else replace(r, id=i) for i, r in enumerate(ordered)]


def count_by_status(records: Iterable[SampleRecord]) -> dict[str, int]:
    """Number of records per status, every status present (possibly with 0)."""
    counts = Counter(r.status for r in records)
    return {status: counts.get(status, 0) for status in ("ok", "corrupt", "duplicate")}


def count_by_reason(records: Iterable[SampleRecord]) -> dict[str, int]:
    """Number of corrupt records per reason value, most frequent first."""
    counts = Counter(r.reason.value for r in records if r.reason is not None)
    return dict(counts.most_common())


# --------------------------------------------------------------------------- serialisation


def _record_to_json(record: SampleRecord) -> dict[str, Any]:
    data = asdict(record)
    data["reason"] = None if record.reason is None else record.reason.value
    return data


_FIELD_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in fields(SampleRecord))
_REQUIRED: Final[tuple[str, ...]] = (
    "id",
    "filename",
    "source",
    "frame_index",
    "file_size",
    "mtime_ns",
)
_INT_FIELDS: Final[frozenset[str]] = frozenset(
    {"id", "frame_index", "file_size", "mtime_ns", "width", "height"}
)
_FLOAT_FIELDS: Final[frozenset[str]] = frozenset(
    {
        "brightness",
        "contrast",
        "sharpness",
        "saturation",
        "overexposure",
        "blur",
        "entropy",
        "channel_spread",
    }
)
_STR_FIELDS: Final[frozenset[str]] = frozenset(
    {
        "filename",
        "source",
        "file_hash",
        "pixel_hash",
        "format",
        "detail",
        "duplicate_of",
        "warning",
        "phash",
        "bhash",
    }
)


def _record_from_json(data: Any, where: str) -> SampleRecord:
    if not isinstance(data, dict):
        raise DataError(f"{where}: expected a JSON object per record, got {type(data).__name__}")
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise DataError(f"{where}: record lacks the required key(s) {', '.join(missing)}")
    kwargs: dict[str, Any] = {}
    for name in _FIELD_NAMES:
        if name not in data:
            continue  # optional key absent (older writer): the dataclass default applies
        value = data[name]
        if value is None:
            if name in ("id", "filename", "source", "file_size", "mtime_ns", "status", "detail"):
                raise DataError(f"{where}: key {name!r} must not be null")
            kwargs[name] = None
        elif name in _INT_FIELDS:
            if not isinstance(value, int) or isinstance(value, bool):
                raise DataError(f"{where}: key {name!r} must be an integer, got {value!r}")
            kwargs[name] = value
        elif name in _FLOAT_FIELDS:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise DataError(f"{where}: key {name!r} must be a number, got {value!r}")
            kwargs[name] = float(value)
        elif name in _STR_FIELDS:
            if not isinstance(value, str):
                raise DataError(f"{where}: key {name!r} must be a string, got {value!r}")
            kwargs[name] = value
        elif name == "status":
            if value not in _STATUSES:
                raise DataError(
                    f"{where}: status {value!r} is not one of {', '.join(sorted(_STATUSES))}"
                )
            kwargs[name] = value
        elif name == "reason":
            try:
                kwargs[name] = CorruptReason(value)
            except ValueError:
                known = ", ".join(r.value for r in CorruptReason)
                raise DataError(f"{where}: reason {value!r} is not one of {known}") from None
    return SampleRecord(**kwargs)


def write_manifest(
    path: str | os.PathLike[str],
    records: Iterable[SampleRecord],
    *,
    check_version: int = CHECK_VERSION,
) -> None:
    """Write records as a JSON-lines manifest at ``path``, atomically."""
    header = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION}
    header["check_version"] = check_version
    with atomic_open_text(path) as handle:
        handle.write(json.dumps(header) + "\n")
        for record in records:
            handle.write(dumps_json(_record_to_json(record)) + "\n")


def _check_header(data: Any, where: str) -> int:
    """Validate the header line; return its check version (0 when absent)."""
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise DataError(
            f"{where}: not a selfsup manifest; the first line must be a header "
            f'{{"format": "{MANIFEST_FORMAT}", "version": {MANIFEST_VERSION}, ...}}'
        )
    version = data.get("version")
    if not isinstance(version, int) or version > MANIFEST_VERSION:
        raise DataError(
            f"{where}: manifest format version {version!r} is not supported; "
            f"this selfsup reads versions up to {MANIFEST_VERSION}"
        )
    raw_check = data.get("check_version", 0)
    return raw_check if isinstance(raw_check, int) else 0


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read a manifest written by :func:`write_manifest`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataError: the file is no selfsup manifest, has a newer format version, or a line is
            malformed (the message names the file and line).
    """
    source = str(path)
    records: list[SampleRecord] = []
    check_version: int | None = None
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            where = f"{source}:{number}"
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg})") from exc
            if check_version is None:
                check_version = _check_header(data, where)
            else:
                records.append(_record_from_json(data, where))
    if check_version is None:
        raise DataError(f"{source}: empty file, not a selfsup manifest")
    return Manifest(records=tuple(records), check_version=check_version)


# --------------------------------------------------------------------------- filename lists

_ESCAPES: Final = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPES: Final = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def _escape_field(text: str) -> str:
    if not any(ch in text for ch in _ESCAPES):
        return text
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def _unescape_field(text: str) -> str:
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in _UNESCAPES:
            out.append(_UNESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _write_table(path: str | os.PathLike[str], rows: Iterable[Sequence[str]]) -> int:
    count = 0
    with atomic_open_text(path, errors=NAME_ERRORS) as handle:
        for row in rows:
            handle.write("\t".join(_escape_field(cell) for cell in row) + "\n")
            count += 1
    return count


def write_corrupt_filenames(path: str | os.PathLike[str], records: Iterable[SampleRecord]) -> int:
    """Write ``filename<TAB>reason<TAB>detail`` for every corrupt record; returns the count."""
    rows = (
        (r.filename, r.reason.value if r.reason else "", " ".join(r.detail.split()))
        for r in records
        if r.status == "corrupt"
    )
    return _write_table(path, rows)


def write_duplicate_filenames(path: str | os.PathLike[str], records: Iterable[SampleRecord]) -> int:
    """Write ``filename<TAB>kept filename`` for every duplicate record; returns the count."""
    rows = ((r.filename, r.duplicate_of or "") for r in records if r.status == "duplicate")
    return _write_table(path, rows)


def read_filename_table(path: str | os.PathLike[str]) -> list[list[str]]:
    """Rows (lists of unescaped columns) of a filename list; blank lines are skipped."""
    with open(path, encoding="utf-8", errors=NAME_ERRORS, newline="") as handle:
        text = handle.read()
    return [
        [_unescape_field(cell) for cell in line.rstrip("\r").split("\t")]
        for line in text.split("\n")
        if line.strip("\r")
    ]


def read_filename_list(path: str | os.PathLike[str]) -> list[str]:
    """The first column (the sample names) of a filename list."""
    return [row[0] for row in read_filename_table(path)]


def default_manifest_path(output_dir: str | os.PathLike[str]) -> Path:
    """Where a run keeps its manifest: ``<output_dir>/data/manifest.jsonl``
    (:attr:`selfsup.runfolder.RunFolder.manifest`, which owns the path)."""
    # Imported here: selfsup.runfolder imports this module.
    from selfsup.runfolder import RunFolder

    return RunFolder(output_dir).manifest
