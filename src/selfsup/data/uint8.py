"""The fast input path: images decoded to uint8 tensors, resized once, without PIL round trips.

Training and embedding only need each image as a ``(3, S, S)`` uint8 tensor at the training
size; everything after that (augmentation, normalisation, the model) runs as tensor ops on
whole batches, on the device. This module is that first step:

* :func:`decode_uint8` decodes a file with ``torchvision.io.decode_image`` (libjpeg-turbo,
  libpng, libwebp, giflib) straight into a ``(3, H, W)`` uint8 RGB tensor. Files torchvision
  cannot read (BMP, TIFF, PPM, 16-bit PNG, ...) fall back to the project's one PIL decoder
  (:mod:`selfsup.data._image`). A file neither can read raises
  :class:`~selfsup.errors.DataError` naming the file and the curation check's reason
  (``truncated``, ``decode_error``, ...), as :func:`~selfsup.data._image.load_rgb` does, so
  the curation pipeline's lost-file retry and the skip-and-report of corrupt files work the
  same on both paths.
* :func:`resize_uint8` resizes once to ``(3, S, S)`` (antialiased bilinear, uint8 in and out).
* :class:`Uint8Dataset` wraps :class:`~selfsup.data.ManifestDataset` or
  :class:`~selfsup.data.LightlyDataset` (folders with images and video frames, or a wrapped
  torch dataset) and yields ``(image_u8 (3, S, S), orig_hw int64 (2,), label, filename)`` in
  the base dataset's order; torch's default collate batches it. An optional
  :class:`~selfsup.data.uint8_cache.Uint8Cache` keeps the decoded, resized images in a
  memory-mapped array so later epochs and runs skip decoding; :class:`Uint8CacheLoader`
  publishes it after the first full training epoch, which skips rows (``drop_last``).

Like :func:`~selfsup.data._image.load_rgb`, EXIF orientation is not applied (both paths give
the stored pixel grid), alpha is dropped and an animated GIF gives its first frame.
"""

from __future__ import annotations

import functools
import os
import platform
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final, SupportsIndex

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from selfsup.data._image import DecodedImage, decode_image, read_image_file
from selfsup.data._index import check_index
from selfsup.errors import DataError
from selfsup.utils.safe_open import ReadTimeoutError, read_bytes

if TYPE_CHECKING:
    from selfsup.data.uint8_cache import Uint8Cache

# torchvision 0.29 warns on every decode call that its decoders move to TorchCodec; the
# decoders still work and TorchCodec is not a dependency, so the notice is silenced per call.
_TORCHVISION_DEPRECATION: Final = "The image decoding and encoding capabilities of TorchVision"

#: An item of :class:`Uint8Dataset`: ``(image (3, S, S) uint8, orig_hw (2,) int64, label,
#: filename)``.
Uint8Item = tuple[torch.Tensor, torch.Tensor, Any, str]


def _torchvision_decode(data: bytes) -> torch.Tensor | None:
    """``data`` decoded by torchvision as a (3, H, W) uint8 RGB tensor, or None when
    torchvision cannot (a format it lacks, a damaged file, a 16-bit PNG): the PIL decoder
    then decides, so the reasons for refusing a file stay the curation check's."""
    from torchvision.io import ImageReadMode
    from torchvision.io import decode_image as tv_decode

    # bytearray: torch.frombuffer needs a writable buffer (it warns on bytes).
    encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=_TORCHVISION_DEPRECATION, category=DeprecationWarning
            )
            image: torch.Tensor = tv_decode(encoded, mode=ImageReadMode.RGB)
    except RuntimeError:
        return None
    if image.dtype != torch.uint8:  # 16-bit PNG: PIL's conversion keeps the two paths equal
        return None
    if image.ndim == 4:  # an animated GIF: its first frame, as PIL's convert() gives
        image = image[0]
    return image


