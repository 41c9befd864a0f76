"""Random Gaussian blur with separately sampled parameters.

The blur convolves every channel with the separable kernel ``g(x) g(y)``,
``g(x) = exp(-x^2 / (2 sigma^2)) / sum_x exp(-x^2 / (2 sigma^2))`` for integer offsets
``x in [-(k-1)/2, (k-1)/2]``, with reflection padding at the borders (torchvision's
``gaussian_blur``). ``sigma`` is drawn uniformly from ``sigmas`` for every image, as in SimCLR
("we blur the image 50% of the time using a Gaussian kernel ... sigma in [0.1, 2.0]").

Kernel size ``k`` (the window, in pixels):

* ``kernel_size=None`` (default): ``k = 2 * ceil(3 * sigma) + 1``, which holds 99.7% of the
  Gaussian's mass, so the result is the Gaussian blur of that sigma.
* ``kernel_size`` a float in (0, 1] (legacy, as in the CLI config ``kernel_size: 0.1``): a
  fraction of the image size: ``k = kernel_size * max(height, width)`` of the image being
  blurred. In the SimCLR/MoCo/DINO pipelines the blur runs after the crop, so this is
  ``kernel_size * input_size``, the window the original lightly collate functions used.
* ``kernel_size`` an int: the window in pixels; must be odd and >= 3.

A window from a fraction is rounded to the nearest integer, bumped to the next odd number and
to at least 3. Every window is finally capped at ``2 * min(height, width) - 1`` because
reflection padding cannot reach further than the image itself.

``scale`` (legacy, needs ``kernel_size``) jitters the window per image: ``k ~ N(k0, (scale k0)^2)``
clipped to ``[(1 - scale) k0, (1 + scale) k0]``, as the old lightly ``GaussianBlur`` did.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real

import torch
import torchvision.transforms.functional as TF

from selfsup.errors import ConfigError
from selfsup.transforms._checks import (
    check_fraction,
    check_probability,
    check_real,
    check_sigmas,
)
from selfsup.transforms.base import ImageSize, ImageT, RandomTransform, rand_bool, same_type


@dataclass(frozen=True)
class GaussianBlurParams:
    """One draw of :class:`GaussianBlur`: whether to blur, the sigma and the odd window size."""

    applied: bool
    sigma: float
    kernel_size: int


def check_kernel_size(name: str, value: object) -> float | int | None:
    """Validate a ``kernel_size``: ``None``, a float fraction in (0, 1] or an odd int >= 3."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(
            f"{name}={value!r}: expected None, a float fraction of the image size in (0, 1] "
            "or an odd int >= 3 (pixels)"
        )
    if isinstance(value, Integral):
        pixels = int(value)
        if pixels < 3 or pixels % 2 == 0:
            raise ConfigError(
                f"{name}={value!r}: an int is a window in pixels and must be odd and >= 3; "
                "pass a float in (0, 1] for a fraction of the image size, or None to derive "
                "the window from sigma"
            )
        return pixels
    if isinstance(value, Real):
        fraction = check_real(name, value)
        if not 0.0 < fraction <= 1.0:
            raise ConfigError(
                f"{name}={value!r}: a float is a fraction of the image size and must be in "
                "(0, 1]; pass an odd int for a window in pixels, or None to derive the window "
                "from sigma"
            )
        return fraction
    raise ConfigError(
        f"{name}={value!r}: expected None, a float in (0, 1] or an odd int >= 3, "
        f"got {type(value).__name__}"
    )


def kernel_size_from_sigma(sigma: float) -> int:
    """Smallest odd window ``2 * ceil(3 * sigma) + 1`` holding +-3 sigma of the Gaussian."""
    return 2 * math.ceil(3.0 * sigma) + 1


def odd_window(pixels: float, size: ImageSize) -> int:
    """Round a window to an odd int >= 3 that reflection padding of ``size`` can support."""
    k = max(3, round(pixels))
    if k % 2 == 0:
        k += 1
    limit = 2 * min(size) - 1
    return min(k, limit)


