"""Tests of selfsup.data.lightly_subset: a LightlyDataset restricted to a list of names."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms import ToTensor

from selfsup.data import LightlyDataset, LightlySubset
from selfsup.errors import ConfigError, DataError

ImageFolderFactory = Callable[..., Path]


def _pixels(image: Any) -> np.ndarray[Any, np.dtype[np.uint8]]:
    return np.asarray(image)


def test_subset_keeps_the_order_of_the_names(make_image_folder: ImageFolderFactory) -> None:
    base = LightlyDataset(make_image_folder(n_classes=2, n_per_class=3))
    names = base.get_filenames()
    wanted = [names[4], names[0], names[2]]
    subset = LightlySubset(base, wanted)
    assert len(subset) == 3
    assert subset.get_filenames() == wanted
    for i, name in enumerate(wanted):
        sample, target, filename = subset[i]
        base_sample, base_target, _ = base[names.index(name)]
        assert filename == name
        assert target == base_target
        np.testing.assert_array_equal(_pixels(sample), _pixels(base_sample))
    assert subset[-1][2] == wanted[-1]
    assert subset.targets == [base.targets[names.index(n)] for n in wanted]
    assert subset.classes == base.classes
    assert subset.input_dir == base.input_dir
    assert subset.mapping_subset_index_to_baseset_index == [4, 0, 2]
    assert subset.index_to_filename(subset.dataset, 1) == wanted[1]
    with pytest.raises(IndexError, match="out of range for 3 samples"):
        subset[3]


def test_subset_names_every_unknown_filename(make_image_folder: ImageFolderFactory) -> None:
    root = make_image_folder(n_classes=1, n_per_class=2)
    base = LightlyDataset(root)
    known = base.get_filenames()[0]
    with pytest.raises(DataError) as info:
        LightlySubset(base, [known, "nope.png", "class_0/missing.jpg"])
    message = str(info.value)
    assert "2 of 3 name(s) are not in the base dataset" in message
    assert "'nope.png'" in message
    assert "'class_0/missing.jpg'" in message
    assert str(root) in message
    assert repr(known) not in message


def test_subset_accepts_equivalent_relative_names(make_image_folder: ImageFolderFactory) -> None:
    base = LightlyDataset(make_image_folder(n_classes=2, n_per_class=1))
    name = base.get_filenames()[1]
    subset = LightlySubset(base, [f"./{name}"])
    assert subset.get_filenames() == [name]
    assert subset[0][2] == name


def test_subset_rejects_a_single_string_and_ambiguous_names() -> None:
    wrapped = LightlyDataset.from_torch_dataset(
        TensorDataset(torch.zeros(3, 2), torch.zeros(3)),
        index_to_filename=lambda _dataset, index: "same.png" if index < 2 else "other.png",
    )
    with pytest.raises(ConfigError, match=r"single string 'other\.png'"):
        LightlySubset(wrapped, "other.png")
    with pytest.raises(DataError, match=r"several items .* 'same\.png'"):
        LightlySubset(wrapped, ["same.png"])
    assert LightlySubset(wrapped, ["other.png"]).mapping_subset_index_to_baseset_index == [2]


def test_subset_of_a_wrapped_dataset_shares_the_transform() -> None:
    x = torch.arange(8.0).reshape(4, 2)
    base = LightlyDataset.from_torch_dataset(TensorDataset(x, torch.arange(4)))
    subset = LightlySubset(base, ["00000003.png", "00000001.png", "00000003.png"])
    assert len(subset) == 3  # a name listed twice gives two items
    assert [int(subset[i][1]) for i in range(3)] == [3, 1, 3]
    subset.transform = lambda sample: sample * 10
    assert base.transform is subset.transform
    torch.testing.assert_close(subset[1][0], x[1] * 10)
    nested = LightlySubset(subset, ["00000001.png"])
    assert nested[0][2] == "00000001.png"
    torch.testing.assert_close(nested[0][0], x[1] * 10)
    # DataLoader workers need the subset to pickle (the lambda transform above would not).
    base.transform = None
    restored = pickle.loads(pickle.dumps(LightlySubset(base, ["00000002.png"])))
    assert restored.get_filenames() == ["00000002.png"]
    assert restored.index_to_filename(None, 0) == "00000002.png"
    batch = next(iter(DataLoader(LightlySubset(base, ["00000000.png", "00000002.png"]), 2)))
    assert list(batch[2]) == ["00000000.png", "00000002.png"]


def test_subset_with_an_image_transform(make_image_folder: ImageFolderFactory) -> None:
    base = LightlyDataset(make_image_folder(n_classes=1, n_per_class=2), transform=ToTensor())
    subset = LightlySubset(base, base.get_filenames()[::-1])
    sample, _, _ = subset[0]
    assert isinstance(sample, torch.Tensor)
    assert sample.shape == (3, 32, 32)


def test_subset_dump_writes_only_the_subset(
    make_image_folder: ImageFolderFactory, tmp_path: Path
) -> None:
    base = LightlyDataset(make_image_folder(n_classes=2, n_per_class=2))
    names = base.get_filenames()
    subset = LightlySubset(base, [names[3], names[0]])
    out = tmp_path / "dumped"
    subset.dump(out)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted([names[0], names[3]])
    with Image.open(out / names[3]) as image:
        np.testing.assert_array_equal(
            np.asarray(image), np.asarray(Image.open(Path(str(base.input_dir)) / names[3]))
        )
    with pytest.raises(DataError, match=f"not in the subset: {names[1]!r}"):
        subset.dump(tmp_path / "again", [names[1]])
