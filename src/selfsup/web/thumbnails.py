"""Thumbnails and previews of samples: JPEG files made once, then served from a cache folder.

A thumbnail is an RGB JPEG (quality 85) no larger than ``size x size`` with the sample's
aspect ratio, EXIF orientation applied; a preview is the same at a larger size. Images are
decoded with PIL (``Image.draft`` lets the JPEG decoder scale down by up to 8 while decoding,
which makes large photos several times cheaper); video frames with PyAV.

Cache layout and keys
    ``cache_dir/<size>/<xx>/<key>.jpg`` where ``key`` hashes ``(source, frame_index,
    file_size, mtime_ns, size)`` and a format version. For a local file, size and mtime are
    read from the file itself, so an edited file gets a new thumbnail; for a remote one the
    manifest's values are used. Files are written atomically and never modified, so a
    reader never sees half a JPEG.

Concurrency
    Requests run in many threads. Work is serialised per image key, and per video file for
    frames, by a fixed set of striped locks; a second request for the same thumbnail waits
    and then finds the file made by the first. Other processes sharing the folder at worst
    make the same file twice (the atomic rename keeps it whole).

Video frames
    Frame ``i`` is the ``i``-th frame in presentation order, the numbering of the manifest
    (:mod:`selfsup.curation.video`). The frame timestamps are listed once per video by
    demuxing (no decoding); frames are then decoded by the dataset's
    :class:`selfsup.data._video.VideoFrameReader` (seek to the keyframe before the frame and
    decode forward, or, for containers without a frame index or with unreliable timestamps,
    decode from the start and count). Thumbnails of the frames from that keyframe on (at most
    ``_BEHIND``), and of the next :data:`READ_AHEAD` frames, are written as well: a grid asks
    for consecutive frames, and this turns a quadratic number of decodes per group of
    pictures into a linear one. A remote video (no local path) is copied into a temporary
    file first.

Failures
    An unreadable, corrupt or oversized source raises :class:`ThumbnailError` naming the
    file; the routes serve a placeholder. Decode failures are remembered (per key, in
    memory) so that a broken file is not decoded again on every request.

Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, Final

import av
import numpy as np
from PIL import Image, ImageOps

from selfsup.curation.checks import DEFAULT_MAX_IMAGE_PIXELS
from selfsup.data._video import FrameTable, VideoFrameReader, build_frame_table
from selfsup.errors import DataError
from selfsup.utils.atomic import atomic_write_bytes
from selfsup.web.outputs import Sample
from selfsup.web.sources import SourceReader

__all__ = ["READ_AHEAD", "ThumbnailCache", "ThumbnailError"]

JPEG_QUALITY: Final = 85
#: Frames after a requested one whose thumbnails are made in the same decode pass.
READ_AHEAD: Final = 32
#: Most decoded frames before a requested one that get a thumbnail on the way.
_BEHIND: Final = 300
_CACHE_VERSION: Final = 1
_LOCK_STRIPES: Final = 64
_REMEMBERED_FAILURES: Final = 4096
_FRAME_TABLES: Final = 16

_VIDEO_ERRORS: Final = (av.FFmpegError, OSError, ValueError, EOFError)


class ThumbnailError(Exception):
    """A thumbnail cannot be made; the message names the file and why."""


_Identity = tuple[str, int, int]  # (source, file size, mtime_ns) of the file read


class ThumbnailCache:
    """JPEG thumbnails (``size`` px) and previews of samples, cached in ``cache_dir``.

    Args:
        cache_dir: Folder of the cached files (created on first use).
        size: Longest side of a thumbnail in pixels.
        max_image_pixels: Images with more pixels are refused (decompression-bomb guard; the
            corruptness check's default); ``None`` disables the guard.
    """

    def __init__(
        self,
        cache_dir: Path,
        size: int = 192,
        *,
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        if size < 1:
            raise ValueError(f"thumbnail size must be >= 1 pixel, got {size}")
        self.cache_dir = Path(cache_dir)
        self.size = size
        self.max_image_pixels = max_image_pixels
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        self._guard = threading.Lock()
        self._failures: OrderedDict[str, str] = OrderedDict()
        self._tables: OrderedDict[_Identity, FrameTable] = OrderedDict()

    # ----------------------------------------------------------------- public

    def thumbnail(self, sample: Sample, reader: SourceReader) -> Path:
        """The cached thumbnail of ``sample`` (made now if missing).

        Raises:
            ThumbnailError: the source is missing, unreadable, corrupt or too large.
        """
        return self._get(sample, reader, self.size, batch=True)

    def preview(self, sample: Sample, reader: SourceReader, size: int = 768) -> Path:
        """A larger cached image of ``sample`` (``size`` px); see :meth:`thumbnail`."""
        if size < 1:
            raise ValueError(f"preview size must be >= 1 pixel, got {size}")
        return self._get(sample, reader, size, batch=False)

    # ----------------------------------------------------------------- internals

    def _path(self, identity: _Identity, frame_index: int | None, size: int) -> Path:
        text = json.dumps(
            [_CACHE_VERSION, identity[0], frame_index, identity[1], identity[2], size]
        )
        key = hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
        return self.cache_dir / str(size) / key[:2] / f"{key}.jpg"

    def _lock(self, key: Any) -> threading.Lock:
        digest = hashlib.blake2b(repr(key).encode("utf-8"), digest_size=4).digest()
        return self._locks[int.from_bytes(digest, "little") % _LOCK_STRIPES]

    def _get(self, sample: Sample, reader: SourceReader, size: int, batch: bool) -> Path:
        name = _describe(sample)
        try:
            local = reader.local_path(sample.source)
            if local is not None:
                st = os.stat(local)
                identity: _Identity = (sample.source, st.st_size, st.st_mtime_ns)
            else:
                identity = (sample.source, sample.file_size or -1, sample.mtime_ns or -1)
        except OSError as exc:
            raise ThumbnailError(f"cannot make a thumbnail of {name}: {exc}") from exc
        target = self._path(identity, sample.frame_index, size)
        if target.is_file():
            return target
        video = sample.frame_index is not None
        with self._lock(identity if video else (identity, size)):
            if target.is_file():  # made by the request we waited for
                return target
            failure = self._remembered(target.name)
            if failure is not None:
                raise ThumbnailError(failure)
            try:
                if sample.frame_index is None:
                    source: Path | bytes = (
                        local if local is not None else self._read(sample, reader)
                    )
                    data = _image_jpeg(source, size, self.max_image_pixels, name)
                else:
                    data = self._frame_jpeg(
                        sample, reader, local, identity, size, batch=batch, name=name
                    )
            except ThumbnailError as exc:
                self._remember(target.name, str(exc))
                raise
            atomic_write_bytes(target, data)
        return target

    @staticmethod
    def _read(sample: Sample, reader: SourceReader) -> bytes:
        try:
            return reader.read_bytes(sample.source)
        except OSError as exc:
            raise ThumbnailError(f"cannot make a thumbnail of {_describe(sample)}: {exc}") from exc

    def _remembered(self, key: str) -> str | None:
        with self._guard:
            return self._failures.get(key)

    def _remember(self, key: str, message: str) -> None:
        with self._guard:
            self._failures[key] = message
            while len(self._failures) > _REMEMBERED_FAILURES:
                self._failures.popitem(last=False)

    def _frame_jpeg(
        self,
        sample: Sample,
        reader: SourceReader,
        local: Path | None,
        identity: _Identity,
        size: int,
        *,
        batch: bool,
        name: str,
    ) -> bytes:
        """JPEG of the sample's frame; in ``batch`` mode also caches nearby frames."""
        index = int(sample.frame_index or 0)

        def keep(j: int, image: Image.Image) -> None:
            if not batch or j == index or not index - _BEHIND <= j <= index + READ_AHEAD:
                return
            path = self._path(identity, j, size)
            if not path.is_file():
                atomic_write_bytes(path, _encode(_fit(image, size)))

        with self._local_copy(sample, reader, local) as path:
            try:
                image = self._decode_frame(str(path), identity, index, keep if batch else None)
            except ThumbnailError as exc:
                raise ThumbnailError(f"cannot make a thumbnail of {name}: {exc}") from None
            except _VIDEO_ERRORS as exc:
                raise ThumbnailError(
                    f"cannot make a thumbnail of {name}: {type(exc).__name__}: {exc}"
                ) from exc
        return _encode(_fit(image, size))

    def _local_copy(
        self, sample: Sample, reader: SourceReader, local: Path | None
    ) -> _TemporaryCopy:
        return _TemporaryCopy(
            local,
            None if local is not None else self._read(sample, reader),
            self.cache_dir / "tmp",
            PurePosixPath(sample.source).suffix,
        )

    def _table(self, path: str, identity: _Identity) -> FrameTable:
        with self._guard:
            table = self._tables.get(identity)
            if table is not None:
                self._tables.move_to_end(identity)
                return table
        table = _build_table(path)
        with self._guard:
            self._tables[identity] = table
            while len(self._tables) > _FRAME_TABLES:
                self._tables.popitem(last=False)
        return table

    def _decode_frame(
        self,
        path: str,
        identity: _Identity,
        index: int,
        keep: Callable[[int, Image.Image], None] | None,
    ) -> Image.Image:
        table = self._table(path, identity)
        n = len(table)
        if not 0 <= index < n:
            raise ThumbnailError(f"frame {index} requested, the video has {n} frames")
        if keep is None:
            first, last = index, index
        else:
            key = table.keyframe_at_or_before(int(table.pts[index]))
            start = 0 if key is None else int(np.searchsorted(table.pts, key))
            first, last = max(start, index - _BEHIND), min(index + READ_AHEAD, n - 1)
        return _read_frames(path, table, index, first, last, keep)


class _TemporaryCopy:
    """Context manager giving a local path: ``local`` itself, or ``data`` written to a
    temporary file (removed afterwards) for a remote video."""

    def __init__(self, local: Path | None, data: bytes | None, folder: Path, suffix: str) -> None:
        self._local = local
        self._data = data
        self._folder = folder
        self._suffix = suffix if suffix.isascii() and len(suffix) <= 16 else ""
        self._tmp: str | None = None

    def __enter__(self) -> Path:
        if self._local is not None:
            return self._local
        self._folder.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=".video-", suffix=self._suffix, dir=self._folder)
        with os.fdopen(fd, "wb") as handle:
            handle.write(self._data or b"")
        return Path(self._tmp)

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)


