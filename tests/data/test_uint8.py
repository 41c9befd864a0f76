"""The fast input path: torchvision decoding to uint8, one resize, Uint8Dataset over datasets."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import selfsup.data._image as image_module
from selfsup.curation.checks import build_manifest
from selfsup.data import LightlyDataset, ManifestDataset
from selfsup.data.uint8 import (
    Uint8Dataset,
    decode_uint8,
    resize_short_side_uint8,
    resize_uint8,
    sample_to_uint8,
)
from selfsup.errors import DataError

ImageFolderFactory = Callable[..., Path]


def _array(height: int = 20, width: int = 24, seed: int = 0) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _encode(image: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _pil_chw(data: bytes) -> torch.Tensor:
    with Image.open(io.BytesIO(data)) as image:
        array = np.asarray(image.convert("RGB"))
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


@pytest.mark.parametrize(
    ("fmt", "mode", "kwargs"),
    [
        ("PNG", "RGB", {}),
        ("PNG", "RGBA", {}),
        ("PNG", "L", {}),
        ("PNG", "P", {}),
        ("WEBP", "RGB", {"lossless": True}),
        ("GIF", "P", {}),
        ("BMP", "RGB", {}),  # torchvision lacks BMP: PIL decodes it
        ("TIFF", "RGB", {}),  # and TIFF
        ("PPM", "RGB", {}),
        ("JPEG", "RGB", {"quality": 90}),
        ("JPEG", "L", {"quality": 90}),
    ],
)
def test_decode_gives_the_pixels_pil_gives(
    tmp_path: Path, fmt: str, mode: str, kwargs: dict[str, Any]
) -> None:
    data = _encode(Image.fromarray(_array()).convert(mode), fmt, **kwargs)
    path = tmp_path / f"img.{fmt.lower()}"
    path.write_bytes(data)

    decoded = decode_uint8(path)

    assert decoded.dtype == torch.uint8
    assert decoded.shape == (3, 20, 24)
    reference = _pil_chw(data)
    # Both use libjpeg-turbo with the same IDCT here; allow 1 level for another build.
    tolerance = 1 if fmt == "JPEG" else 0
    assert int((decoded.int() - reference.int()).abs().max()) <= tolerance
    assert torch.equal(decode_uint8(data), decoded)  # the bytes give the same


def test_sixteen_bit_png_falls_back_to_pil(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    deep = Image.fromarray(rng.integers(0, 65535, size=(6, 7), dtype=np.uint16))
    data = _encode(deep, "PNG")

    assert torch.equal(decode_uint8(data), _pil_chw(data))


def test_jpeg_and_png_are_decoded_without_pil(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {}
    for fmt in ("JPEG", "PNG", "WEBP"):
        files[fmt] = tmp_path / f"img.{fmt.lower()}"
        files[fmt].write_bytes(_encode(Image.fromarray(_array()), fmt))

    def no_pil(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("PIL opened an image on the fast path")

    monkeypatch.setattr(Image, "open", no_pil)
    for path in files.values():
        assert decode_uint8(path).shape == (3, 20, 24)


def _truncated(fmt: str) -> bytes:
    data = _encode(Image.fromarray(_array(64, 64)), fmt)
    return data[: len(data) * 2 // 3]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("cut.jpg", _truncated("JPEG"), "truncated"),
        ("cut.png", _truncated("PNG"), "truncated"),
        ("text.png", b"not an image at all\n", "unknown_format"),
        ("empty.png", b"", "empty"),
    ],
)
def test_unreadable_files_raise_data_error_with_the_checks_reason(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    expected = image_module.check_image(path)
    assert expected is not None
    assert expected.reason == reason

    with pytest.raises(DataError, match=rf"'shown/{name}'.*{reason}:"):
        decode_uint8(path, name=f"shown/{name}")


def test_missing_file_raises_data_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"gone\.png.*unreadable"):
        decode_uint8(tmp_path / "gone.png")


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(
    ("shape", "size"),
    [((3, 28, 28), 32), ((3, 28, 28), 56), ((3, 60, 80), 16), ((2, 3, 37, 21), (9, 50))],
)
def test_resize_gives_torchvisions_pixels(
    shape: tuple[int, ...], size: int | tuple[int, int], channels_last: bool
) -> None:
    """The direct kernel call equals torchvision's resize, up and down, for decoded images
    (whose strides are channels-last) and batches."""
    from torchvision.transforms.v2 import functional as F

    image = torch.randint(
        0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    if channels_last:  # torchvision.io decodes to an (H, W, C) buffer seen as (C, H, W)
        image = image.movedim(-3, -1).contiguous().movedim(-1, -3)
    target = [size, size] if isinstance(size, int) else list(size)

    resized = resize_uint8(image, size)

    assert resized.shape == (*shape[:-2], *target)
    assert torch.equal(resized, F.resize(image, target, antialias=True))


def test_resize_is_antialiased_bilinear_and_keeps_uint8() -> None:
    image = torch.from_numpy(_array(60, 80)).permute(2, 0, 1).contiguous()

    resized = resize_uint8(image, 16)

    assert resized.dtype == torch.uint8
    assert resized.shape == (3, 16, 16)
    # PIL's antialiased bilinear is the reference torchvision's antialias follows.
    pil = Image.fromarray(_array(60, 80)).resize((16, 16), Image.Resampling.BILINEAR)
    reference = np.asarray(pil)
    diff = resized.permute(1, 2, 0).int() - torch.from_numpy(reference.copy()).int()
    assert int(diff.abs().max()) <= 2
    assert resize_uint8(resized, 16) is resized
    assert resize_short_side_uint8(image, 30).shape == (3, 30, 40)


def test_sample_to_uint8_converts_wrapped_samples() -> None:
    array = _array(5, 6)
    expected = torch.from_numpy(array.copy()).permute(2, 0, 1)

    assert torch.equal(sample_to_uint8(Image.fromarray(array), "a"), expected)
    assert torch.equal(sample_to_uint8(array, "a"), expected)
    assert torch.equal(sample_to_uint8(expected.float() / 255.0, "a"), expected)
    assert sample_to_uint8(torch.zeros(5, 6, dtype=torch.uint8), "a").shape == (3, 5, 6)
    with pytest.raises(DataError, match=r"'bad'.*str"):
        sample_to_uint8("pixels", "bad")
    with pytest.raises(DataError, match=r"'bad'.*2 channels"):
        sample_to_uint8(torch.zeros(2, 4, 4, dtype=torch.uint8), "bad")


def test_dataset_over_a_folder_keeps_order_names_labels_and_sizes(
    make_image_folder: ImageFolderFactory,
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=3, size=(24, 18), ext="jpg")
    Image.fromarray(_array(10, 30)).save(root / "class_1" / "wide.png")
    base = LightlyDataset(root)

    dataset = Uint8Dataset(base, 16)

    assert len(dataset) == len(base)
    assert dataset.get_filenames() == base.get_filenames()
    for i in range(len(base)):
        image, hw, label, name = dataset[i]
        pil_image, ref_label, ref_name = base[i]
        assert (label, name) == (ref_label, ref_name)
        assert image.dtype == torch.uint8
        assert image.shape == (3, 16, 16)
        assert hw.dtype == torch.int64
        assert hw.tolist() == [pil_image.height, pil_image.width]
    images, hws, labels, names = next(iter(DataLoader(dataset, batch_size=len(dataset))))
    assert images.shape == (len(base), 3, 16, 16)
    assert hws.shape == (len(base), 2)
    assert labels.tolist() == base.targets
    assert list(names) == base.get_filenames()


def test_dataset_over_a_manifest_reads_images_and_video_frames(
    make_image_folder: ImageFolderFactory, make_video: Callable[..., Path]
) -> None:
    root = make_image_folder(n_classes=1, n_per_class=2)
    make_video("clip.mp4", n_frames=3, root=root / "videos")
    checked = build_manifest(root, remove_exact_duplicates=False, progress=False)
    base = ManifestDataset(root, [r for r in checked.records if r.is_ok], classes=checked.classes)

    dataset = Uint8Dataset(base, 32)

    assert dataset.get_filenames() == base.get_filenames()
    assert len(dataset) == 5
    for i in range(len(base)):
        image, hw, label, name = dataset[i]
        reference = torch.from_numpy(np.asarray(base.load(i)).copy()).permute(2, 0, 1)
        assert (label, name) == (base.targets[i], base.get_filename(i))
        assert hw.tolist() == [32, 32]
        assert torch.equal(image, reference)  # 32 px already: no resize, exact pixels
    assert dataset.file_path(0) is not None
    assert dataset.file_path(4) is None


def test_dataset_over_a_wrapped_torch_dataset() -> None:
    samples = [(torch.rand(3, 8, 10), k) for k in range(3)]
    base = LightlyDataset.from_torch_dataset(samples)

    dataset = Uint8Dataset(base, 4)

    image, hw, label, name = dataset[-1]
    assert image.shape == (3, 4, 4)
    assert hw.tolist() == [8, 10]
    assert (label, name) == (2, "00000002.png")
    with pytest.raises(IndexError, match="index 3 out of range"):
        dataset[3]


def test_a_file_broken_after_listing_raises_data_error_naming_it(
    make_image_folder: ImageFolderFactory,
) -> None:
    root = make_image_folder(n_classes=1, n_per_class=2)
    base = LightlyDataset(root)
    broken = root / "class_0" / "img_0_1.png"
    broken.write_bytes(broken.read_bytes()[:40])

    dataset = Uint8Dataset(base, 8)

    assert dataset[0][0].shape == (3, 8, 8)
    with pytest.raises(DataError, match=r"class_0/img_0_1\.png.*truncated"):
        dataset[1]


def test_size_must_be_positive() -> None:
    with pytest.raises(DataError, match="positive int, got 0"):
        Uint8Dataset(LightlyDataset.from_torch_dataset([]), 0)
