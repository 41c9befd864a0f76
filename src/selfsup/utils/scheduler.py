"""Learning-rate schedules: linear warm-up, then cosine decay (lightly's ``utils.scheduler``).

The factor multiplying each group's base learning rate at step t (an epoch or an
optimisation step), with W warm-up steps out of T:

    t < W:   f(t) = a + (b - a) · (t + 1) / W                       (linear warm-up)
    t >= W:  f(t) = e - (e - s) · (cos(π · (t - W) / (T - W - 1)) + 1) / 2   (cosine)

with a = ``warmup_start_value``, b = ``warmup_end_value`` (= s by default), s =
``start_value`` and e = ``end_value``. The warm-up of large-batch SGD (Goyal et al. 2017)
starts small and reaches the full rate after W steps (its first step already at a + (b - a)/W,
so no step is taken at rate 0); the cosine (Loshchilov & Hutter 2017, SGDR eq. 5 without
restarts) then goes from s at step W to e at the last step, T - 1. With ``period`` the cosine
oscillates instead: f(t) = e - (e - s) · (cos(2π · (t - W) / period) + 1) / 2.
"""

from __future__ import annotations

import math

import torch
from torch.optim import Optimizer

from selfsup.errors import ConfigError
from selfsup.models.utils import cosine_schedule

__all__ = ["CosineWarmupScheduler", "cosine_schedule", "cosine_warmup_schedule"]


def _check_real(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"CosineWarmupScheduler: {key} must be a finite number, got {value!r}")
    return float(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_steps(warmup_steps: int, max_steps: int, period: int | None) -> None:
    # Annotated as ints, but a config may hand over anything: check the types too.
    if not (_is_int(warmup_steps) and _is_int(max_steps) and 0 <= warmup_steps <= max_steps):
        raise ConfigError(
            "CosineWarmupScheduler: needs whole numbers 0 <= warmup_epochs <= max_epochs and "
            f"max_epochs >= 1, got warmup_epochs={warmup_steps!r}, max_epochs={max_steps!r}"
        )
    if max_steps < 1:
        raise ConfigError(f"CosineWarmupScheduler: max_epochs must be >= 1, got {max_steps!r}")
    if period is not None and not (_is_int(period) and period >= 1):
        raise ConfigError(
            f"CosineWarmupScheduler: period must be None or a whole number >= 1, got {period!r}"
        )


def cosine_warmup_schedule(
    step: int,
    max_steps: int,
    start_value: float,
    end_value: float,
    warmup_steps: int,
    warmup_start_value: float = 0.0,
    warmup_end_value: float | None = None,
    period: int | None = None,
) -> float:
    """f(t) of the module docstring: linear warm-up over ``warmup_steps``, then cosine.

    Args:
        step: t, >= 0.
        max_steps: T, the steps of the whole schedule, >= 1.
        start_value: s, the value at the end of the warm-up.
        end_value: e, the value at step T - 1 (and after).
        warmup_steps: W, 0 <= W <= T.
        warmup_start_value: a (the warm-up's first step is a + (b - a) / W).
        warmup_end_value: b, ``start_value`` if None.
        period: Steps of one full cosine cycle after the warm-up, or None for one half
            cycle from s to e.

    Returns:
        The factor at ``step``.
    """
    _check_steps(warmup_steps, max_steps, period)
    if step < warmup_steps:
        end = start_value if warmup_end_value is None else warmup_end_value
        return warmup_start_value + (end - warmup_start_value) * (step + 1) / warmup_steps
    # cosine_schedule reaches end_value at its max_steps - 1: here at step T - 1.
    return cosine_schedule(
        step - warmup_steps, max(1, max_steps - warmup_steps), start_value, end_value, period
    )


class CosineWarmupScheduler(torch.optim.lr_scheduler.LambdaLR):
    """Linear warm-up then cosine decay of the learning rate (lightly's
    ``CosineWarmupScheduler``): each group's rate is its base rate times f(t) of
    :func:`cosine_warmup_schedule`, t counting :meth:`step` calls (epochs or steps).

    Args:
        optimizer: The optimiser whose rates are scheduled.
        warmup_epochs: W, steps of linear warm-up, 0 <= W <= max_epochs.
        max_epochs: T, steps of the whole schedule, >= 1.
        last_epoch: Index of the last step when resuming (-1: start).
        start_value: s, factor at the end of the warm-up (1.0).
        end_value: e, factor at the last step (0.001).
        period: Steps of one cosine cycle, or None for one decay from s to e.
        verbose: Print every group's new rate after each step.
        warmup_start_value: a, the warm-up's starting factor (0.0).
        warmup_end_value: b, the warm-up's final factor (None: ``start_value``).

    Raises:
        ConfigError: For bad step counts or factors, naming the value.

    Examples:
        >>> optimizer = LARS(model.parameters(), lr=0.3, momentum=0.9, weight_decay=1e-6)
        >>> scheduler = CosineWarmupScheduler(optimizer, warmup_epochs=10, max_epochs=100)
        >>> for epoch in range(100):
        ...     train_one_epoch(model, optimizer)
        ...     scheduler.step()
    """

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_epochs: int,
        max_epochs: int,
        last_epoch: int = -1,
        start_value: float = 1.0,
        end_value: float = 0.001,
        period: int | None = None,
        verbose: bool = False,
        warmup_start_value: float = 0.0,
        warmup_end_value: float | None = None,
    ) -> None:
        _check_steps(warmup_epochs, max_epochs, period)
        self.warmup_epochs = warmup_epochs
        self.max_epochs = max_epochs
        self.start_value = _check_real("start_value", start_value)
        self.end_value = _check_real("end_value", end_value)
        self.period = period
        self.verbose = verbose
        self.warmup_start_value = _check_real("warmup_start_value", warmup_start_value)
        self.warmup_end_value = (
            None if warmup_end_value is None else _check_real("warmup_end_value", warmup_end_value)
        )
        super().__init__(optimizer, lr_lambda=self.scale_lr, last_epoch=last_epoch)

    def scale_lr(self, epoch: int) -> float:
        """f(``epoch``), the factor of the base learning rates."""
        return cosine_warmup_schedule(
            epoch,
            self.max_epochs,
            self.start_value,
            self.end_value,
            self.warmup_epochs,
            self.warmup_start_value,
            self.warmup_end_value,
            self.period,
        )

    def step(self, epoch: int | None = None) -> None:
        """Move to the next step (see :class:`torch.optim.lr_scheduler.LRScheduler`)."""
        super().step(epoch)
        if self.verbose:
            for i, lr in enumerate(self.get_last_lr()):
                print(f"CosineWarmupScheduler: step {self.last_epoch}, group {i} lr {lr:.4e}")
