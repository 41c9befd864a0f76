"""The check of an uploaded query image (``selfsup.apphelpers.query_image``): what passes,
and that every refusal names what is accepted."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from selfsup.apphelpers.query_image import (
    QUERY_IMAGE_FORMATS,
    QUERY_IMAGE_MAX_BYTES,
    QUERY_IMAGE_MAX_PIXELS,
    BadQueryImage,
    check_query_image,
)


def _encoded(fmt: str, size: tuple[int, int] = (16, 12)) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_every_accepted_format_passes_and_is_named(fmt: str) -> None:
    assert fmt in QUERY_IMAGE_FORMATS
    assert check_query_image(_encoded(fmt)) == fmt


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "is empty"),
        (b"definitely not an image", "not an image Pillow can read"),
        (_encoded("PNG")[:60], "could not be decoded"),
        (_encoded("PPM"), "is a PPM image"),
    ],
)
def test_a_bad_upload_names_the_reason_and_the_accepted_formats(data: bytes, why: str) -> None:
    with pytest.raises(BadQueryImage, match=why) as info:
        check_query_image(data, "'q.bin'")
    message = str(info.value)
    assert "'q.bin'" in message
    assert all(fmt in message for fmt in QUERY_IMAGE_FORMATS)


def test_size_and_pixel_limits_are_enforced_before_decoding() -> None:
    with pytest.raises(BadQueryImage, match="over the limit"):
        check_query_image(b"\0" * (QUERY_IMAGE_MAX_BYTES + 1))
    # A tiny PNG header claiming more pixels than the limit is refused without decoding it.
    side = int(QUERY_IMAGE_MAX_PIXELS**0.5) + 1
    huge = Image.new("1", (side, side))
    out = io.BytesIO()
    huge.save(out, format="PNG")
    with pytest.raises(BadQueryImage, match=f"{side}x{side} pixels"):
        check_query_image(out.getvalue())
