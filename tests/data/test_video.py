"""Video files in LightlyDataset: frame counts, frame names, frame-accurate random access."""

from __future__ import annotations

import itertools
import pickle
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import ToTensor

import selfsup.data._video as video_module
from selfsup.data import LightlyDataset, SkippedFilesWarning
from selfsup.data._video import (
    FrameTable,
    VideoFrameReader,
    frame_filename,
    parse_frame_filename,
    probe_video,
)
from selfsup.errors import DataError

VideoFactory = Callable[..., Path]
Pixels = np.ndarray[Any, np.dtype[np.uint8]]


def _reference_frames(path: Path) -> list[Pixels]:
    """All frames by a plain sequential PyAV decode: the ground truth for frame ``i``."""
    with av.open(str(path)) as container:
        frames = container.decode(container.streams.video[0])
        return [np.asarray(f.to_ndarray(format="rgb24"), dtype=np.uint8) for f in frames]


def _brightness(image: Image.Image | Pixels) -> float:
    """Mean of the constant part of a fixture frame (the top-left quarter is noise)."""
    arr = np.asarray(image)
    h, w = arr.shape[:2]
    return float(arr[h // 2 :, w // 2 :].mean())


# --- names ---------------------------------------------------------------------------------


def test_frame_names_follow_lightly_and_the_seed_slice() -> None:
    assert frame_filename("video/my_clip.mp4", 123, 341965) == "video/my_clip-000123-mp4.png"
    # the seed recovers frame numbers with fname[-14:-8] on a 341965-frame folder
    name = frame_filename("clip.mp4", 68536, 341965)
    assert name[-14:-8] == "068536"
    assert frame_filename("a.b.MOV", 7, 12) == "a.b-07-MOV.png"
    assert frame_filename("x.avi", 0, 9) == "x-0-avi.png"


@given(
    stem=st.text(alphabet="abc-_./0123456789", min_size=1, max_size=12).filter(
        lambda s: not s.startswith("/") and not s.endswith("/")
    ),
    ext=st.sampled_from(["mp4", "avi", "MOV", "webm", "m4v"]),
    n_frames=st.integers(min_value=1, max_value=10**7),
    data=st.data(),
)
def test_frame_name_parse_round_trip(
    stem: str, ext: str, n_frames: int, data: st.DataObject
) -> None:
    index = data.draw(st.integers(min_value=0, max_value=n_frames - 1))
    name = frame_filename(f"{stem}.{ext}", index, n_frames)
    parsed = parse_frame_filename(name)
    assert parsed is not None
    video, digits, parsed_index = parsed
    assert (video, parsed_index) == (f"{stem}.{ext}", index)
    assert len(digits) == len(str(n_frames))


def test_dataset_frame_count_and_names(make_video: VideoFactory) -> None:
    path = make_video("my_clip.mp4", n_frames=12)
    dataset = LightlyDataset(from_folder=str(path.parent))
    assert len(dataset) == 12
    assert dataset.get_filenames() == [f"my_clip-{i:02d}-mp4.png" for i in range(12)]
    assert dataset.classes == ["."]


def test_seed_frame_number_round_trip(make_video: VideoFactory, tmp_path: Path) -> None:
    make_video("clip.mp4", n_frames=12, root=tmp_path / "video")
    dataset = LightlyDataset(from_folder=str(tmp_path / "video"))
    filenames = dataset.get_filenames()[::-3]  # e.g. names picked by a selection run
    pad = len(str(len(dataset)))
    # the seed's fname[-14:-8] for 6 digits; here the video has 12 frames -> 2 digits
    frame_numbers = [int(fname[-(8 + pad) : -8]) for fname in filenames]
    for frame_number, fname in zip(frame_numbers, filenames, strict=True):
        image, _, name = dataset[frame_number]
        assert name == fname
        assert isinstance(image, Image.Image)


# --- frame-accurate decoding ---------------------------------------------------------------


def test_item_i_is_frame_i(make_video: VideoFactory) -> None:
    path = make_video("ramp.mp4", n_frames=12)
    dataset = LightlyDataset(path.parent)
    levels = [_brightness(dataset[i][0]) for i in range(len(dataset))]
    assert all(b > a for a, b in itertools.pairwise(levels)), levels
    expected = [255 * i / 11 for i in range(12)]
    np.testing.assert_allclose(levels, expected, atol=12)


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("gops.mp4", "mpeg4"),  # frame count from metadata, 12-frame GOPs
        ("gops.avi", "mpeg4"),  # counted by demuxing
        ("gops.mkv", "mpeg4"),  # counted by demuxing, no frame count in the header
        ("bframes.mp4", "libx264"),  # B-frames: decode order differs from display order
    ],
)
def test_random_access_matches_sequential_decode(
    make_video: VideoFactory, name: str, codec: str
) -> None:
    path = make_video(name, n_frames=40, codec=codec)
    reference = _reference_frames(path)
    dataset = LightlyDataset(path.parent)
    assert len(dataset) == len(reference) == 40
    order = list(range(40)) * 2
    random.Random(0).shuffle(order)
    for i in order + list(range(40)):  # shuffled (seeks), then in order (decodes on)
        np.testing.assert_array_equal(np.asarray(dataset[i][0]), reference[i], err_msg=str(i))


