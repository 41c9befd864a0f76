"""VICRegLoss against eq. 1-6 of Bardes et al. (2022), written out in loops."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from _contract import check_two_view_loss
from _ddp import assert_ddp_matches_full_batch, two_view_loss_worker
from selfsup.errors import ConfigError, DataError
from selfsup.loss import VICRegLoss

Matrix = list[list[float]]


def _variance(z: Matrix, eps: float) -> float:
    """v(Z) = (1/d) Σ_j max(0, 1 - sqrt(Var(z^j) + ε)), Var unbiased (eq. 1, 2)."""
    n, d = len(z), len(z[0])
    total = 0.0
    for j in range(d):
        mean = sum(z[i][j] for i in range(n)) / n
        var = sum((z[i][j] - mean) ** 2 for i in range(n)) / (n - 1)
        total += max(0.0, 1.0 - math.sqrt(var + eps))
    return total / d


def _covariance(z: Matrix) -> float:
    """c(Z) = (1/d) Σ_{i≠j} C(Z)²_ij with C(Z) = 1/(n-1) Σ (z - z̄)(z - z̄)ᵀ (eq. 3, 4)."""
    n, d = len(z), len(z[0])
    means = [sum(z[k][j] for k in range(n)) / n for j in range(d)]
    total = 0.0
    for i in range(d):
        for j in range(d):
            if i != j:
                c = sum((z[k][i] - means[i]) * (z[k][j] - means[j]) for k in range(n)) / (n - 1)
                total += c * c
    return total / d


def _invariance(z_a: Matrix, z_b: Matrix) -> float:
    """s(Z, Z') = (1/n) Σ_i ‖z_i - z'_i‖² (eq. 5)."""
    return sum(
        sum((a - b) ** 2 for a, b in zip(ra, rb, strict=True))
        for ra, rb in zip(z_a, z_b, strict=True)
    ) / len(z_a)


def ref_vicreg(z_a: Matrix, z_b: Matrix, lam: float, mu: float, nu: float, eps: float) -> float:
    """Eq. 6, with the authors' code's weighting: s / d and the variance terms halved."""
    d = len(z_a[0])
    return (
        lam * _invariance(z_a, z_b) / d
        + mu * (_variance(z_a, eps) + _variance(z_b, eps)) / 2
        + nu * (_covariance(z_a) + _covariance(z_b))
    )


def _rand(seed: int, *shape: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=torch.float64)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 6),
    d=st.integers(1, 5),
    scale=st.sampled_from([0.1, 1.0, 3.0]),  # below and above the variance hinge
    weights=st.sampled_from([(25.0, 25.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]),
)
def test_matches_the_paper(
    seed: int, n: int, d: int, scale: float, weights: tuple[float, float, float]
) -> None:
    lam, mu, nu = weights
    z_a, z_b = _rand(seed, n, d, scale=scale), _rand(seed + 1, n, d, scale=scale)
    loss = VICRegLoss(lambda_param=lam, mu_param=mu, nu_param=nu)(z_a, z_b)
    expected = ref_vicreg(z_a.tolist(), z_b.tolist(), lam, mu, nu, 1e-4)
    assert loss.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_collapsed_embeddings_pay_the_full_variance_hinge() -> None:
    z = torch.ones(4, 3, dtype=torch.float64)
    # Invariance 0, covariance 0, variance (1 - sqrt(ε)) for both views, halved and summed.
    loss = VICRegLoss()(z, z.clone())
    assert loss.item() == pytest.approx(25.0 * (1 - math.sqrt(1e-4)), rel=1e-12)


def test_contract() -> None:
    check_two_view_loss(VICRegLoss)


@pytest.mark.parametrize("key", ["lambda_param", "mu_param", "nu_param", "eps"])
@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf, True])
def test_bad_weights_are_rejected(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"{key} must be a finite number >= 0, got"):
        VICRegLoss(**{key: value})  # type: ignore[arg-type]  # bad input on purpose


@pytest.mark.parametrize(("a", "b"), [((3, 4), (3, 5)), ((3,), (3,)), ((1, 4), (1, 4))])
def test_bad_shapes_are_rejected(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    with pytest.raises(DataError, match="VICRegLoss"):
        VICRegLoss()(torch.zeros(a), torch.zeros(b))


def test_gather_distributed_without_process_group_is_single_process() -> None:
    z_a, z_b = _rand(0, 4, 3), _rand(1, 4, 3)
    torch.testing.assert_close(
        VICRegLoss(gather_distributed=True)(z_a, z_b), VICRegLoss()(z_a, z_b)
    )


# --------------------------------------------------------------------------- DDP, 2 processes

WORLD_SIZE, N_LOCAL, IN_DIM, OUT_DIM = 2, 3, 5, 4


def _make_model() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(IN_DIM, OUT_DIM).double()


def _global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    n = WORLD_SIZE * N_LOCAL
    return _rand(100, n, IN_DIM), _rand(200, n, IN_DIM)


def _loss(gather_distributed: bool) -> VICRegLoss:
    return VICRegLoss(gather_distributed=gather_distributed)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ddp_two_processes_reproduce_one_process(tmp_path: Path) -> None:
    # Every term is computed over the gathered global batch on every process (the variance
    # and covariance need it), so DDP's averaged gradient is the global loss's gradient.
    assert_ddp_matches_full_batch(
        Path(__file__), tmp_path, WORLD_SIZE, _make_model, _global_batch, lambda: _loss(False)
    )


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--worker":
    two_view_loss_worker(sys.argv, _make_model, _global_batch, lambda: _loss(True), N_LOCAL)