def _pil_to_chw(image: Image.Image) -> torch.Tensor:
    """A PIL image as a (3, H, W) uint8 RGB tensor (a copy, owning its memory)."""
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def _decode_bytes(data: bytes, label: str, where: str) -> torch.Tensor:
    """(3, H, W) uint8 of the image file content ``data``; DataError naming ``label`` if
    neither decoder reads it."""
    image = _torchvision_decode(data)
    if image is not None:
        return image
    # The same strict PIL decode the curation check runs, so a refused file carries the
    # check's reason. The pixel guard is off: the check already applied it to this file.
    decoded: DecodedImage[torch.Tensor] = decode_image(data, None, _pil_to_chw)
    if decoded.problem is not None or decoded.value is None:
        raise DataError(f"cannot load image {label!r} ({where}): {decoded.problem}")
    return decoded.value


def decode_uint8(source: str | os.PathLike[str] | bytes, name: str | None = None) -> torch.Tensor:
    """Decode an image file (a path, or its bytes) to a ``(3, H, W)`` uint8 RGB tensor.

    JPEG, PNG, WebP and GIF are decoded by ``torchvision.io``; other formats (and files
    torchvision refuses) by PIL, with the curation check's strict settings.

    Args:
        source: The file's path, or its content.
        name: How to call the file in error messages (defaults to the path, or ``<bytes>``).

    Raises:
        DataError: The file is missing, unreadable, empty, truncated or not an image; the
            message names it and gives the check's reason (e.g. ``truncated: ...``).
        ReadTimeoutError: Reading the file took longer than the process's read timeout
            (a :class:`DataError` too, naming the file).
    """
    if isinstance(source, bytes):
        label = name if name is not None else "<bytes>"
        if not source:
            raise DataError(f"cannot load image {label!r}: empty: the file has 0 bytes")
        return _decode_bytes(source, label, "in memory")
    where = os.fspath(source)
    label = name if name is not None else where
    try:
        # read_bytes: a FIFO in the file's place fails, and a read that hangs (a network
        # mount) ends with ReadTimeoutError after the process's read timeout.
        data = read_bytes(source)
    except ReadTimeoutError:
        raise
    except OSError:
        # The check's wording for a file that cannot be read (vanished, permissions).
        problem = read_image_file(source)
        detail = problem if not isinstance(problem, bytes) else "unreadable: the read failed"
        raise DataError(f"cannot load image {label!r} ({where}): {detail}") from None
    if not data:
        raise DataError(f"cannot load image {label!r} ({where}): empty: the file has 0 bytes")
    return _decode_bytes(data, label, where)


@functools.cache
def _native_uint8_bilinear() -> bool:
    """Whether torchvision resizes uint8 images on this CPU with PyTorch's native uint8
    antialiased bilinear kernel (AVX2, AVX-512 and ARM CPUs) rather than through float32:
    the same test as ``torchvision.transforms.v2.functional.resize``'s."""
    capability = torch.backends.cpu.get_cpu_capability()
    return capability in ("AVX2", "AVX512") or platform.machine() in ("aarch64", "arm64")


