"""Float32 islands in mixed-precision training, for the losses whose math low precision breaks.

Under bf16/fp16 autocast (``trainer.precision=auto`` trains in ``bf16-mixed`` where the
hardware has bf16, issue 16) matrix products run in half precision, and some linear algebra
refuses it outright: ``torch.linalg.matrix_norm(..., ord="nuc")`` (MMCR) and ``torch.logdet``
(EMP-SSL's coding rate) raise for bfloat16. A Cholesky factor or a log-determinant of a
covariance summed in 8 mantissa bits would be poor even where allowed (W-MSE). The functions
decorated here run with autocast off and their half-precision tensor arguments in float32,
as AMP recommends for such ops.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

import torch
from torch import Tensor

P = ParamSpec("P")
R = TypeVar("R")

_HALF = (torch.float16, torch.bfloat16)


def _float32(value: Any) -> Any:
    if isinstance(value, Tensor) and value.dtype in _HALF:
        return value.float()
    return value


def float32_math(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` with autocast off (on the device of its first tensor argument) and its
    float16/bfloat16 tensor arguments cast to float32; float32 and float64 ones are kept."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        tensors = [v for v in (*args, *kwargs.values()) if isinstance(v, Tensor)]
        device_type = tensors[0].device.type if tensors else "cpu"
        up_args = tuple(_float32(v) for v in args)
        up_kwargs = {k: _float32(v) for k, v in kwargs.items()}
        with torch.autocast(device_type, enabled=False):
            return cast(Callable[..., R], fn)(*up_args, **up_kwargs)

    return wrapper
