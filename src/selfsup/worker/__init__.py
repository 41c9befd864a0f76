"""``selfsup worker``: claims scheduled runs from a selfsup server and executes them with the
same pipeline as ``selfsup run`` (:func:`selfsup.curation.pipeline.run`).

See :class:`~selfsup.worker.loop.Worker` for the loop and docs/server.md for the protocol.
"""

from selfsup.worker.config import WorkerSettings
from selfsup.worker.loop import Worker

__all__ = ["Worker", "WorkerSettings"]
