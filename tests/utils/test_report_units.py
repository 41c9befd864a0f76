"""One format per figure of a run, shared by its log, report.pdf and the web app."""

from __future__ import annotations

import math

import pytest

from selfsup.utils.report_units import epoch_ms, format_duration, format_mass


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0.0 s"),
        (4.24, "4.2 s"),
        (59.94, "59.9 s"),
        (59.96, "1 min 00 s"),
        (271.0, "4 min 31 s"),
        (3725.4, "1 h 02 min 05 s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("kg", "text"),
    [
        (0.0, "0 g CO2e"),
        (3e-6, "3.00 mg CO2e"),
        (0.0005, "500 mg CO2e"),
        (0.0123, "12.3 g CO2e"),
        (2.5, "2.50 kg CO2e"),
        (12_345.0, "12.3 t CO2e"),
    ],
)
def test_format_mass_keeps_three_significant_digits(kg: float, text: str) -> None:
    assert format_mass(kg) == text


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_bad_figures_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        format_duration(bad)
    with pytest.raises(ValueError, match="finite"):
        format_mass(bad)


def test_epoch_ms_reads_report_times() -> None:
    assert epoch_ms("1970-01-01T00:00:01+0000") == 1000
    assert epoch_ms("1970-01-01T01:00:01+0100") == 1000
    assert epoch_ms("1970-01-01T00:00:01") is None  # no zone: no instant
    assert epoch_ms("yesterday") is None
    assert epoch_ms(None) is None
