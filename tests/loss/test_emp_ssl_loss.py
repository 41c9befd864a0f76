"""EMPSSLLoss and TCRLoss against EMP-SSL's objective (Tong et al. 2023, sec. 3), in loops."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from _contract import check_two_view_loss
from selfsup.errors import ConfigError, DataError
from selfsup.loss import EMPSSLLoss, TCRLoss

Matrix = list[list[float]]


def _normalized(z: Matrix) -> Matrix:
    out = []
    for row in z:
        norm = math.sqrt(sum(v * v for v in row))
        out.append([v / max(norm, 1e-12) for v in row])
    return out


def _log_det(m: Matrix) -> float:
    """log det of a positive-definite matrix by Gaussian elimination (no pivoting needed)."""
    a = [row[:] for row in m]
    n = len(a)
    total = 0.0
    for k in range(n):
        pivot = a[k][k]
        total += math.log(pivot)
        for i in range(k + 1, n):
            factor = a[i][k] / pivot
            for j in range(k, n):
                a[i][j] -= factor * a[k][j]
    return total


def ref_rate(z: Matrix, eps: float) -> float:
    """R(Z) = ½ log det(I_d + d/(b·ε²) Σ_j z_j z_jᵀ), with ε² = ``eps``, rows normalised."""
    z = _normalized(z)
    b, d = len(z), len(z[0])
    c = d / (b * eps)
    m = [
        [(1.0 if p == q else 0.0) + c * sum(z[j][p] * z[j][q] for j in range(b)) for q in range(d)]
        for p in range(d)
    ]
    return 0.5 * _log_det(m)


def _cosine(u: list[float], v: list[float]) -> float:
    dot = sum(a * b for a, b in zip(u, v, strict=True))
    return dot / max(math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)), 1e-8)


def ref_emp_ssl(patches: list[Matrix], eps: float, lam: float) -> float:
    """−(1/n) Σ_i [R(Z_i) + λ D(Z_i, Z̄)], D the mean over images of the cosine similarity."""
    patches = [_normalized(z) for z in patches]
    n, b, d = len(patches), len(patches[0]), len(patches[0][0])
    mean = [[sum(patches[i][j][k] for i in range(n)) / n for k in range(d)] for j in range(b)]
    total = 0.0
    for z in patches:
        similarity = sum(_cosine(z[j], mean[j]) for j in range(b)) / b
        total += ref_rate(z, eps) + lam * similarity
    return -total / n


def _rand(seed: int, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 4),
    b=st.integers(1, 6),  # fewer and more samples than dimensions: both sides of Sylvester
    d=st.integers(1, 5),
    eps=st.sampled_from([0.2, 0.05, 1.0]),
    lam=st.sampled_from([200.0, 1.0, 0.0]),
)
def test_matches_the_paper(seed: int, n: int, b: int, d: int, eps: float, lam: float) -> None:
    z = _rand(seed, n, b, d)
    loss = EMPSSLLoss(tcr_eps=eps, inv_coef=lam)(list(z))
    expected = ref_emp_ssl([p.tolist() for p in z], eps, lam)
    assert loss.item() == pytest.approx(expected, rel=1e-9, abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 6), d=st.integers(1, 5))
def test_tcr_loss_is_minus_the_coding_rate(seed: int, b: int, d: int) -> None:
    z = _rand(seed, b, d)
    assert TCRLoss(eps=0.2)(z).item() == pytest.approx(-ref_rate(z.tolist(), 0.2), rel=1e-9)


def test_collapsed_patches_have_the_rate_of_one_direction() -> None:
    # One direction u for every sample: ZᵀZ = b·uuᵀ has the one eigenvalue b, so
    # R = ½ log(1 + d/ε²), and every patch equals the mean (D = 1).
    b, d, eps = 5, 4, 0.2
    z = torch.zeros(b, d, dtype=torch.float64)
    z[:, 1] = 3.0
    loss = EMPSSLLoss(tcr_eps=eps, inv_coef=200.0)([z, z.clone(), 2 * z])
    assert loss.item() == pytest.approx(-(0.5 * math.log(1 + d / eps) + 200.0), rel=1e-12)


def test_spread_embeddings_code_at_a_higher_rate_than_collapsed_ones() -> None:
    spread = torch.eye(4, dtype=torch.float64)
    collapsed = torch.ones(4, 4, dtype=torch.float64)
    assert TCRLoss()(spread) < TCRLoss()(collapsed)


def test_scaling_the_embeddings_changes_nothing() -> None:
    z = _rand(0, 3, 6, 4)
    torch.testing.assert_close(EMPSSLLoss()(list(10 * z)), EMPSSLLoss()(list(z)))


class _TwoPatches(nn.Module):
    """EMPSSLLoss over two patches, in the two-view signature of the contract."""

    def __init__(self) -> None:
        super().__init__()
        self.loss = EMPSSLLoss()

    def forward(self, z0: Tensor, z1: Tensor) -> Tensor:
        out: Tensor = self.loss([z0, z1])
        return out


def test_contract() -> None:
    check_two_view_loss(_TwoPatches)


@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf, True])
def test_bad_eps_is_rejected(value: object) -> None:
    with pytest.raises(
        ConfigError, match=r"tcr_eps must be a finite number > 0 \(paper: 0.2\), got"
    ):
        EMPSSLLoss(tcr_eps=value)  # type: ignore[arg-type]  # bad input on purpose
    with pytest.raises(
        ConfigError, match=r"TCRLoss: eps must be a finite number > 0 \(paper: 0.2\), got"
    ):
        TCRLoss(eps=value)  # type: ignore[arg-type]  # bad input on purpose


@pytest.mark.parametrize("value", [-1.0, math.nan, True])
def test_bad_inv_coef_is_rejected(value: object) -> None:
    with pytest.raises(
        ConfigError, match=r"inv_coef must be a finite number >= 0 \(paper: 200\), got"
    ):
        EMPSSLLoss(inv_coef=value)  # type: ignore[arg-type]  # bad input on purpose


@pytest.mark.parametrize(
    ("views", "message"),
    [
        ([torch.zeros(3, 4)], "at least 2 patch embeddings"),
        (torch.zeros(2, 3, 4), "got a tensor"),
        (
            [torch.zeros(3, 4), torch.zeros(3, 5)],
            r"same shape .* got shapes \[\(3, 4\), \(3, 5\)\]",
        ),
        ([torch.zeros(3), torch.zeros(3)], "same shape"),
    ],
)
def test_bad_views_are_rejected(views: object, message: str) -> None:
    with pytest.raises(DataError, match=f"EMPSSLLoss: .*{message}"):
        EMPSSLLoss()(views)
