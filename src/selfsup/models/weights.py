"""Local pretrained weights for any backbone: one module owns the weight-file formats.

Nothing is ever downloaded; a user brings a file or folder they have on disk, in one of:

- a PyTorch state dict (``.pt``, ``.pth``, ``.bin``, ``.ckpt``; read with
  ``torch.load(weights_only=True)``, so a file from elsewhere cannot run code), also wrapped
  as ``{"state_dict": ...}`` or ``{"model": ...}`` (Lightning and most training scripts);
- a safetensors file;
- a timm / Hugging Face style model folder: ``config.json`` plus ``model.safetensors`` or
  ``pytorch_model.bin``; the config's ``architecture`` is checked against the backbone;
- a selfsup checkpoint (``selfsup train`` writes one): only the backbone's feature extractor
  (``backbone.0.features.*``) is taken, the projection, heads and momentum copies are not
  part of a backbone;
- ``zoo:<name>``: an entry of the local model zoo (:mod:`selfsup.models.zoo`).

The format is recognised from the file's first bytes, not its suffix.

Key matching rule (:func:`match_keys`), applied to the file's keys and the keys of the
model the backbone wraps (``Backbone.features``: exactly the torchvision or timm model a
user saves with ``model.state_dict()``):

1. Leading ``module.``, ``model.``, ``backbone.``, ``encoder.`` and ``features.`` shared by
   *every* key are stripped one after another (DataParallel/DDP, Lightning and wrapper
   modules add them); of the candidates (nothing stripped, one stripped, ...) the one whose
   keys match the most of the model's keys is used (ties: the one stripped least).
2. A file key whose module is an ``nn.Identity`` in the backbone belongs to the classifier the
   backbone wrapper removed (``fc``, ``head``, ``classifier.1`` ...): it is expected, dropped,
   and reported at info level.
3. Every other difference is reported by name: keys of the model the file lacks
   (``missing``), keys of the file the model lacks (``unexpected``) and keys whose shapes
   differ (with both shapes). With ``strict=True`` (``model.weights_strict=true``, the
   default) any of them is an error; with ``strict=False`` the keys that match are loaded
   and the rest is logged as a warning.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError

__all__ = [
    "MODEL_FOLDER_WEIGHTS",
    "STRIPPED_PREFIXES",
    "LoadReport",
    "WeightsFile",
    "load_backbone_weights",
    "load_torch_file",
    "match_keys",
    "open_weights",
    "read_weights",
    "weights_file",
]

logger = logging.getLogger(__name__)

#: Prefixes stripped when every key of a file shares them (rule 1 of the module docstring).
STRIPPED_PREFIXES = ("module.", "model.", "backbone.", "encoder.", "features.")

#: Weight files of a model folder, in the order they are looked for.
MODEL_FOLDER_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "pytorch_model.pt")

#: Where a selfsup method model keeps its backbone's feature extractor: ``backbone`` is
#: ``nn.Sequential(Backbone, Linear)`` (core.build_model) and a Backbone holds ``features``.
SELFSUP_BACKBONE_PREFIX = "backbone.0.features."

#: Shown in errors: how to accept a partial load.
_PARTIAL_HINT = (
    "set model.weights_strict=false (strict=False in Python) to load the matching keys "
    "anyway, or choose the model.name the weights were saved from"
)
_SHOWN = 5


@dataclass
class WeightsFile:
    """A weights source read from disk.

    Attributes:
        path: The file the tensors came from (inside the folder for a model folder).
        format: ``state_dict``, ``safetensors``, ``model_folder`` or ``selfsup_checkpoint``.
        state: Tensor name -> tensor; for a selfsup checkpoint only the backbone's keys.
        ignored: Keys of a selfsup checkpoint that are not the backbone's (heads, ...).
        config: A model folder's ``config.json`` (``{}`` otherwise).
        model_config: A selfsup checkpoint's ``model`` config as it trained (``name``,
            ``width``, ...; ``{}`` otherwise).
    """

    path: Path
    format: str
    state: dict[str, Tensor]
    ignored: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    model_config: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture(self) -> str | None:
        """The timm model name a model folder's config names, if any."""
        arch = self.config.get("architecture")
        return str(arch) if isinstance(arch, str) and arch else None


