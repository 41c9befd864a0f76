"""Self-supervised methods, each a registered name (``method=byol``).

A :class:`Method` bundles what training needs: a model builder (backbone -> heads,
momentum/teacher parts and the loss, as a :class:`MethodModel` whose ``training_loss``
gives the loss of a batch of views), the view transform and optimiser defaults.
``selfsup train method=<name>``, ``selfsup run lightly.method=<name>``, scheduled runs and
``train_embedding_model(method=...)`` look methods up here; the contract tests run over
:func:`method_names`, so a registered method is a tested one.

Naming and checking methods is torch-free; :func:`get_method` imports the method's module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from selfsup.methods._args import MethodArg
from selfsup.methods._registry import (
    check_criterion_args,
    check_method_name,
    get_method,
    method_args,
    method_names,
    method_takes_teacher,
    register_method,
)

if TYPE_CHECKING:
    from selfsup.methods._base import (
        Method,
        MethodModel,
        OptimizerDefaults,
        TrainProgress,
    )

__all__ = [
    "Method",
    "MethodArg",
    "MethodModel",
    "OptimizerDefaults",
    "TrainProgress",
    "check_criterion_args",
    "check_method_name",
    "get_method",
    "method_args",
    "method_names",
    "method_takes_teacher",
    "register_method",
]


def __getattr__(name: str) -> object:
    # The base types import torch: load them only when asked for.
    if name in ("Method", "MethodModel", "OptimizerDefaults", "TrainProgress"):
        from selfsup.methods import _base

        return getattr(_base, name)
    raise AttributeError(f"module 'selfsup.methods' has no attribute {name!r}")
