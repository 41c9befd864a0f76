"""``ManifestDataset``: the samples a curation check recorded, read without listing the folder.

The curation run's check step lists the input folder once, reads and decodes every file once
and writes one record per sample (``data/manifest.jsonl``, :mod:`selfsup.curation.manifest`).
Every later step (training, embedding, object crops, frame extraction) reads its samples
through this dataset, built from those records: it never lists the folder and never probes a
file. Reading a sample decodes only its pixels (:func:`selfsup.data._image.load_rgb`, or the
frame of a video with :class:`selfsup.data._video.VideoFrameReader`).

Items, names and targets are those :class:`~selfsup.data.LightlyDataset` gives for the same
samples of the same folder: ``dataset[i]`` is ``(sample, target, filename)`` with the RGB
image (or ``transform`` of it), the index of its first-level subfolder in ``classes`` and its
name (image path, or lightly's frame name). The order is the order of the records given.

A file that changed into something unreadable since the check raises
:class:`~selfsup.errors.DataError` naming it, as LightlyDataset does for a file that fails to
decode after construction; the curation pipeline then marks the file lost and goes on.
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol, SupportsIndex

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from torch.utils.data import Dataset

from selfsup.data._image import load_rgb
from selfsup.data._index import check_index
from selfsup.data._video import VideoFrameReader
from selfsup.data.files import class_of, find_classes
from selfsup.errors import DataError


class SampleRef(Protocol):
    """What the dataset needs of a record (``curation.manifest.SampleRecord`` has it)."""

    @property
    def filename(self) -> str:
        """The sample's name: the image path, or lightly's frame name of a video frame."""

    @property
    def source(self) -> str:
        """POSIX path of the file relative to the root (the video for a frame)."""

    @property
    def frame_index(self) -> int | None:
        """The frame of the video ``source``; ``None`` for an image."""


class ManifestDataset(Dataset[tuple[Any, int, str]]):
    """The samples of ``records`` below ``root``: ``dataset[i] -> (sample, target, filename)``.

    Args:
        root: The folder the records' ``source`` paths are relative to.
        records: The samples, in dataset order (e.g. the ``ok`` records of a manifest).
        transform: Applied to every sample (an RGB PIL image) when it is read.
        classes: Class names in target order, as the folder's
            :attr:`~selfsup.data.LightlyDataset.classes` (the curation check records them
            from its listing); ``None`` derives them from the records' sources, which is the
            same unless some first-level folder has no record.

    Raises:
        DataError: A record's first-level folder is not in ``classes``, or two records have
            the same filename.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        records: Sequence[SampleRef],
        transform: Callable[[Any], Any] | None = None,
        classes: Sequence[str] | None = None,
    ) -> None:
        self.root = os.fspath(root)
        self._transform = transform
        self._filenames: list[str] = [r.filename for r in records]
        self._sources: list[str] = [r.source for r in records]
        # -1 marks an image; a numpy array keeps the per-sample lookup small when the
        # dataset is sent to DataLoader workers.
        self._frames: NDArray[np.int64] = np.fromiter(
            (-1 if r.frame_index is None else r.frame_index for r in records),
            dtype=np.int64,
            count=len(records),
        )
        self.classes: list[str] = (
            list(classes) if classes is not None else find_classes(self._sources)
        )
        self.class_to_idx: dict[str, int] = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted({class_of(s) for s in self._sources} - self.class_to_idx.keys())
        if unknown:
            raise DataError(
                f"records under {self.root!r} lie in folders {unknown[:5]} that are not among "
                f"the classes {self.classes[:20]}; pass the classes of the folder's listing"
            )
        dupes = sorted(n for n, count in Counter(self._filenames).items() if count > 1)
        if dupes:
            raise DataError(f"several records of {self.root!r} are named {dupes[:5]}")
        self.targets: list[int] = [self.class_to_idx[class_of(s)] for s in self._sources]
        self._reader = VideoFrameReader()

    @property
    def transform(self) -> Callable[[Any], Any] | None:
        """Applied to every sample on read."""
        return self._transform

    @transform.setter
    def transform(self, transform: Callable[[Any], Any] | None) -> None:
        self._transform = transform

    def with_transform(self, transform: Callable[[Any], Any] | None) -> ManifestDataset:
        """A copy reading the same samples with another ``transform`` (the lists are shared)."""
        other = copy.copy(self)
        other._transform = transform
        other._reader = VideoFrameReader()
        return other

    def __len__(self) -> int:
        return len(self._filenames)

    def _check_index(self, index: SupportsIndex) -> int:
        return check_index(index, len(self))

    def get_filename(self, index: int) -> str:
        """Name of sample ``index``."""
        return self._filenames[self._check_index(index)]

    def get_filenames(self) -> list[str]:
        """Names of all samples in index order."""
        return list(self._filenames)

    def source_path(self, index: int) -> str:
        """The file sample ``index`` is read from (the video for a frame)."""
        return os.path.join(self.root, self._sources[self._check_index(index)])

    def frame_index(self, index: int) -> int | None:
        """The frame of the video sample ``index`` is; ``None`` for an image."""
        frame = int(self._frames[self._check_index(index)])
        return None if frame < 0 else frame

    def load(self, index: int) -> Image.Image:
        """Sample ``index`` as an RGB PIL image, untransformed.

        Raises:
            DataError: The file (or frame) cannot be decoded; the message names it.
        """
        i = self._check_index(index)
        source = self._sources[i]
        path = os.path.join(self.root, source)
        frame = int(self._frames[i])
        if frame >= 0:
            return self._reader.read(path, frame, name=source)
        return load_rgb(path, name=source)

    def __getitem__(self, index: SupportsIndex) -> tuple[Any, int, str]:
        """``(sample, target, filename)`` of sample ``index`` (negative indices count back)."""
        i = self._check_index(index)
        sample: Any = self.load(i)
        if self._transform is not None:
            sample = self._transform(sample)
        return sample, self.targets[i], self._filenames[i]
