"""ManifestDataset: the checked samples of a folder, read without listing or probing it."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import selfsup.data._video as video_module
from selfsup.curation.checks import build_manifest
from selfsup.data import LightlyDataset, ManifestDataset
from selfsup.errors import DataError

ImageFolderFactory = Callable[..., Path]


@pytest.fixture
def folder(make_image_folder: ImageFolderFactory, make_video: Callable[..., Path]) -> Path:
    """3 classes x 3 images, a root image, a 6-frame video in its own class, a corrupt file."""
    root = make_image_folder(n_classes=3, n_per_class=3)
    Image.new("RGB", (16, 12), (9, 8, 7)).save(root / "top.png")
    make_video("clip.mp4", n_frames=6, root=root / "videos")
    (root / "class_1" / "broken.png").write_text("not an image\n")
    return root


def _ok(records: Any) -> list[Any]:
    return [r for r in records if r.is_ok]


def _pixels(image: Any) -> np.ndarray[Any, Any]:
    return np.asarray(image)


def test_items_names_and_targets_are_those_of_lightly_dataset(folder: Path) -> None:
    checked = build_manifest(folder, remove_exact_duplicates=False, progress=False)
    dataset = ManifestDataset(folder, _ok(checked.records), classes=checked.classes)
    with pytest.warns(UserWarning, match="broken.png"):
        reference = LightlyDataset(folder)

    assert dataset.get_filenames() == reference.get_filenames()
    assert dataset.classes == reference.classes
    assert dataset.targets == reference.targets
    assert len(dataset) == len(reference) == 9 + 1 + 6
    for i in range(len(dataset)):
        image, target, name = dataset[i]
        ref_image, ref_target, ref_name = reference[i]
        assert (name, target) == (ref_name, ref_target)
        np.testing.assert_array_equal(_pixels(image), _pixels(ref_image))


def test_classes_come_from_the_full_listing_under_a_relevant_filter(folder: Path) -> None:
    # Only class_2 is relevant: its target stays 3 (".", class_0, class_1, class_2, videos),
    # as LightlyDataset(folder, filenames=...) numbers it, not 0.
    checked = build_manifest(
        folder, relevant=["class_2/*"], remove_exact_duplicates=False, progress=False
    )
    records = _ok(checked.records)
    dataset = ManifestDataset(folder, records, classes=checked.classes)
    reference = LightlyDataset(folder, filenames=[r.filename for r in records])
    assert dataset.targets == reference.targets == [3, 3, 3]
    # Without the check's classes, the records alone give the only class they hold.
    assert ManifestDataset(folder, records).targets == [0, 0, 0]


def test_building_and_reading_neither_lists_nor_probes(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = build_manifest(folder, remove_exact_duplicates=False, progress=False)
    records = _ok(checked.records)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the folder was listed or a video probed")

    monkeypatch.setattr(os, "scandir", refuse)
    monkeypatch.setattr(os, "listdir", refuse)
    monkeypatch.setattr(video_module, "probe_video", refuse)
    opened: list[str] = []
    recording = [True]
    root = str(folder) + os.sep

    def hook(event: str, args: tuple[Any, ...]) -> None:
        # One event with a mode per open(); the os.open inside its opener has mode None.
        path = args[0] if event == "open" and args[1] is not None else None
        if recording[0] and isinstance(path, str) and path.startswith(root):
            opened.append(path[len(root) :])

    # An audit hook cannot be removed; it stops recording when the test ends.
    sys.addaudithook(hook)
    try:
        dataset = ManifestDataset(folder, records, classes=checked.classes)
        assert opened == []
        images = [i for i, r in enumerate(records) if r.frame_index is None]
        for i in images:
            dataset[i]
    finally:
        recording[0] = False
    # Each image file is opened once, to read its pixels.
    assert sorted(opened) == sorted(records[i].source for i in images)


def test_frames_are_read_by_source_and_frame_index(folder: Path) -> None:
    checked = build_manifest(folder, remove_exact_duplicates=False, progress=False)
    frames = [r for r in _ok(checked.records) if r.frame_index is not None]
    dataset = ManifestDataset(folder, list(reversed(frames)), classes=checked.classes)
    assert dataset.get_filenames() == [r.filename for r in reversed(frames)]
    brightness = [float(_pixels(dataset[i][0])[20:, 20:].mean()) for i in range(len(dataset))]
    # write_video makes frame i brighter than frame i - 1; the order given is kept.
    assert brightness == sorted(brightness, reverse=True)
    assert dataset.frame_index(0) == 5


def test_a_file_changed_since_the_check_raises_naming_it(folder: Path) -> None:
    checked = build_manifest(folder, remove_exact_duplicates=False, progress=False)
    dataset = ManifestDataset(folder, _ok(checked.records), classes=checked.classes)
    (folder / "class_0" / "img_0_1.png").write_bytes(b"garbage")
    index = dataset.get_filenames().index("class_0/img_0_1.png")
    with pytest.raises(DataError, match=r"class_0/img_0_1\.png"):
        dataset[index]


def test_with_transform_copies_and_index_errors(folder: Path) -> None:
    checked = build_manifest(folder, remove_exact_duplicates=False, progress=False)
    dataset = ManifestDataset(folder, _ok(checked.records), classes=checked.classes)
    sized = dataset.with_transform(lambda image: image.size)
    assert dataset.transform is None
    assert sized[-1][0] == (32, 32)
    assert sized[0][2] == dataset[0][2]
    with pytest.raises(IndexError, match="out of range for 16 samples"):
        dataset[16]


def test_records_outside_the_classes_or_with_one_name_twice_are_refused(folder: Path) -> None:
    checked = build_manifest(folder, remove_exact_duplicates=False, progress=False)
    records = _ok(checked.records)
    with pytest.raises(DataError, match="not among the classes"):
        ManifestDataset(folder, records, classes=["class_0"])
    with pytest.raises(DataError, match="named"):
        ManifestDataset(folder, [records[0], records[0]])


def test_core_loaders_read_the_samples(folder: Path) -> None:
    from selfsup.config import LoaderConfig
    from selfsup.core import build_embed_loader

    checked = build_manifest(folder, remove_exact_duplicates=False, progress=False)
    dataset = ManifestDataset(folder, _ok(checked.records), classes=checked.classes)
    loader = build_embed_loader("", LoaderConfig(num_workers=0), 16, samples=dataset)
    images, targets, names = next(iter(loader))
    assert tuple(images.shape) == (16, 3, 16, 16)
    assert list(names) == dataset.get_filenames()
    assert targets.tolist() == dataset.targets
