"""Thumbnails: JPEG, RGB, oriented, bounded, cached once; video frames; failures named."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fsspec.implementations.memory import MemoryFileSystem  # type: ignore[import-untyped]  # no stubs
from PIL import Image, JpegImagePlugin

from selfsup.data import _video
from selfsup.web import thumbnails
from selfsup.web.outputs import Sample
from selfsup.web.sources import FsspecSourceReader, LocalSourceReader
from selfsup.web.thumbnails import ThumbnailCache, ThumbnailError


def _sample(source: str, frame_index: int | None = None, index: int = 0) -> Sample:
    filename = source if frame_index is None else f"{source}-{frame_index}.png"
    return Sample(
        index=index,
        filename=filename,
        source=source,
        frame_index=frame_index,
        status="selected",
        width=None,
        height=None,
        file_size=None,
        mtime_ns=None,
        embedding_row=None,
    )


def _open(path: Path) -> Image.Image:
    with Image.open(path) as img:
        assert img.format == "JPEG"
        img.load()
        return img.copy()


def _solid(size: tuple[int, int], colour: int | tuple[int, ...], mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, colour)


def test_image_thumbnail_is_a_bounded_rgb_jpeg(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    img = np.zeros((50, 200, 3), dtype=np.uint8)
    img[:, :100] = (200, 30, 30)  # left half red, right half blue
    img[:, 100:] = (30, 30, 200)
    Image.fromarray(img).save(root / "wide.png")
    _solid((10, 6), (0, 200, 0)).save(root / "small.png")
    cache = ThumbnailCache(tmp_path / "cache", size=64)
    reader = LocalSourceReader(root)

    thumb = _open(cache.thumbnail(_sample("wide.png"), reader))
    assert thumb.mode == "RGB"
    assert thumb.size == (64, 16)  # aspect 4:1 kept, longest side = size
    arr = np.asarray(thumb).astype(int)
    assert arr[8, 5, 0] > 150  # left stays red ...
    assert arr[8, 5, 2] < 80
    assert arr[8, 60, 2] > 150  # ... right stays blue
    assert arr[8, 60, 0] < 80
    # Never enlarged; a preview is bigger than a thumbnail.
    assert _open(cache.thumbnail(_sample("small.png"), reader)).size == (10, 6)
    assert _open(cache.preview(_sample("wide.png"), reader, size=120)).size == (120, 30)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :20] = (220, 20, 20)  # stored: red on the left
    arr[:, 20:] = (20, 20, 220)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(arr).save(root / "rotated.jpg", exif=exif.tobytes(), quality=95)
    thumb = _open(
        ThumbnailCache(tmp_path / "cache").thumbnail(
            _sample("rotated.jpg"), LocalSourceReader(root)
        )
    )
    assert thumb.size == (20, 40)  # portrait once displayed upright
    shown = np.asarray(thumb).astype(int)
    assert shown[5, 10, 0] > 150  # red ends up on top
    assert shown[5, 10, 2] < 100
    assert shown[35, 10, 2] > 150
    assert shown[35, 10, 0] < 100


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (_solid((8, 8), (0, 0, 0, 0), "RGBA"), (255, 255, 255)),  # transparent -> white
        (_solid((8, 8), (0, 0, 255, 255), "RGBA"), (0, 0, 255)),
        (_solid((8, 8), 128, "L"), (128, 128, 128)),
        (_solid((8, 8), (0, 255, 0), "RGB").convert("P"), (0, 255, 0)),
        (_solid((8, 8), (255, 0, 0), "RGB").convert("CMYK"), (255, 0, 0)),
    ],
)
def test_modes_become_rgb(
    tmp_path: Path, image: Image.Image, expected: tuple[int, int, int]
) -> None:
    root = tmp_path / "in"
    root.mkdir()
    ext = "tif" if image.mode == "CMYK" else "png"
    image.save(root / f"x.{ext}")
    thumb = _open(
        ThumbnailCache(tmp_path / "c").thumbnail(_sample(f"x.{ext}"), LocalSourceReader(root))
    )
    np.testing.assert_allclose(np.asarray(thumb).reshape(-1, 3).mean(0), expected, atol=6)


def test_sixteen_bit_gray_is_scaled_to_its_range(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    ramp = np.tile(np.linspace(1000, 3000, 32).astype(np.uint16), (8, 1))
    Image.fromarray(ramp).save(root / "depth.png")
    thumb = np.asarray(
        _open(
            ThumbnailCache(tmp_path / "c").thumbnail(_sample("depth.png"), LocalSourceReader(root))
        )
    ).astype(int)
    assert thumb[4, 0, 0] < 15  # full range used, not clipped white
    assert thumb[4, -1, 0] > 240


def test_jpeg_is_decoded_with_draft(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "in"
    root.mkdir()
    _solid((1600, 800), (10, 120, 200)).save(root / "big.jpg")
    requested: list[Any] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self: Image.Image, mode: str | None, size: tuple[int, int] | None) -> Any:
        result = original(self, mode, size)  # type: ignore[arg-type]  # self is a JPEG here
        requested.append((size, self.size))
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    thumb = _open(
        ThumbnailCache(tmp_path / "c").thumbnail(_sample("big.jpg"), LocalSourceReader(root))
    )
    assert thumb.size == (192, 96)
    # The decoder was asked for the thumbnail box and scaled down by 4 while decoding.
    assert requested == [((192, 192), (400, 200))]


def test_cached_once_and_remade_when_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "in"
    root.mkdir()
    _solid((30, 30), (255, 0, 0)).save(root / "a.png")
    cache = ThumbnailCache(tmp_path / "cache")
    reader = LocalSourceReader(root)
    first = cache.thumbnail(_sample("a.png"), reader)

    def boom(*args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("decoded again although cached")

    with monkeypatch.context() as patch:
        patch.setattr(thumbnails, "_image_jpeg", boom)
        assert cache.thumbnail(_sample("a.png"), reader) == first
        # A new cache object over the same folder reuses the file too.
        assert ThumbnailCache(tmp_path / "cache").thumbnail(_sample("a.png"), reader) == first

    _solid((30, 30), (0, 0, 255)).save(root / "a.png")
    os.utime(root / "a.png", ns=(1, 1))  # a different mtime whatever the clock resolution
    second = cache.thumbnail(_sample("a.png"), reader)
    assert second != first
    assert np.asarray(_open(second))[..., 2].mean() > 200
    assert np.asarray(_open(first))[..., 0].mean() > 200  # the old one is untouched


def test_concurrent_requests_make_one_thumbnail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "in"
    root.mkdir()
    _solid((300, 200), (0, 128, 0)).save(root / "a.png")
    cache = ThumbnailCache(tmp_path / "cache")
    reader = LocalSourceReader(root)
    calls: list[int] = []
    original = thumbnails._image_jpeg
    barrier = threading.Barrier(8)

    def counting(*args: Any, **kwargs: Any) -> bytes:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(thumbnails, "_image_jpeg", counting)
    results: list[Path] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(cache.thumbnail(_sample("a.png"), reader))
        except BaseException as exc:  # noqa: BLE001  # re-raised in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 8
    assert len(set(results)) == 1
    assert len(calls) == 1  # the others waited for it and reused the file
    assert _open(results[0]).size == (192, 128)
    leftovers = [
        p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.name.startswith(".")
    ]
    assert leftovers == []


def test_corrupt_and_missing_sources_raise_naming_the_file(
    tmp_path: Path, corrupt_files: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "in"
    corrupt_files(root)
    cache = ThumbnailCache(tmp_path / "cache")
    reader = LocalSourceReader(root)
    for name in ("truncated.jpg", "empty.png", "notimage.png", "missing.png"):
        with pytest.raises(ThumbnailError, match=name):
            cache.thumbnail(_sample(name), reader)
    # A broken file is not decoded again on every request.
    monkeypatch.setattr(thumbnails, "_image_jpeg", lambda *a, **k: pytest.fail("decoded again"))
    with pytest.raises(ThumbnailError, match=r"truncated\.jpg"):
        cache.thumbnail(_sample("truncated.jpg"), reader)
    assert not list((tmp_path / "cache").rglob("*.jpg"))


def test_decompression_bomb_guard(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    _solid((40, 30), (1, 2, 3)).save(root / "big.png")
    cache = ThumbnailCache(tmp_path / "cache", max_image_pixels=1000)
    with pytest.raises(ThumbnailError, match=r"big\.png.*40x30 pixels.*1000"):
        cache.thumbnail(_sample("big.png"), LocalSourceReader(root))


def _brightness(path: Path) -> float:
    arr = np.asarray(_open(path)).astype(float)
    h, w = arr.shape[:2]
    return float(arr[h // 2 :, w // 2 :].mean())  # away from the noisy top-left corner


def _frame_of(level: float, n: int) -> int:
    """The frame of a ``write_video`` video whose brightness is nearest to ``level``
    (frame ``i`` has ``255 i / (n - 1)``; neighbouring frames differ by 255 / (n - 1))."""
    return int(np.argmin(np.abs(255 * np.arange(n) / (n - 1) - level)))


@pytest.mark.parametrize("counting", [False, True])
def test_video_frames_are_the_manifest_frames(
    tmp_path: Path,
    make_video: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    counting: bool,
) -> None:
    if counting:  # containers without a frame index: decode from the start and count
        monkeypatch.setattr(_video, "INDEXED_FORMATS", frozenset())
    # Each mode is the one that runs: MP4 is seeked by timestamp, never counted.
    other = "_read_by_timestamp" if counting else "_read_by_counting"
    monkeypatch.setattr(_video._OpenVideo, other, lambda *a: pytest.fail(f"{other} used"))
    root = tmp_path / "videos"
    n = 20  # several groups of pictures (keyframes at 0, 6, 13, ...)
    make_video(name="clip.mp4", n_frames=n, size=(32, 32), root=root)
    cache = ThumbnailCache(tmp_path / "cache", size=16)
    reader = LocalSourceReader(root)
    for i in (11, 3, 19, 0, 12):
        assert _frame_of(_brightness(cache.thumbnail(_sample("clip.mp4", i), reader)), n) == i
    # Read-ahead: frames after a requested one were cached by the same decode pass, and they
    # are the right frames.
    made = thumbnails.READ_AHEAD
    monkeypatch.setattr(thumbnails, "_read_frames", lambda *a: pytest.fail("decoded"))
    for i in range(4, min(4 + made, n)):
        assert _frame_of(_brightness(cache.thumbnail(_sample("clip.mp4", i), reader)), n) == i


def test_video_errors(tmp_path: Path, make_video: Callable[..., Path]) -> None:
    root = tmp_path / "videos"
    make_video(name="clip.mp4", n_frames=5, root=root)
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 50)
    cache = ThumbnailCache(tmp_path / "cache")
    reader = LocalSourceReader(root)
    with pytest.raises(ThumbnailError, match=r"clip\.mp4.*frame 7 requested.*5 frames"):
        cache.thumbnail(_sample("clip.mp4", 7), reader)
    with pytest.raises(ThumbnailError, match=r"broken\.mp4"):
        cache.thumbnail(_sample("broken.mp4", 0), reader)


def test_remote_video_goes_through_a_temporary_file(
    tmp_path: Path, make_video: Callable[..., Path]
) -> None:
    video = make_video(name="clip.mp4", n_frames=10, root=tmp_path / "local")
    fs = MemoryFileSystem()
    fs.pipe_file("/bucket/in/clips/clip.mp4", video.read_bytes())
    buffer = io.BytesIO()
    _solid((20, 10), (250, 250, 0)).save(buffer, format="PNG")
    fs.pipe_file("/bucket/in/img.png", buffer.getvalue())
    reader = FsspecSourceReader(fs, "/bucket/in")
    cache = ThumbnailCache(tmp_path / "cache", size=16)
    sample = Sample(7, "clips/clip-7-mp4.png", "clips/clip.mp4", 7, "removed", 32, 32, 123, 456, 3)
    assert _frame_of(_brightness(cache.preview(sample, reader, size=32)), 10) == 7
    assert not [p for p in (tmp_path / "cache").rglob("*") if "video" in p.name]  # removed
    assert _open(cache.thumbnail(_sample("img.png"), reader)).size == (16, 8)


def test_concurrent_frames_of_one_video(tmp_path: Path, make_video: Callable[..., Path]) -> None:
    """Many threads asking for different frames of one video at once all get their frame."""
    n = 20
    make_video(name="clip.mp4", n_frames=n, root=tmp_path / "videos")
    cache = ThumbnailCache(tmp_path / "cache", size=16)
    reader = LocalSourceReader(tmp_path / "videos")
    order = [13, 2, 19, 7, 0, 11, 5, 16, 9, 1]
    barrier = threading.Barrier(len(order))
    found: dict[int, Path] = {}
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            found[i] = cache.thumbnail(_sample("clip.mp4", i), reader)
        except BaseException as exc:  # noqa: BLE001  # asserted empty below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in order]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert {i: _frame_of(_brightness(path), n) for i, path in found.items()} == {
        i: i for i in order
    }
