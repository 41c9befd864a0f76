"""Shared fixtures: every test makes its own small images and videos, nothing is downloaded."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ImageFolderFactory = Callable[..., Path]
VideoFactory = Callable[..., Path]


def _random_image(rng: np.random.Generator, size: tuple[int, int], cls: int) -> Image.Image:
    """A random RGB image whose mean colour depends on ``cls`` so classes are separable."""
    w, h = size
    base = np.zeros((h, w, 3), dtype=np.float64)
    base[..., cls % 3] = 160.0
    noise = rng.normal(0.0, 40.0, size=(h, w, 3))
    arr = np.clip(base + noise + 40.0, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, mode="RGB")


@pytest.fixture
def make_image_folder(tmp_path: Path) -> ImageFolderFactory:
    """Return a factory writing ``n_classes`` subfolders with ``n_per_class`` images each.

    ``make_image_folder(n_classes=2, n_per_class=4, size=(32, 32), ext="png", flat=False)``
    returns the root folder. With ``flat=True`` all images go straight into the root.
    """
    counter = {"n": 0}

    def factory(
        n_classes: int = 2,
        n_per_class: int = 4,
        size: tuple[int, int] = (32, 32),
        ext: str = "png",
        flat: bool = False,
        seed: int = 0,
        root: Path | None = None,
    ) -> Path:
        counter["n"] += 1
        folder = root if root is not None else tmp_path / f"images_{counter['n']}"
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        for c in range(n_classes):
            sub = folder if flat else folder / f"class_{c}"
            sub.mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                _random_image(rng, size, c).save(sub / f"img_{c}_{i}.{ext}")
        return folder

    return factory


def write_video(
    path: Path,
    n_frames: int,
    size: tuple[int, int] = (32, 32),
    fps: int = 10,
    codec: str = "mpeg4",
    seed: int = 0,
) -> Path:
    """Write a small video whose frame ``i`` has brightness proportional to ``i``.

    Frames are distinguishable, so tests can check that frame ``i`` was decoded as frame ``i``.
    """
    import av

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width = w
        stream.height = h
        stream.pix_fmt = "yuv420p"
        for i in range(n_frames):
            level = int(255 * i / max(n_frames - 1, 1))
            arr = np.full((h, w, 3), level, dtype=np.uint8)
            arr[: h // 4, : w // 4] = rng.integers(0, 255, size=(h // 4, w // 4, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
def make_video(tmp_path: Path) -> VideoFactory:
    """Return ``write_video`` bound to a default location under ``tmp_path``."""

    def factory(
        name: str = "video.mp4",
        n_frames: int = 12,
        size: tuple[int, int] = (32, 32),
        fps: int = 10,
        codec: str = "mpeg4",
        root: Path | None = None,
    ) -> Path:
        base = root if root is not None else tmp_path / "videos"
        return write_video(base / name, n_frames=n_frames, size=size, fps=fps, codec=codec)

    return factory


def write_corrupt_files(
    folder: Path, names: Sequence[str] = ("truncated.jpg", "empty.png", "notimage.png")
) -> list[str]:
    """Plant corrupt files: a truncated JPEG, a zero-byte PNG and a text file named .png."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for name in names:
        target = folder / name
        if name.startswith("truncated"):
            import io

            buf = io.BytesIO()
            Image.fromarray(np.full((64, 64, 3), 128, dtype=np.uint8)).save(buf, format="JPEG")
            target.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
        elif name.startswith("empty"):
            target.write_bytes(b"")
        else:
            target.write_text("this is not an image\n")
        written.append(name)
    return written


@pytest.fixture
def corrupt_files() -> Callable[..., list[str]]:
    """Return ``write_corrupt_files``."""
    return write_corrupt_files
