"""Typed configuration plumbing shared by every program (train, embed, run, worker, server).

A config is a tree of pydantic models that forbid unknown keys. Programs resolve it once:
defaults (the models) <- YAML file <- ``key.sub=value`` overrides, then validate. Errors name
the dotted key at fault, what was given, what is accepted, and suggest the closest valid key.
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from selfsup.errors import ConfigError, closest

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of all config sections: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    """Return the BaseModel class inside ``annotation`` (plain, Optional or Union), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        for arg in get_args(annotation):
            found = _unwrap_model(arg)
            if found is not None:
                return found
    return None


def _accepts_str(annotation: Any) -> bool:
    """True when a field typed ``annotation`` takes a plain string (so we keep '007' as is)."""
    if annotation is str:
        return True
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(_accepts_str(arg) for arg in get_args(annotation))
    if origin is typing.Annotated:
        return _accepts_str(get_args(annotation)[0])
    if origin is typing.Literal:
        return any(isinstance(arg, str) for arg in get_args(annotation))
    return False


def iter_keys(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any, Any, str]]:
    """Yield ``(dotted_key, annotation, default, description)`` for every leaf of ``model``."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = _unwrap_model(field.annotation)
        if sub is not None and field.default_factory is not None:
            yield from iter_keys(sub, prefix=f"{key}.")
        else:
            default = field.get_default(call_default_factory=True)
            yield key, field.annotation, default, field.description or ""


def all_keys(model: type[BaseModel]) -> list[str]:
    """Every valid dotted key of ``model`` including section names."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        keys.append(name)
        sub = _unwrap_model(field.annotation)
        if sub is not None:
            keys.extend(f"{name}.{k}" for k in all_keys(sub))
    return keys


def suggest_key(model: type[BaseModel], key: str) -> str | None:
    """The valid dotted key closest to ``key``, comparing full paths and then leaf names.

    ``max_epoch`` -> ``trainer.max_epochs``; ``trainer.max_epoch`` -> ``trainer.max_epochs``.
    """
    keys = all_keys(model)
    match = closest(key, keys, cutoff=0.6)
    if match is not None:
        return match
    leaf = key.rsplit(".", 1)[-1]
    by_leaf: dict[str, str] = {}
    for k in keys:
        by_leaf.setdefault(k.rsplit(".", 1)[-1], k)
    leaf_match = closest(leaf, by_leaf, cutoff=0.75)
    return by_leaf[leaf_match] if leaf_match is not None else None


def _field_annotation(model: type[BaseModel], path: Sequence[str]) -> Any | None:
    current: type[BaseModel] | None = model
    annotation: Any = None
    for i, part in enumerate(path):
        if current is None:
            return None
        if part not in current.model_fields:
            # A section that takes extra keys (criterion.*: the method's own arguments,
            # checked by the parent model's validator) accepts any leaf key, parsed as YAML.
            last = i == len(path) - 1
            return Any if last and current.model_config.get("extra") == "allow" else None
        annotation = current.model_fields[part].annotation
        current = _unwrap_model(annotation)
    return annotation


def parse_value(raw: str, annotation: Any | None) -> Any:
    """Turn the text of ``key=value`` into a Python value.

    YAML rules apply (``0.1`` -> float, ``true`` -> bool, ``[1, 2]`` -> list, ``null`` -> None),
    except that a field that takes strings keeps the raw text of a scalar, so a folder named
    ``2024`` stays the string ``'2024'``.
    """
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        return raw
    if annotation is not None and _accepts_str(annotation) and not isinstance(value, list | dict):
        if value is None and raw.strip().lower() in ("null", "none", "~"):
            return None
        return raw
    return value


