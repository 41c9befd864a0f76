"""The local model zoo: named pretrained weights under the selfsup home, nothing downloaded.

Layout: ``$SELFSUP_HOME/zoo/<name>/`` holds the weights file (copied, or hard-linked with
``link=True``; a model folder's ``config.json`` is copied along) and ``meta.json``::

    {"name": "dinov2-s", "model": "timm/vit_small_patch14_reg4_dinov2", "format": "model_folder",
     "file": "model.safetensors", "sha256": "...", "source": "/data/weights/dinov2-s",
     "added": "2026-12-06T15:00:00+00:00", "input_size": 518,
     "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}

``model.weights=zoo:<name>`` uses an entry (:func:`resolve_entry`), in ``selfsup train``,
``embed``, ``run``, the Python API and the worker, which runs on the same home. Each use
checks the file's sha256 against ``meta.json``: a changed file is a corrupt entry, never
silently used. An entry appears whole or not at all: it is assembled in a hidden folder and
renamed into place, and ``meta.json`` is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from selfsup.errors import ConfigError, DataError, did_you_mean
from selfsup.home import selfsup_home
from selfsup.models.weights import (
    WeightsFile,
    load_backbone_weights,
    open_weights,
)
from selfsup.utils.atomic import atomic_write_text

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ZooEntry",
    "add_entry",
    "list_entries",
    "remove_entry",
    "resolve_entry",
    "sha256_file",
    "zoo_root",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
META = "meta.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def zoo_root() -> Path:
    """``$SELFSUP_HOME/zoo`` (read at each call, so tests and the worker can move it)."""
    return selfsup_home() / "zoo"


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"zoo entry name {name!r} is not valid: use 1 to 128 letters, digits, '-', '_' or "
            "'.', starting with a letter or digit (e.g. 'dinov2-small')"
        )
    return name


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ZooEntry:
    """One zoo entry, as its ``meta.json`` records it.

    Attributes:
        name: The entry's name (its folder's name).
        model: The backbone name the weights belong to (``model.name``).
        format: Format of the weights (see :class:`selfsup.models.weights.WeightsFile`).
        file: The weights file's name inside the entry folder.
        sha256: Hex sha256 of that file when it was added.
        source: Where the weights were added from.
        added: ISO 8601 UTC time of adding.
        input_size: Image side the weights were trained at, if known.
        mean: Per-channel normalisation mean of the weights' training.
        std: Per-channel normalisation std.
        width: Width multiplier of the backbone (``model.width``; lightly ResNets only).
    """

    name: str
    model: str
    format: str
    file: str
    sha256: str
    source: str
    added: str
    input_size: int | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    width: float = 1.0

    @property
    def folder(self) -> Path:
        """The entry's folder under :func:`zoo_root`."""
        return zoo_root() / self.name

    @property
    def path(self) -> Path:
        """The weights file."""
        return self.folder / self.file

    def verify(self) -> None:
        """Raise a DataError when the weights file is gone or its sha256 changed."""
        if not self.path.is_file():
            raise DataError(
                f"zoo entry {self.name!r} is corrupt: its weights file {str(self.path)!r} is "
                f"missing; remove it with `selfsup zoo remove {self.name}` and add it again"
            )
        actual = sha256_file(self.path)
        if actual != self.sha256:
            raise DataError(
                f"zoo entry {self.name!r} is corrupt: {str(self.path)!r} has sha256 {actual}, "
                f"its meta.json records {self.sha256}; remove it with "
                f"`selfsup zoo remove {self.name}` and add it again"
            )

    def open(self) -> WeightsFile:
        """Check the sha256, then read the weights (the folder itself for a model folder)."""
        self.verify()
        return open_weights(self.folder if self.format == "model_folder" else self.path)

    def to_json(self) -> dict[str, Any]:
        """The ``meta.json`` object."""
        out = asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out


def _entry_from_meta(folder: Path) -> ZooEntry:
    meta_path = folder / META
    try:
        data = json.loads(meta_path.read_text(encoding="utf-8"))
        return ZooEntry(
            name=str(data["name"]),
            model=str(data["model"]),
            format=str(data["format"]),
            file=str(data["file"]),
            sha256=str(data["sha256"]),
            source=str(data.get("source", "")),
            added=str(data.get("added", "")),
            input_size=int(data["input_size"]) if data.get("input_size") else None,
            mean=_triple(data.get("mean", IMAGENET_MEAN), "mean"),
            std=_triple(data.get("std", IMAGENET_STD), "std"),
            width=float(data.get("width", 1.0)),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"zoo entry {folder.name!r} is corrupt: {str(meta_path)!r} is unreadable ({exc}); "
            f"remove it with `selfsup zoo remove {folder.name}` and add it again"
        ) from exc


def _triple(values: Any, what: str) -> tuple[float, float, float]:
    items = [float(v) for v in values]
    if len(items) != 3:
        raise ConfigError(f"{what} must have 3 values (one per RGB channel), got {values!r}")
    return items[0], items[1], items[2]


