"""MMCRLoss against sec. 3 of Yerxa et al. (2023), with nuclear norms computed by hand.

The reference builds C and every Z_i in loops and takes nuclear norms as the square roots of
the eigenvalues of AᵀA (numpy's symmetric eigensolver), independently of torch's SVD.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _contract import check_two_view_loss
from selfsup.errors import ConfigError, DataError
from selfsup.loss import MMCRLoss
from selfsup.loss.mmcr_loss import mmcr_loss

Vec = list[float]


def _unit(v: Vec) -> Vec:
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def _nuclear(rows: list[Vec]) -> float:
    """Σ singular values = Σ sqrt(eigenvalues of AᵀA), AᵀA written out in loops."""
    d = len(rows[0])
    gram = [[sum(r[a] * r[b] for r in rows) for b in range(d)] for a in range(d)]
    eigenvalues = np.linalg.eigvalsh(np.array(gram))
    return float(sum(math.sqrt(max(e, 0.0)) for e in eigenvalues))


def ref_mmcr(online: list[list[Vec]], momentum: list[list[Vec]], lmda: float) -> float:
    """-‖C‖_* + λ (1/N) Σ_i ‖Z_i‖_*; Z_i = the unit rows of image i's online and momentum
    views, c_i their mean."""
    n = len(online)
    manifolds = [[_unit(v) for v in online[i] + momentum[i]] for i in range(n)]
    d = len(manifolds[0][0])
    centroids = [[sum(v[j] for v in z) / len(z) for j in range(d)] for z in manifolds]
    return -_nuclear(centroids) + lmda * sum(_nuclear(z) for z in manifolds) / n


def _rand(seed: int, *shape: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 5),
    k=st.integers(1, 4),
    d=st.integers(1, 5),
    lmda=st.sampled_from([0.0, 5e-3, 1.0]),
)
def test_matches_the_paper(seed: int, n: int, k: int, d: int, lmda: float) -> None:
    online, momentum = _rand(seed, n, k, d), _rand(seed + 1, n, k, d)
    loss = MMCRLoss(lmda=lmda)(online, momentum)
    expected = ref_mmcr(online.tolist(), momentum.tolist(), lmda)
    assert loss.item() == pytest.approx(expected, rel=1e-7, abs=1e-9)


def test_two_dimensional_inputs_are_one_view_each() -> None:
    online, momentum = _rand(0, 4, 3), _rand(1, 4, 3)
    torch.testing.assert_close(
        MMCRLoss()(online, momentum), MMCRLoss()(online.unsqueeze(1), momentum.unsqueeze(1))
    )


def test_agreeing_orthogonal_views_reach_the_bound() -> None:
    # Views that agree give unit centroids; orthogonal centroids give ‖C‖_* = N.
    z = torch.eye(3, dtype=torch.float64).unsqueeze(1).repeat(1, 4, 1)  # (3, 4 views, 3)
    assert MMCRLoss(lmda=0.0)(z, z.clone()).item() == pytest.approx(-3.0, rel=1e-12)
    # Each Z_i then has rank one and norm sqrt(8): the local term adds λ·sqrt(8).
    assert MMCRLoss(lmda=1.0)(z, z.clone()).item() == pytest.approx(-3.0 + math.sqrt(8))


def test_the_pure_function_takes_normalised_views() -> None:
    z = torch.nn.functional.normalize(_rand(0, 4, 6, 3), dim=-1)
    torch.testing.assert_close(mmcr_loss(z, 0.1), MMCRLoss(0.1)(z[:, :3], z[:, 3:]))


def test_contract() -> None:
    check_two_view_loss(MMCRLoss)


@pytest.mark.parametrize("lmda", [-1e-3, math.nan, math.inf, True])
def test_bad_lmda_is_rejected(lmda: object) -> None:
    with pytest.raises(ConfigError, match="MMCRLoss: lmda must be a finite number >= 0"):
        MMCRLoss(lmda=lmda)  # type: ignore[arg-type]  # bad input on purpose


@pytest.mark.parametrize(
    ("a", "b"), [((3, 2, 4), (3, 2, 5)), ((3, 2, 4), (3, 3, 4)), ((3,), (3,)), ((0, 4), (0, 4))]
)
def test_bad_shapes_are_rejected(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    with pytest.raises(DataError, match="MMCRLoss: online and momentum must"):
        MMCRLoss()(torch.zeros(a), torch.zeros(b))
