"""Fashion-MNIST loader shared by the benchmarks (no download: reads the Debian package's files).

The data comes from the Debian package ``dataset-fashion-mnist``, which installs the four
original idx files under ``/usr/share/datasets/fashion-mnist``. Reading them is a few lines of
numpy, so the benchmarks need neither torchvision's downloader nor network access.

Usage::

    from fashion_mnist import load_fashion_mnist, export_images
    images, labels = load_fashion_mnist("train")  # uint8 (60000, 28, 28), int64 (60000,)
    export_images("/tmp/fmnist", split="test", n=500, seed=0)  # PNGs in class subfolders
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

Split = Literal["train", "test"]

#: Where ``apt-get install dataset-fashion-mnist`` puts the idx files. ``FASHION_MNIST_DIR``
#: overrides it (for a copy elsewhere, e.g. on a machine without the Debian package).
DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")

#: Class names in label order, as published with the data set; used as folder names by
#: :func:`export_images` (characters that are awkward in paths replaced by ``_``).
CLASS_NAMES: tuple[str, ...] = (
    "t-shirt_top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
)

_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IMAGES_MAGIC = 0x00000803  # idx: unsigned byte, 3 dimensions
_LABELS_MAGIC = 0x00000801  # idx: unsigned byte, 1 dimension


class FashionMNISTMissingError(FileNotFoundError):
    """The Fashion-MNIST idx files are not where the loader looks for them."""


def data_dir() -> Path:
    """The folder holding the idx files: ``$FASHION_MNIST_DIR`` if set, else :data:`DEFAULT_DIR`."""
    override = os.environ.get("FASHION_MNIST_DIR")
    return Path(override) if override else DEFAULT_DIR


def _read_idx(path: Path, magic: int, ndim: int) -> npt.NDArray[np.uint8]:
    """Read one gzipped idx file: a big-endian header (magic, then one int32 per dimension)."""
    if not path.is_file():
        raise FashionMNISTMissingError(
            f"Fashion-MNIST file {path} not found. Install the data with "
            "`apt-get install dataset-fashion-mnist` (it puts the idx files under "
            f"{DEFAULT_DIR}), or set FASHION_MNIST_DIR to a folder holding {path.name}."
        )
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    header_len = 4 * (1 + ndim)
    if len(raw) < header_len:
        raise ValueError(f"{path}: truncated idx header ({len(raw)} bytes)")
    header = np.frombuffer(raw, dtype=">i4", count=1 + ndim)
    if int(header[0]) != magic:
        raise ValueError(f"{path}: idx magic number {int(header[0]):#010x}, expected {magic:#010x}")
    shape = tuple(int(d) for d in header[1:])
    expected = int(np.prod(shape))
    data = np.frombuffer(raw, dtype=np.uint8, offset=header_len)
    if data.size != expected:
        raise ValueError(
            f"{path}: header promises {expected} values for shape {shape}, file holds {data.size}"
        )
    return data.reshape(shape).copy()


def load_fashion_mnist(
    split: Split, root: str | os.PathLike[str] | None = None
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Load one split of Fashion-MNIST.

    Args:
        split: ``"train"`` (60 000 images) or ``"test"`` (10 000 images).
        root: folder with the idx ``.gz`` files; defaults to :func:`data_dir`.

    Returns:
        ``(images, labels)``: uint8 array of shape (N, 28, 28) and int64 labels (N,) in 0..9.

    Raises:
        FashionMNISTMissingError: the files are missing (the message says how to install them).
        ValueError: a file is not a valid idx file or images and labels disagree in count.
    """
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = Path(root) if root is not None else data_dir()
    image_name, label_name = _FILES[split]
    images = _read_idx(folder / image_name, _IMAGES_MAGIC, 3)
    labels = _read_idx(folder / label_name, _LABELS_MAGIC, 1).astype(np.int64)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{folder}: {images.shape[0]} images but {labels.shape[0]} labels in split {split!r}"
        )
    return images, labels


def export_images(
    out_dir: str | os.PathLike[str],
    split: Split = "test",
    n: int | None = None,
    seed: int = 0,
    root: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``n`` Fashion-MNIST images as PNGs into one subfolder per class.

    The CLI and curation benchmarks need an image folder on disk (``<out_dir>/<class>/<i>.png``,
    the layout ``LightlyDataset`` reads with labels). Images are drawn without replacement
    with a seeded generator, so the same ``(split, n, seed)`` always yields the same files;
    file names carry the index in the split (``test_00042.png``) so a sample can be traced back.

    Args:
        out_dir: destination folder (created; existing files of the same name are replaced).
        split: which split to draw from.
        n: number of images; ``None`` exports the whole split.
        seed: seed of the random subset.
        root: folder with the idx files, see :func:`load_fashion_mnist`.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.
    """
    from PIL import Image

    from selfsup.utils.atomic import atomic_path

    images, labels = load_fashion_mnist(split, root)
    total = images.shape[0]
    if n is None:
        n = total
    if not 0 < n <= total:
        raise ValueError(f"n must be in 1..{total} for split {split!r}, got {n}")
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(total, size=n, replace=False))
    out = Path(out_dir)
    for name in CLASS_NAMES:
        (out / name).mkdir(parents=True, exist_ok=True)
    for index in indices.tolist():
        target = out / CLASS_NAMES[int(labels[index])] / f"{split}_{index:05d}.png"
        with atomic_path(target) as tmp:
            Image.fromarray(images[index]).save(tmp, format="PNG")
    return out


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Export Fashion-MNIST images as PNG folders.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--split", choices=["train", "test"], default="test")
    parser.add_argument("-n", type=int, default=None, help="number of images (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(export_images(args.out_dir, split=args.split, n=args.n, seed=args.seed))
