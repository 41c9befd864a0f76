"""HypersphereLoss against L_align and L_uniform of Wang and Isola (2020), written in loops."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _contract import check_two_view_loss
from selfsup.errors import ConfigError, DataError
from selfsup.loss import HypersphereLoss
from selfsup.loss.hypersphere_loss import alignment_loss, uniformity_loss

Vec = list[float]


def _unit(v: Vec) -> Vec:
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def _sq_dist(a: Vec, b: Vec) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))


def ref_align(x: list[Vec], y: list[Vec], alpha: float) -> float:
    """E_pos ‖f(x) - f(y)‖₂^α over the n positive pairs."""
    return sum(_sq_dist(a, b) ** (alpha / 2) for a, b in zip(x, y, strict=True)) / len(x)


def ref_uniform(x: list[Vec], t: float) -> float:
    """log E ‖exp(-t ‖f(x_i) - f(x_j)‖₂²)‖ over the pairs i < j."""
    terms = [
        math.exp(-t * _sq_dist(x[i], x[j])) for i in range(len(x)) for j in range(i + 1, len(x))
    ]
    return math.log(sum(terms) / len(terms))


def ref_hypersphere(z_a: list[Vec], z_b: list[Vec], t: float, lam: float, alpha: float) -> float:
    a, b = [_unit(v) for v in z_a], [_unit(v) for v in z_b]
    return ref_align(a, b, alpha) + lam * (ref_uniform(a, t) + ref_uniform(b, t)) / 2


def _rand(seed: int, *shape: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 6),
    d=st.integers(1, 5),
    t=st.sampled_from([0.5, 1.0, 2.0]),
    lam=st.sampled_from([0.0, 1.0, 3.0]),
    alpha=st.sampled_from([1.0, 2.0, 3.0]),
)
def test_matches_the_paper(seed: int, n: int, d: int, t: float, lam: float, alpha: float) -> None:
    z_a, z_b = _rand(seed, n, d), _rand(seed + 1, n, d)
    loss = HypersphereLoss(t=t, lam=lam, alpha=alpha)(z_a, z_b)
    expected = ref_hypersphere(z_a.tolist(), z_b.tolist(), t, lam, alpha)
    assert loss.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_uniformity_is_stable_for_large_t() -> None:
    x = torch.nn.functional.normalize(_rand(0, 5, 3), dim=1)
    value = uniformity_loss(x, t=1000.0)
    assert torch.isfinite(value)
    # exp(-1000 d²) underflows in floats: the log-mean-exp is the closest pair's term,
    # -t·d²_min - log(10), the other nine being smaller by far.
    closest = min(_sq_dist(a, b) for i, a in enumerate(x.tolist()) for b in x.tolist()[i + 1 :])
    assert value.item() == pytest.approx(-1000.0 * closest - math.log(10), abs=1e-6)


def test_collapsed_and_antipodal_extremes() -> None:
    same = torch.ones(4, 3, dtype=torch.float64)
    # Collapse: perfectly aligned (0) and as non-uniform as can be (log 1 = 0).
    assert HypersphereLoss()(same, same.clone()).item() == pytest.approx(0.0, abs=1e-12)
    two = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    # Two antipodal points: ‖x_1 - x_2‖² = 4, L_uniform = -4t.
    assert HypersphereLoss(t=0.5)(two, two.clone()).item() == pytest.approx(-2.0, rel=1e-12)


def test_gradient_is_finite_where_points_coincide() -> None:
    z = torch.ones(4, 3, dtype=torch.float64, requires_grad=True)
    HypersphereLoss()(z, z.detach().clone()).backward()
    assert z.grad is not None
    assert torch.isfinite(z.grad).all()


def test_alignment_of_identical_views_is_zero() -> None:
    x = _rand(0, 4, 3)
    assert alignment_loss(x, x.clone()).item() == 0.0


def test_contract() -> None:
    check_two_view_loss(HypersphereLoss)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"t": 0.0}, "t must be a finite number > 0"),
        ({"t": math.inf}, "t must be a finite number > 0"),
        ({"lam": -1.0}, "lam must be a finite number >= 0"),
        ({"alpha": 0.0}, "alpha must be a finite number > 0"),
        ({"alpha": math.nan}, "alpha must be a finite number > 0"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=f"HypersphereLoss: {message}"):
        HypersphereLoss(**kwargs)


@pytest.mark.parametrize(("a", "b"), [((3, 4), (3, 5)), ((3,), (3,)), ((1, 4), (1, 4))])
def test_bad_shapes_are_rejected(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    with pytest.raises(DataError, match="HypersphereLoss"):
        HypersphereLoss()(torch.zeros(a), torch.zeros(b))
