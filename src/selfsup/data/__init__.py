"""Datasets and collate functions: folders of images and videos as ``(sample, target, filename)``.

:class:`LightlyDataset` reads images and video frames (decoded on demand) from a folder or
wraps a torch dataset; :class:`ManifestDataset` reads the samples a curation check recorded,
without listing or probing the folder again; the collate functions turn lists of their items
into batches of augmented views.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names load on first access: the torch-free submodules (files, _video) are used by the
# checks and the web app, which must not pay for (or, on the server, load) torch.
_EXPORTS: dict[str, str] = {
    "BaseCollateFunction": "selfsup.data.collate",
    "DINOCollateFunction": "selfsup.data.collate",
    "IJEPAMaskCollator": "selfsup.data.collate",
    "ImageCollateFunction": "selfsup.data.collate",
    "LightlyDataset": "selfsup.data.dataset",
    "ManifestDataset": "selfsup.data.manifest_dataset",
    "LightlySubset": "selfsup.data.lightly_subset",
    "MoCoCollateFunction": "selfsup.data.collate",
    "MultiCropCollateFunction": "selfsup.data.collate",
    "MultiViewCollate": "selfsup.data.collate",
    "SimCLRCollateFunction": "selfsup.data.collate",
    "SkippedFilesWarning": "selfsup.data.dataset",
}

__all__ = [
    "BaseCollateFunction",
    "DINOCollateFunction",
    "IJEPAMaskCollator",
    "ImageCollateFunction",
    "LightlyDataset",
    "LightlySubset",
    "ManifestDataset",
    "MoCoCollateFunction",
    "MultiCropCollateFunction",
    "MultiViewCollate",
    "SimCLRCollateFunction",
    "SkippedFilesWarning",
]

if TYPE_CHECKING:
    from selfsup.data.collate import (
        BaseCollateFunction,
        DINOCollateFunction,
        IJEPAMaskCollator,
        ImageCollateFunction,
        MoCoCollateFunction,
        MultiCropCollateFunction,
        MultiViewCollate,
        SimCLRCollateFunction,
    )
    from selfsup.data.dataset import LightlyDataset, SkippedFilesWarning
    from selfsup.data.lightly_subset import LightlySubset
    from selfsup.data.manifest_dataset import ManifestDataset


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'selfsup.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
