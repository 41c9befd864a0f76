"""Frame-accurate random access to video files with PyAV, without extracting frames.

A video with ``n`` frames contributes ``n`` samples to a dataset. Three pieces make that
cheap:

* :func:`probe_video` runs once per file when a dataset is built. It counts frames from
  the container metadata where that is exact (MP4/MOV store one sample-table entry per
  frame) and otherwise by *demuxing* packets, which reads the file but decodes nothing.
  It also decodes the first frame, so an undecodable file is rejected up front.
* :class:`FrameTable` holds the presentation timestamps of all frames (from demuxing,
  8 bytes a frame). It maps frame ``i`` to a timestamp to seek to.
* :class:`VideoFrameReader` keeps a few containers open per process and returns frame
  ``i`` by seeking to the keyframe at or before it and decoding forward; a request for a
  later frame of the same GOP continues decoding without seeking, so sequential reading
  costs one decode per frame.

Frame ``i`` is the ``i``-th frame in presentation order (sorted timestamps), which is
also the ``i``-th frame a plain sequential decode returns. Timestamp seeking is used only
for containers with a per-frame index (MP4/MOV, Matroska/WebM, AVI), and every decoded
timestamp is checked against the table. For other containers (MPEG program and transport
streams, ...), for streams with missing or repeated timestamps, and whenever the check
fails, frames are found by decoding from the start and counting: always the right frame,
but a jump backwards costs a decode from the beginning of the file.

Frame file names follow lightly: ``<video path without extension>-<frame>-<ext>.png``,
frame zero-padded to ``len(str(n_frames))`` digits of *that* video, e.g. frame 153 of a
341965-frame ``clips/a.mp4`` is ``clips/a-000153-mp4.png``. A name therefore depends only
on its own video, never on what else is in the folder.
"""

from __future__ import annotations

import os
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from selfsup.errors import DataError

FRAME_IMAGE_EXTENSION = "png"

# Containers whose per-stream frame count (nb_frames) is read from an index with one entry
# per frame, and hence exact. Other demuxers estimate it from duration x rate or leave it 0.
_EXACT_FRAME_COUNT_FORMATS = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2"})

# Demuxers with a per-frame index, where seeking to a keyframe timestamp lands exactly on
# it. Others (MPEG program/transport streams, raw streams, ...) seek by guessing a byte
# offset, and decoded timestamps right after such a seek may be off by a frame.
INDEXED_FORMATS = frozenset({"mov", "mp4", "matroska", "webm", "avi"})

# Errors PyAV raises for unreadable input. av.FFmpegError covers demuxer/decoder errors;
# some of those are also OSError subclasses (missing file, permission).
VIDEO_ERRORS: tuple[type[Exception], ...] = (av.FFmpegError, OSError, ValueError)

_FRAME_NAME = re.compile(
    r"^(?P<stem>.+)-(?P<frame>[0-9]+)-(?P<ext>[A-Za-z0-9]+)\." + FRAME_IMAGE_EXTENSION + "$"
)


class VideoProbeError(Exception):
    """A video file cannot be used; ``str(error)`` is the human-readable reason."""


def frame_filename(video_relpath: str, frame_index: int, n_frames: int) -> str:
    """lightly's sample name for frame ``frame_index`` of a video with ``n_frames`` frames.

    The one definition of a frame's name, used by the datasets and by the curation check.
    ``video_relpath`` is the POSIX path relative to the input folder; as in lightly it is
    split at its last ``.`` into name and format, and the index is zero-padded to
    ``len(str(n_frames))`` digits:
    ``frame_filename("clips/a.mp4", 153, 341965) == "clips/a-000153-mp4.png"``.

    Raises:
        ValueError: ``frame_index`` is not in ``0..n_frames-1``, or the path has no extension.
    """
    if not 0 <= frame_index < max(n_frames, 1):
        raise ValueError(f"frame_index {frame_index} out of range for {n_frames} frames")
    stem, _, ext = video_relpath.rpartition(".")
    if not stem:
        raise ValueError(f"video path {video_relpath!r} has no extension")
    pad = len(str(n_frames))
    return f"{stem}-{frame_index:0{pad}d}-{ext}.{FRAME_IMAGE_EXTENSION}"


def parse_frame_filename(name: str) -> tuple[str, str, int] | None:
    """Split a frame file name into ``(video_relpath, frame_digits, frame_index)``.

    Returns ``None`` when ``name`` does not have the frame-name shape. The caller checks
    that the video exists and that ``len(frame_digits)`` equals its padding.
    """
    match = _FRAME_NAME.match(name)
    if match is None:
        return None
    digits = match.group("frame")
    return f"{match.group('stem')}.{match.group('ext')}", digits, int(digits)