def resize_uint8(image: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """``image`` (C, H, W) or (B, C, H, W) uint8 resized to ``size`` (an int: S x S).

    Antialiased bilinear, uint8 in and out, the pixels of
    ``torchvision.transforms.v2.functional.resize``; the image is returned as it is when it
    already has that size.
    """
    height, width = (size, size) if isinstance(size, int) else size
    if image.shape[-2:] == (height, width):
        return image
    if image.dtype == torch.uint8 and image.device.type == "cpu" and _native_uint8_bilinear():
        # The kernel torchvision's resize calls here, without its per-call checks, reshapes
        # and copies: on a 28-px image those cost more than the resampling itself.
        batch = image if image.ndim == 4 else image.unsqueeze(0)
        out = torch.nn.functional.interpolate(
            batch, size=(height, width), mode="bilinear", align_corners=False, antialias=True
        )
        return out if image.ndim == 4 else out[0]
    from torchvision.transforms.v2 import functional as F

    resized: torch.Tensor = F.resize(image, [height, width], antialias=True)
    return resized


def resize_short_side_uint8(image: torch.Tensor, size: int) -> torch.Tensor:
    """``image`` (C, H, W) uint8 resized so its shorter side is ``size``, keeping the aspect
    ratio (the longer side is rounded to the nearest pixel, at least 1)."""
    height, width = image.shape[-2:]
    scale = size / min(height, width)
    target = (max(1, round(height * scale)), max(1, round(width * scale)))
    return resize_uint8(image, target)


def sample_to_uint8(sample: Any, name: str) -> torch.Tensor:
    """A sample of a wrapped dataset as a (3, H, W) uint8 RGB tensor.

    Accepts a PIL image, a (C, H, W) or (H, W) tensor (uint8, or float in [0, 1] as
    ``ToTensor`` gives) and an (H, W, C) or (H, W) uint8 numpy array; one channel is
    repeated to three, a fourth (alpha) channel dropped.

    Raises:
        DataError: Anything else; the message names the sample.
    """
    if isinstance(sample, Image.Image):
        return _pil_to_chw(sample)
    if isinstance(sample, np.ndarray) and sample.dtype == np.uint8 and sample.ndim in (2, 3):
        array = sample[:, :, None] if sample.ndim == 2 else sample
        tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    elif isinstance(sample, torch.Tensor) and sample.ndim in (2, 3):
        tensor = sample if sample.ndim == 3 else sample[None]
        if tensor.is_floating_point():
            tensor = (tensor * 255.0).round().clamp(0, 255).to(torch.uint8)
        elif tensor.dtype != torch.uint8:
            raise DataError(
                f"cannot use sample {name!r}: a {tensor.dtype} tensor; expected uint8, or "
                "float in [0, 1]"
            )
    else:
        kind = type(sample).__name__
        detail = f"{kind} {getattr(sample, 'dtype', '')} {getattr(sample, 'shape', '')}".strip()
        raise DataError(
            f"cannot use sample {name!r}: a {detail}; expected a PIL image, a (C, H, W) "
            "tensor or an (H, W, C) uint8 array"
        )
    channels = tensor.shape[0]
    if channels == 1:
        tensor = tensor.expand(3, -1, -1)
    elif channels == 4:
        tensor = tensor[:3]
    elif channels != 3:
        raise DataError(f"cannot use sample {name!r}: {channels} channels; expected 1, 3 or 4")
    return tensor.contiguous()


class Uint8Dataset(Dataset[Uint8Item]):
    """``base``'s samples as uint8 tensors at one size: ``dataset[i] -> (image, orig_hw,
    label, filename)``.

    * ``image``: (3, S, S) uint8 RGB, the sample resized once (:func:`resize_uint8`);
    * ``orig_hw``: (2,) int64, the sample's height and width before resizing (to sample crop
      boxes in original coordinates);
    * ``label``, ``filename``: the base dataset's target and name of the sample.

    The order and names are the base dataset's. Image files are decoded with
    :func:`decode_uint8`; video frames and the samples of wrapped torch datasets with the
    base dataset's own reader, then converted (:func:`sample_to_uint8`). The base dataset's
    ``transform`` is not applied: this dataset replaces it.

    Args:
        base: A :class:`~selfsup.data.ManifestDataset`, a :class:`~selfsup.data.LightlyDataset`
            or any dataset of ``(sample, target, filename)`` items.
        size: The side S of the square images.
        cache: A :class:`~selfsup.data.uint8_cache.Uint8Cache` for ``base`` at ``size``
            (``Uint8Cache.for_dataset``); rows it holds are read from it, missing ones are
            decoded and written to it.

    Raises:
        DataError: (on read) the sample cannot be decoded; the message names it.
    """

    def __init__(self, base: Any, size: int, cache: Uint8Cache | None = None) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise DataError(f"Uint8Dataset size must be a positive int, got {size!r}")
        if cache is not None and (cache.size != size or cache.n != len(base)):
            raise DataError(
                f"the cache at {cache.path} holds {cache.n} images of side {cache.size}; this "
                f"dataset has {len(base)} samples of side {size}"
            )
        self.base = base
        self.size = size
        self.cache = cache
        self._targets: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.base)

    def _check_index(self, index: SupportsIndex) -> int:
        return check_index(index, len(self))

    def get_filename(self, index: int) -> str:
        """Name of sample ``index`` (without decoding it where the base dataset can say)."""
        from selfsup.data.dataset import LightlyDataset

        i = self._check_index(index)
        base = self.base
        if isinstance(base, LightlyDataset):
            return str(base.index_to_filename(base.dataset, i))
        get_filename = getattr(base, "get_filename", None)
        if callable(get_filename):
            return str(get_filename(i))
        return str(base[i][2])

    def get_filenames(self) -> list[str]:
        """Names of all samples in index order (the base dataset's)."""
        get_filenames = getattr(self.base, "get_filenames", None)
        if callable(get_filenames):
            return [str(name) for name in get_filenames()]
        return [self.get_filename(i) for i in range(len(self))]

    @property
    def targets(self) -> list[Any]:
        """Target of every sample, when the base dataset knows them without reading
        (folders and manifests); computed once per process.

        Raises:
            AttributeError: The base dataset cannot say without reading its samples.
        """
        if self._targets is None:
            self._targets = list(self.base.targets)
        return self._targets

    def file_path(self, index: int) -> str | None:
        """The image file sample ``index`` is decoded from; None for a video frame or a
        sample of a wrapped torch dataset."""
        from selfsup.data._folder import FolderSource
        from selfsup.data.dataset import LightlyDataset
        from selfsup.data.manifest_dataset import ManifestDataset

        base = self.base
        if isinstance(base, ManifestDataset):
            return None if base.frame_index(index) is not None else base.source_path(index)
        if isinstance(base, LightlyDataset) and isinstance(base.dataset, FolderSource):
            path = base.dataset.source_path(index)
            return None if path is None else os.fspath(path)
        return None

    def decode(self, index: int) -> tuple[torch.Tensor, Any, str]:
        """Sample ``index`` at its own size: ``(image (3, H, W) uint8, label, filename)``.

        Raises:
            DataError: The file or frame cannot be decoded; the message names it.
        """
        from selfsup.data._folder import FolderSource
        from selfsup.data.dataset import LightlyDataset
        from selfsup.data.manifest_dataset import ManifestDataset

        i = self._check_index(index)
        base = self.base
        if isinstance(base, ManifestDataset):
            name = base.get_filename(i)
            path = self.file_path(i)
            image = decode_uint8(path, name=name) if path else _pil_to_chw(base.load(i))
            return image, self.targets[i], name
        if isinstance(base, LightlyDataset) and isinstance(base.dataset, FolderSource):
            source: FolderSource = base.dataset
            name = base.index_to_filename(source, i)
            # One lookup and a string join: at 28 px every microsecond per image shows.
            file, _ = source._locate(i)
            if file.is_video:
                image = _pil_to_chw(source.load(i))
            else:
                path = os.path.join(source.root, file.relpath)
                image = decode_uint8(path, name=file.relpath)
            return image, self.targets[i], name
        if isinstance(base, LightlyDataset):
            sample, target = base._raw(i)
            name = base.index_to_filename(base.dataset, i)
            return sample_to_uint8(sample, name), target, name
        item = base[i]
        if not isinstance(item, tuple | list) or len(item) != 3:
            raise DataError(
                f"{type(base).__name__}[{i}] returned {type(item).__name__}; Uint8Dataset wraps "
                "datasets whose items are (sample, target, filename)"
            )
        sample, target, name = item
        return sample_to_uint8(sample, str(name)), target, str(name)

    def __getitem__(self, index: SupportsIndex) -> Uint8Item:
        """``(image (3, S, S) uint8, orig_hw (2,) int64, label, filename)`` of sample
        ``index`` (negative indices count back)."""
        i = self._check_index(index)
        if self.cache is not None:
            cached = self.cache.get(i)
            if cached is not None:
                image, hw = cached
                return image, hw, self._label(i), self.get_filename(i)
        full, label, name = self.decode(i)
        hw = torch.tensor([full.shape[-2], full.shape[-1]], dtype=torch.int64)  # from ints: faster
        image = resize_uint8(full, self.size).contiguous()
        if self.cache is not None:
            self.cache.put(i, image, hw)
        return image, hw, label, name

    def finalize_cache(self) -> bool:
        """Publish the cache if every row is filled (see
        :meth:`~selfsup.data.uint8_cache.Uint8Cache.finalize`); call it after a full pass,
        e.g. at the end of an epoch. Returns whether the cache is complete (False without
        a cache)."""
        return self.cache.finalize() if self.cache is not None else False

    def complete_cache(self) -> bool:
        """Fill the cache rows no pass has read yet (decoding them in this process), then
        publish the cache; returns whether it is complete (False without a cache).

        Called by :class:`Uint8CacheLoader` after a full pass: a shuffled pass with
        ``drop_last`` skips up to ``batch_size - 1`` rows, which would otherwise keep the
        cache unpublished for good. A row that cannot be decoded leaves the cache
        unpublished (a warning names it): the build folder stays private to this run and is
        deleted by a later one.
        """
        cache = self.cache
        if cache is None:
            return False
        for index in cache.missing().tolist():
            try:
                self[index]  # not in the cache: decoded, resized and written to it
            except DataError as exc:
                warnings.warn(
                    f"the image cache in {os.fspath(cache.root)!r} is not published: {exc}",
                    stacklevel=2,
                )
                return False
        return cache.finalize()

    def _label(self, index: int) -> Any:
        """The label of sample ``index`` without decoding it, where the base knows it."""
        try:
            targets = self.targets
        except AttributeError:
            return self.decode(index)[1]
        return targets[index]


