"""The method registry: every SSL method selfsup trains, found by name.

The catalogue below maps each name to the module attribute holding its :class:`Method`;
modules are imported only when a method is used, so naming and checking a method (config
validation, the server, ``--help``) never imports torch. Adding a method is one module
with a ``METHOD`` and one line here (CONTRIBUTING.md has the checklist); methods defined
elsewhere (a user's own) are added with :func:`register_method`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from selfsup.errors import ConfigError, did_you_mean
from selfsup.methods._args import CATALOG_ARGS, ArgValue, MethodArg, check_arg_values

if TYPE_CHECKING:
    from selfsup.methods._base import Method

#: name -> "module:attribute" of its Method; the order is the order of ``method_names()``.
_CATALOG: dict[str, str] = {
    "simclr": "selfsup.methods.simclr:METHOD",
    "moco": "selfsup.methods.moco:METHOD",
    "byol": "selfsup.methods.byol:METHOD",
    "mocov3": "selfsup.methods.mocov3:METHOD",
    "simsiam": "selfsup.methods.simsiam:METHOD",
    "barlowtwins": "selfsup.methods.barlow_twins:METHOD",
    "vicreg": "selfsup.methods.vicreg:METHOD",
    "tico": "selfsup.methods.tico:METHOD",
    "mmcr": "selfsup.methods.mmcr:METHOD",
    "hypersphere": "selfsup.methods.hypersphere:METHOD",
    "directclr": "selfsup.methods.directclr:METHOD",
    "wmse": "selfsup.methods.wmse:METHOD",
    "dino": "selfsup.methods.dino:METHOD",
    "nnclr": "selfsup.methods.nnclr:METHOD",
    "swav": "selfsup.methods.swav:METHOD",
    "dcl": "selfsup.methods.dcl:METHOD",
    "dclw": "selfsup.methods.dcl:METHOD_W",
    "fastsiam": "selfsup.methods.fast_siam:METHOD",
    "empssl": "selfsup.methods.emp_ssl:METHOD",
    "frossl": "selfsup.methods.frossl:METHOD",
    "smog": "selfsup.methods.smog:METHOD",
    "vicregl": "selfsup.methods.vicregl:METHOD",
    "densecl": "selfsup.methods.densecl:METHOD",
    "detcons": "selfsup.methods.detcon:METHOD_S",
    "detconb": "selfsup.methods.detcon:METHOD_B",
    "msn": "selfsup.methods.msn:METHOD",
    "pmsn": "selfsup.methods.msn:METHOD_P",
    "distillation": "selfsup.methods.distillation:METHOD",
    "ibot": "selfsup.methods.ibot:METHOD",
    "dinov2": "selfsup.methods.dinov2:METHOD",
    "ijepa": "selfsup.methods.ijepa:METHOD",
    "aim": "selfsup.methods.aim:METHOD",
    "mae": "selfsup.methods.mae:METHOD",
    "simmim": "selfsup.methods.simmim:METHOD",
}
#: Catalogue methods that distil a frozen teacher (``Method.takes_teacher``), known without
#: importing them so that configs are checked torch-free; get_method checks they agree.
_TEACHER_METHODS: frozenset[str] = frozenset({"distillation"})
_REGISTERED: dict[str, Method] = {}


def method_names() -> list[str]:
    """Names of every registered method, catalogue first (torch-free)."""
    return [*_CATALOG, *(name for name in _REGISTERED if name not in _CATALOG)]


def check_method_name(name: str) -> str:
    """``name`` if a method of that name is registered, else a ConfigError listing them."""
    names = method_names()
    if name in names:
        return name
    raise ConfigError(
        f"unknown method {name!r}{did_you_mean(name, names)} "
        f"(registered methods: {', '.join(names)})"
    )


def get_method(name: str) -> Method:
    """The :class:`Method` registered as ``name`` (imports its module on first use)."""
    check_method_name(name)
    if name not in _REGISTERED:
        module, attribute = _CATALOG[name].split(":")
        method = getattr(importlib.import_module(module), attribute)
        if method.name != name:
            raise RuntimeError(f"{_CATALOG[name]} holds method {method.name!r}, not {name!r}")
        if method.takes_teacher != (name in _TEACHER_METHODS):
            raise RuntimeError(f"{_CATALOG[name]}: takes_teacher disagrees with _TEACHER_METHODS")
        _REGISTERED[name] = method
    return _REGISTERED[name]


def method_takes_teacher(name: str) -> bool:
    """Whether the registered method ``name`` distils a frozen teacher (the config's
    ``teacher`` section); torch-free for catalogue methods."""
    check_method_name(name)
    if name in _CATALOG:
        return name in _TEACHER_METHODS
    return _REGISTERED[name].takes_teacher


def method_args(name: str) -> tuple[MethodArg, ...]:
    """The ``criterion.*`` arguments the registered method ``name`` takes (torch-free for
    catalogue methods)."""
    check_method_name(name)
    if name in _CATALOG:
        return CATALOG_ARGS[name]
    return _REGISTERED[name].args


def check_criterion_args(name: str, values: Mapping[str, object]) -> dict[str, ArgValue]:
    """``criterion.*`` ``values`` checked against what method ``name`` takes, as the
    arguments' types: a ConfigError names an unknown key (with a did-you-mean and the keys
    the method takes) or a value of the wrong type or range (with what is accepted)."""
    return check_arg_values(name, method_args(name), values)


def register_method(method: Method) -> Method:
    """Add a method (e.g. a user's own) under ``method.name``; names are unique."""
    if method.name in _CATALOG or method.name in _REGISTERED:
        raise ConfigError(f"a method named {method.name!r} is already registered")
    _REGISTERED[method.name] = method
    return method
