"""Finding similar samples from an uploaded image: the check of the upload and the embedder
interface both HTTP apps share (issue 12).

Embedding an image needs the run's model and torch, which the server, the web app and this
package never import (``tests/test_layers.py``). So the apps check the uploaded bytes here
(torch-free, with Pillow) and hand them to an :class:`ImageEmbedder` injected when the app is
built: :mod:`selfsup.cli.apps` supplies one that embeds with the run's own checkpoint, input
size and normalisation (the code path the run embedded with). An app built without one
answers that the search from an upload is unavailable, and why.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from PIL import Image, UnidentifiedImageError

QUERY_IMAGE_FORMATS: Final = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
"""Image formats accepted as an uploaded query (Pillow's names)."""
QUERY_IMAGE_MAX_BYTES: Final = 16 * 1024**2
"""Largest uploaded query image. The apps' request body limit (``--max-body-bytes``, 1 MiB by
default) applies first, to the whole request."""
QUERY_IMAGE_MAX_PIXELS: Final = 50_000_000
"""Most pixels of an uploaded query image (a small file can decode to a huge one)."""

ACCEPTED_QUERY_IMAGES: Final = (
    f"a {', '.join(QUERY_IMAGE_FORMATS)} image of at most {QUERY_IMAGE_MAX_BYTES // 1024**2} MiB "
    f"and {QUERY_IMAGE_MAX_PIXELS // 1_000_000} megapixels"
)
"""What an upload must be, for error messages."""


class BadQueryImage(ValueError):  # noqa: N818  -- reads as a condition, like the others here
    """The uploaded bytes are no accepted image; the message says why and what is accepted."""


class EmbedderUnavailable(Exception):  # noqa: N818  -- a condition, not a failure of ours
    """This app or this run cannot embed an uploaded image; the message says why."""


def check_query_image(data: bytes, name: str = "the upload") -> str:
    """The format of ``data`` (one of :data:`QUERY_IMAGE_FORMATS`) once it decodes fully.

    The whole image is decoded (not only its header), so a truncated or corrupt file is
    refused here with a 400 rather than failing inside the model.

    Raises:
        BadQueryImage: empty, too large, not an image, another format, too many pixels, or
            not decodable; the message names ``name`` and :data:`ACCEPTED_QUERY_IMAGES`.
    """
    if not data:
        raise BadQueryImage(f"{name} is empty; upload {ACCEPTED_QUERY_IMAGES}")
    if len(data) > QUERY_IMAGE_MAX_BYTES:
        raise BadQueryImage(
            f"{name} has {len(data)} bytes, over the limit; upload {ACCEPTED_QUERY_IMAGES}"
        )
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past twice the limit raises) for decompression bombs; our own
            # pixel limit below is lower, so the warning adds nothing.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt = str(image.format or "")
                if fmt not in QUERY_IMAGE_FORMATS:
                    raise BadQueryImage(
                        f"{name} is a {fmt or 'unknown'} image; upload {ACCEPTED_QUERY_IMAGES}"
                    )
                width, height = image.size
                if width * height > QUERY_IMAGE_MAX_PIXELS:
                    raise BadQueryImage(
                        f"{name} has {width}x{height} pixels, over the limit; upload "
                        f"{ACCEPTED_QUERY_IMAGES}"
                    )
                image.load()
    except BadQueryImage:
        raise
    except UnidentifiedImageError:
        raise BadQueryImage(
            f"{name} is not an image Pillow can read; upload {ACCEPTED_QUERY_IMAGES}"
        ) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        # Pillow reports truncated and malformed data as OSError/SyntaxError/ValueError.
        raise BadQueryImage(
            f"{name} could not be decoded ({exc}); upload {ACCEPTED_QUERY_IMAGES}"
        ) from None
    return fmt


@dataclass(frozen=True)
class RunModelFiles:
    """Where a finished run's model is described, as an app finds them.

    Attributes:
        config_file: the run's resolved config as it ran (``config/config.yaml`` of the run
            folder, or the worker's ``config.json`` artifact).
        checkpoints: the trained checkpoints kept with the run (``*.ckpt`` of its output
            folder, or its ``CHECKPOINT`` artifacts); empty when none is there.
    """

    config_file: Path
    checkpoints: Sequence[Path] = ()


class ImageEmbedder(Protocol):
    """Embeds an image with a run's model, as the run embedded its samples."""

    def embed(self, model: RunModelFiles, image: bytes) -> list[float]:
        """The ``(D,)`` embedding of ``image`` (bytes that passed :func:`check_query_image`)
        by the run's model, not normalised.

        Raises:
            EmbedderUnavailable: the run has no model to embed with here (precomputed
                embeddings, a checkpoint that is not kept with the run), saying which.
            BadQueryImage: the model's loader could not read the image.
        """
        ...