@dataclass(frozen=True)
class FrameTable:
    """Presentation timestamps of one video stream, gathered by demuxing (no decoding).

    Attributes:
        pts: Shape ``(n_frames,)``, int64, ascending; ``pts[i]`` is the timestamp of frame
            ``i`` in units of the stream's time base.
        key_pts: Ascending timestamps of the keyframes (the points a seek can land on).
        exact: False when a packet had no timestamp or two frames share one; frames are
            then located by counting decoded frames from the start (slow but correct).
    """

    pts: NDArray[np.int64]
    key_pts: NDArray[np.int64]
    exact: bool

    def __len__(self) -> int:
        return int(self.pts.shape[0])

    def keyframe_at_or_before(self, pts: int) -> int | None:
        """Timestamp of the last keyframe with timestamp <= ``pts``, or None."""
        keys = self.key_pts
        pos = int(np.searchsorted(keys, pts, side="right"))
        return int(keys[pos - 1]) if pos > 0 else None

    def contains(self, pts: int) -> bool:
        """True when a frame has timestamp ``pts``."""
        pos = int(np.searchsorted(self.pts, pts))
        return pos < self.pts.shape[0] and int(self.pts[pos]) == pts

    def keyframe_between(self, after: int, upto: int) -> bool:
        """True when a keyframe has a timestamp in ``(after, upto]``."""
        keys = self.key_pts
        lo = int(np.searchsorted(keys, after, side="right"))
        hi = int(np.searchsorted(keys, upto, side="right"))
        return hi > lo


def build_frame_table(container: Any, stream: Any) -> FrameTable:
    """Demux every packet of ``stream`` and collect frame and keyframe timestamps.

    Reads the whole file but decodes nothing. Flush packets (size 0) and packets the
    demuxer marks as discarded (before an edit-list start; their frames are never shown)
    are not frames.
    """
    pts: list[int] = []
    keys: list[int] = []
    exact = True
    for packet in container.demux(stream):
        if packet.size == 0 or packet.is_discard:
            continue
        ts = packet.pts if packet.pts is not None else packet.dts
        if ts is None:
            exact = False
            ts = pts[-1] + 1 if pts else 0
        pts.append(int(ts))
        if packet.is_keyframe:
            keys.append(int(ts))
    pts_arr = np.asarray(pts, dtype=np.int64)
    pts_arr.sort()
    if pts_arr.shape[0] > 1 and bool(np.any(np.diff(pts_arr) == 0)):
        exact = False
    key_arr = np.unique(np.asarray(keys, dtype=np.int64))
    if key_arr.shape[0] == 0 or (pts_arr.shape[0] > 0 and key_arr[0] > pts_arr[0]):
        # Without a keyframe at the start, seeking to early frames is undefined; seeking
        # to the stream start and decoding forward is always allowed.
        key_arr = np.concatenate([pts_arr[:1], key_arr])
    return FrameTable(pts=pts_arr, key_pts=key_arr, exact=exact)


@dataclass(frozen=True)
class VideoProbe:
    """What :func:`probe_video` learned about a usable video.

    Attributes:
        n_frames: Number of frames (samples) the video contributes.
        table: The frame table when counting needed a demux pass anyway; ``None`` when the
            count came from exact metadata (the table is then built on first read).
    """

    n_frames: int
    table: FrameTable | None


def _open(path: str) -> tuple[Any, Any]:
    container = av.open(path, mode="r")
    if not container.streams.video:
        container.close()
        raise VideoProbeError("no video stream in the file")
    stream = container.streams.video[0]
    # Single-threaded decoding: parallelism comes from DataLoader workers, and an FFmpeg
    # thread pool copied into a forked worker deadlocks when it is freed there (it waits
    # for threads that were not copied). Most H.264 streams have one slice per frame, so
    # FFmpeg's default slice threading gained little anyway.
    stream.thread_count = 1
    return container, stream


def probe_video(path: str | os.PathLike[str]) -> VideoProbe:
    """Count the frames of the video at ``path`` and check that its first frame decodes.

    Raises:
        VideoProbeError: The file cannot be opened, has no video stream, has no frames
            or its first frame does not decode; the message says which.
    """
    try:
        container, stream = _open(os.fspath(path))
    except VIDEO_ERRORS as exc:
        raise VideoProbeError(f"not a readable video: {exc}") from exc
    try:
        formats = set(container.format.name.split(","))
        table: FrameTable | None = None
        if formats & _EXACT_FRAME_COUNT_FORMATS and stream.frames > 0:
            n_frames = int(stream.frames)
        else:
            table = build_frame_table(container, stream)
            n_frames = len(table)
            # Rewind for the decode check below; a file that cannot seek back to its
            # start cannot serve random access either.
            container.seek(int(table.pts[0]) if n_frames else 0, stream=stream, backward=True)
        if n_frames == 0:
            raise VideoProbeError("the video stream has no frames")
        try:
            next(iter(container.decode(stream)))
        except StopIteration:
            raise VideoProbeError("no frame of the video stream can be decoded") from None
        return VideoProbe(n_frames=n_frames, table=table)
    except VIDEO_ERRORS as exc:
        raise VideoProbeError(f"cannot read video frames: {exc}") from exc
    finally:
        container.close()


