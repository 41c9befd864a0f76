"""How many worker processes ``num_workers=-1`` means: one per CPU core this process may use.

The one resolver behind the data loaders of ``selfsup train``/``embed`` and the parallel
check and embedding steps of ``selfsup run``.
"""

from __future__ import annotations

import os


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, which a container or ``taskset``
    narrows; :func:`os.cpu_count` where there is no mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_num_workers(num_workers: int) -> int:
    """``num_workers`` itself when 0 or more; -1 (or any negative value) means one per
    available CPU core (:func:`available_cpus`)."""
    return num_workers if num_workers >= 0 else available_cpus()
