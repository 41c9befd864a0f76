"""Argument validation shared by the transforms and the collate functions.

Every check takes the user-facing argument name so the error says which knob is wrong and
what would be accepted (``cj_prob=1.5: expected a probability in [0, 1]``). All checks raise
:class:`selfsup.errors.ConfigError`, a ``ValueError`` subclass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Literal, TypeGuard

from selfsup.errors import ConfigError

#: ``normalize`` as accepted by every view transform: a mapping with ``mean`` and ``std``
#: (one value per channel) or ``None``/``False``/``{}`` to switch normalisation off.
NormalizeArg = Mapping[str, Sequence[float]] | None | Literal[False]


def _is_real(value: object) -> TypeGuard[Real]:
    # bool is an int subclass; True/False as a number is almost always a slip.
    return isinstance(value, Real) and not isinstance(value, bool)


def check_real(name: str, value: object) -> float:
    """Return ``value`` as a finite float or raise naming ``name``."""
    if not _is_real(value):
        raise ConfigError(f"{name}={value!r}: expected a number, got {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise ConfigError(f"{name}={value!r}: expected a finite number")
    return result


def check_probability(name: str, value: object) -> float:
    """Return ``value`` as a float in [0, 1] or raise naming ``name``."""
    result = check_real(name, value)
    if not 0.0 <= result <= 1.0:
        raise ConfigError(f"{name}={value!r}: expected a probability in [0, 1]")
    return result


def check_fraction(name: str, value: object) -> float:
    """Return ``value`` as a float in [0, 1] (a relative amount, not a probability)."""
    result = check_real(name, value)
    if not 0.0 <= result <= 1.0:
        raise ConfigError(f"{name}={value!r}: expected a fraction in [0, 1]")
    return result


def check_non_negative(name: str, value: object) -> float:
    """Return ``value`` as a float >= 0 or raise naming ``name``."""
    result = check_real(name, value)
    if result < 0.0:
        raise ConfigError(f"{name}={value!r}: expected a number >= 0")
    return result


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum`` or raise naming ``name``."""
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise ConfigError(
            f"{name}={value!r}: expected an integer >= {minimum}, got {type(value).__name__}"
        )
    result = int(value)
    if result < minimum:
        raise ConfigError(f"{name}={value!r}: expected an integer >= {minimum}")
    return result


def check_size(name: str, value: object) -> tuple[int, int]:
    """Return an output size as ``(height, width)``.

    Accepts an int ``s`` (square ``s x s``) or a pair ``(height, width)`` of positive ints, as
    torchvision's ``RandomResizedCrop(size=...)`` does.
    """
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise ConfigError(
                f"{name}={value!r}: expected an int or a (height, width) pair of ints > 0"
            )
        return (
            check_positive_int(f"{name}[0]", value[0]),
            check_positive_int(f"{name}[1]", value[1]),
        )
    side = check_positive_int(name, value)
    return (side, side)


def check_range(
    name: str,
    value: object,
    low: float,
    high: float,
    low_inclusive: bool = True,
) -> tuple[float, float]:
    """Return a ``(min, max)`` pair with ``low <(=) min <= max <= high``, else raise."""
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise ConfigError(f"{name}={value!r}: expected a (min, max) pair of numbers")
    lo = check_real(f"{name}[0]", value[0])
    hi = check_real(f"{name}[1]", value[1])
    left = "[" if low_inclusive else "("
    low_ok = lo >= low if low_inclusive else lo > low
    if not (low_ok and lo <= hi <= high):
        raise ConfigError(
            f"{name}={value!r}: expected min <= max with both in {left}{low:g}, {high:g}]"
        )
    return (lo, hi)


def check_min_scale(name: str, value: object) -> float:
    """Return a crop ``min_scale`` in (0, 1] or raise naming ``name``."""
    result = check_real(name, value)
    if not 0.0 < result <= 1.0:
        raise ConfigError(
            f"{name}={value!r}: expected a fraction of the image area in (0, 1]; "
            "use 1.0 to disable random cropping"
        )
    return result


def check_sigmas(name: str, value: object) -> tuple[float, float]:
    """Return a Gaussian-blur ``(min_sigma, max_sigma)`` with ``0 < min <= max``."""
    return check_range(name, value, 0.0, math.inf, low_inclusive=False)


def check_rr_degrees(name: str, value: object) -> tuple[float, float] | None:
    """Return rotation degrees as a ``(min, max)`` range, or ``None`` for 90-degree steps.

    A single number ``d >= 0`` means the range ``[-d, d]``, as in torchvision's
    ``RandomRotation(degrees=d)``.
    """
    if value is None:
        return None
    if isinstance(value, Sequence) and not isinstance(value, str):
        return check_range(name, value, -math.inf, math.inf)
    degrees = check_real(name, value)
    if degrees < 0:
        raise ConfigError(
            f"{name}={value!r}: a single number means the range [-d, d] and must be >= 0; "
            "pass a (min, max) pair for an asymmetric range"
        )
    return (-degrees, degrees)


def check_normalize(name: str, value: object) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Return ``(mean, std)`` from a ``{"mean": [...], "std": [...]}`` mapping.

    ``None``, ``False`` and an empty mapping switch normalisation off (as ``if normalize:`` does
    in lightly); anything else must have both keys with equally long lists and every std > 0.
    """
    if value is None or value is False:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{name}={value!r}: expected a mapping with 'mean' and 'std' lists, or None/False "
            "to disable normalisation"
        )
    if len(value) == 0:
        return None
    unknown = sorted(set(map(str, value)) - {"mean", "std"})
    missing = sorted({"mean", "std"} - set(map(str, value)))
    if unknown or missing:
        raise ConfigError(
            f"{name}: expected exactly the keys 'mean' and 'std'; "
            f"missing {missing or 'nothing'}, unknown {unknown or 'nothing'}"
        )
    mean, std = value["mean"], value["std"]
    for key, seq in (("mean", mean), ("std", std)):
        if not isinstance(seq, Sequence) or isinstance(seq, str) or len(seq) == 0:
            raise ConfigError(f"{name}[{key!r}]={seq!r}: expected a non-empty list of numbers")
    if len(mean) != len(std):
        raise ConfigError(
            f"{name}: 'mean' has {len(mean)} values but 'std' has {len(std)}; "
            "give one value per channel in both"
        )
    mean_t = tuple(check_real(f"{name}['mean'][{i}]", m) for i, m in enumerate(mean))
    std_t = tuple(check_real(f"{name}['std'][{i}]", s) for i, s in enumerate(std))
    for i, s in enumerate(std_t):
        if s <= 0:
            raise ConfigError(f"{name}['std'][{i}]={s!r}: expected a standard deviation > 0")
    return mean_t, std_t