def _describe(sample: Sample) -> str:
    if sample.source == sample.filename:
        return repr(sample.filename)
    return f"{sample.filename!r} (frame {sample.frame_index} of {sample.source!r})"


# --------------------------------------------------------------------------- images


def _image_jpeg(source: Path | bytes, size: int, max_pixels: int | None, name: str) -> bytes:
    """Thumbnail JPEG of an image file (path or bytes)."""
    try:
        opened = Image.open(source if isinstance(source, Path) else io.BytesIO(source))
        with opened as img:
            if max_pixels is not None and img.width * img.height > max_pixels:
                raise ThumbnailError(
                    f"cannot make a thumbnail of {name}: {img.width}x{img.height} pixels is "
                    f"more than the limit of {max_pixels} (a possible decompression bomb)"
                )
            img.draft("RGB", (size, size))
            oriented = ImageOps.exif_transpose(img)
            fitted = _fit(oriented, size)
    except ThumbnailError:
        raise
    except Exception as exc:  # any decoder failure is a fact about the file
        raise ThumbnailError(
            f"cannot make a thumbnail of {name}: {type(exc).__name__}: {exc}"
        ) from exc
    return _encode(fitted)


def _fit(image: Image.Image, size: int) -> Image.Image:
    """RGB copy no larger than ``size x size``, aspect kept (never enlarged)."""
    rgb = _to_rgb(image)
    if rgb is image:
        rgb = image.copy()
    rgb.thumbnail((size, size), Image.Resampling.BICUBIC)
    return rgb


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB for JPEG: transparency on white, high-bit-depth gray scaled to its own range."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if mode in ("I", "F") or mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float64)
        finite = values[np.isfinite(values)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        scaled = (np.nan_to_num(values, nan=lo) - lo) / (hi - lo if hi > lo else 1.0)
        gray = np.clip(scaled * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    return image.convert("RGB")


def _encode(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


# --------------------------------------------------------------------------- video frames


def _build_table(path: str) -> FrameTable:
    """Frame timestamps by demuxing every packet (reads the file, decodes nothing): the
    frame list of the dataset and the manifest (:func:`selfsup.data._video.build_frame_table`)."""
    container = av.open(path, metadata_errors="ignore")
    with container:
        if not container.streams.video:
            raise ThumbnailError("the file holds no video stream")
        return build_frame_table(container, container.streams.video[0])


def _read_frames(
    path: str,
    table: FrameTable,
    index: int,
    first: int,
    last: int,
    keep: Callable[[int, Image.Image], None] | None,
) -> Image.Image:
    """Frame ``index`` of the video, decoding frames ``first .. last`` in order and handing
    every other one to ``keep``.

    :class:`selfsup.data._video.VideoFrameReader` does the decoding as for the dataset: it
    seeks to the keyframe of ``first`` and decodes on (in containers without a frame index,
    or when timestamps disagree with ``table``, it counts frames from the start), so the
    pass costs one decode per frame. A frame on the way that fails is skipped; only a
    failure of frame ``index`` itself is an error.
    """
    reader = VideoFrameReader(max_open=1)
    try:
        for j in range(first, index):
            try:
                image = reader.read(path, j, table)
            except DataError:
                break  # a broken frame on the way: go straight to the requested one
            if keep is not None:
                keep(j, image)
        try:
            found = reader.read(path, index, table)
        except DataError as exc:
            raise ThumbnailError(str(exc)) from exc
        for j in range(index + 1, last + 1):
            try:
                image = reader.read(path, j, table)
            except DataError:
                break  # a broken tail: the requested frame is made already
            if keep is not None:
                keep(j, image)
    finally:
        reader.close()
    return found
