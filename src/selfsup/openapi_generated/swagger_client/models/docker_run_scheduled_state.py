"""Life cycle of a scheduled run (a job waiting for, or held by, a worker)."""

from __future__ import annotations

from enum import StrEnum


class DockerRunScheduledState(StrEnum):
    """``OPEN`` waits for a worker; ``LOCKED`` is held by one; ``DONE`` has finished (its run
    ended COMPLETED, FAILED or ABORTED, or crashed too often); ``CANCELED`` was withdrawn."""

    OPEN = "OPEN"
    LOCKED = "LOCKED"
    DONE = "DONE"
    CANCELED = "CANCELED"
