"""Extraction of selected video frames as image files."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import selfsup.curation.frames as frames_module
from selfsup.curation.frames import INDEX_FILE, extract_frames, frame_output_name
from selfsup.data import LightlyDataset
from selfsup.errors import ConfigError, DataError


@pytest.fixture
def videos(make_video: Callable[..., Path], tmp_path: Path) -> Path:
    root = tmp_path / "input"
    make_video("a.mp4", n_frames=12, root=root)
    make_video("clips/b.mp4", n_frames=8, root=root)
    return root


NAMES = ["a-05-mp4.png", "clips/b-7-mp4.png", "a-02-mp4.png"]


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


class CountingDataset:
    """Wraps LightlyDataset to record which frames an extraction decodes."""

    calls: list[list[str]]

    def __init__(self) -> None:
        self.calls = []

    def __call__(self, root: Any, filenames: list[str]) -> LightlyDataset:
        self.calls.append(list(filenames))
        return LightlyDataset(root, filenames=filenames)


def test_extracted_png_equals_the_dataset_frame(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    paths = extract_frames(videos, NAMES, out)
    assert paths == [out / n for n in NAMES]
    dataset = LightlyDataset(videos)
    position = {name: i for i, name in enumerate(dataset.get_filenames())}
    for name, path in zip(NAMES, paths, strict=True):
        with Image.open(path) as written:
            assert written.format == "PNG"
            np.testing.assert_array_equal(pixels(written), pixels(dataset[position[name]][0]))
    # frames are distinct (brightness grows with the index): a wrong frame would not match
    with Image.open(paths[0]) as f5, Image.open(paths[2]) as f2:
        assert pixels(f5)[20:, 20:].mean() > pixels(f2)[20:, 20:].mean() + 20


def test_rerun_skips_written_frames_without_decoding(
    videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "frames"
    extract_frames(videos, NAMES, out)
    stamps = {n: (out / n).stat().st_mtime_ns for n in NAMES}
    counting = CountingDataset()
    monkeypatch.setattr(frames_module, "LightlyDataset", counting)
    assert extract_frames(videos, NAMES, out) == [out / n for n in NAMES]
    assert counting.calls == []
    assert {n: (out / n).stat().st_mtime_ns for n in NAMES} == stamps
    # a damaged output file is written again, and only that one
    (out / NAMES[1]).write_bytes(b"broken")
    extract_frames(videos, NAMES, out)
    assert counting.calls == [[NAMES[1]]]
    with Image.open(out / NAMES[1]) as repaired:
        assert repaired.size == (32, 32)


def test_a_changed_video_is_extracted_again(
    videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "frames"
    extract_frames(videos, NAMES, out)
    stat = (videos / "a.mp4").stat()
    os.utime(videos / "a.mp4", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    counting = CountingDataset()
    monkeypatch.setattr(frames_module, "LightlyDataset", counting)
    extract_frames(videos, NAMES, out)
    assert counting.calls == [["a-05-mp4.png", "a-02-mp4.png"]]


def test_batches_accumulate_in_the_index(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    extract_frames(videos, NAMES[:1], out)
    extract_frames(videos, NAMES[1:], out)
    index = json.loads((out / INDEX_FILE).read_text())
    assert sorted(index["frames"]) == sorted(NAMES)
    assert index["frames"]["a-05-mp4.png"]["frame"] == 5
    assert index["frames"]["a-05-mp4.png"]["source"] == "a.mp4"


def test_jpeg_output_renames_the_suffix(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    (path,) = extract_frames(videos, ["clips/b-3-mp4.png"], out, format="jpg")
    assert path == out / "clips" / "b-3-mp4.jpg"
    assert frame_output_name("clips/b-3-mp4.png", "JPEG") == "clips/b-3-mp4.jpg"
    with Image.open(path) as written:
        assert (written.format, written.size) == ("JPEG", (32, 32))


def test_bad_requests_name_what_is_wrong(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    with pytest.raises(DataError, match=r"not video frame names.*'cat\.png'"):
        extract_frames(videos, ["cat.png", "a-01-mp4.png"], out)
    with pytest.raises(DataError, match=r"a-99-mp4\.png"):
        extract_frames(videos, ["a-99-mp4.png"], out)
    with pytest.raises(ConfigError, match="inside input_dir"):
        extract_frames(videos, NAMES, videos / "extracted")
    with pytest.raises(ConfigError, match="'gif' is not supported"):
        extract_frames(videos, NAMES, out, format="gif")


def test_frames_read_through_the_run_samples_match_and_skip_the_folder_scan(
    videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selfsup.curation.checks import build_manifest
    from selfsup.data import ManifestDataset

    checked = build_manifest(videos, remove_exact_duplicates=False, progress=False)
    samples = ManifestDataset(
        videos, [r for r in checked.records if r.is_ok], classes=checked.classes
    )
    plain = extract_frames(videos, NAMES, tmp_path / "plain")
    counting = CountingDataset()
    monkeypatch.setattr(frames_module, "LightlyDataset", counting)
    through = extract_frames(videos, NAMES, tmp_path / "samples", samples=samples)
    assert counting.calls == []  # no LightlyDataset: no listing, no probing
    for a, b in zip(plain, through, strict=True):
        assert a.read_bytes() == b.read_bytes()
    with pytest.raises(DataError, match="could not be read"):
        extract_frames(videos, ["a-99-mp4.png"], tmp_path / "more", samples=samples)
