"""Translate lightly-era trainer arguments (``gpus=1``, ``distributed_backend='ddp'``,
``precision=16``) into PyTorch Lightning 2 arguments, with warnings where the machine
cannot honour them instead of failing (a CPU-only laptop running a GPU config still trains).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch

from selfsup.errors import ConfigError
from selfsup.utils.cpus import cpu_has_native_bf16

_CPU_UNSUPPORTED_PRECISION = {16, "16", "16-mixed", "16-true"}


def auto_training_precision(on_cpu: bool) -> int | str:
    """What ``precision="auto"`` trains in: ``"bf16-mixed"`` where the hardware computes in
    bfloat16 natively (a CUDA GPU that supports it; a CPU with AVX-512 BF16 or AMX,
    :func:`~selfsup.utils.cpus.cpu_has_native_bf16`), else 32.

    bf16 autocast keeps float32 weights and optimizer state and casts the convolutions and
    matrix products: a ResNet-18 step at 32 px ran 2.0x faster on a 2-core AMD EPYC with
    AVX-512 BF16, ``selfsup train`` of 2,000 Fashion-MNIST PNGs 1.64x, and SimCLR on
    Fashion-MNIST reached the same kNN accuracy at equal epochs as in float32 (within the
    seed-to-seed spread; benchmarks/README.md, issue 16). Elsewhere bf16 is emulated (4-5x
    slower on a CPU without it) and float16 needs loss scaling, so those train in 32.
    """
    if on_cpu:
        return "bf16-mixed" if cpu_has_native_bf16() else 32
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else 32


def resolve_training_precision(precision: int | str, on_cpu: bool) -> int | str:
    """The Lightning precision ``trainer.precision=precision`` trains in: ``auto`` as
    :func:`auto_training_precision` says, 16-bit as ``16-mixed`` on a GPU and as 32 on the
    CPU (mixed fp16 needs CUDA), anything else unchanged. The one rule behind
    :func:`lightning_trainer_kwargs` (which warns about the CPU fallback) and
    :func:`training_autocast_dtype`."""
    if precision == "auto":
        return auto_training_precision(on_cpu)
    if precision in _CPU_UNSUPPORTED_PRECISION:
        return 32 if on_cpu else ("16-mixed" if precision in (16, "16") else precision)
    return precision


def training_autocast_dtype(precision: int | str, on_cpu: bool) -> torch.dtype | None:
    """The autocast dtype a training step runs under with ``trainer.precision=precision``
    (None: float32 or 64; :func:`resolve_training_precision`). For code that runs a step
    outside Lightning at the training's arithmetic: the recipe's timed step, benchmarks."""
    resolved = resolve_training_precision(precision, on_cpu)
    if resolved in ("bf16-mixed", "bf16-true"):
        return torch.bfloat16
    if resolved in _CPU_UNSUPPORTED_PRECISION:
        return torch.float16
    return None


def autocast_or_float32(device_type: str, dtype: torch.dtype | None) -> torch.autocast:
    """Autocast to ``dtype`` on ``device_type``, or a disabled one (float32) for None: the
    context of a forward pass at :func:`training_autocast_dtype`'s or
    :func:`~selfsup.embedding.embedding.autocast_dtype`'s answer."""
    return torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None)


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
        precision: 16/32/64, a Lightning 2 precision string, or ``"auto"``
            (:func:`auto_training_precision`). 16-bit on the CPU falls back to 32 with a
            warning (mixed fp16 needs CUDA).
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
        out["precision"] = resolve_training_precision(precision, on_cpu)
    return out


#: Environment variables set by launchers that start every training process themselves
#: (torchrun / torchelastic, SLURM, an MPI launcher); Lightning's ``ddp`` then starts none.
_EXTERNAL_LAUNCHER_ENV = ("TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE")

#: Strategies whose processes Lightning starts by running the command line again.
_RELAUNCHING_STRATEGIES = frozenset({"ddp", "ddp_find_unused_parameters_true", "fsdp"})


def distributed_trainer_kwargs(
    gpus: int,
    devices: int | None,
    num_nodes: int = 1,
    strategy: str = "auto",
    *,
    can_relaunch: bool = True,
) -> dict[str, Any]:
    """Keyword arguments of ``pytorch_lightning.Trainer`` for the ``trainer.*`` config keys.

    ``devices=None`` keeps the legacy meaning of ``gpus`` (:func:`lightning_trainer_kwargs`).
    With ``devices=N``, each machine runs N processes: on N GPUs when ``gpus > 0`` and CUDA
    is there, else on the CPU (gloo), so a DDP config can be tried on a laptop.

    Args:
        gpus: ``trainer.gpus``; 0 forces the CPU.
        devices: ``trainer.devices``: processes per machine, or ``None``.
        num_nodes: ``trainer.num_nodes``: machines taking part.
        strategy: ``trainer.strategy``: a Lightning strategy name.
        can_relaunch: whether the command that called may be started again once per process,
            which Lightning's ``ddp`` does on one machine unless a launcher (torchrun, SLURM)
            started every process. ``selfsup train`` can; a curation run or the worker cannot
            (each copy would run the whole job), so they pass ``False``.

    Raises:
        ConfigError: more GPUs asked for than exist, or a relaunching strategy where the
            caller cannot be relaunched; the message names the key and the alternative.
    """
    if devices is None:
        out = lightning_trainer_kwargs(gpus=gpus)
    else:
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if gpus > 0 and available > 0:
            if devices > available:
                raise ConfigError(
                    f"trainer.devices={devices} but this machine has {available} GPU(s); "
                    f"use trainer.devices={available} or fewer"
                )
            out = {"accelerator": "gpu", "devices": devices}
        else:
            if gpus > 0:
                warnings.warn(
                    f"trainer.gpus={gpus} but no CUDA GPU is available: running "
                    f"trainer.devices={devices} process(es) on the CPU",
                    stacklevel=2,
                )
            out = {"accelerator": "cpu", "devices": devices}
    processes = int(out["devices"]) * num_nodes
    launched_outside = any(name in os.environ for name in _EXTERNAL_LAUNCHER_ENV)
    if (
        not can_relaunch
        and strategy in _RELAUNCHING_STRATEGIES
        and processes > 1
        and not launched_outside
    ):
        raise ConfigError(
            f"trainer.strategy={strategy} starts the command again in each of its {processes} "
            "processes, which would run this whole job several times; use "
            "trainer.strategy=ddp_spawn, or start every process with torchrun or SLURM"
        )
    out["num_nodes"] = num_nodes
    out["strategy"] = strategy
    return out