def test_untrusted_seeking_is_detected_and_frames_stay_exact(
    make_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MPEG program streams seek by byte guesses; decoded timestamps after such a seek
    # can be off by one frame. Force timestamp seeking to check the reader notices.
    monkeypatch.setattr(video_module, "INDEXED_FORMATS", frozenset({"mpeg", "mp4"}))
    # 40 frames of 32x32: a size where, without the check, 6 of 40 shuffled reads
    # returned the neighbouring frame.
    path = make_video("legacy.mpg", n_frames=40, codec="mpeg2video")
    reference = _reference_frames(path)
    probe = probe_video(path)
    reader = VideoFrameReader()
    order = list(range(40))
    random.Random(1).shuffle(order)
    for i in [*order, *reversed(range(40))]:
        frame = reader.read(str(path), i, probe.table)
        np.testing.assert_array_equal(np.asarray(frame), reference[i], err_msg=str(i))


def test_frame_table_lookups() -> None:
    table = FrameTable(
        pts=np.array([0, 10, 20, 30, 40, 50], dtype=np.int64),
        key_pts=np.array([0, 30], dtype=np.int64),
        exact=True,
    )
    assert len(table) == 6
    assert table.keyframe_at_or_before(25) == 0
    assert table.keyframe_at_or_before(30) == 30
    assert table.keyframe_at_or_before(-1) is None
    assert table.keyframe_between(10, 30)
    assert not table.keyframe_between(30, 50)
    assert table.contains(40)
    assert not table.contains(45)


# --- datasets with videos ------------------------------------------------------------------


def test_videos_and_images_mix_with_folder_targets(
    make_video: VideoFactory, make_image_folder: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=2, root=tmp_path / "mixed")
    make_video("walk.mp4", n_frames=5, root=root / "class_1")
    make_video("top.avi", n_frames=3, root=root)
    dataset = LightlyDataset(root)
    names = dataset.get_filenames()
    assert dataset.classes == [".", "class_0", "class_1"]
    assert len(dataset) == 4 + 5 + 3
    assert names[:4] == ["class_0/img_0_0.png", "class_0/img_0_1.png"] + [
        f"class_1/img_1_{i}.png" for i in range(2)
    ]
    assert names[4:9] == [f"class_1/walk-{i}-mp4.png" for i in range(5)]
    assert names[9:] == [f"top-{i}-avi.png" for i in range(3)]
    targets = [dataset[i][1] for i in range(len(dataset))]
    assert targets == [1, 1, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0]
    assert _brightness(dataset[8][0]) > _brightness(dataset[4][0])


def test_filenames_select_frames_and_whole_videos(make_video: VideoFactory, tmp_path: Path) -> None:
    root = tmp_path / "sel"
    make_video("a.mp4", n_frames=12, root=root)
    make_video("b.mp4", n_frames=4, root=root)
    reference = _reference_frames(root / "a.mp4")
    dataset = LightlyDataset(root, filenames=["a-07-mp4.png", "a-02-mp4.png", "b.mp4"])
    assert dataset.get_filenames() == [
        "a-02-mp4.png",
        "a-07-mp4.png",
        "b-0-mp4.png",
        "b-1-mp4.png",
        "b-2-mp4.png",
        "b-3-mp4.png",
    ]
    np.testing.assert_array_equal(np.asarray(dataset[1][0]), reference[7])
    with pytest.raises(DataError, match=r"a-7-mp4\.png"):  # wrong padding
        LightlyDataset(root, filenames=["a-7-mp4.png"])
    with pytest.raises(DataError, match=r"a-12-mp4\.png"):  # past the last frame
        LightlyDataset(root, filenames=["a-12-mp4.png"])


def test_dataloader_with_two_workers(make_video: VideoFactory, tmp_path: Path) -> None:
    root = tmp_path / "loader"
    make_video("one.mp4", n_frames=10, root=root)
    make_video("two.mkv", n_frames=6, root=root)
    dataset = LightlyDataset(root, transform=ToTensor())
    dataset[3]  # the parent holds an open container when the workers fork
    expected = {name: i for i, name in enumerate(dataset.get_filenames())}
    loader = DataLoader(dataset, batch_size=4, shuffle=True, num_workers=2)
    seen: dict[str, torch.Tensor] = {}
    for _ in range(2):  # fresh workers each epoch
        for images, _, names in loader:
            assert images.shape[1:] == (3, 32, 32)
            for image, name in zip(images, names, strict=True):
                seen[name] = image
    assert set(seen) == set(expected)
    for name, image in seen.items():
        torch.testing.assert_close(image, dataset[expected[name]][0])
    restored = pickle.loads(pickle.dumps(dataset))
    torch.testing.assert_close(restored[5][0], dataset[5][0])


def test_corrupt_videos_are_skipped_with_one_warning(
    make_video: VideoFactory, tmp_path: Path
) -> None:
    root = tmp_path / "bad_videos"
    good = make_video("good.mp4", n_frames=6, root=root)
    data = good.read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (root / "text.mp4").write_text("not a video")
    (root / "empty.avi").write_bytes(b"")
    with pytest.warns(SkippedFilesWarning) as record:
        dataset = LightlyDataset(root)
    relevant = [w for w in record if issubclass(w.category, SkippedFilesWarning)]
    assert len(relevant) == 1
    for name in ("truncated.mp4", "text.mp4", "empty.avi"):
        assert name in str(relevant[0].message)
    assert sorted(n for n, _ in dataset.skipped) == ["empty.avi", "text.mp4", "truncated.mp4"]
    assert dataset.get_filenames() == [f"good-{i}-mp4.png" for i in range(6)]


def test_video_removed_after_construction_raises_data_error(
    make_video: VideoFactory,
) -> None:
    path = make_video("gone.mp4", n_frames=4)
    dataset = LightlyDataset(path.parent)
    path.unlink()
    with pytest.raises(DataError, match=r"gone\.mp4"):
        dataset[2]


def test_dump_writes_frames_as_png(make_video: VideoFactory, tmp_path: Path) -> None:
    path = make_video("clip.mp4", n_frames=5, root=tmp_path / "src" / "cam")
    reference = _reference_frames(path)
    dataset = LightlyDataset(tmp_path / "src")
    out = tmp_path / "frames"
    dataset.dump(out, filenames=["cam/clip-3-mp4.png", "cam/clip-0-mp4.png"])
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "cam",
        "cam/clip-0-mp4.png",
        "cam/clip-3-mp4.png",
    ]
    with Image.open(out / "cam" / "clip-3-mp4.png") as image:
        assert image.format == "PNG"
        np.testing.assert_array_equal(np.asarray(image), reference[3])
