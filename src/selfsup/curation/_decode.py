"""The decode pass over one file: corrupt reason, content hashes and metadata.

This module is what worker processes import, so it imports nothing heavy beyond PIL, numpy
and PyAV (of :mod:`selfsup.data` only the torch-free ``_image`` and ``_video`` modules): a
spawned worker starts in a fraction of a second. What a corrupt image is, is defined once,
in :mod:`selfsup.data._image` (shared with :class:`~selfsup.data.LightlyDataset`); the
hashes and metadata are documented in :mod:`selfsup.curation.checks`.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, replace
from typing import Any, Final

from PIL import Image

from selfsup.curation.manifest import CorruptReason, SampleRecord
from selfsup.curation.metadata import ImageMetadata, compute_image_metadata
from selfsup.curation.near_duplicates import perceptual_hashes
from selfsup.curation.quality import QualityScores, compute_quality_scores
from selfsup.curation.video import decode_video, video_frame_filename
from selfsup.data._image import (
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageProblem,
    decode_image,
    read_image_file,
)
from selfsup.utils.safe_open import open_regular

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "CheckOptions",
    "FileEntry",
    "canonical_pixels",
    "check_file",
    "file_hash",
    "pixel_hash",
]

_DIGEST_SIZE: Final = 16
_HEAD_BYTES: Final = 64

# Modes of 8-bit-per-channel images; they are hashed as RGB (or RGBA when the alpha is not
# fully opaque) so that e.g. a grayscale PNG and the same picture as a palette BMP are equal.
# Other modes (16-bit, float, CMYK, ...) are hashed as stored: converting them is lossy.
_EIGHT_BIT_MODES: Final = frozenset(
    {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX"}
)
_ALPHA_MODES: Final = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
# Modes without colour: their RGB conversion has R = G = B, so the saturation is 0.
_GRAY_MODES: Final = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"})


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A file found by the scan.

    Attributes:
        path: POSIX path relative to the input folder.
        size: Size in bytes (0 when ``error`` is set).
        mtime_ns: Modification time in nanoseconds.
        is_video: Decode as a video (every frame a sample) instead of as an image.
        error: Why the file is not checked (it could not be stat-ed, or the scan skipped
            it); the check reports it as corrupt with ``reason``.
        reason: The corrupt reason for ``error``; ``None`` means ``unreadable``.
    """

    path: str
    size: int
    mtime_ns: int
    is_video: bool = False
    error: str | None = None
    reason: CorruptReason | None = None


@dataclass(frozen=True, slots=True)
class CheckOptions:
    """Settings of the decode pass (picklable; sent to worker processes).

    Attributes:
        max_image_pixels: Images with more pixels are refused as ``too_large`` before their
            pixel data is decoded; ``None`` disables the guard.
    """

    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS


# --------------------------------------------------------------------------- hashing


def file_hash(data: bytes) -> str:
    """blake2b-128 hex digest of file bytes."""
    return hashlib.blake2b(data, digest_size=_DIGEST_SIZE).hexdigest()


def canonical_pixels(image: Image.Image) -> Image.Image:
    """The image in the mode its pixels are hashed in (see :mod:`selfsup.curation.checks`).

    8-bit modes become ``RGB``, or ``RGBA`` when an alpha channel (or palette transparency)
    is present and not fully opaque; other modes are returned as they are.
    """
    mode = image.mode
    if mode not in _EIGHT_BIT_MODES:
        return image
    has_alpha = mode in _ALPHA_MODES or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        if rgba.getchannel("A").getextrema() == (255, 255):
            return rgba.convert("RGB")
        return rgba
    return image if mode == "RGB" else image.convert("RGB")


def pixel_hash(image: Image.Image) -> str:
    """blake2b-128 hex digest of ``mode``, size and pixel bytes of :func:`canonical_pixels`."""
    return _hash_canonical(canonical_pixels(image))