class _UnreliableTimestampsError(Exception):
    """Internal: decoded timestamps disagree with the frame table; count frames instead."""


class _OpenVideo:
    """An open container plus the decoder position, owned by one process."""

    def __init__(self, path: str, table: FrameTable) -> None:
        self.path = path
        self.table = table
        self.container, self.stream = _open(path)
        _LIVE_VIDEOS.add(self)
        formats = set(self.container.format.name.split(","))
        # Seek by timestamp only where the demuxer has a frame index and the table is
        # exact; everything else is decoded from the start and counted (see module doc).
        self.sequential = not (table.exact and formats & INDEXED_FORMATS)
        self.frames: Iterator[Any] | None = None
        # Index of the frame the decoder returned last; frames after it come next.
        self.last_index: int | None = None

    def close(self) -> None:
        self.frames = None
        self.container.close()

    def restart(self) -> Iterator[Any]:
        """Reopen the file so that decoding starts at its very first packet."""
        self.container.close()
        self.container, self.stream = _open(self.path)
        frames: Iterator[Any] = iter(self.container.decode(self.stream))
        self.frames = frames
        self.last_index = -1
        return frames

    def seek(self, pts: int) -> None:
        self.container.seek(pts, stream=self.stream, backward=True, any_frame=False)
        self.frames = iter(self.container.decode(self.stream))
        self.last_index = None

    def scan_to(self, target_pts: int, seek_pts: int | None = None) -> Any | None:
        """Decode forward to the frame with ``target_pts``; None if passed or at the end.

        Every decoded timestamp must be one of the table's, and after a seek to the
        keyframe ``seek_pts`` the first frame at or after it must be that keyframe.
        Otherwise the decoder's timestamps cannot be trusted (seen with MPEG program
        streams, whose timestamps after a seek can be shifted by a frame) and
        :class:`_UnreliableTimestampsError` is raised.
        """
        frames = self.frames
        if frames is None:
            return None
        check_first = seek_pts is not None
        for frame in frames:
            pts = frame.pts
            if pts is None or not self.table.contains(pts):
                raise _UnreliableTimestampsError
            if check_first and seek_pts is not None and pts >= seek_pts:
                if pts != seek_pts:
                    raise _UnreliableTimestampsError
                check_first = False
            if pts < target_pts:
                continue
            return frame if pts == target_pts else None
        return None

    def read(self, index: int) -> Any:
        """The decoded ``av.VideoFrame`` of frame ``index`` (0 <= index < len(table))."""
        if not self.sequential:
            try:
                frame = self._read_by_timestamp(index)
            except _UnreliableTimestampsError:
                # Stay correct for the rest of this process: count from the start.
                self.sequential = True
                self.frames = None
                self.last_index = None
            else:
                if frame is not None:
                    self.last_index = index
                    return frame
                # Seeking kept landing after the frame: count from the start this once.
                self.frames = None
                self.last_index = None
        return self._read_by_counting(index)

    def _read_by_timestamp(self, index: int) -> Any | None:
        table = self.table
        target = int(table.pts[index])
        last = self.last_index
        if (
            self.frames is not None
            and last is not None
            and 0 <= last < index
            and not table.keyframe_between(int(table.pts[last]), target)
        ):
            # Same GOP, later frame: decoding on is cheaper than seeking back to its key.
            frame = self.scan_to(target)
            if frame is not None:
                return frame
        key = table.keyframe_at_or_before(target)
        tries: list[int] = [key if key is not None else int(table.pts[0])]
        if key is not None:
            # The keyframe before, in case the decoder dropped frames after this one.
            earlier = table.keyframe_at_or_before(key - 1)
            if earlier is not None:
                tries.append(earlier)
        for seek_pts in tries:
            self.seek(seek_pts)
            frame = self.scan_to(target, seek_pts=seek_pts)
            if frame is not None:
                return frame
        return None

    def _read_by_counting(self, index: int) -> Any:
        frames, position = self.frames, self.last_index
        if frames is None or position is None or position >= index:
            frames, position = self.restart(), -1
        for frame in frames:
            position += 1
            self.last_index = position
            if position == index:
                return frame
        count = position + 1
        self.frames = None
        self.last_index = None
        raise DataError(
            f"video {self.path!r} has only {count} decodable frames, frame {index} requested "
            "(its container metadata reported more frames than the stream holds)"
        )


