"""The contract every random augmentation in :mod:`selfsup.transforms` follows.

A random transform is split in two (DESIGN practice 4):

* ``get_params(size, generator) -> params`` draws every random number the transform needs from a
  ``torch.Generator`` (or torch's global generator when ``None``). It sees only the image size,
  never the pixels, so parameters can be drawn for a whole batch up front.
* ``apply(img, params) -> img`` is a pure function of the image and the parameters: no
  randomness, no in-place change of ``img``. The same parameters give the same output on PIL
  images, CPU tensors and GPU tensors.

``transform(img)`` is ``apply(img, get_params(size(img)))``, so these classes drop into any
torchvision ``Compose``. Because all randomness comes from torch, ``torch.manual_seed(s)``
reproduces a whole pipeline, and DataLoader workers (which torch seeds one by one) never
repeat each other's augmentations, a pitfall of numpy's global generator.

``get_params`` always draws the same amount of random numbers whatever the outcome (for
example the blur sigma is drawn even when the coin flip says "no blur"), so changing one
probability does not shift the random stream seen by the transforms after it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic, TypeVar

import torch
from PIL import Image

from selfsup.errors import DataError

#: ``(height, width)`` in pixels.
ImageSize = tuple[int, int]

#: The image types every transform accepts: a PIL image, or a tensor shaped ``(..., C, H, W)``
#: (uint8 in [0, 255] or floating point in [0, 1]).
ImageT = TypeVar("ImageT", Image.Image, torch.Tensor)

P = TypeVar("P")


def image_size(img: Image.Image | torch.Tensor) -> ImageSize:
    """Return ``(height, width)`` of a PIL image or a ``(..., C, H, W)`` tensor."""
    if isinstance(img, Image.Image):
        return (img.height, img.width)
    if isinstance(img, torch.Tensor):
        if img.ndim < 3:
            raise DataError(
                f"expected an image tensor shaped (..., C, H, W), got shape {tuple(img.shape)}"
            )
        return (int(img.shape[-2]), int(img.shape[-1]))
    raise DataError(
        f"expected a PIL.Image.Image or a torch.Tensor (..., C, H, W), got {type(img).__name__}"
    )


def num_channels(img: Image.Image | torch.Tensor) -> int:
    """Return the number of colour channels of a PIL image or a ``(..., C, H, W)`` tensor."""
    if isinstance(img, Image.Image):
        return len(img.getbands())
    return int(img.shape[-3])


def same_type(result: object, like: ImageT) -> ImageT:
    """Return ``result`` typed like ``like`` after checking it really has that type.

    torchvision's functional ops are untyped (``Any``); this keeps ``apply`` honest about
    returning the type it was given.
    """
    if isinstance(like, Image.Image):
        if isinstance(result, Image.Image):
            return result
    elif isinstance(result, torch.Tensor):
        return result
    raise TypeError(f"internal error: expected {type(like).__name__}, got {type(result).__name__}")


def rand_uniform(low: float, high: float, generator: torch.Generator | None = None) -> float:
    """One draw from U[low, high) using ``generator`` (torch's global generator if ``None``)."""
    u = float(torch.rand((), generator=generator).item())
    return low + (high - low) * u


def rand_bool(prob: float, generator: torch.Generator | None = None) -> bool:
    """``True`` with probability ``prob``; always consumes exactly one draw."""
    return float(torch.rand((), generator=generator).item()) < prob


class RandomTransform(ABC, Generic[P]):
    """Base class: a random image transform with separate parameter sampling and application.

    Subclasses implement :meth:`get_params` and :meth:`apply`; :meth:`output_size` only when the
    transform changes the image size (crops, rotations by 90 degrees).
    """

    @abstractmethod
    def get_params(self, size: ImageSize, generator: torch.Generator | None = None) -> P:
        """Draw the random parameters for one image of ``size = (height, width)``."""

    @abstractmethod
    def apply(self, img: ImageT, params: P) -> ImageT:
        """Apply the transform with fixed ``params``; deterministic and never in place."""

    def output_size(self, size: ImageSize, params: P) -> ImageSize:
        """Size ``(height, width)`` of ``apply``'s output for an input of ``size``."""
        return size

    def __call__(self, img: ImageT, generator: torch.Generator | None = None) -> ImageT:
        """Draw parameters for ``img`` and apply them."""
        return self.apply(img, self.get_params(image_size(img), generator))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"
