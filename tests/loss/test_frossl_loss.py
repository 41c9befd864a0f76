"""FroSSLLoss against FroSSL's objective (Skean et al. 2023), written out in loops."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from _contract import check_two_view_loss
from selfsup.errors import ConfigError, DataError
from selfsup.loss import FroSSLLoss

Matrix = list[list[float]]


def _on_sphere(z: Matrix) -> Matrix:
    """Every row scaled to norm √D."""
    d = len(z[0])
    out = []
    for row in z:
        norm = math.sqrt(sum(v * v for v in row))
        out.append([math.sqrt(d) * v / norm for v in row])
    return out


def _log_frobenius(z: Matrix) -> float:
    """log ‖C‖²_F with C = ZᵀZ / tr(ZᵀZ), the D x D covariance."""
    n, d = len(z), len(z[0])
    c = [[sum(z[k][i] * z[k][j] for k in range(n)) for j in range(d)] for i in range(d)]
    trace = sum(c[i][i] for i in range(d))
    return math.log(sum((c[i][j] / trace) ** 2 for i in range(d) for j in range(d)))


def ref_frossl(views: list[Matrix], w: float) -> float:
    """Σ_v [log ‖C_v‖²_F + w (1/(N·D)) ‖Z_v − Z̄‖²_F], rows of every Z_v on the √D sphere."""
    views = [_on_sphere(z) for z in views]
    v_count, n, d = len(views), len(views[0]), len(views[0][0])
    mean = [[sum(z[i][j] for z in views) / v_count for j in range(d)] for i in range(n)]
    total = 0.0
    for z in views:
        mse = sum((z[i][j] - mean[i][j]) ** 2 for i in range(n) for j in range(d)) / (n * d)
        total += _log_frobenius(z) + w * mse
    return total


def _rand(seed: int, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    v=st.integers(2, 4),
    n=st.integers(2, 6),  # fewer and more samples than dimensions: ZZᵀ and ZᵀZ
    d=st.integers(1, 5),
    w=st.sampled_from([1.0, 0.0, 7.5]),
)
def test_matches_the_paper(seed: int, v: int, n: int, d: int, w: float) -> None:
    z = _rand(seed, v, n, d)
    loss = FroSSLLoss(invariance_weight=w)(list(z))
    assert loss.item() == pytest.approx(ref_frossl([x.tolist() for x in z], w), rel=1e-9, abs=1e-9)


def test_collapse_costs_the_most_and_equal_eigenvalues_the_least() -> None:
    # One direction: C has the one eigenvalue 1, log ‖C‖² = 0; identical views: no MSE.
    collapsed = torch.zeros(4, 3, dtype=torch.float64)
    collapsed[:, 0] = 1.0
    assert FroSSLLoss()([collapsed, 2 * collapsed]).item() == pytest.approx(0.0, abs=1e-12)
    # Orthogonal rows (N = D = 4): C = I/4, log ‖C‖² = log(1/4) per view.
    spread = torch.eye(4, dtype=torch.float64)
    assert FroSSLLoss()([spread, spread.clone()]).item() == pytest.approx(2 * math.log(0.25))


def test_invariance_is_the_mse_to_the_mean_view() -> None:
    # Two orthogonal unit views of one direction each: rows on the √D sphere differ from
    # their mean by half their difference, so MSE = (1/(N·D)) Σ ‖(z0 - z1)/2‖² per view.
    d = 2
    z0 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    z1 = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    regulariser = 2 * math.log(0.5)
    mse = 2 * 1.0 / (2 * d)  # N = 2 rows, each at ‖√2(e_i - e_j)/2‖² = 1 from the mean
    for w in (0.0, 1.0, 3.0):
        loss = FroSSLLoss(invariance_weight=w)([z0, z1]).item()
        assert loss == pytest.approx(regulariser + w * 2 * mse)


class _TwoViews(nn.Module):
    """FroSSLLoss over two views, in the two-view signature of the contract."""

    def __init__(self) -> None:
        super().__init__()
        self.loss = FroSSLLoss()

    def forward(self, z0: Tensor, z1: Tensor) -> Tensor:
        out: Tensor = self.loss([z0, z1])
        return out


def test_contract() -> None:
    check_two_view_loss(_TwoViews)


@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf, True])
def test_bad_invariance_weight_is_rejected(value: object) -> None:
    with pytest.raises(
        ConfigError, match=r"FroSSLLoss: invariance_weight must be a finite number >= 0 \(paper"
    ):
        FroSSLLoss(invariance_weight=value)  # type: ignore[arg-type]  # bad input on purpose


@pytest.mark.parametrize(
    ("views", "message"),
    [
        ([torch.zeros(3, 4)], "at least 2 views"),
        (torch.zeros(2, 3, 4), "got a tensor"),
        ([torch.ones(3, 4), torch.ones(3, 5)], r"got shapes \[\(3, 4\), \(3, 5\)\]"),
        ([torch.ones(1, 4), torch.ones(1, 4)], "batch_size >= 2"),
    ],
)
def test_bad_views_are_rejected(views: object, message: str) -> None:
    with pytest.raises(DataError, match=f"FroSSLLoss: .*{message}"):
        FroSSLLoss()(views)
