"""Exception types shared across selfsup.

Every error raised for bad user input names the file, key or value at fault and what
would be accepted, so that a user can fix it without reading our source.
"""

from __future__ import annotations


class SelfsupError(Exception):
    """Base class of all errors selfsup raises on purpose."""


class ConfigError(SelfsupError, ValueError):
    """A configuration key or value is unknown, mistyped or out of range."""


class DataError(SelfsupError, ValueError):
    """Input data (a folder, file, CSV, ...) cannot be used as given."""
