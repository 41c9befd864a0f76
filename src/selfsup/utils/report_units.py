"""How a run's figures are written for people: durations, CO2e masses, and its times.

One formatter per quantity, used by every place that shows it (the run's log, ``report.pdf``
and the web app), so that a figure reads the same everywhere (issue 12: the PDF said "0.5 g"
where the app said "0.000 kg"). Pure Python: the web app imports it without numpy or torch.
"""

from __future__ import annotations

import math
from datetime import datetime

__all__ = ["epoch_ms", "format_duration", "format_mass"]


def epoch_ms(value: object) -> int | None:
    """A time of report.json (ISO 8601 with its zone, ``2024-05-01T12:00:00+0200``) as epoch
    milliseconds, the web app's timestamps; ``None`` for anything else (no time, a damaged
    report, a time without a zone, which names no instant)."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return int(when.timestamp() * 1000)


def format_duration(seconds: float) -> str:
    """``"4.2 s"`` below a minute, ``"4 min 31 s"`` below an hour, ``"1 h 02 min 05 s"``.

    Raises:
        ValueError: ``seconds`` is negative or not finite.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be a finite number of seconds >= 0, got {seconds}")
    if seconds < 59.95:  # what rounds to 60.0 s is written as 1 min 00 s
        return f"{seconds:.1f} s"
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    return f"{minutes} min {secs:02d} s"


#: Units of :func:`format_mass`, largest first: (name, kilograms).
_MASS_UNITS = (("t", 1000.0), ("kg", 1.0), ("g", 1e-3), ("mg", 1e-6))


def format_mass(kg: float) -> str:
    """A CO2e mass in the largest unit (t, kg, g, mg) in which it is at least 1, with three
    significant digits: ``"1.23 t CO2e"``, ``"0.5 g"`` -> ``"500 mg CO2e"``; ``"0 g CO2e"``.

    Raises:
        ValueError: ``kg`` is negative or not finite.
    """
    if not math.isfinite(kg) or kg < 0:
        raise ValueError(f"a mass must be a finite number of kilograms >= 0, got {kg}")
    if kg == 0:
        return "0 g CO2e"
    for unit, size in _MASS_UNITS:
        if kg >= size or unit == "mg":
            value = kg / size
            # 3 significant digits, never scientific notation, thousands separated.
            digits = max(0, 2 - math.floor(math.log10(value))) if value > 0 else 0
            return f"{value:,.{digits}f} {unit} CO2e"
    raise AssertionError("unreachable: mg takes every mass left")
