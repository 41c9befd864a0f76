"""Exception types shared across selfsup.

Every error raised for bad user input names the file, key or value at fault and what
would be accepted, so that a user can fix it without reading our source.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SelfsupError(Exception):
    """Base class of all errors selfsup raises on purpose."""


class ConfigError(SelfsupError, ValueError):
    """A configuration key or value is unknown, mistyped or out of range."""


class DataError(SelfsupError, ValueError):
    """Input data (a folder, file, CSV, ...) cannot be used as given."""


def closest(word: str, options: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The option most like ``word`` (:func:`difflib.get_close_matches` with ``cutoff``), trying
    case-insensitively when nothing matches as written (``diversity`` -> ``DIVERSITY``); None
    when nothing is close enough. The one fuzzy match behind every did-you-mean of selfsup."""
    choices = list(options)
    exact = difflib.get_close_matches(word, choices, n=1, cutoff=cutoff)
    if exact:
        return exact[0]
    lowered = {option.lower(): option for option in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=cutoff)
    return lowered[close[0]] if close else None


def did_you_mean(word: str, options: Iterable[str], *, cutoff: float = 0.5) -> str:
    """``"; did you mean 'X'?"`` for the option closest to ``word`` (see :func:`closest`),
    else ``""``: appended to an error message naming ``word``."""
    match = closest(word, options, cutoff=cutoff)
    return f"; did you mean {match!r}?" if match is not None else ""
