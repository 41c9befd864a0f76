"""LARS: SGD with a layer-wise learning rate set by the ratio of weight to gradient norm.

You, Gitman & Ginsburg 2017, "Large Batch Training of Convolutional Networks" (eq. 6 and
Algorithm 1), for the weights w^l of layer l, their gradient ∇L(w^l), weight decay β, trust
coefficient η and global learning rate γ:

    λ^l = η · ‖w^l‖ / (‖∇L(w^l)‖ + β · ‖w^l‖)           (local learning rate, eq. 6)
    v^l ← m · v^l + γ · λ^l · (∇L(w^l) + β · w^l)       (momentum m)
    w^l ← w^l - v^l

The trust coefficient η < 1 bounds how far one update may move a layer's weights relative to
their norm, whatever the scale of its gradient. Here, as in PyTorch's
SGD and lightly's LARS, the learning rate multiplies the momentum buffer instead of each
update (the same steps for a constant rate), with optional dampening and Nesterov momentum:

    d = λ^l · (∇L(w^l) + β · w^l);   b ← m · b + (1 - dampening) · d;   w ← w - γ · b

SSL recipes (SimCLR, BYOL, Barlow Twins) leave biases and normalisation parameters out of
the layer-wise scaling and the weight decay; as in lightly, a parameter group with
``weight_decay=0`` (or ``lars_exclude=True``) takes plain SGD steps. A parameter whose norm
or gradient norm is 0 takes a plain SGD step too (its trust ratio would be 0 or undefined).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, overload

import torch
from torch.optim.optimizer import Optimizer, ParamsT

from selfsup.errors import ConfigError

__all__ = ["LARS"]


def _check_number(group: dict[str, Any], key: str, positive: bool = False) -> None:
    value = group[key]
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > 0 if positive else value >= 0)
    )
    if not ok:
        bound = "> 0" if positive else ">= 0"
        raise ConfigError(f"LARS: {key} must be a finite number {bound}, got {value!r}")


class LARS(Optimizer):
    """Layer-wise adaptive rate scaling (lightly's ``LARS``), one trust ratio per parameter
    tensor.

    Args:
        params: Parameters, or dicts of parameter groups; a group may set any argument
            below and ``lars_exclude=True`` to take plain SGD steps.
        lr: γ, the global learning rate, >= 0.
        momentum: m, >= 0.
        dampening: Dampening of the momentum, >= 0.
        weight_decay: β, >= 0; groups with 0 take plain SGD steps (no layer-wise scaling).
        nesterov: Nesterov momentum (needs momentum > 0 and dampening 0).
        trust_coefficient: η, > 0 (0.001 in the paper).
        eps: Added to the denominator of the trust ratio, >= 0.

    Raises:
        ConfigError: For a bad value (naming it), in the arguments or in a group.

    Examples:
        >>> from selfsup.models.utils import get_weight_decay_parameters
        >>> decay, no_decay = get_weight_decay_parameters([model])
        >>> optimizer = LARS(
        ...     [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}],
        ...     lr=0.3, momentum=0.9, weight_decay=1e-6,
        ... )
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        trust_coefficient: float = 0.001,
        eps: float = 1e-8,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "trust_coefficient": trust_coefficient,
            "eps": eps,
            "lars_exclude": False,
        }
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (see :class:`torch.optim.Optimizer`), checking its values."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for key in ("lr", "momentum", "dampening", "weight_decay", "eps"):
            _check_number(group, key)
        _check_number(group, "trust_coefficient", positive=True)
        for key in ("nesterov", "lars_exclude"):
            if not isinstance(group[key], bool):
                raise ConfigError(f"LARS: {key} must be True or False, got {group[key]!r}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ConfigError(
                "LARS: nesterov=True needs momentum > 0 and dampening 0, got momentum="
                f"{group['momentum']!r} and dampening={group['dampening']!r}"
            )

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One update of every parameter with a gradient; ``closure`` recomputes the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        self._update(p, p.grad, group)
        return loss

    def _update(self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]) -> None:
        weight_decay = group["weight_decay"]
        step = grad
        if weight_decay != 0 and not group["lars_exclude"]:
            w_norm = torch.linalg.vector_norm(p)
            g_norm = torch.linalg.vector_norm(grad)
            if w_norm > 0 and g_norm > 0:
                # λ = η ‖w‖ / (‖∇L(w)‖ + β ‖w‖), eq. 6
                trust = (
                    group["trust_coefficient"]
                    * w_norm
                    / (g_norm + weight_decay * w_norm + group["eps"])
                )
                step = (grad + weight_decay * p) * trust
        elif weight_decay != 0:
            step = grad + weight_decay * p
        momentum = group["momentum"]
        if momentum != 0:
            state = self.state[p]
            if "momentum_buffer" not in state:
                buffer = state["momentum_buffer"] = step.clone()
            else:
                buffer = state["momentum_buffer"]
                buffer.mul_(momentum).add_(step, alpha=1 - group["dampening"])
            step = step + momentum * buffer if group["nesterov"] else buffer
        p.add_(step, alpha=-group["lr"])
