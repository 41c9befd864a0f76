"""A memory-mapped cache of decoded, resized images: ``(N, 3, S, S)`` uint8 plus their sizes.

Decoding dominates the input path of small models on small images (a 28-px PNG decodes in
about as long as a ResNet-18 takes to embed it on a GPU). For datasets that fit on disk at
the training size (``N * 3 * S * S`` bytes: 60,000 images at 32 px are 184 MB, at 224 px
9 GB) the decoded images can be kept in one ``np.memmap`` and read back with a copy per row:
later epochs and later runs over the same files skip decoding and resizing altogether.

Use it (``loader.cache_dir=<folder>``; ``''``, the default, keeps it off) when the same
files are read many times at one size: several epochs of training, training then embedding
at the same size, or repeated runs. It does not help one pass over a large dataset (the
first pass decodes as before and also writes every row) nor data that changes every run.
Training with ``loader.augment=device`` caches its source images (side: twice the largest
view's, :mod:`selfsup.transforms.device_views`), embedding its input size: two caches of the
same files. A training epoch is shuffled and drops its last partial batch, so it does not
read every row: its loader (:class:`~selfsup.data.uint8.Uint8CacheLoader`) decodes the rows
the first full epoch skipped at that epoch's end and publishes the cache; later epochs and
runs read only the cache.

Layout under the cache folder, per dataset and size:

* ``<key>-s<S>/``: a complete cache: ``images.u8`` (N, 3, S, S) uint8, ``sizes.i64``
  (N, 2) int64 original heights and widths, and ``meta.json`` (key, N, S, format);
* ``.building-<key>-s<S>-<pid>-<random>/``: a cache being filled by process ``pid`` (and its
  DataLoader workers), with ``filled.u8`` (N,) marking the rows written (kept, all ones,
  in the complete folder).

The key is a SHA-256 of the samples: for each, its name, file path, video frame, and the
file's size and modification time (nanoseconds), in dataset order. A file that changes gives
another key, hence a new cache; nothing stale is read.

Building is atomic: rows are filled on first read into the private ``.building-...``
folder, a row is marked filled only after its pixels and size are written, and once every
row is filled the folder is renamed to ``<key>-s<S>`` in one step (:meth:`Uint8Cache.finalize`).
A build that crashed leaves a ``.building-...`` folder that no other process reads; the next
run whose process finds its owner dead deletes it and builds again. Two runs building the
same cache at once each fill their own folder; the first to finish wins, the other discards
its copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import torch

from selfsup.errors import ConfigError

#: Version of the on-disk layout; a cache of another version is rebuilt.
CACHE_FORMAT: Final = "selfsup-uint8-cache-1"


def _pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (a build folder's owner)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def dataset_key(base: Any) -> str:
    """SHA-256 (hex) of ``base``'s samples: name, file, frame, file size and mtime each.

    Raises:
        ConfigError: ``base`` is no folder or manifest dataset (its samples are not files
            whose changes could be noticed), or a file cannot be examined.
    """
    from selfsup.data._folder import FolderSource
    from selfsup.data.dataset import LightlyDataset
    from selfsup.data.manifest_dataset import ManifestDataset

    digest = hashlib.sha256(CACHE_FORMAT.encode())
    rows: list[tuple[str, str, int]] = []
    if isinstance(base, ManifestDataset):
        for i, name in enumerate(base.get_filenames()):
            frame = base.frame_index(i)
            rows.append((name, base.source_path(i), -1 if frame is None else frame))
    elif isinstance(base, LightlyDataset) and isinstance(base.dataset, FolderSource):
        source: FolderSource = base.dataset
        for i in range(len(source)):
            file, frame = source._locate(i)
            rows.append((source.get_filename(i), os.path.join(source.root, file.relpath), frame))
    else:
        raise ConfigError(
            f"loader.cache_dir caches folder and manifest datasets; a {type(base).__name__} "
            "has no files to key the cache by: set loader.cache_dir='' for it"
        )
    stats: dict[str, tuple[int, int]] = {}
    for name, path, frame in rows:
        if path not in stats:
            try:
                st = os.stat(path)
            except OSError as exc:
                raise ConfigError(
                    f"cannot key the image cache: {path!r} cannot be examined: {exc}"
                ) from exc
            stats[path] = (st.st_size, st.st_mtime_ns)
        size, mtime = stats[path]
        digest.update(f"{name}\0{path}\0{frame}\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()


@dataclass
class _Arrays:
    """The memory maps of one cache folder, opened in one process."""

    images: np.memmap[Any, np.dtype[np.uint8]]
    sizes: np.memmap[Any, np.dtype[np.int64]]
    filled: np.memmap[Any, np.dtype[np.uint8]] | None


@dataclass
class Uint8Cache:
    """The cache of ``n`` images of side ``size`` of one dataset (see the module docstring).

    Build it with :meth:`for_dataset`. It is pickled into DataLoader workers as its paths;
    each process opens its own memory maps on first use.

    Attributes:
        root: The cache folder (``loader.cache_dir``).
        key: :func:`dataset_key` of the dataset.
        n: Number of images.
        size: Their side S.
    """

    root: Path
    key: str
    n: int
    size: int
    _building: Path | None = None
    _arrays: _Arrays | None = field(default=None, repr=False)
    _pid: int = field(default=-1, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without this process's memory maps: numpy would pickle their content (the
        whole cache) into every spawned DataLoader worker; each process opens its own."""
        state = dict(self.__dict__)
        state["_arrays"] = None
        state["_pid"] = -1
        return state

    @property
    def path(self) -> Path:
        """The folder of the complete cache."""
        return self.root / f"{self.key}-s{self.size}"

    @property
    def complete(self) -> bool:
        """Whether every row is filled (the complete folder exists)."""
        return self._building is None

    @classmethod
    def for_dataset(cls, root: str | os.PathLike[str], base: Any, size: int) -> Uint8Cache:
        """The cache of ``base`` at side ``size`` under ``root``: the complete one if a run
        built it, else a new build folder of this process. Build folders of dead processes
        for the same key are removed.

        Raises:
            ConfigError: ``root`` cannot be created, or ``base`` cannot be cached
                (:func:`dataset_key`).
        """
        folder = Path(root)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"loader.cache_dir={os.fspath(root)!r} cannot be created: {exc}"
            ) from exc
        cache = cls(folder, dataset_key(base), len(base), size)
        if cache._valid_complete():
            return cache
        prefix = f".building-{cache.key}-s{size}-"
        for stale in folder.glob(prefix + "*"):
            pid_text = stale.name[len(prefix) :].split("-", 1)[0]
            if pid_text.isdigit() and not _pid_alive(int(pid_text)):
                shutil.rmtree(stale, ignore_errors=True)
        building = folder / f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:12]}"
        building.mkdir()
        shape = (cache.n, 3, size, size)
        # Created full size (sparse on most file systems); rows are written on first read.
        np.memmap(building / "images.u8", dtype=np.uint8, mode="w+", shape=shape).flush()
        np.memmap(building / "sizes.i64", dtype=np.int64, mode="w+", shape=(cache.n, 2)).flush()
        np.memmap(building / "filled.u8", dtype=np.uint8, mode="w+", shape=(cache.n,)).flush()
        cache._building = building
        return cache

    def _valid_complete(self) -> bool:
        """Whether the complete folder exists and matches this key, N and S; a damaged one
        (wrong meta or file sizes) is removed so it gets rebuilt."""
        meta_path = self.path / "meta.json"
        if not meta_path.is_file():
            return False
        try:
            meta = json.loads(meta_path.read_text())
            ok = (
                meta == self._meta()
                and (self.path / "images.u8").stat().st_size == self.n * 3 * self.size**2
                and (self.path / "sizes.i64").stat().st_size == self.n * 2 * 8
            )
        except (OSError, ValueError):
            ok = False
        if not ok:
            shutil.rmtree(self.path, ignore_errors=True)
        return ok

    def _meta(self) -> dict[str, Any]:
        return {"format": CACHE_FORMAT, "key": self.key, "n": self.n, "size": self.size}

    def _open(self) -> _Arrays:
        """This process's memory maps (reopened after a fork or an unpickle)."""
        if self._arrays is not None and self._pid == os.getpid():
            return self._arrays
        if self._building is not None and not self._building.is_dir() and self.path.is_dir():
            self._building = None  # another process of this run finished the build
        folder = self._building if self._building is not None else self.path
        mode: Literal["r+", "r"] = "r+" if self._building is not None else "r"
        shape = (self.n, 3, self.size, self.size)
        images = np.memmap(folder / "images.u8", dtype=np.uint8, mode=mode, shape=shape)
        sizes = np.memmap(folder / "sizes.i64", dtype=np.int64, mode=mode, shape=(self.n, 2))
        filled = (
            np.memmap(folder / "filled.u8", dtype=np.uint8, mode="r+", shape=(self.n,))
            if self._building is not None
            else None
        )
        self._arrays = _Arrays(images, sizes, filled)
        self._pid = os.getpid()
        return self._arrays

    def get(self, index: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(image (3, S, S) uint8, orig_hw (2,) int64)`` of row ``index`` (copies), or
        None when the row is not filled yet."""
        arrays = self._open()
        if arrays.filled is not None and not arrays.filled[index]:
            return None
        image = torch.from_numpy(np.array(arrays.images[index]))
        hw = torch.from_numpy(np.array(arrays.sizes[index]))
        return image, hw

    def missing(self) -> np.ndarray[Any, np.dtype[np.intp]]:
        """Indices of the rows not filled yet, ascending (empty once the cache is complete).

        A pass that reads only some rows (a training epoch with ``drop_last``, a sampler's
        subset) leaves these; :meth:`~selfsup.data.uint8.Uint8Dataset.complete_cache` fills
        them so the cache can be published."""
        if self._building is None:
            return np.zeros(0, dtype=np.intp)
        arrays = self._open()
        if arrays.filled is None:  # _open found the build published by another process
            return np.zeros(0, dtype=np.intp)
        return np.flatnonzero(np.asarray(arrays.filled) == 0)

    def put(self, index: int, image: torch.Tensor, hw: torch.Tensor) -> None:
        """Write row ``index``: ``image`` (3, S, S) uint8 and ``hw`` (2,) int64; no-op on a
        complete cache. The row is marked filled after both are written."""
        arrays = self._open()
        if arrays.filled is None:
            return
        arrays.images[index] = image.numpy()
        arrays.sizes[index] = hw.numpy()
        arrays.filled[index] = 1
        if index == self.n - 1:
            # The last row of an unshuffled pass: usually the build is complete now (other
            # callers, e.g. at the end of an epoch, use finalize() themselves).
            self.finalize()

    def finalize(self) -> bool:
        """Publish the build if every row is filled (flush, then one rename); returns
        whether the cache is complete. Safe to call from any process of the run, any time."""
        if self._building is None:
            return True
        arrays = self._open()
        if self._building is None:
            return True
        assert arrays.filled is not None
        if not bool(np.all(arrays.filled)):
            return False
        for array in (arrays.images, arrays.sizes, arrays.filled):
            array.flush()
        try:
            for name in ("images.u8", "sizes.i64"):
                with open(self._building / name, "rb+") as handle:
                    os.fsync(handle.fileno())
            (self._building / "meta.json").write_text(json.dumps(self._meta()))
            os.rename(self._building, self.path)
        except OSError:
            # Another process published this build, or another build of the same files,
            # first: use theirs and drop ours.
            if not self._valid_complete():
                raise
            shutil.rmtree(self._building, ignore_errors=True)
        self._building = None
        self._arrays = None
        return True
