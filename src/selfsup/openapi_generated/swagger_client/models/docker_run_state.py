"""States a run passes through, in the documented order, and its end states."""

from __future__ import annotations

from enum import StrEnum


class DockerRunState(StrEnum):
    """The state of one attempt at a scheduled run.

    A worker reports the steps in this order (skipping those its config does not need);
    ``COMPLETED``, ``FAILED``, ``CRASHED`` and ``ABORTED`` are final. ``CRASHED`` is also set by
    the server when the worker's lease runs out.
    """

    STARTED = "STARTED"
    INITIALIZING = "INITIALIZING"
    LOADING_DATASET = "LOADING_DATASET"
    LOADING_METADATA = "LOADING_METADATA"
    CHECKING_CORRUPTNESS = "CHECKING_CORRUPTNESS"
    INITIALIZING_OBJECT_CROPS = "INITIALIZING_OBJECT_CROPS"
    COMPUTING_METADATA = "COMPUTING_METADATA"
    TRAINING = "TRAINING"
    EMBEDDING = "EMBEDDING"
    EMBEDDING_OBJECT_CROPS = "EMBEDDING_OBJECT_CROPS"
    PRETAGGING = "PRETAGGING"
    COMPUTING_ACTIVE_LEARNING_SCORES = "COMPUTING_ACTIVE_LEARNING_SCORES"
    SAMPLING = "SAMPLING"
    EMBEDDING_FULL_IMAGES = "EMBEDDING_FULL_IMAGES"
    SAVING_RESULTS = "SAVING_RESULTS"
    UPLOADING_DATASET = "UPLOADING_DATASET"
    GENERATING_REPORT = "GENERATING_REPORT"
    UPLOADING_REPORT = "UPLOADING_REPORT"
    UPLOADED_REPORT = "UPLOADED_REPORT"
    UPLOADING_ARTIFACTS = "UPLOADING_ARTIFACTS"
    UPLOADED_ARTIFACTS = "UPLOADED_ARTIFACTS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CRASHED = "CRASHED"
    ABORTED = "ABORTED"


END_STATES: frozenset[DockerRunState] = frozenset(
    {
        DockerRunState.COMPLETED,
        DockerRunState.FAILED,
        DockerRunState.CRASHED,
        DockerRunState.ABORTED,
    }
)

# Position of every non-final state in the documented sequence; a run only moves forward.
STATE_ORDER: dict[DockerRunState, int] = {
    state: i for i, state in enumerate(s for s in DockerRunState if s not in END_STATES)
}
