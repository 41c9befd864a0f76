"""Random rotations: exact 90-degree steps and arbitrary angles, with separately sampled params.

All rotations are counter-clockwise, as in torchvision and ``numpy.rot90``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torchvision.transforms.functional as TF
from PIL import Image

from selfsup.errors import ConfigError
from selfsup.transforms._checks import check_probability, check_real, check_rr_degrees
from selfsup.transforms.base import (
    ImageSize,
    ImageT,
    RandomTransform,
    rand_bool,
    rand_uniform,
    same_type,
)

_PIL_ROTATIONS = {
    1: Image.Transpose.ROTATE_90,
    2: Image.Transpose.ROTATE_180,
    3: Image.Transpose.ROTATE_270,
}


def rotate90(img: ImageT, k: int) -> ImageT:
    """Rotate counter-clockwise by ``k * 90`` degrees, exactly (no resampling).

    Tensors ``(..., C, H, W)`` rotate in the last two dimensions; an odd ``k`` swaps height and
    width for non-square images (the whole image is kept, nothing is cropped).
    """
    k %= 4
    if k == 0:
        return img
    if isinstance(img, Image.Image):
        return same_type(img.transpose(_PIL_ROTATIONS[k]), img)
    return same_type(torch.rot90(img, k, dims=(-2, -1)), img)


class RandomRotate(RandomTransform[bool]):
    """Rotate by ``angle`` degrees (a multiple of 90) with probability ``prob``.

    Useful for data without a canonical orientation (aerial, microscopy, medical images).
    Rotations by multiples of 90 degrees are exact pixel permutations, which is why other
    angles are refused here; use :class:`RandomRotateDegrees` for those. Params: ``True`` =
    rotate.
    """

    def __init__(self, prob: float = 0.5, angle: int = 90) -> None:
        self.prob = check_probability("prob", prob)
        value = check_real("angle", angle)
        if value % 90 != 0:
            raise ConfigError(
                f"angle={angle!r}: expected a multiple of 90 degrees; "
                "use RandomRotateDegrees for arbitrary angles"
            )
        self.angle = int(value)

    def get_params(self, size: ImageSize, generator: torch.Generator | None = None) -> bool:
        return rand_bool(self.prob, generator)

    def sample_batch(
        self, n: int, size: ImageSize, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Bool mask ``(n,)``: which of ``n`` images to rotate, each with probability ``prob``."""
        return torch.rand(n, generator=generator) < self.prob

    def apply(self, img: ImageT, params: bool) -> ImageT:
        return rotate90(img, self.angle // 90) if params else img

    def output_size(self, size: ImageSize, params: bool) -> ImageSize:
        if params and (self.angle // 90) % 2 == 1:
            return (size[1], size[0])
        return size


@dataclass(frozen=True)
class RotationBatch:
    """:class:`RandomRotateDegrees` draws for a batch of ``n`` images.

    ``applied``: bool ``(n,)``; ``angle``: float64 ``(n,)`` in degrees (drawn for every image,
    used where ``applied``).
    """

    applied: torch.Tensor
    angle: torch.Tensor

    @classmethod
    def from_params(cls, params: Sequence[float | None]) -> RotationBatch:
        """Stack per-image params (angle or ``None``) into one batch."""
        return cls(
            applied=torch.tensor([p is not None for p in params], dtype=torch.bool),
            angle=torch.tensor([0.0 if p is None else p for p in params], dtype=torch.float64),
        )

    def unbind(self) -> list[float | None]:
        """The per-image params, as :meth:`RandomRotateDegrees.get_params` returns them."""
        return [
            float(a) if on else None
            for on, a in zip(self.applied.tolist(), self.angle.tolist(), strict=True)
        ]


class RandomRotateDegrees(RandomTransform[float | None]):
    """Rotate by a random angle from ``degrees`` with probability ``prob``.

    Args:
        prob: Probability of rotating.
        degrees: ``d`` for angles in ``[-d, d]`` or ``(min, max)``.

    Same as torchvision's ``RandomApply([RandomRotation(degrees)], p=prob)``: nearest-neighbour
    resampling, the output keeps the input size, uncovered corners are filled with 0.
    Params: the angle in degrees, or ``None`` for no rotation.
    """

    def __init__(self, prob: float, degrees: float | Sequence[float]) -> None:
        self.prob = check_probability("prob", prob)
        degrees_range = check_rr_degrees("degrees", degrees)
        if degrees_range is None:
            raise ConfigError("degrees=None: expected d >= 0 or a (min, max) pair of angles")
        self.degrees = degrees_range

    def get_params(self, size: ImageSize, generator: torch.Generator | None = None) -> float | None:
        applied = rand_bool(self.prob, generator)
        angle = rand_uniform(self.degrees[0], self.degrees[1], generator)
        return angle if applied else None

    def sample_batch(
        self, n: int, size: ImageSize, generator: torch.Generator | None = None
    ) -> RotationBatch:
        """Draws for ``n`` images: the same distribution as ``n`` calls of :meth:`get_params`."""
        applied = torch.rand(n, generator=generator) < self.prob
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        angle = self.degrees[0] + (self.degrees[1] - self.degrees[0]) * u
        return RotationBatch(applied=applied, angle=angle)

    def apply(self, img: ImageT, params: float | None) -> ImageT:
        if params is None:
            return img
        return same_type(TF.rotate(img, params), img)


def random_rotation_transform(
    rr_prob: float,
    rr_degrees: float | Sequence[float] | None,
) -> RandomRotate | RandomRotateDegrees:
    """Rotation step of the SSL pipelines: 90-degree steps if ``rr_degrees`` is None.

    ``rr_degrees=None`` gives :class:`RandomRotate` (rotate by 90 degrees with probability
    ``rr_prob``); a number ``d`` or ``(min, max)`` gives :class:`RandomRotateDegrees`.
    """
    prob = check_probability("rr_prob", rr_prob)
    degrees = check_rr_degrees("rr_degrees", rr_degrees)
    if degrees is None:
        return RandomRotate(prob=prob, angle=90)
    return RandomRotateDegrees(prob=prob, degrees=degrees)