@dataclass
class LoadReport:
    """What :func:`load_backbone_weights` loaded and what did not fit.

    Attributes:
        source: The weights as given (path or ``zoo:<name>``).
        path: The file read.
        format: See :class:`WeightsFile`.
        prefix: The prefix stripped from the file's keys (``""`` for none).
        loaded: Model keys that received a tensor from the file.
        missing: Model keys the file has no tensor for.
        unexpected: File keys (after stripping) the model has no place for.
        mismatched: ``(key, shape in the file, shape in the model)`` for same-named keys.
        dropped_head: File keys of the classifier the backbone wrapper removed (expected).
        ignored: Keys of a selfsup checkpoint outside its backbone (expected).
    """

    source: str
    path: Path
    format: str
    prefix: str = ""
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    dropped_head: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every model key was loaded and every file key was used or expected."""
        return not (self.missing or self.unexpected or self.mismatched)

    def problems(self) -> str:
        """The mismatches in one line, first keys of each kind named; ``""`` if complete."""
        parts: list[str] = []
        if self.missing:
            parts.append(
                f"{len(self.missing)} missing (in the model, not the file): {_few(self.missing)}"
            )
        if self.unexpected:
            parts.append(
                f"{len(self.unexpected)} unexpected (in the file, not the model): "
                f"{_few(self.unexpected)}"
            )
        if self.mismatched:
            shown = ", ".join(
                f"{k!r} file {list(a)} vs model {list(b)}" for k, a, b in self.mismatched[:_SHOWN]
            )
            more = (
                f" (+{len(self.mismatched) - _SHOWN} more)" if len(self.mismatched) > _SHOWN else ""
            )
            parts.append(f"{len(self.mismatched)} with other shapes: {shown}{more}")
        return "; ".join(parts)


def _few(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_SHOWN])
    return shown + (f" (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else "")


# --- reading ---------------------------------------------------------------------------


def load_torch_file(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, errors naming the file.

    ``weights_only``: a file from elsewhere must never be able to run code when loaded.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"weights file {str(p)!r} does not exist")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure means the file is unusable as given
        raise DataError(
            f"{str(p)!r} could not be read as a PyTorch file (torch.load with "
            f"weights_only=True): {exc}"
        ) from exc


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte little-endian header size, then ``{``."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    size = int(struct.unpack("<Q", head[:8])[0])
    return 0 < size <= path.stat().st_size - 8


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path), device="cpu"))
    except Exception as exc:  # a truncated or foreign file: name it
        raise DataError(f"{str(path)!r} could not be read as safetensors: {exc}") from exc


def _unwrap(raw: Any, path: Path) -> dict[str, Tensor]:
    """The state dict inside ``raw``: ``{"state_dict": ...}`` / ``{"model": ...}`` unwrapped."""
    obj = raw
    for _ in range(3):  # e.g. {"model": {"state_dict": {...}}}; deeper nesting is not a format
        if not isinstance(obj, dict):
            break
        if all(isinstance(v, Tensor) for v in obj.values()):
            break
        inner = next(
            (obj[k] for k in ("state_dict", "model") if isinstance(obj.get(k), dict)), None
        )
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict):
        raise DataError(
            f"{str(path)!r} does not hold a state dict (got {type(obj).__name__}); save "
            "model.state_dict(), not the model object"
        )
    others = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if others:
        raise DataError(
            f"{str(path)!r} holds a dict whose entries {_few([str(k) for k in others])} are not "
            "tensors; accepted: a state dict (name -> tensor), optionally wrapped as "
            '{"state_dict": ...} or {"model": ...}'
        )
    return {str(k): v for k, v in obj.items()}


def _selfsup_backbone(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]] | None:
    """A selfsup method model's backbone keys, or None when ``state`` is not one."""
    plain = state
    if any(k.startswith("model." + SELFSUP_BACKBONE_PREFIX) for k in state):
        # A Lightning checkpoint keeps the method model under "model.".
        plain = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    if not any(k.startswith(SELFSUP_BACKBONE_PREFIX) for k in plain):
        return None
    n = len(SELFSUP_BACKBONE_PREFIX)
    backbone = {k[n:]: v for k, v in plain.items() if k.startswith(SELFSUP_BACKBONE_PREFIX)}
    ignored = sorted(k for k in plain if not k.startswith(SELFSUP_BACKBONE_PREFIX))
    return backbone, ignored


