"""Tests for selfsup.loss.koleo_loss against the KoLeo estimator written as loops.

Reference (Sablayrolles et al. 2019, eq. 4): L = -1/n Σ_i log(min_{j≠i} ||x_i - x_j||) on
l2-normalised rows.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from _contract import check_two_view_loss
from selfsup.errors import ConfigError, DataError
from selfsup.loss import KoLeoLoss
from selfsup.loss.koleo_loss import koleo


def ref_koleo(rows: list[list[float]]) -> float:
    """-1/n Σ_i log min_{j≠i} ||x̂_i - x̂_j|| with plain floats."""
    unit = []
    for row in rows:
        norm = math.sqrt(sum(v * v for v in row))
        unit.append([v / norm for v in row])
    total = 0.0
    for i, a in enumerate(unit):
        nearest = min(
            math.sqrt(sum((p - q) ** 2 for p, q in zip(a, b, strict=True)))
            for j, b in enumerate(unit)
            if j != i
        )
        total += math.log(nearest)
    return -total / len(unit)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 7), dim=st.integers(2, 5))
def test_matches_the_estimator(seed: int, n: int, dim: int) -> None:
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    expected = ref_koleo(x.tolist())
    assert KoLeoLoss(eps=1e-12)(x).item() == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_scale_of_a_row_does_not_matter() -> None:
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    scaled = x * torch.tensor([[1.0], [3.0], [0.5], [10.0], [2.0]], dtype=torch.float64)
    torch.testing.assert_close(koleo(x), koleo(scaled))


def test_spread_points_score_lower_than_clustered_ones() -> None:
    spread = torch.eye(4, dtype=torch.float64)
    clustered = torch.ones(4, 4, dtype=torch.float64) + 0.01 * spread
    assert koleo(spread) < koleo(clustered)
    # Orthonormal rows are all sqrt(2) apart.
    assert koleo(spread).item() == pytest.approx(-math.log(math.sqrt(2)), abs=1e-6)


def test_identical_rows_give_a_finite_loss() -> None:
    loss = koleo(torch.ones(3, 4))
    assert torch.isfinite(loss)


class _BothViews(nn.Module):
    """KoLeo of each view (the contract kit passes two views)."""

    def __init__(self) -> None:
        super().__init__()
        self.loss = KoLeoLoss()

    def forward(self, z0: Tensor, z1: Tensor) -> Tensor:
        out: Tensor = self.loss(z0) + self.loss(z1)
        return out


def test_contract() -> None:
    check_two_view_loss(_BothViews)


@pytest.mark.parametrize("shape", [(1, 4), (4,), (2, 3, 4)])
def test_bad_shape_is_a_clear_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(DataError, match=r"koleo: expected \(n, d\) features with n >= 2"):
        koleo(torch.randn(*shape))


@pytest.mark.parametrize("eps", [0.0, -1.0, math.nan])
def test_bad_eps_is_a_clear_error(eps: float) -> None:
    with pytest.raises(ConfigError, match="KoLeoLoss: eps must be a finite number > 0"):
        KoLeoLoss(eps=eps)
