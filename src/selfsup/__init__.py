"""selfsup: self-supervised learning and data curation for unlabeled images and videos.

Subpackages are imported lazily on first attribute access so that ``import selfsup``
(and therefore ``selfsup --help``) stays fast and does not pull torch before it is needed,
while ``import selfsup; selfsup.data.LightlyDataset`` keeps working as the seeds show.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_SUBMODULES = {
    "api",
    "cli",
    "config",
    "core",
    "curation",
    "data",
    "embedding",
    "loss",
    "models",
    "selection",
    "transforms",
    "utils",
}
_CORE_FUNCTIONS = {"train_embedding_model", "embed_images", "train_model_and_embed_images"}

if TYPE_CHECKING:
    from selfsup.core import embed_images, train_embedding_model, train_model_and_embed_images

__all__ = [
    "__version__",
    "embed_images",
    "train_embedding_model",
    "train_model_and_embed_images",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"selfsup.{name}")
    if name in _CORE_FUNCTIONS:
        core = importlib.import_module("selfsup.core")
        return getattr(core, name)
    raise AttributeError(f"module 'selfsup' has no attribute {name!r}")
