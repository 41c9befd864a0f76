"""Random colour jitter and random grayscale with separately sampled parameters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torchvision.transforms.functional as TF

from selfsup.errors import ConfigError
from selfsup.transforms._checks import check_non_negative, check_probability
from selfsup.transforms.base import (
    ImageSize,
    ImageT,
    RandomTransform,
    num_channels,
    rand_bool,
    rand_uniform,
    same_type,
)

#: Index of each adjustment in :attr:`ColorJitterParams.order`.
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3


@dataclass(frozen=True)
class ColorJitterParams:
    """One draw of :class:`RandomColorJitter`.

    ``order`` is a permutation of (0, 1, 2, 3) = (brightness, contrast, saturation, hue), the
    order in which the adjustments are applied. A factor is ``None`` when its strength is 0,
    so that adjustment is skipped (rather than applied with the identity factor).
    """

    applied: bool
    order: tuple[int, ...]
    brightness: float | None
    contrast: float | None
    saturation: float | None
    hue: float | None


def _stack_factor(values: Sequence[float | None]) -> torch.Tensor | None:
    if all(v is None for v in values):
        return None
    if any(v is None for v in values):
        raise ConfigError(
            "ColorJitterBatch.from_params: a factor is None for some images and set for others; "
            "stack only params drawn by the same RandomColorJitter"
        )
    return torch.tensor(values, dtype=torch.float64)


def _unbind_factor(values: torch.Tensor | None, n: int) -> list[float | None]:
    return [None] * n if values is None else [float(v) for v in values.tolist()]


@dataclass(frozen=True)
class ColorJitterBatch:
    """:class:`RandomColorJitter` draws for a batch of ``n`` images.

    ``applied``: bool ``(n,)``; ``order``: int64 ``(n, 4)``, one permutation of (brightness,
    contrast, saturation, hue) per image; each factor float64 ``(n,)``, or ``None`` when its
    strength is 0 (the adjustment is skipped for every image).
    """

    applied: torch.Tensor
    order: torch.Tensor
    brightness: torch.Tensor | None
    contrast: torch.Tensor | None
    saturation: torch.Tensor | None
    hue: torch.Tensor | None

    @classmethod
    def from_params(cls, params: Sequence[ColorJitterParams]) -> ColorJitterBatch:
        """Stack per-image params (all from the same :class:`RandomColorJitter`)."""
        return cls(
            applied=torch.tensor([p.applied for p in params], dtype=torch.bool),
            order=torch.tensor([list(p.order) for p in params], dtype=torch.int64).reshape(-1, 4),
            brightness=_stack_factor([p.brightness for p in params]),
            contrast=_stack_factor([p.contrast for p in params]),
            saturation=_stack_factor([p.saturation for p in params]),
            hue=_stack_factor([p.hue for p in params]),
        )

    def unbind(self) -> list[ColorJitterParams]:
        """The per-image params, as :meth:`RandomColorJitter.get_params` returns them."""
        n = int(self.applied.shape[0])
        columns = zip(
            self.applied.tolist(),
            self.order.tolist(),
            _unbind_factor(self.brightness, n),
            _unbind_factor(self.contrast, n),
            _unbind_factor(self.saturation, n),
            _unbind_factor(self.hue, n),
            strict=True,
        )
        return [
            ColorJitterParams(
                applied=bool(a), order=tuple(o), brightness=b, contrast=c, saturation=s, hue=h
            )
            for a, o, b, c, s, h in columns
        ]


class RandomColorJitter(RandomTransform[ColorJitterParams]):
    """With probability ``prob``, jitter brightness, contrast, saturation and hue in random order.

    Equivalent to torchvision's ``RandomApply([ColorJitter(b, c, s, h)], p=prob)``: the factors
    are drawn from ``U[max(0, 1 - b), 1 + b]`` (same for contrast and saturation) and the hue shift
    from ``U[-h, h]`` (fraction of the colour wheel, so ``0 <= h <= 0.5``).

    * brightness: ``x * f``
    * contrast: ``f * x + (1 - f) * mean(gray(x))``
    * saturation: ``f * x + (1 - f) * gray(x)``, ``gray = 0.299 R + 0.587 G + 0.114 B``
    * hue: rotate the hue channel in HSV space by ``h``

    Results are clamped to the valid range ([0, 1] for float, [0, 255] for uint8 tensors).
    """

    def __init__(
        self,
        prob: float = 0.8,
        brightness: float = 0.0,
        contrast: float = 0.0,
        saturation: float = 0.0,
        hue: float = 0.0,
    ) -> None:
        self.prob = check_probability("prob", prob)
        self.brightness = check_non_negative("brightness", brightness)
        self.contrast = check_non_negative("contrast", contrast)
        self.saturation = check_non_negative("saturation", saturation)
        self.hue = check_non_negative("hue", hue)
        if self.hue > 0.5:
            raise ConfigError(
                f"hue={hue!r}: expected a hue shift in [0, 0.5] (fraction of the colour wheel)"
            )

    def get_params(
        self, size: ImageSize, generator: torch.Generator | None = None
    ) -> ColorJitterParams:
        applied = rand_bool(self.prob, generator)
        order = tuple(int(i) for i in torch.randperm(4, generator=generator).tolist())

        def factor(strength: float) -> float | None:
            value = rand_uniform(max(0.0, 1.0 - strength), 1.0 + strength, generator)
            return value if strength > 0 else None

        brightness = factor(self.brightness)
        contrast = factor(self.contrast)
        saturation = factor(self.saturation)
        hue_shift = rand_uniform(-self.hue, self.hue, generator)
        return ColorJitterParams(
            applied=applied,
            order=order,
            brightness=brightness,
            contrast=contrast,
            saturation=saturation,
            hue=hue_shift if self.hue > 0 else None,
        )

    def sample_batch(
        self, n: int, size: ImageSize, generator: torch.Generator | None = None
    ) -> ColorJitterBatch:
        """Draws for ``n`` images: the same distribution as ``n`` calls of :meth:`get_params`.

        The order of every image is the argsort of 4 uniforms, a uniformly random permutation.
        """
        applied = torch.rand(n, generator=generator) < self.prob
        order = torch.argsort(torch.rand((n, 4), generator=generator), dim=1)

        def factor(strength: float) -> torch.Tensor | None:
            u = torch.rand(n, generator=generator, dtype=torch.float64)
            low = max(0.0, 1.0 - strength)
            return low + (1.0 + strength - low) * u if strength > 0 else None

        brightness = factor(self.brightness)
        contrast = factor(self.contrast)
        saturation = factor(self.saturation)
        u_hue = torch.rand(n, generator=generator, dtype=torch.float64)
        return ColorJitterBatch(
            applied=applied,
            order=order,
            brightness=brightness,
            contrast=contrast,
            saturation=saturation,
            hue=-self.hue + 2.0 * self.hue * u_hue if self.hue > 0 else None,
        )

    def apply(self, img: ImageT, params: ColorJitterParams) -> ImageT:
        if not params.applied:
            return img
        out: ImageT = img
        for index in params.order:
            if index == BRIGHTNESS and params.brightness is not None:
                out = same_type(TF.adjust_brightness(out, params.brightness), img)
            elif index == CONTRAST and params.contrast is not None:
                out = same_type(TF.adjust_contrast(out, params.contrast), img)
            elif index == SATURATION and params.saturation is not None:
                out = same_type(TF.adjust_saturation(out, params.saturation), img)
            elif index == HUE and params.hue is not None:
                out = same_type(TF.adjust_hue(out, params.hue), img)
        return out


class RandomGrayscale(RandomTransform[bool]):
    """Convert to grayscale with probability ``prob``, keeping the number of channels.

    Gray is ``0.299 R + 0.587 G + 0.114 B`` (ITU-R 601-2 luma) copied into every channel, so a
    3-channel input stays 3-channel and batches can still be stacked.
    """

    def __init__(self, prob: float = 0.1) -> None:
        self.prob = check_probability("prob", prob)

    def get_params(self, size: ImageSize, generator: torch.Generator | None = None) -> bool:
        return rand_bool(self.prob, generator)

    def sample_batch(
        self, n: int, size: ImageSize, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Bool mask ``(n,)``: which of ``n`` images to gray, each with probability ``prob``."""
        return torch.rand(n, generator=generator) < self.prob

    def apply(self, img: ImageT, params: bool) -> ImageT:
        if not params:
            return img
        out = TF.rgb_to_grayscale(img, num_output_channels=num_channels(img))
        return same_type(out, img)
