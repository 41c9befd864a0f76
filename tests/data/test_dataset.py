"""LightlyDataset over image folders and wrapped torch datasets (videos: test_video.py)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import ToTensor

from selfsup.data import LightlyDataset, SkippedFilesWarning
from selfsup.data._image import check_image
from selfsup.errors import ConfigError, DataError

ImageFolderFactory = Callable[..., Path]


def _pixels(image: Image.Image) -> np.ndarray[Any, np.dtype[np.uint8]]:
    return np.asarray(image.convert("RGB"))


def _construct_quietly(*args: Any, **kwargs: Any) -> LightlyDataset:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean folder must not warn
        return LightlyDataset(*args, **kwargs)


# --- folders, names and targets ------------------------------------------------------------


def test_nested_folders_give_sorted_relative_names_and_class_targets(
    make_image_folder: ImageFolderFactory,
) -> None:
    root = make_image_folder(n_classes=3, n_per_class=2)
    deep = root / "class_1" / "deeper" / "more"
    deep.mkdir(parents=True)
    Image.new("RGB", (8, 8), (1, 2, 3)).save(deep / "nested.png")

    dataset = _construct_quietly(input_dir=str(root))

    names = dataset.get_filenames()
    assert names == sorted(names)
    assert len(dataset) == 7
    assert "class_1/deeper/more/nested.png" in names
    assert dataset.classes == ["class_0", "class_1", "class_2"]
    assert dataset.class_to_idx == {"class_0": 0, "class_1": 1, "class_2": 2}
    for i in range(len(dataset)):
        image, target, name = dataset[i]
        assert name == names[i]
        assert "\\" not in name
        assert not name.startswith("/")
        # target is the first-level folder, whatever the depth
        assert target == int(name.split("/")[0].split("_")[1])
        assert isinstance(image, Image.Image)
        assert image.mode == "RGB"
    assert dataset.targets == [dataset[i][1] for i in range(len(dataset))]


def test_names_are_stable_across_instances_and_pixels_match_the_file(
    make_image_folder: ImageFolderFactory,
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=3)
    first = LightlyDataset(input_dir=root)
    second = LightlyDataset(from_folder=str(root))
    assert first.get_filenames() == second.get_filenames()
    image, _, name = first[4]
    with Image.open(root / name) as reference:
        np.testing.assert_array_equal(_pixels(image), _pixels(reference))


def test_flat_folder_is_one_class_and_root_files_come_first(
    make_image_folder: ImageFolderFactory, tmp_path: Path
) -> None:
    flat = make_image_folder(n_classes=2, n_per_class=2, flat=True)
    dataset = LightlyDataset(flat)
    assert dataset.classes == ["."]
    assert {dataset[i][1] for i in range(len(dataset))} == {0}
    assert all("/" not in name for name in dataset.get_filenames())

    mixed = make_image_folder(n_classes=2, n_per_class=1, root=tmp_path / "mixed")
    Image.new("RGB", (8, 8)).save(mixed / "zz_root.png")
    dataset = LightlyDataset(mixed)
    assert dataset.classes == [".", "class_0", "class_1"]
    by_name = {name: target for _, target, name in (dataset[i] for i in range(len(dataset)))}
    assert by_name["zz_root.png"] == 0
    assert by_name["class_0/img_0_0.png"] == 1
    assert by_name["class_1/img_1_0.png"] == 2


def test_images_of_any_mode_are_converted_to_rgb(tmp_path: Path) -> None:
    root = tmp_path / "modes"
    root.mkdir()
    Image.new("L", (6, 5), 77).save(root / "gray.png")
    Image.new("RGBA", (6, 5), (10, 20, 30, 40)).save(root / "alpha.png")
    Image.new("P", (6, 5), 3).save(root / "palette.gif")
    Image.new("RGB", (6, 5), (200, 100, 50)).save(root / "photo.JPG")  # upper-case ext
    dataset = LightlyDataset(root)
    assert len(dataset) == 4
    for i in range(4):
        image, _, _ = dataset[i]
        assert image.mode == "RGB"
        assert image.size == (6, 5)
    gray = dataset[dataset.get_filenames().index("gray.png")][0]
    assert _pixels(gray)[0, 0].tolist() == [77, 77, 77]


def test_negative_and_out_of_range_indices(make_image_folder: ImageFolderFactory) -> None:
    dataset = LightlyDataset(make_image_folder(n_classes=1, n_per_class=3))
    assert dataset[-1][2] == dataset[2][2]
    assert dataset[np.int64(1)][2] == dataset[1][2]
    with pytest.raises(IndexError, match="3"):
        dataset[3]
    with pytest.raises(IndexError):
        dataset[-4]


# --- transform -----------------------------------------------------------------------------


def test_transform_is_applied_to_the_pil_sample_only(make_image_folder: ImageFolderFactory) -> None:
    root = make_image_folder(n_classes=2, n_per_class=2, size=(12, 10))
    plain = LightlyDataset(root)
    seen: list[type] = []

    def transform(image: Image.Image) -> torch.Tensor:
        seen.append(type(image))
        out: torch.Tensor = ToTensor()(image)
        return out

    transformed = LightlyDataset(root, transform=transform)
    for i in range(len(plain)):
        tensor, target, name = transformed[i]
        image, plain_target, plain_name = plain[i]
        assert isinstance(tensor, torch.Tensor)
        assert tensor.shape == (3, 10, 12)
        expected = torch.from_numpy(_pixels(image).astype(np.float32) / 255.0).permute(2, 0, 1)
        torch.testing.assert_close(tensor, expected)
        assert (target, name) == (plain_target, plain_name)
    assert all(issubclass(t, Image.Image) for t in seen)

    # the transform can be swapped later, as in lightly
    transformed.transform = None
    assert isinstance(transformed[0][0], Image.Image)


# --- filenames= ----------------------------------------------------------------------------


def test_filenames_restricts_in_folder_order(make_image_folder: ImageFolderFactory) -> None:
    root = make_image_folder(n_classes=3, n_per_class=3)
    full = LightlyDataset(root)
    wanted = ["class_2/img_2_1.png", "./class_0/img_0_2.png", "class_1/img_1_0.png"]
    subset = LightlyDataset(root, filenames=wanted)
    assert subset.get_filenames() == [
        "class_0/img_0_2.png",
        "class_1/img_1_0.png",
        "class_2/img_2_1.png",
    ]
    # targets and classes are those of the whole folder, not of the subset
    assert subset.classes == full.classes
    assert [subset[i][1] for i in range(3)] == [0, 1, 2]


def test_filenames_naming_missing_files_raise_listing_them(
    make_image_folder: ImageFolderFactory,
) -> None:
    root = make_image_folder(n_classes=1, n_per_class=2)
    with pytest.raises(DataError, match=r"nope\.png") as info:
        LightlyDataset(root, filenames=["class_0/img_0_0.png", "nope.png", "class_0/x.jpg"])
    assert "class_0/x.jpg" in str(info.value)
    assert "img_0_0" not in str(info.value).split("not in")[1].split(":", 1)[1]


# --- from_torch_dataset --------------------------------------------------------------------


class _PairDataset(torch.utils.data.Dataset[tuple[Image.Image, int]]):
    """A plain torch dataset of (PIL image, label); counts reads to catch mutation."""

    def __init__(self, n: int) -> None:
        rng = np.random.default_rng(0)
        self.images = [
            Image.fromarray(rng.integers(0, 255, (9, 7, 3), dtype=np.uint8)) for _ in range(n)
        ]
        self.transform: Any = None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return self.images[index], index % 3


def test_from_torch_dataset_default_names_transform_and_no_mutation() -> None:
    base = _PairDataset(5)
    dataset = LightlyDataset.from_torch_dataset(base, transform=ToTensor())
    assert len(dataset) == 5
    assert dataset.get_filenames() == [f"{i:08d}.png" for i in range(5)]
    tensor, target, name = dataset[3]
    assert name == "00000003.png"
    assert target == 0
    assert tensor.shape == (3, 9, 7)
    torch.testing.assert_close(tensor, ToTensor()(base.images[3]))
    assert base.transform is None  # wrapping does not modify the user's dataset


def test_from_torch_dataset_custom_index_to_filename() -> None:
    base = _PairDataset(3)
    dataset = LightlyDataset.from_torch_dataset(
        base, index_to_filename=lambda ds, i: f"cls{ds[i][1]}/sample_{i}.jpg"
    )
    assert dataset.get_filenames() == [
        "cls0/sample_0.jpg",
        "cls1/sample_1.jpg",
        "cls2/sample_2.jpg",
    ]
    assert dataset[2][2] == "cls2/sample_2.jpg"


def test_from_torch_dataset_rejects_items_that_are_not_pairs() -> None:
    dataset = LightlyDataset.from_torch_dataset([(1, 2, 3)])
    with pytest.raises(DataError, match=r"\(sample, target\)"):
        dataset[0]


# --- dump ----------------------------------------------------------------------------------


def test_dump_round_trip_copies_files_under_their_names(
    make_image_folder: ImageFolderFactory, tmp_path: Path
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=2, ext="jpg")
    dataset = LightlyDataset(root, transform=ToTensor())  # dump ignores the transform
    out = tmp_path / "dumped"
    dataset.dump(str(out))
    names = dataset.get_filenames()
    for name in names:
        assert (out / name).read_bytes() == (root / name).read_bytes()
    assert not list(out.rglob(".*"))  # no temporary files left behind
    again = LightlyDataset(out)
    assert again.get_filenames() == names
    assert again.classes == dataset.classes


def test_dump_subset_and_unknown_names(
    make_image_folder: ImageFolderFactory, tmp_path: Path
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=2)
    dataset = LightlyDataset(root)
    out = tmp_path / "subset"
    dataset.dump(out, filenames=["class_1/img_1_1.png"])
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "class_1/img_1_1.png"
    ]
    with pytest.raises(DataError, match=r"missing\.png"):
        dataset.dump(out, filenames=["missing.png"])


def test_dump_with_format_reencodes(make_image_folder: ImageFolderFactory, tmp_path: Path) -> None:
    root = make_image_folder(n_classes=1, n_per_class=1)
    dataset = LightlyDataset(root)
    out = tmp_path / "as_jpeg"
    dataset.dump(out, format="jpeg")
    written = (out / dataset.get_filenames()[0]).read_bytes()
    assert written[:3] == b"\xff\xd8\xff"  # JPEG magic, name kept


def test_dump_torch_dataset_writes_decodable_images(tmp_path: Path) -> None:
    base = _PairDataset(3)
    dataset = LightlyDataset.from_torch_dataset(base)
    dataset.dump(tmp_path / "torch")
    for i, name in enumerate(dataset.get_filenames()):
        with Image.open(tmp_path / "torch" / name) as image:
            np.testing.assert_array_equal(_pixels(image), _pixels(base.images[i]))


def test_dump_refuses_names_leaving_the_folder(tmp_path: Path) -> None:
    dataset = LightlyDataset.from_torch_dataset(
        _PairDataset(1), index_to_filename=lambda ds, i: "../escape.png"
    )
    with pytest.raises(DataError, match="leaves the folder"):
        dataset.dump(tmp_path / "out")
    assert not (tmp_path / "escape.png").exists()


# --- corrupt and missing data --------------------------------------------------------------


def test_corrupt_files_are_skipped_with_one_warning_naming_all(
    make_image_folder: ImageFolderFactory, corrupt_files: Callable[..., list[str]]
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=2)
    bad = corrupt_files(root / "class_1")
    with pytest.warns(SkippedFilesWarning) as record:
        dataset = LightlyDataset(root)
    skipped_warnings = [w for w in record if issubclass(w.category, SkippedFilesWarning)]
    assert len(skipped_warnings) == 1
    message = str(skipped_warnings[0].message)
    for name in bad:
        assert f"class_1/{name}" in message
    assert sorted(name for name, _ in dataset.skipped) == sorted(f"class_1/{n}" for n in bad)
    assert all(reason for _, reason in dataset.skipped)
    assert len(dataset) == 4
    for i in range(len(dataset)):
        dataset[i]  # every kept sample decodes


def test_jpeg_truncated_inside_the_scan_is_detected(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(buf, "JPEG")
    data = buf.getvalue()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * 0.8)])  # headers intact, scan cut short
    assert check_image(path) is not None
    # bytes after the end marker (some cameras append data) do not make a JPEG invalid
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(data + b"\x00" * 500)
    assert check_image(padded) is None


def test_image_broken_after_construction_raises_data_error_naming_it(
    make_image_folder: ImageFolderFactory,
) -> None:
    root = make_image_folder(n_classes=1, n_per_class=2)
    dataset = LightlyDataset(root)
    name = dataset.get_filenames()[1]
    (root / name).write_bytes(b"garbage")
    with pytest.raises(DataError, match=name):
        dataset[1]
    assert dataset[0][2] != name  # the others still load


def test_empty_folder_error_names_folder_and_extensions(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("not a sample")
    with pytest.raises(DataError, match="empty") as info:
        LightlyDataset(empty)
    assert ".png" in str(info.value)
    assert ".mp4" in str(info.value)


def test_folder_with_only_corrupt_files_raises(
    tmp_path: Path, corrupt_files: Callable[..., list[str]]
) -> None:
    root = tmp_path / "bad"
    corrupt_files(root)
    with pytest.raises(DataError, match="no usable") as info:
        LightlyDataset(root)
    assert "empty.png" in str(info.value)


def test_missing_input_dir_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "does_not_exist"
    with pytest.raises(DataError, match="does_not_exist"):
        LightlyDataset(missing)


def test_conflicting_aliases_and_transform_without_data() -> None:
    with pytest.raises(ConfigError, match="alias"):
        LightlyDataset(input_dir="a", from_folder="b")
    with pytest.raises(ConfigError, match="transform"):
        LightlyDataset(None, transform=ToTensor())
    assert len(LightlyDataset()) == 0


def test_empty_filenames_list_is_an_error(make_image_folder: ImageFolderFactory) -> None:
    with pytest.raises(DataError, match="filenames is empty"):
        LightlyDataset(make_image_folder(n_classes=1, n_per_class=1), filenames=[])


@pytest.mark.timeout(30)
def test_special_files_are_skipped_without_being_opened(
    make_image_folder: Callable[..., Path], tmp_path: Path
) -> None:
    import os

    root = make_image_folder(n_classes=1, n_per_class=2, flat=True)
    os.mkfifo(root / "pipe.png")  # opening it for reading would block forever
    os.symlink(tmp_path / "nowhere.png", root / "broken.png")
    with pytest.warns(SkippedFilesWarning, match="pipe.png"):
        dataset = LightlyDataset(input_dir=str(root))
    assert len(dataset) == 2
    assert dict(dataset.skipped) == {
        "broken.png": f"dangling_symlink: symbolic link to '{tmp_path / 'nowhere.png'}', "
        "which does not exist",
        "pipe.png": "not_a_regular_file:fifo: a fifo, not a regular file",
    }
    # Asked for by name, such an entry is skipped too (not "missing from the folder").
    with pytest.warns(SkippedFilesWarning):
        chosen = LightlyDataset(input_dir=str(root), filenames=["img_0_0.png", "pipe.png"])
    assert chosen.get_filenames() == ["img_0_0.png"]


def test_with_transform_shares_the_checked_listing(
    make_image_folder: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from selfsup.data._folder import FolderSource

    root = make_image_folder(n_classes=2, n_per_class=2, size=(12, 10))
    plain = LightlyDataset(input_dir=str(root))
    monkeypatch.setattr(FolderSource, "_probe_all", lambda *a, **k: pytest.fail("re-checked"))
    tensors = plain.with_transform(ToTensor())
    assert tensors.get_filenames() == plain.get_filenames()
    assert tensors.dataset is not plain.dataset  # its own video reader
    sample, target, name = tensors[3]
    assert isinstance(sample, torch.Tensor)
    assert tuple(sample.shape) == (3, 10, 12)
    assert (target, name) == (plain[3][1], plain[3][2])
    assert plain.transform is None
    assert isinstance(plain[0][0], Image.Image)
