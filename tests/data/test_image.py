"""The one definition of a corrupt image (data/_image.py), shared by the check and the datasets."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from selfsup.curation._decode import FileEntry, check_file
from selfsup.curation.manifest import CorruptReason
from selfsup.data._image import (
    IMAGE_PROBLEM_REASONS,
    ImageProblem,
    check_image,
    decode_image,
    load_rgb,
    read_image_file,
)
from selfsup.errors import DataError


def _png(size: tuple[int, int] = (16, 12)) -> bytes:
    buf = io.BytesIO()
    pixels = np.arange(size[0] * size[1] * 3, dtype=np.uint8).reshape(size[1], size[0], 3)
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 30, 200)).save(buf, format="JPEG")
    return buf.getvalue()


def test_every_reason_is_a_corrupt_reason_of_the_manifest() -> None:
    assert {CorruptReason(r).value for r in IMAGE_PROBLEM_REASONS} == set(IMAGE_PROBLEM_REASONS)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"this is not an image\n", "unknown_format"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "truncated"),  # a PNG signature, no header
        (_png()[:60], "truncated"),
        (_jpeg()[: len(_jpeg()) // 3], "truncated"),
    ],
)
def test_decode_image_names_the_reason(data: bytes, reason: str) -> None:
    decoded = decode_image(data, None, lambda image: image.size)
    assert decoded.value is None
    assert decoded.problem is not None
    assert decoded.problem.reason == reason


def test_decode_image_applies_use_and_keeps_the_header_fields() -> None:
    decoded = decode_image(_png(), None, lambda image: image.size)
    assert (decoded.format, decoded.width, decoded.height) == ("PNG", 16, 12)
    assert decoded.value == (16, 12)
    assert decoded.problem is None


def test_too_many_pixels_are_refused_before_decoding() -> None:
    calls: list[int] = []
    decoded = decode_image(_png(), 100, lambda image: calls.append(1))
    assert decoded.problem is not None
    assert decoded.problem.reason == "too_large"
    assert "max_image_pixels=100" in decoded.problem.detail
    assert (decoded.width, decoded.height) == (16, 12)  # the header was read
    assert calls == []


def test_an_error_in_use_is_a_decoder_error() -> None:
    def fail(image: Image.Image) -> None:
        raise ValueError("bad pixels")

    decoded = decode_image(_png(), None, fail)
    assert decoded.problem == ImageProblem("decode_error", "ValueError: bad pixels")


def test_dataset_check_and_curation_check_agree(tmp_path: Path) -> None:
    files = {
        "ok.png": _png(),
        "empty.png": b"",
        "text.png": b"hello",
        "cut.jpg": _jpeg()[:200],
        "jpeg_named.png": _jpeg(),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    for name in files:
        problem = check_image(tmp_path / name)
        (record,) = check_file(tmp_path, FileEntry(name, len(files[name]), 0))
        expected = None if record.reason is None else record.reason.value
        assert (None if problem is None else problem.reason) == expected, name
        if problem is not None:
            assert problem.detail == record.detail
    assert read_image_file(tmp_path / "missing.png") == ImageProblem(
        "unreadable", "cannot read: No such file or directory"
    )


def test_load_rgb_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(_png())
    assert load_rgb(path).mode == "RGB"
    path.write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"'shown name'"):
        load_rgb(path, name="shown name")
