"""What a curation run prints: its progress lines, and no noise from the libraries it uses.

A user watching ``selfsup run`` should see each step start and end with its time, and every
real problem (a corrupt file, a collapsed model) without it being buried under messages that
say nothing about their run. Training through PyTorch Lightning prints such messages on every
run; :func:`quiet_training` silences exactly those, at their source:

- Lightning's INFO lines (``GPU available: False, used: False``, ``TPU available``, the
  "💡 Tip" advertising a cloud logger, the model summary table, ``Trainer.fit stopped``):
  the ``pytorch_lightning`` / ``lightning.pytorch`` loggers are raised to WARNING while
  training (Lightning's own warnings still show).
- ``trainer.gpus=N`` falling back to the CPU when the GPU count is the default and no CUDA
  GPU exists: a CPU machine running the default config asked for nothing (an explicit
  ``lightly.trainer.gpus`` keeps the warning; the pipeline passes ``explicit_gpus``).
- ``Checkpoint directory ... exists and is not empty`` when the run itself emptied the folder
  before training: the only file in it is then Lightning's own CSV log, written there first.
- ``The number of training batches (n) is smaller than the logging interval``: a small input
  is not a problem, and the loss is still logged once per epoch.
- ``isinstance(treespec, LeafSpec) is deprecated``: an internal incompatibility between
  Lightning and torch versions that no user can act on.

Every other warning, and every error, passes through unchanged.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from selfsup.utils.lightning_noise import LIGHTNING_NOISE_WARNINGS

__all__ = ["NOISE_PATTERNS", "quiet_training", "say"]

logger = logging.getLogger("selfsup.curation.pipeline")

#: Lightning's loggers (the package has shipped under both names).
_LIGHTNING_LOGGERS: Final = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric")

#: Regular expressions (``warnings.filterwarnings`` ``message``: matched at the start) of the
#: warnings :func:`quiet_training` drops, always: those every training drops
#: (:mod:`selfsup.utils.lightning_noise`; here also around ``train_embedding``).
_ALWAYS: Final = LIGHTNING_NOISE_WARNINGS
#: ... only when the run did not set ``trainer.gpus`` itself.
_DEFAULT_GPUS: Final = r"(trainer\.)?gpus=\d+ (was requested )?but no CUDA GPU is available"
#: ... only when the run emptied the checkpoint folder before training.
_FRESH_DIR: Final = r"Checkpoint directory .* exists and is not empty"

#: Fragments of every line :func:`quiet_training` keeps out of a run's output (for tests).
NOISE_PATTERNS: Final = (
    "GPU available:",
    "TPU available:",
    "💡 Tip",
    "litlogger",
    "exists and is not empty",
    "but no CUDA GPU is available",
    "smaller than the logging interval",
    "LeafSpec",
    "Total estimated model params size",
)


def say(progress: bool, message: str) -> None:
    """One progress line of a run: on stderr where a user watches (``progress``, as
    ``selfsup run`` does), else in the ``selfsup`` log (the worker's run log)."""
    if progress:
        print(f"selfsup run: {message}", file=sys.stderr, flush=True)
    else:
        logger.info("%s", message)


@contextmanager
def quiet_training(*, explicit_gpus: bool, fresh_dir: bool) -> Iterator[None]:
    """Silence Lightning's messages that say nothing about this run (module docstring).

    Args:
        explicit_gpus: The user set ``trainer.gpus``: its CPU fallback warning is kept.
        fresh_dir: The checkpoint folder was empty (or absent) before training: Lightning's
            "exists and is not empty" warning can only be about its own log, and is dropped.
    """
    levels = {}
    for name in _LIGHTNING_LOGGERS:
        lg = logging.getLogger(name)
        levels[name] = lg.level
        if lg.getEffectiveLevel() < logging.WARNING:
            lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in _ALWAYS:
                warnings.filterwarnings("ignore", message=pattern)
            if not explicit_gpus:
                warnings.filterwarnings("ignore", message=_DEFAULT_GPUS)
            if fresh_dir:
                warnings.filterwarnings("ignore", message=_FRESH_DIR)
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
