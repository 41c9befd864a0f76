"""Videos in the check: every frame is a sample; broken videos and broken frames are listed."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from selfsup.curation._decode import FileEntry, check_file
from selfsup.curation.checks import build_manifest, scan_files
from selfsup.curation.manifest import CorruptReason, SampleRecord
from selfsup.curation.video import looks_like_video, video_frame_filename


def _entry(root: Path, name: str) -> FileEntry:
    (entry,) = [e for e in scan_files(root) if e.path == name]
    return entry


def _write_intra_video(path: Path, n_frames: int = 10) -> list[tuple[int, int]]:
    """Video of independent (intra-only) random frames; returns each packet's (pos, size)."""
    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = 1  # every frame a keyframe: damage stays in one frame
        for _ in range(n_frames):
            arr = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(path)) as container:
        return [(p.pos, p.size) for p in container.demux(video=0) if p.size and p.pos is not None]


@pytest.mark.parametrize(
    ("path", "index", "n_frames", "expected"),
    [
        ("my_video.mp4", 153, 200, "my_video-153-mp4.png"),
        ("my_video.mp4", 3, 12, "my_video-03-mp4.png"),
        ("clips/a.b.avi", 7, 120, "clips/a.b-007-avi.png"),
        ("v.MOV", 0, 1, "v-0-MOV.png"),
        ("v.mkv", 9, 10, "v-09-mkv.png"),
    ],
)
def test_frame_names_follow_lightly(path: str, index: int, n_frames: int, expected: str) -> None:
    assert video_frame_filename(path, index, n_frames) == expected


@pytest.mark.parametrize(
    ("path", "index", "n_frames"), [("a.mp4", 0, 1), ("x/y.z.webm", 99, 1000), ("v.AVI", 5, 6)]
)
def test_frame_names_match_the_video_dataset(path: str, index: int, n_frames: int) -> None:
    from selfsup.data._video import frame_filename

    assert video_frame_filename(path, index, n_frames) == frame_filename(path, index, n_frames)


def test_frame_name_errors() -> None:
    with pytest.raises(ValueError, match="out of range"):
        video_frame_filename("v.mp4", 12, 12)
    with pytest.raises(ValueError, match="no extension"):
        video_frame_filename("video", 0, 1)


def test_good_video_frames_are_samples(make_video: Callable[..., Path], tmp_path: Path) -> None:
    root = tmp_path / "videos"
    make_video(name="clip.mp4", n_frames=12, root=root)
    records = check_file(root, _entry(root, "clip.mp4"))
    assert [r.filename for r in records] == [f"clip-{i:02d}-mp4.png" for i in range(12)]
    assert [r.frame_index for r in records] == list(range(12))
    assert all(r.status == "ok" and r.source == "clip.mp4" for r in records)
    assert all((r.width, r.height) == (32, 32) and r.format == "mpeg4" for r in records)
    # The fixture makes frame i brighter than frame i-1 (3/4 of the frame is a ramp level).
    brightness = [r.brightness for r in records if r.brightness is not None]
    assert len(brightness) == 12
    assert all(b2 > b1 for b1, b2 in itertools.pairwise(brightness))
    assert len({r.pixel_hash for r in records}) == 12
    assert len({r.file_hash for r in records}) == 1  # the video file's hash


def test_truncated_mp4_is_corrupt(make_video: Callable[..., Path], tmp_path: Path) -> None:
    root = tmp_path / "videos"
    path = make_video(name="cut.mp4", n_frames=12, root=root)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])  # the index (moov) at the end is lost
    (record,) = check_file(root, _entry(root, "cut.mp4"))
    assert record.status == "corrupt"
    assert record.filename == "cut.mp4"
    assert record.frame_index is None
    assert record.reason in (CorruptReason.DECODE_ERROR, CorruptReason.NO_FRAMES)
    assert record.detail


