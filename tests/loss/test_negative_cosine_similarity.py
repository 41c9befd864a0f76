"""NegativeCosineSimilarity against SimSiam eq. 1 and BYOL eq. 2, written out in loops."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _contract import check_two_view_loss
from selfsup.errors import ConfigError, DataError
from selfsup.loss import NegativeCosineSimilarity
from selfsup.loss.negative_cosine_similarity import negative_cosine_similarity


def ref_simsiam_d(p: list[list[float]], z: list[list[float]]) -> float:
    """SimSiam eq. 1, D(p, z) = -(p/‖p‖)·(z/‖z‖), averaged over the batch."""
    total = 0.0
    for pi, zi in zip(p, z, strict=True):
        dot = sum(a * b for a, b in zip(pi, zi, strict=True))
        total += -dot / (math.sqrt(sum(a * a for a in pi)) * math.sqrt(sum(b * b for b in zi)))
    return total / len(p)


def ref_byol_mse(q: list[list[float]], z: list[list[float]]) -> float:
    """BYOL eq. 2, ‖q̄ - z̄'‖² of the L2-normalised vectors, averaged over the batch."""
    total = 0.0
    for qi, zi in zip(q, z, strict=True):
        nq, nz = math.sqrt(sum(a * a for a in qi)), math.sqrt(sum(b * b for b in zi))
        total += sum((a / nq - b / nz) ** 2 for a, b in zip(qi, zi, strict=True))
    return total / len(q)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 6), dim=st.integers(1, 7))
def test_matches_simsiam_and_byol(seed: int, n: int, dim: int) -> None:
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(n, dim, generator=g, dtype=torch.float64)
    z = torch.randn(n, dim, generator=g, dtype=torch.float64)
    loss = NegativeCosineSimilarity()(p, z)
    assert loss.item() == pytest.approx(ref_simsiam_d(p.tolist(), z.tolist()), abs=1e-12)
    # BYOL's normalised MSE is 2 + 2 D: the same objective.
    assert 2 + 2 * loss.item() == pytest.approx(ref_byol_mse(p.tolist(), z.tolist()), abs=1e-12)


def test_closed_forms() -> None:
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    assert NegativeCosineSimilarity()(x, 5 * x).item() == pytest.approx(-1.0)
    assert NegativeCosineSimilarity()(x, -x).item() == pytest.approx(1.0)
    orthogonal = torch.tensor([[-2.0, 1.0], [1.0, 3.0]])
    assert NegativeCosineSimilarity()(x, orthogonal).item() == pytest.approx(0.0)


def test_zero_vector_gives_zero_similarity_not_nan() -> None:
    loss = NegativeCosineSimilarity()(torch.zeros(2, 3), torch.ones(2, 3))
    assert loss.item() == 0.0


def test_other_feature_dimension() -> None:
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))
    y = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(1))
    expected = NegativeCosineSimilarity()(
        x.transpose(1, 2).reshape(8, 3), y.transpose(1, 2).reshape(8, 3)
    )
    torch.testing.assert_close(NegativeCosineSimilarity(dim=1)(x, y), expected)


def test_contract() -> None:
    check_two_view_loss(NegativeCosineSimilarity, collapse=False)


@pytest.mark.parametrize("eps", [0, -1e-8, math.nan, math.inf, True, "1e-8"])
def test_bad_eps_is_rejected(eps: object) -> None:
    with pytest.raises(ConfigError, match=r"eps must be a number > 0, got"):
        NegativeCosineSimilarity(eps=eps)  # type: ignore[arg-type]  # bad input on purpose


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(DataError, match=r"same shape, got \(2, 3\) and \(2, 4\)"):
        negative_cosine_similarity(torch.zeros(2, 3), torch.zeros(2, 4))
