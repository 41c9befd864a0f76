"""Corruptness check of a video file: every frame is a sample, every frame is decoded.

Frames are named as lightly names them, ``<video path without extension>-<frame index,
zero-padded to the digits of the frame count>-<extension>.png`` (``clips/a.mp4`` with 120
frames gives ``clips/a-007-mp4.png`` for frame 7), so filename lists and relevant-filenames
files written for lightly keep working.

Which frames exist
    The frames of a video are its video packets, one per presentation timestamp, in
    presentation order: what the container says the video holds, independent of whether the
    decoder manages to turn each packet into a picture. So a frame that fails to decode keeps
    its index and name and is listed as corrupt, and the good frames keep their names. This
    is the same frame list as :mod:`selfsup.data._video` (the video dataset) builds, so frame
    ``i`` here is frame ``i`` there, and both name it with
    :func:`selfsup.data._video.frame_filename`.

What is reported
    * container cannot be opened, or holds no video stream -> one corrupt record for the
      video file (``unknown_format``, or ``decode_error`` if it starts like a video
      container); no decodable frame at all -> ``no_frames``;
    * a packet the decoder rejects, or decodes while logging an error (concealed damage), or
      one that yields no picture -> that frame is corrupt (``decode_error``);
    * the demuxer stops early or reports damage (``File ended prematurely``) -> frames read
      before are samples as usual, and one extra corrupt record for the video file itself
      (``truncated`` or ``decode_error``) says that the rest is lost; frames that were never
      reached have no name and so cannot be listed one by one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import av
import av.logging
from PIL import Image

from selfsup.curation.manifest import CorruptReason
from selfsup.data._video import frame_filename

M = TypeVar("M")


#: lightly's sample name of a video frame (the one definition, shared with the datasets).
video_frame_filename = frame_filename


@dataclass(frozen=True, slots=True)
class FrameOutcome(Generic[M]):
    """Result for one frame: what ``measure`` returned for its picture, or why it has none."""

    index: int
    value: M | None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class VideoOutcome(Generic[M]):
    """What decoding a whole video found.

    ``problem`` is set when the video file itself is corrupt; with ``frames`` non-empty it
    means "damaged after / around these frames" rather than "unusable".
    """

    codec: str | None
    frames: list[FrameOutcome[M]]
    problem: CorruptReason | None = None
    problem_detail: str = ""


# Leading bytes of the containers in VIDEO_EXTENSIONS (ISO BMFF is "....ftyp").
_SIGNATURES: tuple[tuple[int, bytes], ...] = (
    (4, b"ftyp"),
    (4, b"moov"),
    (4, b"mdat"),
    (4, b"free"),
    (4, b"wide"),
    (0, b"RIFF"),
    (0, b"\x1a\x45\xdf\xa3"),
    (0, b"\x00\x00\x01\xba"),
    (0, b"\x00\x00\x01\xb3"),
    (0, b"\x30\x26\xb2\x75"),
    (0, b"FLV"),
)


def looks_like_video(head: bytes) -> bool:
    """True when ``head`` (the first bytes of a file) starts like a known video container."""
    return any(head[offset : offset + len(sig)] == sig for offset, sig in _SIGNATURES)


@contextlib.contextmanager
def _ffmpeg_errors() -> Iterator[list[Any]]:
    """Capture FFmpeg's error messages (level ERROR and worse) logged in this thread.

    PyAV forwards nothing by default; we raise the level for the duration of the check and
    restore it, so that damage the decoder conceals (and only logs) is still seen.
    """
    old_level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=True) as logs:
            yield logs
    finally:
        av.logging.set_level(old_level)


def _log_text(entries: list[Any]) -> str:
    return "; ".join(f"[{name}] {str(message).strip()}" for _level, name, message in entries)


def decode_video(path: str, head: bytes, measure: Callable[[Image.Image], M]) -> VideoOutcome[M]:
    """Decode every frame of the video at ``path`` and report what failed.

    ``head`` is the first bytes of the file (to tell a damaged container from a non-video).
    ``measure`` is applied to each decoded picture (RGB, PIL) as soon as it is decoded, so
    that no more than one picture is held in memory; frames are returned in presentation
    order with ``index`` 0..N-1 and the measured value.

    Raises nothing for damaged input: FFmpeg errors become outcomes. Errors raised by
    ``measure`` propagate.
    """
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.FFmpegError as exc:
        damaged = looks_like_video(head)
        reason = CorruptReason.DECODE_ERROR if damaged else CorruptReason.UNKNOWN_FORMAT
        return VideoOutcome(None, [], reason, f"cannot open the video container: {exc}")
    with container:
        if not container.streams.video:
            return VideoOutcome(
                None, [], CorruptReason.UNKNOWN_FORMAT, "the container holds no video stream"
            )
        stream = container.streams.video[0]
        if stream.codec_context is None:
            return VideoOutcome(
                None,
                [],
                CorruptReason.DECODE_ERROR,
                "the video stream has no usable codec parameters (damaged or truncated file, "
                "or a codec FFmpeg does not know)",
            )
        # One thread: we parallelise over files, and decoder threads would log from threads
        # the capture does not see.
        stream.codec_context.thread_count = 1
        codec = stream.codec_context.name
        return _decode_stream(container, stream, codec, measure)


def _decode_stream(
    container: Any, stream: Any, codec: str, measure: Callable[[Image.Image], M]
) -> VideoOutcome[M]:
    keys: list[int] = []  # presentation timestamps of the packets, in decode order
    bad: dict[int, str] = {}
    pictures: dict[int, M] = {}
    unkeyed: list[M] = []  # values of frames without a timestamp, in output order
    container_error = ""
    truncated = False
    synthetic = 0

    def take(frames: list[Any]) -> None:
        for frame in frames:
            value = measure(convert_frame(frame.to_image()))
            if frame.pts is None:
                unkeyed.append(value)
            else:
                pictures[int(frame.pts)] = value

    with _ffmpeg_errors() as logs:
        packets = container.demux(stream)
        while True:
            mark = len(logs)
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError as exc:
                container_error = f"reading the container failed after {len(keys)} frames: {exc}"
                truncated = "end of file" in str(exc).lower()
                break
            if len(logs) > mark:
                text = _log_text(logs[mark:])
                container_error = container_error or f"container damaged: {text}"
                truncated = truncated or "prematurely" in text or "truncat" in text.lower()
            if packet.size == 0 and packet.pts is None:
                with contextlib.suppress(av.FFmpegError):
                    # Flushing returns the delayed frames; an error here belongs to no
                    # packet and the frames it loses are reported as "no picture".
                    take(packet.decode())
                continue
            if packet.is_discard:
                # Before an edit-list start: decoded for its references, never shown, so
                # not a frame (as in selfsup.data._video's frame table).
                with contextlib.suppress(av.FFmpegError):
                    take(packet.decode())
                continue
            if packet.pts is not None:
                key = int(packet.pts)
            elif packet.dts is not None:
                key = int(packet.dts)
            else:
                key = -(10**18) + synthetic  # no timestamp: keep demux order
                synthetic += 1
            keys.append(key)
            mark = len(logs)
            try:
                decoded = packet.decode()
            except av.FFmpegError as exc:
                bad[key] = f"decoding the frame failed: {exc}"
                continue
            if len(logs) > mark:
                bad[key] = f"the decoder reported damage: {_log_text(logs[mark:])}"
            take(decoded)

    order = sorted(range(len(keys)), key=lambda i: keys[i])
    outcomes: list[FrameOutcome[M]] = []
    use_order = bool(unkeyed) or len(set(keys)) != len(keys)
    for index, position in enumerate(order):
        key = keys[position]
        value: M | None
        if use_order:
            # Timestamps are missing or repeated: fall back to matching by output order.
            value = unkeyed[index] if index < len(unkeyed) else None
        else:
            value = pictures.get(key)
        if key in bad:
            outcomes.append(FrameOutcome(index, None, bad[key]))
        elif value is None:
            outcomes.append(FrameOutcome(index, None, "the decoder produced no picture"))
        else:
            outcomes.append(FrameOutcome(index, value))
    if not outcomes:
        detail = container_error or "the video stream holds no frames"
        return VideoOutcome(codec, [], CorruptReason.NO_FRAMES, detail)
    if container_error:
        reason = CorruptReason.TRUNCATED if truncated else CorruptReason.DECODE_ERROR
        detail = f"{container_error}; the {len(outcomes)} frames read before are kept"
        return VideoOutcome(codec, outcomes, reason, detail)
    return VideoOutcome(codec, outcomes)


def convert_frame(image: Image.Image) -> Image.Image:
    """A decoded frame as RGB (PyAV's ``to_image`` already gives RGB; this guards it)."""
    return image if image.mode == "RGB" else image.convert("RGB")
