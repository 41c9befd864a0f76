"""What this machine's CPUs offer: how many cores this process may use (what
``num_workers=-1`` means) and whether they compute in bfloat16 natively.

The one resolver behind the data loaders of ``selfsup train``/``embed`` and the parallel
check and embedding steps of ``selfsup run``, and behind ``precision=auto`` on the CPU.
Importing it does not import torch (the server reads configs torch-free).
"""

from __future__ import annotations

import functools
import os


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, which a container or ``taskset``
    narrows; :func:`os.cpu_count` where there is no mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_num_workers(num_workers: int) -> int:
    """``num_workers`` itself when 0 or more; -1 (or any negative value) means one per
    available CPU core (:func:`available_cpus`)."""
    return num_workers if num_workers >= 0 else available_cpus()


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bfloat16 arithmetic instructions (AVX-512 BF16, or AMX tiles).

    Where it does, oneDNN runs convolutions and matrix products under bf16 autocast about
    2x faster than in float32 (ResNet-18 at 32 px on a 2-core AMD EPYC with AVX-512 BF16:
    2.2x forward, 2.0x forward+backward, issue 16); where it does not, bf16 is emulated and
    ran 4-5x *slower* (an AMD EPYC without it). PyTorch exposes the CPU's flags only
    through private helpers of ``torch.cpu``; if a release drops them this says False and
    ``precision=auto`` stays in float32, the safe side.
    """
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    if not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return False  # oneDNN runs the bf16 kernels; without it autocast would not be faster
    try:
        return any(bool(getattr(torch.cpu, name)()) for name in checks if hasattr(torch.cpu, name))
    except (RuntimeError, TypeError, AttributeError):  # a private helper that changed shape
        return False