class Uint8CacheLoader(DataLoader[Any]):
    """A ``DataLoader`` that publishes its :class:`Uint8Dataset`'s cache after a full pass.

    Training reads shuffled batches with ``drop_last``, so an epoch leaves some rows of a
    cache being built unread and the cache would never be complete. When a pass over this
    loader produces its last batch (every batch was produced, so the workers' rows are
    written; the consumer need not ask past it), the main process fills the rows the pass
    skipped and
    publishes the cache (:meth:`Uint8Dataset.complete_cache`); from then on every read is a
    copy from the cache. A pass stopped early (``max_time``, a step limit, ``islice``) does
    nothing, and a complete cache (or none) gives the plain ``DataLoader`` iterator.

    It takes ``DataLoader``'s arguments unchanged, so Lightning can rebuild it with a
    distributed sampler. Under DDP each process builds its own copy of the cache and fills
    the rows other processes read, decoding them once; the first copy published is used.
    """

    # A generator, not the _BaseDataLoaderIter DataLoader declares: callers only iterate it.
    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        iterator = super().__iter__()
        dataset = self.dataset
        if not isinstance(dataset, Uint8Dataset) or dataset.cache is None:
            return iterator
        if dataset.cache.complete:
            return iterator
        return self._completing(iterator, dataset, len(self))

    @staticmethod
    def _completing(iterator: Iterator[Any], dataset: Uint8Dataset, batches: int) -> Iterator[Any]:
        for produced, batch in enumerate(iterator, start=1):
            if produced == batches:
                # The last batch is produced, so every row the pass reads is written. Complete
                # now: a consumer that knows the length (Lightning's training loop) never asks
                # for a batch after the last and leaves this generator unfinished.
                dataset.complete_cache()
            yield batch
