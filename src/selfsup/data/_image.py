"""Reading image files: a cheap validity check at listing time and a strict RGB loader.

Cost/benefit of the construction-time check (:func:`check_image`): decoding every image
when a dataset is built would cost about as much as one epoch, so we only

* reject zero-byte files,
* let Pillow identify the format and run :meth:`PIL.Image.Image.verify` (header parsing;
  for PNG it also walks every chunk and checks its CRC, which catches truncated PNGs),
* for JPEG, look for the end-of-image marker ``FF D9`` near the end of the file. Files
  without it are *then* fully decoded, because some cameras append data after the marker
  and such files are valid; only a decode error marks them broken.

This catches the usual damage (empty files, text or HTML saved under an image name,
interrupted downloads of PNG/JPEG) for the price of reading headers. Damage it cannot see
(a truncated GIF/TIFF/WebP, a corrupt JPEG scan with an intact end marker) surfaces when
the sample is loaded: :func:`load_rgb` raises :class:`~selfsup.errors.DataError` naming
the file instead of returning a half-decoded image.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image

from selfsup.errors import DataError
from selfsup.utils.safe_open import ReadTimeoutError, open_regular, read_bytes

# Errors Pillow raises for unreadable or hostile files. UnidentifiedImageError is an
# OSError; DecompressionBombError is a plain Exception subclass, so it is listed on its own.
PIL_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    Image.DecompressionBombError,
)

# How far from the end of a JPEG file we look for the end-of-image marker. Encoders may
# pad a few bytes after it; anything longer triggers the (slower) full decode instead.
_JPEG_TAIL_BYTES = 64


def check_image(path: str | os.PathLike[str]) -> str | None:
    """Return why the image at ``path`` is unusable, or ``None`` when it looks valid.

    Cheap by design (see the module docstring): reads headers, PNG chunks and the JPEG
    tail; decodes the pixels only for JPEGs that lack an end-of-image marker.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        return f"cannot read file: {exc}"
    if size == 0:
        return "empty file (0 bytes)"
    try:
        with open_regular(p) as handle, Image.open(handle) as img:
            fmt = img.format
            img.verify()
    except PIL_ERRORS as exc:
        return f"not a readable image: {exc}"
    if fmt == "JPEG" and not _jpeg_has_end_marker(p, size):
        try:
            with open_regular(p) as handle, Image.open(handle) as img:
                img.load()
        except PIL_ERRORS as exc:
            return f"truncated or corrupt JPEG: {exc}"
    return None


def _jpeg_has_end_marker(path: Path, size: int) -> bool:
    with open_regular(path) as handle:
        handle.seek(max(0, size - _JPEG_TAIL_BYTES))
        tail = handle.read()
    return b"\xff\xd9" in tail


def load_rgb(path: str | os.PathLike[str], name: str | None = None) -> Image.Image:
    """Decode the image at ``path`` fully and return it as an RGB PIL image.

    Args:
        path: File to read.
        name: How to call the file in error messages (defaults to ``path``).

    Raises:
        DataError: The file is missing, truncated or not an image; the message names it.
    """
    label = name if name is not None else str(path)
    try:
        # read_bytes: a FIFO put in the file's place fails here, and a read that hangs (a
        # network mount) ends with ReadTimeoutError after the process's read timeout.
        with Image.open(io.BytesIO(read_bytes(path))) as img:
            # convert() forces a full decode, so truncation raises here and not later
            # inside a transform or a DataLoader collate.
            return img.convert("RGB")
    except ReadTimeoutError:
        raise
    except PIL_ERRORS as exc:
        raise DataError(f"cannot load image {label!r} ({path}): {exc}") from exc
