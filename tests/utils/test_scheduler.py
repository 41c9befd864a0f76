"""CosineWarmupScheduler against its formula (linear warm-up, then cosine), in a loop."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from selfsup.errors import ConfigError
from selfsup.utils import LARS, CosineWarmupScheduler
from selfsup.utils.scheduler import cosine_warmup_schedule


def ref_factor(
    t: int, w: int, total: int, s: float, e: float, a: float = 0.0, b: float | None = None
) -> float:
    """t < W: a + (b - a)(t + 1)/W; then e - (e - s)(cos(π (t - W)/(T - W - 1)) + 1)/2,
    reaching e at t = T - 1 and staying there."""
    b = s if b is None else b
    if t < w:
        return a + (b - a) * (t + 1) / w
    if t >= total - 1:
        return e
    return e - (e - s) * (math.cos(math.pi * (t - w) / (total - w - 1)) + 1) / 2


def _optimizer(lr: float = 0.4) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        [
            {"params": [nn.Parameter(torch.zeros(1))]},
            {"params": [nn.Parameter(torch.zeros(1))], "lr": 2 * lr},
        ],
        lr=lr,
    )


def _lrs(scheduler: CosineWarmupScheduler, steps: int) -> list[list[float]]:
    """The rates of the first ``steps`` steps, stepping the scheduler in between."""
    out = [scheduler.get_last_lr()]
    for _ in range(steps - 1):
        scheduler.optimizer.step()
        scheduler.step()
        out.append(scheduler.get_last_lr())
    return out


@pytest.mark.parametrize(
    ("w", "total", "s", "e", "a", "b"),
    [
        (5, 20, 1.0, 0.001, 0.0, None),
        (0, 7, 1.0, 0.0, 0.0, None),
        (3, 10, 0.5, 0.1, 0.2, 0.9),
        (4, 4, 1.0, 0.01, 0.0, None),
        (1, 2, 1.0, 0.5, 0.0, None),
    ],
)
def test_matches_the_formula_over_the_whole_run(
    w: int, total: int, s: float, e: float, a: float, b: float | None
) -> None:
    optimizer = _optimizer()
    scheduler = CosineWarmupScheduler(
        optimizer, w, total, start_value=s, end_value=e, warmup_start_value=a, warmup_end_value=b
    )
    # Lightning steps the scheduler once more after the last epoch: t = T gives e too.
    for t, lrs in enumerate(_lrs(scheduler, total + 1)):
        factor = ref_factor(t, w, total, s, e, a, b)
        assert lrs == pytest.approx([0.4 * factor, 0.8 * factor], rel=1e-12, abs=1e-15)


def test_values_at_the_landmarks() -> None:
    # W = 4, T = 13: the cosine runs over t = 4..12, its middle at t = 8.
    f = [cosine_warmup_schedule(t, 13, 1.0, 0.0, 4) for t in range(14)]
    assert f[0] == pytest.approx(0.25)  # first warm-up step: 1/W, never 0
    assert f[3] == pytest.approx(1.0)  # end of the warm-up
    assert f[4] == pytest.approx(1.0)  # start of the cosine
    assert f[8] == pytest.approx(0.5)  # middle of the cosine
    assert f[12] == pytest.approx(0.0, abs=1e-15)  # last step
    assert f[13] == pytest.approx(0.0, abs=1e-15)
    assert all(x >= y for x, y in itertools.pairwise(f[3:]))


def test_period_oscillates_after_the_warmup() -> None:
    f = [cosine_warmup_schedule(t, 100, 1.0, 0.0, 2, period=4) for t in range(2, 10)]
    assert f == pytest.approx([1.0, 0.5, 0.0, 0.5, 1.0, 0.5, 0.0, 0.5], abs=1e-12)


def test_defaults_are_lightlys() -> None:
    scheduler = CosineWarmupScheduler(_optimizer(1.0), warmup_epochs=2, max_epochs=10)
    lrs = [lr[0] for lr in _lrs(scheduler, 10)]
    assert lrs[:2] == pytest.approx([0.5, 1.0])
    assert lrs[-1] == pytest.approx(0.001)


def test_resumes_from_last_epoch() -> None:
    full = [lr[0] for lr in _lrs(CosineWarmupScheduler(_optimizer(), 3, 12), 12)]
    optimizer = _optimizer()
    for group in optimizer.param_groups:
        group["initial_lr"] = group["lr"]
    resumed = CosineWarmupScheduler(optimizer, 3, 12, last_epoch=5)
    assert [lr[0] for lr in _lrs(resumed, 6)] == pytest.approx(full[6:])


def test_verbose_prints_the_new_rates(capsys: pytest.CaptureFixture[str]) -> None:
    scheduler = CosineWarmupScheduler(_optimizer(), 2, 5, verbose=True)
    scheduler.optimizer.step()
    scheduler.step()
    assert "step 1, group 1 lr 8.0000e-01" in capsys.readouterr().out


def test_drives_lars() -> None:
    p = nn.Parameter(torch.ones(3))
    optimizer = LARS([p], lr=0.3, momentum=0.9, weight_decay=1e-6)
    scheduler = CosineWarmupScheduler(optimizer, 2, 6)
    assert [lr[0] for lr in _lrs(scheduler, 3)] == pytest.approx([0.15, 0.3, 0.3])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"warmup_epochs": 11}, r"0 <= warmup_epochs <= max_epochs .* got warmup_epochs=11"),
        ({"warmup_epochs": -1}, r"got warmup_epochs=-1"),
        ({"warmup_epochs": 2.5}, r"got warmup_epochs=2.5"),
        ({"warmup_epochs": 0, "max_epochs": 0}, r"max_epochs must be >= 1, got 0"),
        ({"period": 0}, r"period must be None or a whole number >= 1, got 0"),
        ({"start_value": math.nan}, r"start_value must be a finite number, got nan"),
        ({"end_value": "0.1"}, r"end_value must be a finite number, got '0.1'"),
    ],
)
def test_bad_values_are_refused(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"warmup_epochs": 2, "max_epochs": 10, **kwargs}
    with pytest.raises(ConfigError, match=rf"CosineWarmupScheduler: .*{message}"):
        CosineWarmupScheduler(_optimizer(), **args)  # type: ignore[arg-type]
