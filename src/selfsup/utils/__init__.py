"""Utilities: embeddings CSV I/O, kNN benchmarking, debugging plots, atomic writes, the LARS
optimiser and the warm-up + cosine learning-rate schedule.

Submodules load on first use, so ``import selfsup.utils`` stays cheap (no torch,
matplotlib or Lightning import) while the lightly spellings keep working::

    from selfsup.utils import save_embeddings, load_embeddings
    import selfsup; selfsup.utils.debug.std_of_l2_normalized(z)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selfsup.utils.benchmarking import BenchmarkModule, knn_accuracy, knn_predict
    from selfsup.utils.debug import plot_augmented_images, std_of_l2_normalized
    from selfsup.utils.io import (
        check_embeddings,
        check_filenames,
        load_embeddings,
        load_embeddings_as_dict,
        save_embeddings,
    )
    from selfsup.utils.lars import LARS
    from selfsup.utils.scheduler import CosineWarmupScheduler

#: Public name -> submodule defining it.
_EXPORTS = {
    "BenchmarkModule": "benchmarking",
    "knn_accuracy": "benchmarking",
    "knn_predict": "benchmarking",
    "plot_augmented_images": "debug",
    "std_of_l2_normalized": "debug",
    "check_embeddings": "io",
    "check_filenames": "io",
    "load_embeddings": "io",
    "load_embeddings_as_dict": "io",
    "save_embeddings": "io",
    "LARS": "lars",
    "CosineWarmupScheduler": "scheduler",
}
_SUBMODULES = {"atomic", "benchmarking", "debug", "dist", "io", "lars", "scheduler"}

__all__ = [
    "LARS",
    "BenchmarkModule",
    "CosineWarmupScheduler",
    "check_embeddings",
    "check_filenames",
    "knn_accuracy",
    "knn_predict",
    "load_embeddings",
    "load_embeddings_as_dict",
    "plot_augmented_images",
    "save_embeddings",
    "std_of_l2_normalized",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"selfsup.utils.{name}")
    if name in _EXPORTS:
        module = importlib.import_module(f"selfsup.utils.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'selfsup.utils' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)