def test_truncated_mkv_keeps_frames_read_and_reports_the_file(
    make_video: Callable[..., Path], tmp_path: Path
) -> None:
    root = tmp_path / "videos"
    path = make_video(name="cut.mkv", n_frames=12, root=root)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    records = check_file(root, _entry(root, "cut.mkv"))
    head, frames = records[0], records[1:]
    assert head.filename == "cut.mkv"
    assert head.status == "corrupt"
    assert head.reason == CorruptReason.TRUNCATED
    assert "prematurely" in head.detail
    assert 0 < len(frames) < 12
    assert all(r.status == "ok" for r in frames)


def test_broken_frame_is_listed_by_its_frame_name(tmp_path: Path) -> None:
    root = tmp_path / "videos"
    path = root / "intra.mkv"
    packets = _write_intra_video(path, n_frames=10)
    data = bytearray(path.read_bytes())
    pos, size = packets[5]
    data[pos + 4 : pos + size] = b"\x55" * (size - 4)  # garbage inside frame 5's data only
    path.write_bytes(bytes(data))
    records = check_file(root, _entry(root, "intra.mkv"))
    by_name = {r.filename: r for r in records}
    assert sorted(by_name) == [f"intra-{i:02d}-mkv.png" for i in range(10)]
    broken = [r for r in records if r.status == "corrupt"]
    assert [r.filename for r in broken] == ["intra-05-mkv.png"]
    assert broken[0].reason == CorruptReason.DECODE_ERROR
    assert broken[0].frame_index == 5


def test_concealed_damage_is_reported(tmp_path: Path) -> None:
    """Damage the decoder hides (it still returns a picture) is caught from its error log."""
    root = tmp_path / "videos"
    path = root / "intra.avi"
    packets = _write_intra_video(path, n_frames=8)
    data = bytearray(path.read_bytes())
    pos, size = packets[3]
    data[pos + size // 2 : pos + size] = b"\x55" * (size - size // 2)
    path.write_bytes(bytes(data))
    records = check_file(root, _entry(root, "intra.avi"))
    broken = [r for r in records if r.status == "corrupt"]
    assert [r.frame_index for r in broken] == [3]
    assert "decoder reported damage" in broken[0].detail


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", CorruptReason.EMPTY),
        (b"hello, I am not a video at all" * 10, CorruptReason.UNKNOWN_FORMAT),
    ],
)
def test_non_videos_named_mp4(tmp_path: Path, content: bytes, reason: CorruptReason) -> None:
    (tmp_path / "fake.mp4").write_bytes(content)
    (record,) = check_file(tmp_path, _entry(tmp_path, "fake.mp4"))
    assert record.status == "corrupt"
    assert record.reason == reason


def test_looks_like_video() -> None:
    assert looks_like_video(b"\x00\x00\x00\x20ftypisom")
    assert looks_like_video(b"RIFF\x00\x00\x00\x00AVI ")
    assert looks_like_video(b"\x1a\x45\xdf\xa3")
    assert not looks_like_video(b"hello")


def test_videos_and_images_in_one_manifest(
    make_video: Callable[..., Path], make_image_folder: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_image_folder(n_classes=1, n_per_class=2, flat=True, root=tmp_path / "mixed")
    make_video(name="sub/clip.avi", n_frames=4, root=root)
    records: list[SampleRecord] = build_manifest(root, progress=False).records
    assert [r.filename for r in records] == [
        "img_0_0.png",
        "img_0_1.png",
        "sub/clip-0-avi.png",
        "sub/clip-1-avi.png",
        "sub/clip-2-avi.png",
        "sub/clip-3-avi.png",
    ]
    assert [r.id for r in records] == list(range(6))
    # relevant filenames name the video file; all its frames follow
    only_video = build_manifest(root, relevant=["sub/clip.avi"], progress=False).records
    assert [r.frame_index for r in only_video] == [0, 1, 2, 3]
    without_videos = build_manifest(root, videos=False, progress=False).records
    assert [r.filename for r in without_videos] == ["img_0_0.png", "img_0_1.png"]
