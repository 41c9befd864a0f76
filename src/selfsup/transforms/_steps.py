"""Build pipeline steps from the lightly-style keyword arguments, validating with their names.

The method transforms (SimCLR, MoCo, DINO, the collate functions) share these knobs; checking
them here means an error names the argument the user passed (``cj_hue``), not the building
block's internal one (``hue``).
"""

from __future__ import annotations

from collections.abc import Sequence

from selfsup.errors import ConfigError
from selfsup.transforms._checks import (
    check_fraction,
    check_non_negative,
    check_probability,
    check_sigmas,
)
from selfsup.transforms.color import RandomColorJitter
from selfsup.transforms.gaussian_blur import GaussianBlur, check_kernel_size


def color_jitter_step(
    cj_prob: float,
    cj_strength: float,
    cj_bright: float,
    cj_contrast: float,
    cj_sat: float,
    cj_hue: float,
) -> RandomColorJitter:
    """``RandomApply([ColorJitter(s * bright, s * contrast, s * sat, s * hue)], p=cj_prob)``."""
    prob = check_probability("cj_prob", cj_prob)
    strength = check_non_negative("cj_strength", cj_strength)
    bright = check_non_negative("cj_bright", cj_bright)
    contrast = check_non_negative("cj_contrast", cj_contrast)
    sat = check_non_negative("cj_sat", cj_sat)
    hue = check_non_negative("cj_hue", cj_hue)
    if strength * hue > 0.5:
        raise ConfigError(
            f"cj_strength * cj_hue = {cj_strength!r} * {cj_hue!r} = {strength * hue:g}: the hue "
            "shift is a fraction of the colour wheel and must be in [0, 0.5]"
        )
    return RandomColorJitter(
        prob=prob,
        brightness=strength * bright,
        contrast=strength * contrast,
        saturation=strength * sat,
        hue=strength * hue,
    )


def gaussian_blur_step(
    gaussian_blur: float,
    kernel_size: float | None,
    sigmas: Sequence[float],
    kernel_scale: float | None = None,
    prob_name: str = "gaussian_blur",
    scale_name: str = "kernel_scale",
) -> GaussianBlur:
    """:class:`GaussianBlur` with probability ``gaussian_blur``; errors use the caller's names."""
    prob = check_probability(prob_name, gaussian_blur)
    size = check_kernel_size("kernel_size", kernel_size)
    sigma_range = check_sigmas("sigmas", sigmas)
    if kernel_scale is not None:
        if size is None:
            raise ConfigError(
                f"{scale_name}={kernel_scale!r} jitters the blur window and needs kernel_size; "
                f"set kernel_size (e.g. 0.1) or leave {scale_name}=None"
            )
        kernel_scale = check_fraction(scale_name, kernel_scale)
    return GaussianBlur(kernel_size=size, prob=prob, scale=kernel_scale, sigmas=sigma_range)