def _read_file(path: Path) -> WeightsFile:
    if _is_safetensors(path):
        return WeightsFile(path, "safetensors", _read_safetensors(path))
    raw = load_torch_file(path)
    state = _unwrap(raw, path)
    selfsup = _selfsup_backbone(state)
    if selfsup is None:
        return WeightsFile(path, "state_dict", state)
    # selfsup checkpoints keep their config under "selfsup"
    # (selfsup.embedding.CHECKPOINT_METADATA_KEY, a layer above this one).
    metadata = raw.get("selfsup") if isinstance(raw, dict) else None
    model = metadata.get("model") if isinstance(metadata, dict) else None
    return WeightsFile(
        path,
        "selfsup_checkpoint",
        selfsup[0],
        ignored=selfsup[1],
        model_config=model if isinstance(model, dict) else {},
    )


def _read_folder(folder: Path) -> WeightsFile:
    config: dict[str, Any] = {}
    config_path = folder / "config.json"
    if config_path.is_file():
        try:
            loaded = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{str(config_path)!r} is not readable JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise DataError(f"{str(config_path)!r} must hold a JSON object")
        config = loaded
        if "architecture" not in config and "architectures" in config:
            # transformers' layout names its own module tree, not timm's or torchvision's.
            raise ConfigError(
                f"model folder {str(folder)!r} is a Hugging Face transformers model "
                f"({config.get('architectures')}); selfsup loads timm and torchvision weights: "
                "use the timm version of the model (a hub folder whose config.json has "
                "'architecture', e.g. timm/vit_small_patch14_reg4_dinov2.lvd142m)"
            )
    candidate = _folder_weights(folder)
    read = _read_file(candidate)
    return WeightsFile(candidate, "model_folder", read.state, read.ignored, config)


def _folder_weights(folder: Path) -> Path:
    """The first of :data:`MODEL_FOLDER_WEIGHTS` in a model folder."""
    for name in MODEL_FOLDER_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    raise DataError(
        f"model folder {str(folder)!r} has none of {', '.join(MODEL_FOLDER_WEIGHTS)}; a model "
        "folder holds config.json and one of these weight files"
    )


def open_weights(source: str | os.PathLike[str]) -> WeightsFile:
    """Read a weights source (see the module docstring for the formats) from disk.

    Raises:
        ConfigError: the path does not exist, or an unknown zoo entry.
        DataError: the file is unreadable or holds no state dict.
    """
    text = os.fspath(source)
    if text.startswith("zoo:"):
        from selfsup.models.zoo import resolve_entry

        return resolve_entry(text[len("zoo:") :]).open()
    path = Path(text).expanduser()
    if path.is_dir():
        return _read_folder(path)
    if not path.is_file():
        raise ConfigError(
            f"weights {text!r} do not exist; model.weights takes a state dict (.pt/.pth/.bin), "
            "a .safetensors file, a model folder (config.json + model.safetensors), a selfsup "
            "checkpoint or zoo:<name>"
        )
    return _read_file(path)


def weights_file(source: str | os.PathLike[str]) -> Path:
    """The file holding the tensors of a weights source, without reading it (a model
    folder's weight file, a zoo entry's file); for fingerprints of what a run embedded with.

    Raises:
        ConfigError: the source does not exist.
        DataError: a model folder without a weight file.
    """
    text = os.fspath(source)
    if text.startswith("zoo:"):
        from selfsup.models.zoo import resolve_entry

        return resolve_entry(text[len("zoo:") :]).path
    path = Path(text).expanduser()
    if path.is_dir():
        return _folder_weights(path)
    if not path.is_file():
        raise ConfigError(f"weights {text!r} do not exist")
    return path


