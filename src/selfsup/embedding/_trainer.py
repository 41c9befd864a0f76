"""Translate lightly-era trainer arguments (``gpus=1``, ``distributed_backend='ddp'``,
``precision=16``) into PyTorch Lightning 2 arguments, with warnings where the machine
cannot honour them instead of failing (a CPU-only laptop running a GPU config still trains).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from selfsup.errors import ConfigError

_CPU_UNSUPPORTED_PRECISION = {16, "16", "16-mixed", "16-true"}


def lightning_trainer_kwargs(
    gpus: int | None = None,
    distributed_backend: str | None = None,
    precision: int | str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Map legacy arguments onto ``pytorch_lightning.Trainer`` keyword arguments.

    Args:
        gpus: number of GPUs wanted. With no CUDA device the CPU is used and a warning says so;
            asking for more GPUs than exist uses all of them, with a warning.
        distributed_backend: legacy name of ``strategy`` (e.g. ``'ddp'``).
        precision: 16/32/64 or a Lightning 2 precision string. 16-bit on the CPU falls back
            to 32 with a warning (mixed fp16 needs CUDA).
        **kwargs: passed through unchanged (``max_epochs``, ``accelerator``, ``devices``, ...).

    Returns:
        Keyword arguments for ``pytorch_lightning.Trainer``.
    """
    out = dict(kwargs)
    if gpus is not None:
        if "accelerator" in out or "devices" in out:
            raise ConfigError(
                "pass either gpus=N or accelerator=/devices=, not both "
                f"(got gpus={gpus}, accelerator={out.get('accelerator')!r}, "
                f"devices={out.get('devices')!r})"
            )
        if gpus < 0:
            raise ConfigError(f"gpus must be >= 0, got {gpus}")
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if gpus == 0:
            out.update(accelerator="cpu", devices=1)
        elif available == 0:
            warnings.warn(
                f"gpus={gpus} was requested but no CUDA GPU is available: training on the CPU",
                stacklevel=3,
            )
            out.update(accelerator="cpu", devices=1)
        else:
            if gpus > available:
                warnings.warn(
                    f"gpus={gpus} was requested but only {available} GPU(s) exist: using "
                    f"{available}",
                    stacklevel=3,
                )
            out.update(accelerator="gpu", devices=min(gpus, available))
    if distributed_backend is not None:
        if "strategy" in out:
            raise ConfigError("pass either distributed_backend= or strategy=, not both")
        out["strategy"] = distributed_backend
    if precision is not None:
        on_cpu = out.get("accelerator", "auto") == "cpu" or not torch.cuda.is_available()
        if on_cpu and precision in _CPU_UNSUPPORTED_PRECISION:
            warnings.warn(
                f"precision={precision!r} needs a CUDA GPU; training on the CPU in 32-bit",
                stacklevel=3,
            )
            precision = 32
        if precision in (16, "16"):
            precision = "16-mixed"
        out["precision"] = precision
    return out
