"""``LightlyDataset``: one data interface for folders of images and videos and torch datasets.

Every item is a tuple ``(sample, target, filename)``. Anything else in selfsup that takes
a dataset only relies on that tuple, so a custom ``torch.utils.data.Dataset`` returning
``(sample, target, filename)`` works wherever a ``LightlyDataset`` does.

Folder layout, targets, frame names and what counts as a corrupt file are described in
:mod:`selfsup.data._folder`, :mod:`selfsup.data._video` and :mod:`selfsup.data._image`.
"""

from __future__ import annotations

import copy
import os
import posixpath
import shutil
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, SupportsIndex

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from selfsup.data._folder import FolderSource, list_names, normalize_relpath
from selfsup.data._index import check_index
from selfsup.errors import ConfigError, DataError
from selfsup.utils.atomic import atomic_open_bytes

IndexToFilename = Callable[[Any, int], str]

# How many skipped files the warning names before referring to ``dataset.skipped``.
_MAX_WARNED = 100


class SkippedFilesWarning(UserWarning):
    """Some files of an input folder were unreadable and left out of the dataset."""


def _default_index_to_filename(dataset: Any, index: int) -> str:
    """Name of item ``index``: the dataset's own name if it has one, else ``00000042.png``."""
    get_filename = getattr(dataset, "get_filename", None)
    if callable(get_filename):
        return str(get_filename(index))
    return f"{index:08d}.png"


class _EmptySource:
    """Stands in for the data of ``LightlyDataset(input_dir=None)``."""

    def __len__(self) -> int:
        return 0

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        raise IndexError(f"index {index} out of range for an empty dataset")


