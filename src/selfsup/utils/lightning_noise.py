"""Lightning's messages that say nothing about a training run, silenced at their source.

Every training run through :class:`~selfsup.embedding._base.BaseEmbedding` (``selfsup train``,
``train_embedding_model``, a curation run, a library user's ``train_embedding``) printed
these, whatever the data or config:

- ``The number of training batches (n) is smaller than the logging interval``: a small input
  is not a problem, and the loss is still logged once per epoch.
- ``isinstance(treespec, LeafSpec) is deprecated``: an internal incompatibility between
  Lightning and torch versions that no user can act on.
- "💡 Tip: For seamless cloud logging ... litlogger": an advertisement, logged at INFO by
  every ``Trainer`` built without Lightning's cloud logger.
- ``Precision bf16-mixed is not supported by the model summary``: the summary's estimate of
  the model's size in MB assumes 32 bits instead; printed by every bf16-mixed run, which
  ``trainer.precision=auto`` is wherever the hardware has bf16.

Every other warning and log line (the model summary, a real problem) passes through.

In ``utils``, below both of its users (``embedding`` and ``curation``), and importing neither
torch nor Lightning: ``selfsup.curation.pipeline`` must stay importable without them.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

__all__ = ["LIGHTNING_NOISE_WARNINGS", "lightning_noise_filtered"]

#: Regular expressions (``warnings.filterwarnings`` ``message``: matched at the start) of the
#: warnings :func:`lightning_noise_filtered` drops.
LIGHTNING_NOISE_WARNINGS: Final = (
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    r"Precision bf16-mixed is not supported by the model summary",
)
#: Start of the log message of Lightning's advertisement.
_TIP: Final = "💡 Tip"


class _DropTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_TIP)


def _rank_zero_loggers() -> list[logging.Logger]:
    """The loggers Lightning's ``rank_zero_info`` writes to: the one the shared rank-zero
    module holds now (the last Lightning package imported sets it) and both packages' own."""
    found = [
        logging.getLogger("pytorch_lightning.utilities.rank_zero"),
        logging.getLogger("lightning_fabric.utilities.rank_zero"),
    ]
    try:
        import lightning_utilities.core.rank_zero as rank_zero_module
    except ImportError:  # without lightning_utilities: the two above are all there is
        return found
    current = getattr(rank_zero_module, "log", None)
    if isinstance(current, logging.Logger) and current not in found:
        found.append(current)
    return found


@contextmanager
def lightning_noise_filtered() -> Iterator[None]:
    """Drop the module docstring's messages while the block runs (warnings filters restored
    afterwards, as ``warnings.catch_warnings`` does; the log filter removed)."""
    tip = _DropTip()
    loggers = _rank_zero_loggers()
    for lg in loggers:
        lg.addFilter(tip)
    try:
        with warnings.catch_warnings():
            for pattern in LIGHTNING_NOISE_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for lg in loggers:
            lg.removeFilter(tip)
