"""LARS against the update rule of You et al. (2017), eq. 6 and Algorithm 1, by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from selfsup.errors import ConfigError
from selfsup.utils import LARS


def _norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def ref_lars_steps(
    w: list[float],
    grads: list[list[float]],
    lr: float,
    momentum: float,
    weight_decay: float,
    eta: float,
    eps: float,
) -> list[float]:
    """Algorithm 1: λ = η‖w‖/(‖g‖ + β‖w‖ + ε); v ← m v + γ λ (g + β w); w ← w - v."""
    v = [0.0] * len(w)
    for g in grads:
        local_lr = eta * _norm(w) / (_norm(g) + weight_decay * _norm(w) + eps)
        v = [
            momentum * vi + lr * local_lr * (gi + weight_decay * wi)
            for vi, gi, wi in zip(v, g, w, strict=True)
        ]
        w = [wi - vi for wi, vi in zip(w, v, strict=True)]
    return w


def _param(seed: int, *shape: int) -> nn.Parameter:
    g = torch.Generator().manual_seed(seed)
    return nn.Parameter(torch.randn(*shape, generator=g, dtype=torch.float64))


def _grads(seed: int, count: int, *shape: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g, dtype=torch.float64) for _ in range(count)]


def _run(
    optimizer: torch.optim.Optimizer, params: list[nn.Parameter], grads: list[list[torch.Tensor]]
) -> None:
    for step_grads in grads:
        for p, g in zip(params, step_grads, strict=True):
            p.grad = g.clone()
        optimizer.step()


@pytest.mark.parametrize(
    ("lr", "momentum", "weight_decay", "eta", "steps"),
    [
        (0.5, 0.0, 1e-2, 0.001, 1),
        (2.0, 0.0, 0.3, 0.02, 1),
        (0.3, 0.9, 1e-4, 0.001, 3),
        (1.0, 0.5, 0.1, 0.05, 4),
    ],
)
def test_steps_match_the_paper(
    lr: float, momentum: float, weight_decay: float, eta: float, steps: int
) -> None:
    # Two "layers" with norms far apart: each gets its own local learning rate.
    params = [_param(0, 3, 4), nn.Parameter(100 * _param(1, 5).detach())]
    grads = [_grads(10 + i, steps, *p.shape) for i, p in enumerate(params)]
    start = [p.detach().clone() for p in params]
    optimizer = LARS(
        params, lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=eta
    )
    _run(optimizer, params, [list(step) for step in zip(*grads, strict=True)])
    for p, w0, gs in zip(params, start, grads, strict=True):
        expected = ref_lars_steps(
            w0.flatten().tolist(),
            [g.flatten().tolist() for g in gs],
            lr,
            momentum,
            weight_decay,
            eta,
            1e-8,
        )
        torch.testing.assert_close(
            p.detach().flatten(), torch.tensor(expected, dtype=torch.float64)
        )


def test_update_size_is_set_by_the_weight_norm_not_the_gradient() -> None:
    # With β ≈ 0, ‖Δw‖ = γ λ ‖∇L‖ ≈ γ η ‖w‖, whatever the scale of the gradient.
    for scale in (1e-3, 1.0, 1e3):
        p = _param(0, 10)
        w0 = p.detach().clone()
        p.grad = scale * _grads(1, 1, 10)[0]
        LARS([p], lr=1.0, weight_decay=1e-12, trust_coefficient=0.01).step()
        step = torch.linalg.vector_norm(p.detach() - w0).item()
        assert step == pytest.approx(0.01 * torch.linalg.vector_norm(w0).item(), rel=1e-4)


@pytest.mark.parametrize("exclude", [{"weight_decay": 0.0}, {"lars_exclude": True}])
@pytest.mark.parametrize(
    "sgd",
    [
        {"momentum": 0.0},
        {"momentum": 0.9},
        {"momentum": 0.9, "nesterov": True},
        {"momentum": 0.8, "dampening": 0.3},
    ],
)
def test_excluded_groups_take_sgd_steps(exclude: dict[str, object], sgd: dict[str, object]) -> None:
    # Biases and norm parameters (weight_decay 0, as lightly) or lars_exclude groups.
    grads = _grads(5, 4, 6)
    weight_decay = 0.0 if "weight_decay" in exclude else 1e-2
    a, b = _param(0, 6), _param(0, 6)
    lars = LARS([{"params": [a], **exclude}], lr=0.1, weight_decay=1e-2, **sgd)  # type: ignore[arg-type]
    reference = torch.optim.SGD([b], lr=0.1, weight_decay=weight_decay, **sgd)  # type: ignore[arg-type]
    _run(lars, [a], [[g] for g in grads])
    _run(reference, [b], [[g] for g in grads])
    torch.testing.assert_close(a, b)


def test_mixed_groups_scale_only_the_decayed_one() -> None:
    w, bias = _param(0, 4, 4), _param(1, 4)
    w0, b0 = w.detach().clone(), bias.detach().clone()
    optimizer = LARS(
        [{"params": [w]}, {"params": [bias], "weight_decay": 0.0}], lr=1.0, weight_decay=0.1
    )
    gw, gb = _grads(2, 1, 4, 4)[0], _grads(3, 1, 4)[0]
    w.grad, bias.grad = gw.clone(), gb.clone()
    optimizer.step()
    torch.testing.assert_close(bias.detach(), b0 - gb)
    expected = ref_lars_steps(
        w0.flatten().tolist(), [gw.flatten().tolist()], 1.0, 0.0, 0.1, 0.001, 1e-8
    )
    torch.testing.assert_close(w.detach().flatten(), torch.tensor(expected, dtype=torch.float64))


def test_zero_weights_take_a_plain_gradient_step() -> None:
    # A zero-initialised layer would never move with a trust ratio of η·0/‖g‖ = 0.
    p = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    p.grad = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    LARS([p], lr=0.1, weight_decay=1e-4).step()
    torch.testing.assert_close(p.detach(), -0.1 * p.grad)


def test_closure_loss_is_returned_and_trains() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    optimizer = LARS(
        model.parameters(), lr=1.0, momentum=0.9, weight_decay=1e-4, trust_coefficient=0.02
    )

    def closure() -> float:
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return float(loss.detach())

    losses = [optimizer.step(closure) for _ in range(30)]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -0.1}, r"lr must be a finite number >= 0, got -0.1"),
        ({"lr": math.nan}, r"lr must be a finite number >= 0, got nan"),
        ({"momentum": -0.9}, r"momentum must be a finite number >= 0, got -0.9"),
        ({"weight_decay": -1e-4}, r"weight_decay must be a finite number >= 0, got -0.0001"),
        ({"trust_coefficient": 0.0}, r"trust_coefficient must be a finite number > 0, got 0.0"),
        ({"eps": math.inf}, r"eps must be a finite number >= 0, got inf"),
        ({"nesterov": True}, r"nesterov=True needs momentum > 0 and dampening 0, got momentum=0"),
        (
            {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
            r"nesterov=True needs .* and dampening=0.1",
        ),
    ],
)
def test_bad_values_are_refused(kwargs: dict[str, float], message: str) -> None:
    params = {"lr": 0.1, **kwargs}
    with pytest.raises(ConfigError, match=rf"LARS: {message}"):
        LARS([_param(0, 2)], **params)  # type: ignore[arg-type]


def test_bad_group_values_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"LARS: weight_decay must be .* got -1"):
        LARS([{"params": [_param(0, 2)], "weight_decay": -1}], lr=0.1)
    with pytest.raises(ConfigError, match=r"LARS: lars_exclude must be True or False, got 'yes'"):
        LARS([{"params": [_param(0, 2)], "lars_exclude": "yes"}], lr=0.1)
