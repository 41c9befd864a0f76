"""Priority of a scheduled run: workers claim the highest priority first, then the oldest."""

from __future__ import annotations

from enum import StrEnum


class DockerRunScheduledPriority(StrEnum):
    """Scheduling priority; ``MID`` is the default of ``schedule_compute_worker_run``."""

    LOW = "LOW"
    MID = "MID"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


PRIORITY_RANK: dict[DockerRunScheduledPriority, int] = {
    DockerRunScheduledPriority.LOW: 0,
    DockerRunScheduledPriority.MID: 1,
    DockerRunScheduledPriority.HIGH: 2,
    DockerRunScheduledPriority.CRITICAL: 3,
}