def gaussian_kernel1d(kernel_size: int, sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian weights, shape ``(kernel_size,)``, float64."""
    x = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2.0
    weights = torch.exp(-(x**2) / (2.0 * sigma**2))
    return weights / weights.sum()


@dataclass(frozen=True)
class GaussianBlurBatch:
    """:class:`GaussianBlur` draws for a batch of ``n`` images.

    ``applied``: bool ``(n,)``; ``sigma``: float64 ``(n,)``; ``kernel_size``: int64 ``(n,)``,
    odd windows (drawn for every image, used where ``applied``).
    """

    applied: torch.Tensor
    sigma: torch.Tensor
    kernel_size: torch.Tensor

    @classmethod
    def from_params(cls, params: Sequence[GaussianBlurParams]) -> GaussianBlurBatch:
        """Stack per-image params into one batch."""
        return cls(
            applied=torch.tensor([p.applied for p in params], dtype=torch.bool),
            sigma=torch.tensor([p.sigma for p in params], dtype=torch.float64),
            kernel_size=torch.tensor([p.kernel_size for p in params], dtype=torch.int64),
        )

    def unbind(self) -> list[GaussianBlurParams]:
        """The per-image params, as :meth:`GaussianBlur.get_params` returns them."""
        columns = zip(
            self.applied.tolist(), self.sigma.tolist(), self.kernel_size.tolist(), strict=True
        )
        return [
            GaussianBlurParams(applied=bool(a), sigma=float(s), kernel_size=int(k))
            for a, s, k in columns
        ]


def odd_window_batch(pixels: torch.Tensor, size: ImageSize) -> torch.Tensor:
    """:func:`odd_window` of every entry of ``pixels`` (float ``(n,)``); int64 ``(n,)``."""
    k = torch.clamp(torch.round(pixels), min=3).to(torch.int64)
    k = k + (k % 2 == 0).to(torch.int64)
    return torch.clamp(k, max=2 * min(size) - 1)


class GaussianBlur(RandomTransform[GaussianBlurParams]):
    """Blur with probability ``prob`` using a Gaussian of random ``sigma ~ U(sigmas)``.

    Args:
        kernel_size: ``None`` (window from sigma), a float fraction of the image size in (0, 1]
            or an odd int window in pixels. See the module docstring.
        prob: Probability of blurring an image.
        scale: Legacy relative jitter of the window, in [0, 1]; only with ``kernel_size``.
        sigmas: ``(min, max)`` standard deviation in pixels, ``0 < min <= max``.

    Works on PIL images and on tensors ``(..., C, H, W)`` (dtype and device kept).
    """

    def __init__(
        self,
        kernel_size: float | None = None,
        prob: float = 0.5,
        scale: float | None = None,
        sigmas: Sequence[float] = (0.2, 2),
    ) -> None:
        self.kernel_size = check_kernel_size("kernel_size", kernel_size)
        self.prob = check_probability("prob", prob)
        self.sigmas = check_sigmas("sigmas", sigmas)
        if scale is not None:
            if self.kernel_size is None:
                raise ConfigError(
                    f"scale={scale!r} jitters the kernel window and needs kernel_size; "
                    "set kernel_size (e.g. 0.1) or leave scale=None"
                )
            scale = check_fraction("scale", scale)
        self.scale = scale

    def get_params(
        self, size: ImageSize, generator: torch.Generator | None = None
    ) -> GaussianBlurParams:
        applied = rand_bool(self.prob, generator)
        u_sigma, z_window = (
            torch.rand((), generator=generator),
            torch.randn((), generator=generator),
        )
        sigma = self.sigmas[0] + (self.sigmas[1] - self.sigmas[0]) * float(u_sigma.item())
        if self.kernel_size is None:
            window: float = kernel_size_from_sigma(sigma)
        else:
            if isinstance(self.kernel_size, int):
                window = self.kernel_size
            else:
                window = self.kernel_size * max(size)
            if self.scale:
                jittered = window * (1.0 + self.scale * float(z_window.item()))
                window = min(
                    max(jittered, (1.0 - self.scale) * window), (1.0 + self.scale) * window
                )
        return GaussianBlurParams(
            applied=applied, sigma=sigma, kernel_size=odd_window(window, size)
        )

    def sample_batch(
        self, n: int, size: ImageSize, generator: torch.Generator | None = None
    ) -> GaussianBlurBatch:
        """Draws for ``n`` images: the same distribution as ``n`` calls of :meth:`get_params`."""
        applied = torch.rand(n, generator=generator) < self.prob
        u_sigma = torch.rand(n, generator=generator, dtype=torch.float64)
        z_window = torch.randn(n, generator=generator, dtype=torch.float64)
        sigma = self.sigmas[0] + (self.sigmas[1] - self.sigmas[0]) * u_sigma
        if self.kernel_size is None:
            window = (2 * torch.ceil(3.0 * sigma) + 1).to(torch.float64)
        else:
            base = (
                float(self.kernel_size)
                if isinstance(self.kernel_size, int)
                else self.kernel_size * max(size)
            )
            window = torch.full((n,), base, dtype=torch.float64)
            if self.scale:
                window = torch.clamp(
                    window * (1.0 + self.scale * z_window),
                    min=(1.0 - self.scale) * base,
                    max=(1.0 + self.scale) * base,
                )
        return GaussianBlurBatch(
            applied=applied, sigma=sigma, kernel_size=odd_window_batch(window, size)
        )

    def apply(self, img: ImageT, params: GaussianBlurParams) -> ImageT:
        if not params.applied:
            return img
        k = params.kernel_size
        out = TF.gaussian_blur(img, kernel_size=[k, k], sigma=[params.sigma, params.sigma])
        return same_type(out, img)