class LightlyDataset(Dataset[tuple[Any, Any, str]]):
    """A dataset of images and video frames from a folder, or a wrapped torch dataset.

    ``dataset[i]`` returns ``(sample, target, filename)``:

    * ``sample``: an RGB ``PIL.Image.Image``, or whatever ``transform`` makes of it
      (e.g. a float tensor of shape ``(3, H, W)`` after ``ToTensor``).
    * ``target``: index of the first-level subfolder the file lies in (``classes`` gives
      the names; files directly in the root are class ``"."`` with index 0).
    * ``filename``: POSIX path relative to ``input_dir``; for a video frame
      ``<video path without extension>-<frame>-<ext>.png`` with the frame zero-padded to
      the digits of the video's frame count, e.g. ``clips/a-0042-mp4.png`` for a video of
      1000 to 9999 frames.

    Every image file is one sample and every video (mp4, avi, mov, webm, mkv, ...) one
    sample per frame, decoded on demand with PyAV; nothing is extracted beforehand. Samples
    are ordered by relative path, a video's frames in frame order at its place, so with a
    single video in the folder ``dataset[k]`` is frame ``k``.

    Corrupt files are left out with one :class:`SkippedFilesWarning` naming them;
    ``skipped`` lists ``(filename, reason)``. An image is corrupt as the curation check
    defines it (:mod:`selfsup.data._image`: every image is decoded once at construction, the
    reason is ``empty``, ``unreadable``, ``unknown_format``, ``truncated``, ``decode_error``
    or ``too_large``); a video when it cannot be probed. A file that changes into something
    unreadable after construction raises :class:`~selfsup.errors.DataError` naming it.
    A curation run reads its samples with :class:`~selfsup.data.ManifestDataset` instead,
    from the check's records, so the folder is neither listed nor decoded twice.

    Works with ``torch.utils.data.DataLoader`` and any number of workers: open video files
    are kept per worker process and never shared or pickled.

    Args:
        input_dir: Folder with images and/or videos, possibly in subfolders. ``None``
            makes an empty dataset (used by :meth:`from_torch_dataset`).
        transform: Applied to every sample (a PIL image) when it is read.
        index_to_filename: ``f(dataset, index) -> filename`` overriding the names; it is
            passed the underlying data source (``self.dataset``).
        filenames: Keep only these relative names: image paths, video paths (all their
            frames) or frame names as returned by :meth:`get_filenames`. The folder order is
            kept. A name that does not exist raises :class:`DataError` listing them.
        tqdm_args: Keyword arguments for the progress bar shown while files are checked.
        num_workers_video_frame_counting: Threads that check files and count video frames
            in parallel (useful on network storage); 0 checks in the calling thread.
        from_folder: Alias of ``input_dir`` (older lightly API).

    Raises:
        DataError: ``input_dir`` does not exist, holds no usable image or video, or a name
            in ``filenames`` is unknown.
        ConfigError: ``input_dir`` and ``from_folder`` disagree, or a transform is given
            without data.

    Examples:
        >>> dataset = LightlyDataset(input_dir="my/images/")      # doctest: +SKIP
        >>> image, target, filename = dataset[0]                  # doctest: +SKIP
        >>> frames = LightlyDataset(from_folder="video/")         # doctest: +SKIP
        >>> frames.get_filenames()[:2]                            # doctest: +SKIP
        ['clip-000000-mp4.png', 'clip-000001-mp4.png']
    """

    def __init__(
        self,
        input_dir: str | os.PathLike[str] | None = None,
        transform: Callable[[Any], Any] | None = None,
        index_to_filename: IndexToFilename | None = None,
        filenames: Sequence[str] | None = None,
        tqdm_args: dict[str, Any] | None = None,
        num_workers_video_frame_counting: int = 0,
        *,
        from_folder: str | os.PathLike[str] | None = None,
    ) -> None:
        if from_folder is not None:
            if input_dir is not None and os.fspath(input_dir) != os.fspath(from_folder):
                raise ConfigError(
                    f"input_dir={os.fspath(input_dir)!r} and from_folder="
                    f"{os.fspath(from_folder)!r} disagree; from_folder is an alias, pass one"
                )
            input_dir = from_folder
        self.input_dir: str | None = None if input_dir is None else os.fspath(input_dir)
        self.index_to_filename: IndexToFilename = (
            index_to_filename if index_to_filename is not None else _default_index_to_filename
        )
        self._transform: Callable[[Any], Any] | None = transform
        self.skipped: list[tuple[str, str]] = []
        self.dataset: Any
        if self.input_dir is None:
            if transform is not None:
                raise ConfigError(
                    "transform must be None when input_dir is None (nothing to transform); "
                    "use LightlyDataset.from_torch_dataset(dataset, transform=...) instead"
                )
            if filenames is not None:
                raise ConfigError("filenames needs an input_dir to select from")
            self.dataset = _EmptySource()
            return
        source = FolderSource(
            self.input_dir,
            filenames=filenames,
            num_workers=num_workers_video_frame_counting,
            tqdm_args=tqdm_args,
        )
        self.dataset = source
        self.skipped = list(source.skipped)
        if self.skipped:
            names = [name for name, _ in self.skipped]
            reasons = "; ".join(f"{n!r}: {r}" for n, r in self.skipped[:_MAX_WARNED])
            more = len(self.skipped) - _MAX_WARNED
            warnings.warn(
                f"skipped {len(names)} unreadable file(s) in {self.input_dir!r}: {reasons}"
                + (f"; and {more} more (see dataset.skipped)" if more > 0 else ""),
                SkippedFilesWarning,
                stacklevel=2,
            )

    @classmethod
    def from_torch_dataset(
        cls,
        dataset: Any,
        transform: Callable[[Any], Any] | None = None,
        index_to_filename: IndexToFilename | None = None,
    ) -> LightlyDataset:
        """Wrap a dataset whose items are ``(sample, target)`` (e.g. torchvision CIFAR10).

        Names come from ``index_to_filename(dataset, index)`` or, by default, are
        ``f"{index:08d}.png"``. ``transform`` is applied on top of whatever the wrapped
        dataset returns; the wrapped dataset itself is not modified (lightly replaced its
        ``transform`` attribute; give the base dataset no transform to get the same result).

        Examples:
            >>> base = torchvision.datasets.CIFAR10(root="data/")  # doctest: +SKIP
            >>> dataset = LightlyDataset.from_torch_dataset(base)   # doctest: +SKIP
        """
        obj = cls(None, index_to_filename=index_to_filename)
        obj.dataset = dataset
        obj._transform = transform
        return obj

    def with_transform(self, transform: Callable[[Any], Any] | None) -> LightlyDataset:
        """A copy reading the same samples with another ``transform``: a folder's checked
        listing is shared, not checked again (every file decoded once more, and warned
        about again when unreadable)."""
        other = copy.copy(self)
        other._transform = transform
        other.skipped = list(self.skipped)
        if isinstance(self.dataset, FolderSource):
            other.dataset = self.dataset.fresh_copy()
        return other

    @property
    def transform(self) -> Callable[[Any], Any] | None:
        """Applied to every sample on read; may be replaced, e.g. between stages."""
        return self._transform

    @transform.setter
    def transform(self, transform: Callable[[Any], Any] | None) -> None:
        self._transform = transform

    @property
    def classes(self) -> list[str]:
        """Class names in target order (from the folder, or the wrapped dataset's)."""
        classes = getattr(self.dataset, "classes", None)
        if classes is None:
            raise AttributeError(f"{type(self.dataset).__name__} has no classes")
        return list(classes)

    @property
    def class_to_idx(self) -> dict[str, int]:
        """Class name -> target, as in torchvision's ``ImageFolder``."""
        return {name: i for i, name in enumerate(self.classes)}

    @property
    def targets(self) -> list[int]:
        """Target of every sample of a folder dataset, without reading any file."""
        if not isinstance(self.dataset, FolderSource):
            raise AttributeError("targets is only known without reading for folder datasets")
        return self.dataset.targets

    def __len__(self) -> int:
        return len(self.dataset)

    def _check_index(self, index: SupportsIndex) -> int:
        return check_index(index, len(self))

    def _raw(self, index: int) -> tuple[Any, Any]:
        """Untransformed ``(sample, target)`` of item ``index``."""
        item = self.dataset[index]
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise DataError(
                f"{type(self.dataset).__name__}[{index}] returned {type(item).__name__}; "
                "LightlyDataset wraps datasets whose items are (sample, target) pairs"
            )
        return item[0], item[1]

    def __getitem__(self, index: SupportsIndex) -> tuple[Any, Any, str]:
        """``(sample, target, filename)`` of item ``index`` (negative indices count back)."""
        i = self._check_index(index)
        filename = self.index_to_filename(self.dataset, i)
        sample, target = self._raw(i)
        if self._transform is not None:
            sample = self._transform(sample)
        return sample, target, filename

    def get_filenames(self) -> list[str]:
        """Names of all items, in index order."""
        if self.index_to_filename is _default_index_to_filename and isinstance(
            self.dataset, FolderSource
        ):
            return self.dataset.get_filenames()
        return [self.index_to_filename(self.dataset, i) for i in range(len(self))]

    def dump(
        self,
        output_dir: str | os.PathLike[str],
        filenames: Sequence[str] | None = None,
        format: str | None = None,
    ) -> None:
        """Write the untransformed samples to ``output_dir`` under their relative names.

        Image files are copied byte for byte when ``format`` is None; video frames and
        samples of wrapped datasets are encoded as images (format from the name's
        extension, PNG for frames). Each file is written atomically, so an interrupted
        dump never leaves a truncated image behind; files written before stay.

        Args:
            output_dir: Destination folder (created if missing).
            filenames: Only these names (as from :meth:`get_filenames`); None: all.
            format: Pillow format name (``"png"``, ``"jpeg"``, ...) to re-encode every
                sample in; the file names are kept as they are.

        Raises:
            DataError: A name is unknown, two items share a name, a name would leave
                ``output_dir``, or a sample is not an image.
        """
        out = Path(output_dir)
        names = self.get_filenames()
        if filenames is None:
            indices = list(range(len(names)))
        else:
            position = {name: i for i, name in enumerate(names)}
            wanted = {normalize_relpath(n) for n in filenames}
            missing = sorted(wanted - position.keys())
            if missing:
                raise DataError(
                    f"cannot dump {len(missing)} name(s) that are not in the dataset: "
                    f"{list_names(missing)}"
                )
            indices = sorted(position[n] for n in wanted)
        chosen = [names[i] for i in indices]
        dupes = sorted(n for n, count in Counter(chosen).items() if count > 1)
        if dupes:
            raise DataError(f"several items are named {list_names(dupes)}; names must be unique")
        out.mkdir(parents=True, exist_ok=True)
        for i, name in zip(indices, chosen, strict=True):
            self._dump_one(i, name, out, format)

    def _dump_one(self, index: int, name: str, out: Path, fmt: str | None) -> None:
        rel = posixpath.normpath(name)
        if posixpath.isabs(rel) or rel == ".." or rel.startswith("../"):
            raise DataError(f"cannot dump item {index} named {name!r}: the name leaves the folder")
        target = out / rel
        if fmt is None and isinstance(self.dataset, FolderSource):
            source = self.dataset.source_path(index)
            if source is not None:
                with open(source, "rb") as src, atomic_open_bytes(target) as dst:
                    shutil.copyfileobj(src, dst)
                return
        sample = (
            self.dataset.load(index)
            if isinstance(self.dataset, FolderSource)
            else self._raw(index)[0]
        )
        image = _as_pil(sample, name)
        save_format = fmt or Image.registered_extensions().get(target.suffix.lower(), "PNG")
        with atomic_open_bytes(target) as handle:
            image.save(handle, format=save_format)


def _as_pil(sample: Any, name: str) -> Image.Image:
    """A PIL image of ``sample`` (PIL image, CHW tensor or HWC uint8 array)."""
    if isinstance(sample, Image.Image):
        return sample
    if isinstance(sample, torch.Tensor):
        from torchvision.transforms.functional import to_pil_image

        image: Image.Image = to_pil_image(sample)
        return image
    if isinstance(sample, np.ndarray):
        return Image.fromarray(sample)
    raise DataError(
        f"cannot dump {name!r}: its sample is a {type(sample).__name__}, expected a PIL image, "
        "a (C, H, W) tensor or an (H, W, C) uint8 array"
    )
