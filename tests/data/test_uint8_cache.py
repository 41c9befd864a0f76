"""Uint8Cache: decoded, resized images in a memory-mapped array, built atomically."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import selfsup.data.uint8 as uint8_module
from _decode_counter import count_decodes
from selfsup.data import LightlyDataset
from selfsup.data.uint8 import Uint8CacheLoader, Uint8Dataset
from selfsup.data.uint8_cache import Uint8Cache, dataset_key
from selfsup.errors import ConfigError, DataError

ImageFolderFactory = Callable[..., Path]


def _items(dataset: Uint8Dataset) -> list[tuple[Any, ...]]:
    return [dataset[i] for i in range(len(dataset))]


def _assert_same(items: list[tuple[Any, ...]], reference: list[tuple[Any, ...]]) -> None:
    assert len(items) == len(reference)
    for (image, hw, label, name), (ref_image, ref_hw, ref_label, ref_name) in zip(
        items, reference, strict=True
    ):
        assert torch.equal(image, ref_image)
        assert torch.equal(hw, ref_hw)
        assert (label, name) == (ref_label, ref_name)


def _no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("decoded although the cache holds the image")

    monkeypatch.setattr(uint8_module, "decode_uint8", refuse)


def test_first_pass_fills_the_cache_later_runs_read_it_without_decoding(
    make_image_folder: ImageFolderFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=3, size=(20, 30))
    base = LightlyDataset(root)
    reference = _items(Uint8Dataset(base, 12))
    cache_dir = tmp_path / "cache"

    cache = Uint8Cache.for_dataset(cache_dir, base, 12)
    assert not cache.complete
    first = _items(Uint8Dataset(base, 12, cache=cache))

    _assert_same(first, reference)
    assert cache.complete  # the last row of the pass published it
    assert sorted(p.name for p in cache_dir.iterdir()) == [cache.path.name]
    meta = json.loads((cache.path / "meta.json").read_text())
    assert (meta["n"], meta["size"], meta["key"]) == (6, 12, dataset_key(base))

    _no_decoding(monkeypatch)
    again = Uint8Cache.for_dataset(cache_dir, LightlyDataset(root), 12)
    assert again.complete
    _assert_same(_items(Uint8Dataset(LightlyDataset(root), 12, cache=again)), reference)


def test_a_changed_file_or_size_gets_another_cache(
    make_image_folder: ImageFolderFactory, tmp_path: Path
) -> None:
    root = make_image_folder(n_classes=1, n_per_class=2)
    key = dataset_key(LightlyDataset(root))
    changed = root / "class_0" / "img_0_0.png"
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    assert dataset_key(LightlyDataset(root)) != key
    cache = Uint8Cache.for_dataset(tmp_path / "c", LightlyDataset(root), 8)
    other = Uint8Cache.for_dataset(tmp_path / "c", LightlyDataset(root), 16)
    assert cache.path != other.path


def test_a_crashed_build_is_never_read_and_is_rebuilt(
    make_image_folder: ImageFolderFactory, tmp_path: Path
) -> None:
    root = make_image_folder(n_classes=1, n_per_class=3)
    base = LightlyDataset(root)
    reference = _items(Uint8Dataset(base, 8))
    cache_dir = tmp_path / "cache"
    # A build whose process died after writing garbage rows and marking them filled.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    crashed = Uint8Cache.for_dataset(cache_dir, base, 8)
    assert crashed._building is not None
    stale = crashed._building.with_name(
        crashed._building.name.replace(f"-{os.getpid()}-", f"-{int(dead.stdout)}-")
    )
    crashed._building.rename(stale)
    np.memmap(stale / "images.u8", dtype=np.uint8, mode="r+", shape=(3, 3, 8, 8))[:] = 7
    np.memmap(stale / "filled.u8", dtype=np.uint8, mode="r+", shape=(3,))[:] = 1

    cache = Uint8Cache.for_dataset(cache_dir, base, 8)

    assert not stale.exists()
    assert not cache.complete
    _assert_same(_items(Uint8Dataset(base, 8, cache=cache)), reference)
    assert cache.complete


def test_a_damaged_complete_cache_is_rebuilt(
    make_image_folder: ImageFolderFactory, tmp_path: Path
) -> None:
    root = make_image_folder(n_classes=1, n_per_class=2)
    base = LightlyDataset(root)
    cache = Uint8Cache.for_dataset(tmp_path, base, 8)
    _items(Uint8Dataset(base, 8, cache=cache))
    assert cache.complete
    with open(cache.path / "images.u8", "r+b") as handle:
        handle.truncate(10)

    rebuilt = Uint8Cache.for_dataset(tmp_path, base, 8)

    assert not rebuilt.complete
    assert not cache.path.exists()


def test_rows_filled_by_loader_workers_are_published_by_finalize(
    make_image_folder: ImageFolderFactory, tmp_path: Path
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=4, size=(16, 16))
    base = LightlyDataset(root)
    reference = _items(Uint8Dataset(base, 8))
    dataset = Uint8Dataset(base, 8, cache=Uint8Cache.for_dataset(tmp_path, base, 8))
    loader = DataLoader(dataset, batch_size=3, shuffle=True, num_workers=2)

    batches = list(loader)

    assert sum(len(b[3]) for b in batches) == len(base)
    assert dataset.finalize_cache()
    assert dataset.cache is not None
    assert dataset.cache.complete
    _assert_same(_items(dataset), reference)


def test_datasets_without_files_cannot_be_cached(tmp_path: Path) -> None:
    wrapped = LightlyDataset.from_torch_dataset([(torch.zeros(3, 4, 4), 0)])
    with pytest.raises(ConfigError, match=r"loader\.cache_dir.*LightlyDataset"):
        Uint8Cache.for_dataset(tmp_path, wrapped, 4)


def test_the_cache_must_match_the_dataset(
    make_image_folder: ImageFolderFactory, tmp_path: Path
) -> None:
    base = LightlyDataset(make_image_folder(n_classes=1, n_per_class=2))
    cache = Uint8Cache.for_dataset(tmp_path, base, 8)
    with pytest.raises(DataError, match=r"2 images of side 8.*2 samples of side 16"):
        Uint8Dataset(base, 16, cache=cache)


def test_a_training_epoch_with_drop_last_is_completed_and_published_by_the_loader(
    make_image_folder: ImageFolderFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=5, size=(16, 16))
    base = LightlyDataset(root)
    reference = _items(Uint8Dataset(base, 8))
    decoded = count_decodes(monkeypatch)
    dataset = Uint8Dataset(base, 8, cache=Uint8Cache.for_dataset(tmp_path / "cache", base, 8))
    # 10 samples in batches of 4 with drop_last: the epoch reads 8 rows.
    loader = Uint8CacheLoader(dataset, batch_size=4, shuffle=True, drop_last=True)

    seen = [name for batch in loader for name in batch[3]]

    assert len(seen) == 8
    assert sorted(decoded) == sorted(base.get_filenames())  # the 2 skipped ones at the end
    assert dataset.cache is not None
    assert dataset.cache.complete
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [dataset.cache.path.name]
    decoded.clear()
    _assert_same(_items(dataset), reference)
    assert sum(len(batch[3]) for batch in loader) == 8  # the next epoch reads the cache only
    assert decoded == []


@pytest.mark.parametrize("taken", [2, 1], ids=["every batch", "one short"])
def test_a_consumer_that_stops_at_the_length_still_publishes_the_cache(
    taken: int, make_image_folder: ImageFolderFactory, tmp_path: Path
) -> None:
    # Lightning's training loop takes len(loader) batches and never asks for one more, so
    # the loader's generator is left unfinished after the last batch.
    base = LightlyDataset(make_image_folder(n_classes=1, n_per_class=5, size=(16, 16)))
    cache = Uint8Cache.for_dataset(tmp_path / "cache", base, 8)
    loader = Uint8CacheLoader(
        Uint8Dataset(base, 8, cache=cache), batch_size=2, shuffle=True, drop_last=True
    )
    assert len(loader) == 2

    batches = iter(loader)
    for _ in range(taken):
        next(batches)

    assert cache.complete == (taken == len(loader))
    assert cache.path.exists() == (taken == len(loader))


def test_a_pass_stopped_early_leaves_the_cache_unpublished(
    make_image_folder: ImageFolderFactory, tmp_path: Path
) -> None:
    base = LightlyDataset(make_image_folder(n_classes=2, n_per_class=3, size=(16, 16)))
    cache = Uint8Cache.for_dataset(tmp_path / "cache", base, 8)
    loader = Uint8CacheLoader(Uint8Dataset(base, 8, cache=cache), batch_size=2, shuffle=True)

    next(iter(loader))

    assert not cache.complete
    assert len(cache.missing()) == 4
    assert not cache.path.exists()


def test_a_row_that_cannot_be_decoded_keeps_the_cache_unpublished(
    make_image_folder: ImageFolderFactory, tmp_path: Path
) -> None:
    root = make_image_folder(n_classes=1, n_per_class=3, size=(16, 16))
    base = LightlyDataset(root)
    dataset = Uint8Dataset(base, 8, cache=Uint8Cache.for_dataset(tmp_path / "cache", base, 8))
    dataset[0]
    (root / base.get_filenames()[2]).write_bytes(b"not an image")

    with pytest.warns(UserWarning, match=r"not published.*img_0_2"):
        assert not dataset.complete_cache()

    assert dataset.cache is not None
    assert dataset.cache.missing().tolist() == [2]
    assert not dataset.cache.path.exists()


def test_persistent_workers_read_the_cache_the_main_process_published(
    make_image_folder: ImageFolderFactory, tmp_path: Path
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=5, size=(16, 16))
    base = LightlyDataset(root)
    reference = {item[3]: item for item in _items(Uint8Dataset(base, 8))}
    cache = Uint8Cache.for_dataset(tmp_path / "cache", base, 8)
    dataset = Uint8Dataset(base, 8, cache=cache)
    loader = Uint8CacheLoader(
        dataset,
        batch_size=3,
        shuffle=True,
        drop_last=True,
        num_workers=2,
        persistent_workers=True,
    )

    for _ in range(2):  # the workers of epoch 1 filled rows; after it the cache is published
        for images, hws, _, names in loader:
            for image, hw, name in zip(images, hws, names, strict=True):
                assert torch.equal(image, reference[name][0])
                assert torch.equal(hw, reference[name][1])
        assert cache.complete
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [cache.path.name]


def test_a_pickled_cache_carries_its_paths_not_its_pixels(
    make_image_folder: ImageFolderFactory, tmp_path: Path
) -> None:
    base = LightlyDataset(make_image_folder(n_classes=1, n_per_class=4, size=(16, 16)))
    cache = Uint8Cache.for_dataset(tmp_path / "cache", base, 64)
    dataset = Uint8Dataset(base, 64, cache=cache)
    reference = _items(dataset)  # opens the memory maps in this process and fills the cache
    assert cache.complete
    cache.get(0)

    copy = pickle.loads(pickle.dumps(cache))

    assert len(pickle.dumps(cache)) < 4 * 3 * 64 * 64  # not the 48 KiB of pixels
    _assert_same(_items(Uint8Dataset(base, 64, cache=copy)), reference)