# Every open video of this process, and, in a forked child, the ones inherited from the
# parent, which must never be closed or freed there: freeing FFmpeg objects that own
# thread pools blocks for ever in a child, whose copies of those threads do not exist.
# Decoding is single-threaded for that reason, and as a second line of defence the
# child keeps the inherited objects alive (DataLoader workers leave with os._exit,
# which frees nothing). This also covers readers of datasets that are garbage.
_LIVE_VIDEOS: weakref.WeakSet[_OpenVideo] = weakref.WeakSet()
_ABANDONED_IN_CHILD: list[_OpenVideo] = []


def _park_inherited_videos() -> None:
    _ABANDONED_IN_CHILD.extend(_LIVE_VIDEOS)


os.register_at_fork(after_in_child=_park_inherited_videos)


class VideoFrameReader:
    """Per-process cache of open videos, returning single frames as RGB PIL images.

    Safe with a :class:`torch.utils.data.DataLoader`: the cache is dropped when the object
    is pickled (spawned workers) and when it is used in a process other than the one that
    filled it (forked workers), so every worker opens its own containers lazily. Threads
    of one process share the cache and take turns (PyAV objects are not thread-safe); use
    DataLoader workers, not threads, for parallel decoding.

    Args:
        max_open: Containers kept open per process (least recently used closed first).
            Each holds decoder buffers of a few frames.
    """

    def __init__(self, max_open: int = 4) -> None:
        self.max_open = max_open
        self._tables: dict[str, FrameTable] = {}
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._open: OrderedDict[str, _OpenVideo] = OrderedDict()

    def _forget_inherited(self) -> None:
        """In a forked child: drop the parent's containers without closing them.

        They are parked in ``_ABANDONED_IN_CHILD`` (see there) rather than closed; the
        parent's own containers are untouched.
        """
        _ABANDONED_IN_CHILD.extend(self._open.values())
        self._reset()

    def __getstate__(self) -> dict[str, Any]:
        # Open containers and the lock stay behind; frame tables are plain arrays.
        return {"max_open": self.max_open, "tables": dict(self._tables)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.max_open = int(state["max_open"])
        self._tables = dict(state["tables"])
        self._reset()

    def read(
        self, path: str, index: int, table: FrameTable | None = None, name: str | None = None
    ) -> Image.Image:
        """Frame ``index`` of the video at ``path`` as an RGB image.

        Args:
            path: The video file.
            index: Frame number in presentation order, from 0.
            table: The frame table if already known (saves one demux pass per process).
            name: How to call the file in error messages (defaults to ``path``).

        Raises:
            DataError: The file or frame cannot be read; the message names the file.
        """
        if os.getpid() != self._pid:
            # Forked worker: the parent's containers are not ours to use (they share file
            # offsets with the parent). Frame tables are plain arrays and stay valid.
            self._forget_inherited()
        label = name if name is not None else path
        with self._lock:
            try:
                video = self._get(path, table)
                if index >= len(video.table):
                    raise DataError(
                        f"video {label!r} has {len(video.table)} frames when demuxed, frame "
                        f"{index} requested (its container metadata reported more frames)"
                    )
                frame = video.read(index)
                # threads=1: no swscale thread pool (see _open on pools and fork). Going
                # through numpy is ~3x faster than VideoFrame.to_image's row copy loop.
                rgb = frame.to_ndarray(format="rgb24", threads=1)
                image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
            except (av.FFmpegError, OSError, ValueError, VideoProbeError) as exc:
                self._close(path)
                raise DataError(f"cannot decode frame {index} of video {label!r}: {exc}") from exc
            except DataError:
                self._close(path)
                raise
            return image

    def _get(self, path: str, table: FrameTable | None) -> _OpenVideo:
        video = self._open.get(path)
        if video is not None:
            self._open.move_to_end(path)
            return video
        if table is None:
            table = self._tables.get(path)
        if table is None:
            container, stream = _open(path)
            try:
                table = build_frame_table(container, stream)
            finally:
                container.close()
            self._tables[path] = table
        video = _OpenVideo(path, table)
        self._open[path] = video
        while len(self._open) > self.max_open:
            _, oldest = self._open.popitem(last=False)
            oldest.close()
        return video

    def _close(self, path: str) -> None:
        video = self._open.pop(path, None)
        if video is not None:
            video.close()

    def close(self) -> None:
        """Close every container this process opened."""
        with self._lock:
            for video in self._open.values():
                video.close()
            self._open.clear()
