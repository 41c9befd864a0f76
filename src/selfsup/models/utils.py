"""Pure helpers for self-supervised models: momentum encoders, batch shuffling, schedules.

These are the building blocks a training loop composes; none keeps state of its own.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase

__all__ = [
    "NORM_LAYERS",
    "activate_requires_grad",
    "batch_shuffle",
    "batch_unshuffle",
    "cosine_schedule",
    "deactivate_requires_grad",
    "get_weight_decay_parameters",
    "normalize_weight",
    "update_momentum",
]

NORM_LAYERS: tuple[type[nn.Module], ...] = (
    _NormBase,  # BatchNorm*d, SyncBatchNorm, InstanceNorm*d
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.CrossMapLRN2d,
)
"""Layer types whose parameters :func:`get_weight_decay_parameters` exempts from decay."""


def deactivate_requires_grad(model: nn.Module) -> None:
    """Set ``requires_grad = False`` on every parameter of ``model``, in place.

    Used for momentum (EMA) encoders, which are updated by :func:`update_momentum` and never
    by the optimizer; frozen parameters get no ``.grad`` and cost no backward memory.
    """
    for param in model.parameters():
        param.requires_grad = False


def activate_requires_grad(model: nn.Module) -> None:
    """Set ``requires_grad = True`` on every parameter of ``model``, in place.

    Undoes :func:`deactivate_requires_grad`, e.g. to fine-tune a frozen backbone.
    """
    for param in model.parameters():
        param.requires_grad = True


@torch.no_grad()
def update_momentum(model: nn.Module, model_ema: nn.Module, m: float) -> None:
    """Exponential moving average of ``model``'s parameters into ``model_ema``, in place.

    MoCo: "θ_k ← m θ_k + (1 − m) θ_q" (He et al., 2019, eq. 2), i.e. for every pair of
    parameters ``ema = m * ema + (1 - m) * param``. ``m = 0`` copies ``model`` into
    ``model_ema``; ``m = 1`` leaves it unchanged. Parameters are paired in registration
    order, so both modules must have the same architecture. The update is in place, so an
    optimizer or a distributed wrapper holding the EMA tensors keeps seeing the new values.
    Buffers (e.g. BatchNorm running statistics) are not touched.

    Args:
        model: The module being trained (query encoder, student).
        model_ema: Its momentum copy (key encoder, teacher).
        m: Momentum in [0, 1].
    """
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"momentum m must be in [0, 1], got {m}")
    ema_params = list(model_ema.parameters())
    params = list(model.parameters())
    if len(ema_params) != len(params):
        raise ValueError(
            f"model_ema has {len(ema_params)} parameters but model has {len(params)}; "
            "update_momentum needs two modules of the same architecture"
        )
    for i, (ema, param) in enumerate(zip(ema_params, params, strict=True)):
        if ema.shape != param.shape:
            raise ValueError(
                f"parameter {i} has shape {tuple(ema.shape)} in model_ema but "
                f"{tuple(param.shape)} in model; the architectures differ"
            )
        ema.mul_(m).add_(param.detach(), alpha=1.0 - m)


@torch.no_grad()
def batch_shuffle(batch: Tensor) -> tuple[Tensor, Tensor]:
    """Randomly permute a batch along dim 0 (single-process half of MoCo's shuffling BN).

    Args:
        batch: Tensor of shape (B, ...).

    Returns:
        ``(shuffled, shuffle_idx)``: ``shuffled = batch[shuffle_idx]`` and the permutation
        ``shuffle_idx`` of shape (B,), which :func:`batch_unshuffle` inverts. The input is
        not modified.
    """
    shuffle_idx = torch.randperm(batch.shape[0], device=batch.device)
    return batch[shuffle_idx], shuffle_idx


@torch.no_grad()
def batch_unshuffle(batch: Tensor, shuffle_idx: Tensor) -> Tensor:
    """Undo :func:`batch_shuffle`: returns ``x`` with ``x[shuffle_idx] == batch``.

    Args:
        batch: Tensor of shape (B, ...), e.g. encoder outputs of the shuffled batch.
        shuffle_idx: The permutation of shape (B,) returned by :func:`batch_shuffle`.

    Returns:
        Tensor of shape (B, ...) in the original order.
    """
    if shuffle_idx.shape != (batch.shape[0],):
        raise ValueError(
            f"shuffle_idx must have shape ({batch.shape[0]},) to unshuffle a batch of "
            f"{batch.shape[0]}, got {tuple(shuffle_idx.shape)}"
        )
    return batch[torch.argsort(shuffle_idx)]


def cosine_schedule(
    step: int,
    max_steps: int,
    start_value: float,
    end_value: float,
    period: int | None = None,
) -> float:
    """Cosine interpolation from ``start_value`` (step 0) to ``end_value`` (last step).

    ``value = end - (end - start) * (cos(pi * step / (max_steps - 1)) + 1) / 2``, e.g. the
    momentum of BYOL/DINO's teacher rising from 0.996 to 1. With ``period`` the value
    oscillates instead: ``end - (end - start) * (cos(2 * pi * step / period) + 1) / 2``.
    Steps at or beyond ``max_steps - 1`` return ``end_value`` (PyTorch Lightning calls the
    schedule once more after the last step); a warning is issued past ``max_steps``.

    Args:
        step: Current step, >= 0.
        max_steps: Total number of steps, >= 1.
        start_value: Value at step 0.
        end_value: Value at step ``max_steps - 1``.
        period: Optional period in steps for a cyclic schedule.

    Returns:
        The scheduled value.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    if period is not None:
        if period <= 0:
            raise ValueError(f"period must be >= 1, got {period}")
        return (
            end_value - (end_value - start_value) * (math.cos(2 * math.pi * step / period) + 1) / 2
        )
    if step > max_steps:
        warnings.warn(
            f"cosine_schedule: step {step} exceeds max_steps {max_steps}; returning end_value",
            stacklevel=2,
        )
    if max_steps == 1 or step >= max_steps - 1:
        return end_value
    return (
        end_value - (end_value - start_value) * (math.cos(math.pi * step / (max_steps - 1)) + 1) / 2
    )


@torch.no_grad()
def normalize_weight(weight: Tensor, dim: int = 1, keepdim: bool = True) -> None:
    """Scale ``weight`` in place to unit L2 norm along ``dim`` (e.g. SwAV prototypes).

    For a Linear weight of shape (out, in) and ``dim=1`` every output unit's weight vector
    gets norm 1.
    """
    weight.div_(torch.linalg.vector_norm(weight, dim=dim, keepdim=keepdim))


def get_weight_decay_parameters(
    modules: Iterable[nn.Module],
    decay_norm: bool = False,
    decay_bias: bool = False,
    norm_layers: tuple[type[nn.Module], ...] = NORM_LAYERS,
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Split parameters into those that get weight decay and those that do not.

    Weight decay on normalisation scales/shifts and on biases only shrinks them towards
    zero without regularising the function much, so SSL recipes (SimCLR's LARS, DINO,
    MAE) exclude them. Each parameter appears exactly once, even if a module is passed
    twice or shared.

    Args:
        modules: Modules whose parameters (recursively) are split.
        decay_norm: If True, parameters of ``norm_layers`` get weight decay too.
        decay_bias: If True, parameters named ``*bias`` outside norm layers get decay too.
        norm_layers: Layer types treated as normalisation layers.

    Returns:
        ``(params, params_no_weight_decay)``, e.g. for
        ``SGD([{"params": params}, {"params": params_no_weight_decay, "weight_decay": 0.0}])``.
    """
    params: list[nn.Parameter] = []
    params_no_weight_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in modules:
        for mod in module.modules():
            is_norm = isinstance(mod, norm_layers)
            for name, param in mod.named_parameters(recurse=False):
                if id(param) in seen:
                    continue
                seen.add(id(param))
                no_decay = not decay_norm if is_norm else (not decay_bias and name.endswith("bias"))
                (params_no_weight_decay if no_decay else params).append(param)
    return params, params_no_weight_decay
