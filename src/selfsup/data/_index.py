"""The one bounds check of a dataset index, shared by the map-style datasets of this package."""

from __future__ import annotations

import operator
from typing import SupportsIndex


def check_index(index: SupportsIndex, n: int) -> int:
    """``index`` as a position in ``range(n)``: negative indices count from the end (as a list's).

    Raises:
        IndexError: ``index`` is outside ``[-n, n)``, naming it and ``n``.
    """
    i = operator.index(index)
    if i < 0:
        i += n
    if not 0 <= i < n:
        raise IndexError(f"index {operator.index(index)} out of range for {n} samples")
    return i
