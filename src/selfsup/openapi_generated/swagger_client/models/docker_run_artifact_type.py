"""Kinds of files a run uploads."""

from __future__ import annotations

from enum import StrEnum


class DockerRunArtifactType(StrEnum):
    """What an artifact of a run is; the client's ``download_compute_worker_run_*`` methods
    fetch the artifact of one type."""

    LOG = "LOG"
    MEMLOG = "MEMLOG"
    CHECKPOINT = "CHECKPOINT"
    REPORT_PDF = "REPORT_PDF"
    REPORT_JSON = "REPORT_JSON"
    CORRUPTNESS_CHECK_INFORMATION = "CORRUPTNESS_CHECK_INFORMATION"
    SEQUENCE_INFORMATION = "SEQUENCE_INFORMATION"
    SELECTED_FILENAMES = "SELECTED_FILENAMES"
    EMBEDDINGS = "EMBEDDINGS"
    CONFIG = "CONFIG"
    OTHER = "OTHER"