def _entry_folders() -> list[Path]:
    """The entries' folders, by name (hidden folders being assembled or removed skipped)."""
    root = zoo_root()
    if not root.is_dir():
        return []
    return [
        folder
        for folder in sorted(root.iterdir())
        if not folder.name.startswith(".") and (folder / META).is_file()
    ]


def list_entries() -> list[ZooEntry]:
    """Every entry of the zoo, by name (folders being assembled or removed are skipped)."""
    return [_entry_from_meta(folder) for folder in _entry_folders()]


def resolve_entry(name: str) -> ZooEntry:
    """The entry ``name``; an unknown name is a ConfigError listing the entries."""
    folder = zoo_root() / _check_name(name)
    if not (folder / META).is_file():
        names = [f.name for f in _entry_folders()]
        listed = ", ".join(names) if names else "none (add one with `selfsup zoo add`)"
        raise ConfigError(
            f"no zoo entry {name!r} in {str(zoo_root())!r}{did_you_mean(name, names)}; "
            f"entries: {listed}"
        )
    return _entry_from_meta(folder)


def _model_of(weights: WeightsFile) -> tuple[str | None, float]:
    """The backbone name (and width) the weights say they belong to, if they say."""
    if weights.architecture is not None:
        return "timm/" + weights.architecture.split(".")[0], 1.0
    name = weights.model_config.get("name")  # a selfsup checkpoint's; {} for other formats
    return (str(name) if name else None), float(weights.model_config.get("width", 1.0))


def _pretrained_cfg(weights: WeightsFile) -> dict[str, Any]:
    cfg = weights.config.get("pretrained_cfg", {})
    return cfg if isinstance(cfg, dict) else {}


def add_entry(
    name: str,
    source: str | os.PathLike[str],
    *,
    model: str | None = None,
    input_size: int | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    link: bool = False,
    replace: bool = False,
) -> ZooEntry:
    """Add local weights to the zoo under ``name`` and return the entry.

    The weights are read, matched to ``model`` (from the model folder's config or the
    selfsup checkpoint when not given) with the strict key rule of
    :func:`selfsup.models.weights.load_backbone_weights`, then copied (``link=True``:
    hard-linked where the file system allows, else copied) with their metadata.
    ``input_size``, ``mean`` and ``std`` default to a model folder's ``pretrained_cfg``,
    else unknown and ImageNet's.

    Raises:
        ConfigError: an invalid or existing name (without ``replace``), no model name known,
            or weights that do not fit the model.
        DataError: unreadable weights.
    """
    from selfsup.models.backbones import get_backbone

    _check_name(name)
    src = Path(source).expanduser().resolve()
    weights = open_weights(src)
    found, width = _model_of(weights)
    if model is not None and model != found:
        width = 1.0  # a width read from the file belongs to the file's own model name
    model = model or found
    if not model:
        raise ConfigError(
            f"which backbone do the weights {str(src)!r} belong to? Pass the model name "
            "(--model torchvision/resnet50, timm/<name>, resnet-18, ...)"
        )
    load_backbone_weights(get_backbone(model, width=width), weights, strict=True)
    pretrained = _pretrained_cfg(weights)
    if input_size is None and isinstance(pretrained.get("input_size"), list):
        input_size = int(pretrained["input_size"][-1])
    mean = mean or _triple(pretrained.get("mean", IMAGENET_MEAN), "mean")
    std = std or _triple(pretrained.get("std", IMAGENET_STD), "std")
    root = zoo_root()
    final = root / name
    if (final / META).is_file() and not replace:
        raise ConfigError(
            f"zoo entry {name!r} already exists; remove it first (`selfsup zoo remove {name}`) "
            "or add with replace"
        )
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{name}.adding-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        _place(weights.path, staging / weights.path.name, link)
        if weights.format == "model_folder" and (weights.path.parent / "config.json").is_file():
            shutil.copyfile(weights.path.parent / "config.json", staging / "config.json")
        entry = ZooEntry(
            name=name,
            model=model,
            format=weights.format,
            file=weights.path.name,
            sha256=sha256_file(staging / weights.path.name),
            source=str(src),
            added=datetime.now(UTC).isoformat(timespec="seconds"),
            input_size=input_size,
            mean=mean,
            std=std,
            width=width,
        )
        atomic_write_text(staging / META, json.dumps(entry.to_json(), indent=2) + "\n")
        if final.exists():
            remove_entry(name)
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return entry


def _place(src: Path, dst: Path, link: bool) -> None:
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another file system or no hard links there: a copy is what remains
    shutil.copyfile(src, dst)


def remove_entry(name: str) -> ZooEntry:
    """Delete the entry ``name`` (its folder); returns what it was.

    The folder is renamed away first, so a concurrent reader sees the whole entry or none.
    """
    entry = resolve_entry(name)
    doomed = zoo_root() / f".{name}.removing-{os.getpid()}"
    os.replace(entry.folder, doomed)
    shutil.rmtree(doomed)
    return entry
