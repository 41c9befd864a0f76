"""Reading image files: the one definition of a corrupt image, and the RGB loader.

Torch-free on purpose: the curation check's worker processes import this module (through
:mod:`selfsup.curation._decode`), and a spawned worker must start in a fraction of a second.

What "corrupt" means (the reasons are the values of
:class:`selfsup.curation.manifest.CorruptReason`; :data:`IMAGE_PROBLEM_REASONS` lists the
ones an image file can have):

* ``empty``: zero bytes;
* ``unreadable``: the file cannot be opened or read (permission, vanished, not a regular
  file);
* ``unknown_format``: content that is no image PIL can identify, e.g. a text file named
  ``.png``;
* ``truncated``: the file ends before the pixel data does (PIL raises on ``load()`` with
  ``LOAD_TRUNCATED_IMAGES`` forced off), or it starts with an image signature but is too
  short for its header;
* ``decode_error``: any other decoder error;
* ``too_large``: more pixels than the ``max_image_pixels`` limit, refused before the
  pixels are decoded (a decompression-bomb guard).

Every pixel is decoded to tell (:func:`decode_image`): a truncated GIF, TIFF or WebP, or a
damaged JPEG scan with an intact end marker, only shows when the data is decoded. The
curation check (:mod:`selfsup.curation._decode`) and :class:`~selfsup.data.LightlyDataset`
(:func:`check_image`, at construction) use this one definition.

A file whose content does not match its extension (a PNG named ``.jpg``) decodes, so it is
not corrupt: files are opened by content, not by name.

:func:`load_rgb` is the pixel loader for training and embedding: it decodes a file the
check accepted and raises :class:`~selfsup.errors.DataError` naming it if the file has
changed into something unreadable since.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final, Generic, Literal, TypeVar

from PIL import Image, ImageFile, UnidentifiedImageError

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

#: Default pixel limit of the decompression-bomb guard: PIL's own default
#: (``PIL.Image.MAX_IMAGE_PIXELS``, about 89.5 million pixels, 0.25 GiB as RGB).
DEFAULT_MAX_IMAGE_PIXELS: Final = 89_478_485

#: Why an image file is corrupt; each is a value of ``curation.manifest.CorruptReason``.
ImageProblemReason = Literal[
    "empty", "unreadable", "unknown_format", "truncated", "decode_error", "too_large"
]
IMAGE_PROBLEM_REASONS: Final[tuple[ImageProblemReason, ...]] = (
    "empty",
    "unreadable",
    "unknown_format",
    "truncated",
    "decode_error",
    "too_large",
)

# First bytes of the image formats in IMAGE_EXTENSIONS: a file that starts like one of them
# but cannot be identified is a truncated image rather than a non-image.
_IMAGE_SIGNATURES: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"RIFF", "WEBP"),
    (b"P1", "PPM"),
    (b"P2", "PPM"),
    (b"P3", "PPM"),
    (b"P4", "PPM"),
    (b"P5", "PPM"),
    (b"P6", "PPM"),
)
_HEAD_BYTES: Final = 64

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ImageProblem:
    """Why an image file is corrupt.

    Attributes:
        reason: One of :data:`IMAGE_PROBLEM_REASONS` (see the module docstring).
        detail: What was found, for people (the decoder's message, the limit exceeded).
    """

    reason: ImageProblemReason
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass(frozen=True, slots=True)
class DecodedImage(Generic[T]):
    """What :func:`decode_image` found.

    Attributes:
        format: PIL format name once the header was identified, else ``None``.
        width, height: Size in pixels once the header was identified, else ``None``.
        value: What ``use`` returned for the decoded image; ``None`` when ``problem`` is set.
        problem: Why the image is corrupt, or ``None``.
        warnings: Messages of the warnings PIL gave while decoding (e.g. a bad EXIF block).
    """

    format: str | None = None
    width: int | None = None
    height: int | None = None
    value: T | None = None
    problem: ImageProblem | None = None
    warnings: list[str] = field(default_factory=list)


@contextlib.contextmanager
def strict_pil() -> Iterator[None]:
    """PIL settings of the check: truncated files fail, our own pixel guard replaces PIL's.

    Both are process-wide globals; they are restored afterwards so a check in-process does
    not change how the rest of the program loads images.
    """
    old_limit = Image.MAX_IMAGE_PIXELS
    old_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    Image.MAX_IMAGE_PIXELS = None
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
        ImageFile.LOAD_TRUNCATED_IMAGES = old_truncated


def sniff_image_format(head: bytes) -> str | None:
    """The image format whose signature ``head`` (the first bytes of a file) starts with."""
    for signature, name in _IMAGE_SIGNATURES:
        if head.startswith(signature):
            if name == "WEBP" and len(head) >= 12 and head[8:12] != b"WEBP":
                continue
            return name
    return None


def _is_truncation(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, EOFError) or "truncated" in text or "premature end" in text


def _decoder_problem(exc: Exception) -> ImageProblem:
    reason: ImageProblemReason = "truncated" if _is_truncation(exc) else "decode_error"
    return ImageProblem(reason, f"{type(exc).__name__}: {exc}")


def decode_image(
    data: bytes, max_image_pixels: int | None, use: Callable[[Image.Image], T]
) -> DecodedImage[T]:
    """Decode the image file content ``data`` fully and apply ``use`` to the decoded image.

    Never raises for bad data: every failure becomes :attr:`DecodedImage.problem` (the
    reasons of the module docstring). An error raised by ``use`` counts as a decoder error
    too (it touches the pixels, which may be damaged in ways ``load()`` does not notice).

    Args:
        data: The bytes of the file (non-empty; an empty file is ``empty`` before this).
        max_image_pixels: Images with more pixels are ``too_large`` before their pixels are
            decoded; ``None`` disables the guard.
        use: Called with the loaded image (still open; its mode as stored).
    """
    head = data[:_HEAD_BYTES]
    with strict_pil(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            sniffed = sniff_image_format(head)
            if sniffed is not None:
                return DecodedImage(
                    problem=ImageProblem(
                        "truncated",
                        f"the file starts like a {sniffed} image but its header cannot be "
                        f"read ({len(data)} bytes; probably truncated)",
                    )
                )
            return DecodedImage(
                problem=ImageProblem(
                    "unknown_format",
                    f"not an image in a format PIL can read (content starts with {head[:16]!r})",
                )
            )
        except Exception as exc:  # noqa: BLE001  # any decoder error is a finding about the file
            return DecodedImage(problem=_decoder_problem(exc))
        with image:
            fmt, width, height = image.format, image.width, image.height
            if max_image_pixels is not None and width * height > max_image_pixels:
                return DecodedImage(
                    fmt,
                    width,
                    height,
                    problem=ImageProblem(
                        "too_large",
                        f"{width}x{height} = {width * height} pixels is more than "
                        f"max_image_pixels={max_image_pixels} (refused as a possible "
                        "decompression bomb; raise max_image_pixels to accept it)",
                    ),
                )
            try:
                image.load()
                value = use(image)
            except Exception as exc:  # noqa: BLE001  # any decoder error is a finding about the file
                return DecodedImage(fmt, width, height, problem=_decoder_problem(exc))
    return DecodedImage(fmt, width, height, value, warnings=[str(w.message) for w in caught])


def read_image_file(path: str | os.PathLike[str]) -> bytes | ImageProblem:
    """The bytes of the image file at ``path``, or why they cannot be had (``unreadable``,
    ``empty``). Opens only regular files (a FIFO would block)."""
    try:
        with open_regular(path) as handle:
            data = handle.read()
    except OSError as exc:
        return ImageProblem("unreadable", f"cannot read: {exc.strerror or exc}")
    if not data:
        return ImageProblem("empty", "the file has 0 bytes")
    return data


def _ignore(image: Image.Image) -> None:
    """``use`` of :func:`check_image`: the decode itself is the check."""


def check_image(
    path: str | os.PathLike[str], max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS
) -> ImageProblem | None:
    """Why the image file at ``path`` is corrupt, or ``None`` when it decodes.

    The definition of the module docstring (the curation check's): reads the file and
    decodes every pixel.
    """
    data = read_image_file(path)
    if isinstance(data, ImageProblem):
        return data
    return decode_image(data, max_image_pixels, _ignore).problem


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