def read_weights(source: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The tensors of a weights source, name -> tensor (a selfsup checkpoint: its backbone's).

    Keys are as in the file (wrappers removed); :func:`match_keys` strips prefixes.
    """
    return open_weights(source).state


# --- matching and loading ----------------------------------------------------------------


def _stripped(state: dict[str, Tensor]) -> list[tuple[str, dict[str, Tensor]]]:
    """``(prefix, keys with it removed)`` for each shared-prefix stripping, least first."""
    out = [("", state)]
    prefix, current = "", state
    while current:
        shared = next((p for p in STRIPPED_PREFIXES if all(k.startswith(p) for k in current)), None)
        if shared is None:
            break
        prefix += shared
        current = {k[len(shared) :]: v for k, v in current.items()}
        out.append((prefix, current))
    return out


def _is_removed_head(target: nn.Module, key: str) -> bool:
    """True when ``key``'s module is an nn.Identity in ``target`` (a removed classifier)."""
    module_path = key.rpartition(".")[0]
    if not module_path:
        return False
    try:
        module = target.get_submodule(module_path)
    except AttributeError:
        return False
    return isinstance(module, nn.Identity)


def match_keys(
    target: nn.Module, state: dict[str, Tensor], *, source: str = "", path: Path | None = None
) -> tuple[LoadReport, dict[str, Tensor]]:
    """Match a file's tensors to ``target``'s state dict by the module docstring's rule.

    Returns:
        The report and the tensors to load (model key -> tensor of the model's shape).
    """
    own = target.state_dict()
    prefix, keys = max(
        _stripped(state), key=lambda c: sum(1 for k in c[1] if k in own)
    )  # max keeps the first (least stripped) of equal counts
    report = LoadReport(source=source, path=path or Path(source), format="", prefix=prefix)
    usable: dict[str, Tensor] = {}
    for key, tensor in keys.items():
        if key in own:
            if tuple(tensor.shape) == tuple(own[key].shape):
                usable[key] = tensor
            else:
                report.mismatched.append((key, tuple(tensor.shape), tuple(own[key].shape)))
        elif _is_removed_head(target, key):
            report.dropped_head.append(key)
        else:
            report.unexpected.append(key)
    report.loaded = [k for k in own if k in usable]
    report.missing = [k for k in own if k not in keys]
    return report, usable


def _check_architecture(weights: WeightsFile, backbone: nn.Module) -> None:
    """A model folder naming a timm architecture must be loaded into that architecture."""
    arch = weights.architecture
    name = getattr(backbone, "name", None)
    if arch is None or not isinstance(name, str) or not name.startswith("timm/"):
        return
    configured = name[len("timm/") :]
    if configured.split(".")[0] != arch.split(".")[0]:
        raise ConfigError(
            f"model folder {str(weights.path.parent)!r} holds weights of {arch!r} "
            f"(config.json 'architecture') but the backbone is {name!r}; set "
            f"model.name=timm/{arch.split('.')[0]}"
        )


def load_backbone_weights(
    backbone: nn.Module, source: str | os.PathLike[str] | WeightsFile, *, strict: bool = True
) -> LoadReport:
    """Load local weights into ``backbone`` in place and say what was loaded.

    Args:
        backbone: A :class:`~selfsup.models.backbones.Backbone` (the file is matched to the
            model it wraps, ``backbone.features``, i.e. the torchvision/timm model as users
            save it) or any other module (matched to its own keys).
        source: A file, model folder or ``zoo:<name>`` (module docstring), or weights
            :func:`open_weights` already read (not read again).
        strict: Refuse any missing, unexpected or reshaped key (the default). With False the
            matching keys are loaded and the others logged as a warning.

    Returns:
        The :class:`LoadReport`; the removed classifier's keys and a selfsup checkpoint's
        non-backbone keys are logged at info level.

    Raises:
        ConfigError: keys do not match with ``strict=True`` (the file and the first keys of
            each kind are named), or a model folder's architecture is not the backbone's.
        DataError: the source cannot be read.
    """
    from selfsup.models.backbones import Backbone

    weights = source if isinstance(source, WeightsFile) else open_weights(source)
    given = str(weights.path) if isinstance(source, WeightsFile) else os.fspath(source)
    _check_architecture(weights, backbone)
    target = backbone.features if isinstance(backbone, Backbone) else backbone
    report, usable = match_keys(target, weights.state, source=given, path=weights.path)
    report.format = weights.format
    report.ignored = weights.ignored
    name = getattr(backbone, "name", None) or type(target).__name__
    if not report.complete:
        message = (
            f"weights {str(weights.path)!r} do not fit the backbone {name}: {report.problems()}"
        )
        if strict:
            raise ConfigError(f"{message}. {_PARTIAL_HINT}")
        logger.warning("%s; loading the %d matching keys", message, len(report.loaded))
    if not report.loaded:
        raise ConfigError(
            f"weights {str(weights.path)!r} share no key with the backbone {name}: "
            f"{report.problems()}. Choose the model.name the weights were saved from"
        )
    target.load_state_dict(usable, strict=False)
    if report.dropped_head:
        logger.info(
            "weights %s: the classifier keys %s are not used (the backbone removes its classifier)",
            weights.path,
            _few(report.dropped_head),
        )
    if report.ignored:
        logger.info(
            "weights %s: %d keys outside the backbone (projection, heads) are not used",
            weights.path,
            len(report.ignored),
        )
    logger.info(
        "loaded %d tensors into %s from %s (%s)",
        len(report.loaded),
        name,
        weights.path,
        weights.format,
    )
    return report