def _hash_canonical(canonical: Image.Image) -> str:
    digest = hashlib.blake2b(digest_size=_DIGEST_SIZE)
    digest.update(f"{canonical.mode}|{canonical.width}x{canonical.height}|".encode())
    digest.update(canonical.tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- one file


def _os_message(exc: OSError) -> str:
    return exc.strerror or str(exc)


@functools.cache
def _extension_formats() -> dict[str, str]:
    return {ext: fmt for ext, fmt in Image.registered_extensions().items()}


def _extension_warning(path: str, decoded_format: str | None) -> str | None:
    suffix = os.path.splitext(path)[1].lower()
    expected = _extension_formats().get(suffix)
    if decoded_format is None or expected is None or expected == decoded_format:
        return None
    return f"the file is named {suffix} but its content is {decoded_format}"


@dataclass(frozen=True, slots=True)
class _Measured:
    pixel_hash: str
    metadata: ImageMetadata
    phash: str
    bhash: str
    quality: QualityScores


def _measure(image: Image.Image) -> _Measured:
    canonical = canonical_pixels(image)
    # The canonical RGB form is also the RGB image the metadata is computed on; convert
    # again only when it kept an alpha channel or a high-bit-depth mode.
    rgb = canonical if canonical.mode == "RGB" else image.convert("RGB")
    gray = image.mode in _GRAY_MODES
    metadata = compute_image_metadata(rgb, grayscale=gray)
    quality = compute_quality_scores(rgb, grayscale=gray)
    dct_hash, block_hash = perceptual_hashes(rgb)
    return _Measured(
        _hash_canonical(canonical), metadata, phash=dct_hash, bhash=block_hash, quality=quality
    )


def _measured_fields(measured: _Measured) -> dict[str, Any]:
    meta = measured.metadata
    return {
        "pixel_hash": measured.pixel_hash,
        "width": meta.width,
        "height": meta.height,
        "brightness": meta.brightness,
        "contrast": meta.contrast,
        "sharpness": meta.sharpness,
        "saturation": meta.saturation,
        "overexposure": measured.quality.overexposure,
        "blur": measured.quality.blur,
        "entropy": measured.quality.entropy,
        "channel_spread": measured.quality.channel_spread,
        "phash": measured.phash,
        "bhash": measured.bhash,
    }


def _base_fields(entry: FileEntry) -> dict[str, Any]:
    return {
        "id": -1,
        "filename": entry.path,
        "source": entry.path,
        "frame_index": None,
        "file_size": entry.size,
        "mtime_ns": entry.mtime_ns,
    }


def _corrupt_record(fields: dict[str, Any], reason: CorruptReason, detail: str) -> SampleRecord:
    # Records are built once from a dict: dataclasses.replace on a 20-field record costs
    # more than hashing a small image.
    return SampleRecord(**fields, status="corrupt", reason=reason, detail=detail)


def _corrupt(record: SampleRecord, reason: CorruptReason, detail: str) -> SampleRecord:
    return replace(record, status="corrupt", reason=reason, detail=detail)


def check_file(
    root: str | os.PathLike[str], entry: FileEntry, options: CheckOptions = CheckOptions()
) -> list[SampleRecord]:
    """Read and decode one file; its records (one for an image, one per frame of a video).

    Never raises for a bad file: every failure becomes a corrupt record with a reason and a
    detail message. Record ids are -1 (assigned later, in manifest order).
    """
    fields = _base_fields(entry)
    if entry.error is not None:
        return [_corrupt_record(fields, entry.reason or CorruptReason.UNREADABLE, entry.error)]
    path = os.path.join(os.fspath(root), entry.path)
    if entry.is_video:
        return _check_video(path, fields)
    data = read_image_file(path)
    if isinstance(data, ImageProblem):
        if data.reason == "unreadable":
            # read_image_file read nothing: the size stays the scan's.
            return [_corrupt_record(fields, CorruptReason.UNREADABLE, data.detail)]
        fields["file_size"] = 0
        return [_corrupt_record(fields, CorruptReason(data.reason), data.detail)]
    fields["file_size"] = len(data)
    fields["file_hash"] = file_hash(data)
    return [_check_image_bytes(data, fields, options)]


def _check_image_bytes(data: bytes, fields: dict[str, Any], options: CheckOptions) -> SampleRecord:
    decoded = decode_image(data, options.max_image_pixels, _measure)
    if decoded.format is not None:
        fields.update(format=decoded.format, width=decoded.width, height=decoded.height)
    if decoded.problem is not None or decoded.value is None:
        problem = decoded.problem or ImageProblem("decode_error", "no image was decoded")
        return _corrupt_record(fields, CorruptReason(problem.reason), problem.detail)
    notes = list(decoded.warnings)
    mismatch = _extension_warning(fields["source"], fields["format"])
    if mismatch is not None:
        notes.insert(0, mismatch)
    fields.update(_measured_fields(decoded.value))
    return SampleRecord(**fields, warning="; ".join(notes) if notes else None)


def _check_video(path: str, fields: dict[str, Any]) -> list[SampleRecord]:
    digest = hashlib.blake2b(digest_size=_DIGEST_SIZE)
    head = b""
    size = 0
    try:
        with open_regular(path) as handle:
            while chunk := handle.read(1 << 20):
                if not head:
                    head = chunk[:_HEAD_BYTES]
                size += len(chunk)
                digest.update(chunk)
    except OSError as exc:
        detail = f"cannot read: {_os_message(exc)}"
        return [_corrupt_record(fields, CorruptReason.UNREADABLE, detail)]
    fields["file_size"] = size
    if size == 0:
        return [_corrupt_record(fields, CorruptReason.EMPTY, "the file has 0 bytes")]
    fields["file_hash"] = digest.hexdigest()
    try:
        outcome = decode_video(path, head, _measure)
    except Exception as exc:  # noqa: BLE001  # any decoder error is a finding about the file
        detail = f"{type(exc).__name__}: {exc}"
        return [_corrupt_record(fields, CorruptReason.DECODE_ERROR, detail)]
    fields["format"] = outcome.codec
    record = SampleRecord(**fields)
    records: list[SampleRecord] = []
    if outcome.problem is not None:
        records.append(_corrupt(record, outcome.problem, outcome.problem_detail))
    n_frames = len(outcome.frames)
    for frame in outcome.frames:
        frame_record = replace(
            record,
            filename=video_frame_filename(record.source, frame.index, n_frames),
            frame_index=frame.index,
        )
        if frame.value is None:
            records.append(_corrupt(frame_record, CorruptReason.DECODE_ERROR, frame.detail))
        else:
            records.append(replace(frame_record, **_measured_fields(frame.value)))
    return records


# --------------------------------------------------------------------------- tasks


def _check_task(entry: FileEntry, root: str, options: CheckOptions) -> list[SampleRecord]:
    return check_file(root, entry, options)


def _crashed(entry: FileEntry, message: str) -> list[SampleRecord]:
    return [_corrupt_record(_base_fields(entry), CorruptReason.WORKER_CRASHED, message)]


def _timed_out(entry: FileEntry, message: str) -> list[SampleRecord]:
    return [_corrupt_record(_base_fields(entry), CorruptReason.TIMEOUT, message)]