def parse_overrides(model: type[BaseModel], overrides: Sequence[str]) -> dict[str, Any]:
    """Parse ``["trainer.max_epochs=5", "input_dir=./img"]`` into a nested dict.

    Raises:
        ConfigError: an item without ``=``, an empty key, or a key ``model`` does not have.
    """
    tree: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(
                f"argument {item!r} is not of the form key=value "
                "(e.g. trainer.max_epochs=10 or input_dir=./images)"
            )
        key, raw = item.split("=", 1)
        key = key.strip().lstrip("+")
        if not key:
            raise ConfigError(f"argument {item!r} has an empty key before '='")
        path = key.split(".")
        annotation = _field_annotation(model, path)
        if annotation is None:
            raise unknown_key_error(model, key)
        node = tree
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"key {key!r} conflicts with an earlier override of {part!r}")
            node = child
        node[path[-1]] = parse_value(raw, annotation)
    return tree


def unknown_key_error(model: type[BaseModel], key: str) -> ConfigError:
    """A ConfigError for an unknown dotted ``key``, with a did-you-mean suggestion."""
    suggestion = suggest_key(model, key)
    hint = f"; did you mean {suggestion!r}?" if suggestion else ""
    return ConfigError(f"unknown config key {key!r}{hint} (see --help for all keys)")


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``update`` into a copy of ``base``; ``update`` wins on leaves."""
    merged: dict[str, Any] = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_yaml_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping from ``path`` with errors naming the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {str(p)!r} must hold a mapping of keys to values, "
            f"got {type(data).__name__}"
        )
    return data


def validate(model: type[M], data: Mapping[str, Any], source: str = "config") -> M:
    """Validate ``data`` against ``model``; raise ConfigError naming each bad key.

    Args:
        model: the root config class.
        data: nested mapping (from a file, a dict passed in Python, or parsed overrides).
        source: where ``data`` came from, used in the message (e.g. a file name).
    """
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise config_error_from(model, exc, source) from None


def config_error_from(model: type[BaseModel], exc: ValidationError, source: str) -> ConfigError:
    """Translate pydantic's errors into one message a user can act on."""
    lines: list[str] = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        error = (err.get("ctx") or {}).get("error")
        if err["type"] == "extra_forbidden":
            lines.append(str(unknown_key_error(model, key)))
        elif isinstance(error, ConfigError):
            # A validator's own ConfigError already names its key path (and the value).
            lines.append(str(error))
        elif not key:
            # A model-level validator with its own message (which names its key path).
            lines.append(str(err["msg"]).removeprefix("Value error, "))
        else:
            given = err.get("input")
            msg = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"invalid value {given!r} for {key!r}: {msg}")
    plural = "s" if len(lines) > 1 else ""
    return ConfigError(f"{source}: {len(lines)} error{plural}:\n  " + "\n  ".join(lines))


def resolve(
    model: type[M],
    *,
    file: str | os.PathLike[str] | None = None,
    data: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
) -> M:
    """Resolve a config once: defaults <- YAML ``file`` <- ``data`` <- ``overrides``."""
    merged: dict[str, Any] = {}
    sources: list[str] = []
    if file is not None:
        merged = deep_merge(merged, load_yaml_file(file))
        sources.append(str(file))
    if data:
        merged = deep_merge(merged, data)
        sources.append("arguments")
    if overrides:
        merged = deep_merge(merged, parse_overrides(model, overrides))
        sources.append("command line")
    return validate(model, merged, source=" + ".join(sources) or "config")


def describe(model: type[BaseModel]) -> str:
    """A help table of every key: ``key  (type, default)  description``."""
    rows = []
    for key, annotation, default, description in iter_keys(model):
        type_name = _type_name(annotation)
        rows.append((key, f"{type_name} = {default!r}", description))
    width = max(len(r[0]) for r in rows) + 2
    type_width = min(max(len(r[1]) for r in rows) + 2, 40)
    return "\n".join(f"  {k:<{width}}{t:<{type_width}}{d}" for k, t, d in rows)


def _type_name(annotation: Any) -> str:
    if get_origin(annotation) is typing.Literal:
        return "|".join(str(a) for a in get_args(annotation))
    name = getattr(annotation, "__name__", None)
    if isinstance(name, str):
        return name
    # 'selfsup.selection.config.SelectionConfigModel | None' -> 'SelectionConfigModel | None'
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", str(annotation))


def to_yaml(model: BaseModel) -> str:
    """The resolved config as YAML (JSON-compatible values), for ``config/config.yaml``."""
    return yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False)
