"""WMSELoss against eq. 5 of Ermolov et al. (2021), whitening written out by hand.

The reference whitens with a Cholesky factor computed by the textbook loop (Cholesky-Banachiewicz)
and inverts it by forward substitution, independently of torch.linalg.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from _contract import (
    check_dtype_device_and_determinism,
    check_finite_gradients,
    check_inputs_not_mutated,
    check_training_lowers_loss_without_collapse,
    std_of_l2_normalized,
)
from selfsup.errors import ConfigError, DataError
from selfsup.loss import WMSELoss
from selfsup.loss.wmse_loss import norm_mse_loss, whiten

Vec = list[float]
Matrix = list[list[float]]


def _cholesky(a: Matrix) -> Matrix:
    n = len(a)
    lower = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            s = sum(lower[i][k] * lower[j][k] for k in range(j))
            if i == j:
                lower[i][j] = math.sqrt(a[i][i] - s)
            else:
                lower[i][j] = (a[i][j] - s) / lower[j][j]
    return lower


def _forward_substitute(lower: Matrix, b: Vec) -> Vec:
    """x with L x = b."""
    x: Vec = []
    for i in range(len(b)):
        x.append((b[i] - sum(lower[i][k] * x[k] for k in range(i))) / lower[i][i])
    return x


def ref_whiten(rows: list[Vec], eps: float) -> list[Vec]:
    """ẑ_i = L⁻¹ (z_i - μ), L Lᵀ = (1 - ε) Σ + ε I, Σ unbiased."""
    n, d = len(rows), len(rows[0])
    mean = [sum(r[j] for r in rows) / n for j in range(d)]
    centred = [[r[j] - mean[j] for j in range(d)] for r in rows]
    cov = [[sum(c[a] * c[b] for c in centred) / (n - 1) for b in range(d)] for a in range(d)]
    shrunk = [
        [(1 - eps) * cov[a][b] + (eps if a == b else 0.0) for b in range(d)] for a in range(d)
    ]
    lower = _cholesky(shrunk)
    return [_forward_substitute(lower, c) for c in centred]


def _cos(u: Vec, v: Vec) -> float:
    dot = sum(x * y for x, y in zip(u, v, strict=True))
    return dot / math.sqrt(sum(x * x for x in u) * sum(y * y for y in v))


def ref_wmse(views: list[list[Vec]], eps: float) -> float:
    """Eq. 5 with the whole batch of every view whitened: the mean over view pairs j < k and
    images i of ‖ẑ_i^j/‖ẑ_i^j‖ - ẑ_i^k/‖ẑ_i^k‖‖² = 2 - 2 cos(ẑ_i^j, ẑ_i^k)."""
    white = [ref_whiten(v, eps) for v in views]
    total, count = 0.0, 0
    for j in range(len(views)):
        for k in range(j + 1, len(views)):
            for a, b in zip(white[j], white[k], strict=True):
                total += 2 - 2 * _cos(a, b)
                count += 1
    return total / count


def _rand(seed: int, *shape: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    d=st.integers(1, 4),
    extra=st.integers(1, 4),
    views=st.integers(2, 3),
    eps=st.sampled_from([0.0, 0.1]),
)
def test_matches_the_paper(seed: int, d: int, extra: int, views: int, eps: float) -> None:
    n = d + extra  # more rows than dimensions: a definite covariance
    z = _rand(seed, views * n, d)
    criterion = WMSELoss(embedding_dim=d, w_size=n, eps=eps, num_samples=views)
    expected = ref_wmse([z[i * n : (i + 1) * n].tolist() for i in range(views)], eps)
    assert criterion(z).item() == pytest.approx(expected, rel=1e-8, abs=1e-10)


def test_whitened_batch_has_identity_covariance() -> None:
    x = _rand(0, 20, 4) @ _rand(1, 4, 4) + 3.0
    white, mean, covariance = whiten(x)
    torch.testing.assert_close(white.mean(dim=0), torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(white.T @ white / 19, torch.eye(4, dtype=torch.float64))
    torch.testing.assert_close(mean, x.mean(dim=0))
    torch.testing.assert_close(covariance, torch.cov(x.T))


def test_sub_batches_are_whitened_separately() -> None:
    # Two sub-batches of 6: the loss is the mean over both, each whitened on its own, in
    # an order the seeded permutation decides.
    z = _rand(0, 24, 3)
    criterion = WMSELoss(embedding_dim=3, w_size=6, num_samples=2, track_running_stats=False)
    torch.manual_seed(5)
    loss = criterion(z)
    torch.manual_seed(5)
    order = torch.randperm(12)
    a, b = z[:12][order], z[12:][order]
    parts = [ref_wmse([a[s].tolist(), b[s].tolist()], 0.0) for s in (slice(0, 6), slice(6, 12))]
    assert loss.item() == pytest.approx(sum(parts) / 2, rel=1e-9)


def test_norm_mse_is_two_minus_twice_the_cosine() -> None:
    x0, x1 = _rand(0, 5, 3), _rand(1, 5, 3)
    expected = sum(2 - 2 * _cos(a, b) for a, b in zip(x0.tolist(), x1.tolist(), strict=True)) / 5
    assert norm_mse_loss(x0, x1).item() == pytest.approx(expected, rel=1e-12)


def test_eval_mode_whitens_with_running_statistics() -> None:
    criterion = WMSELoss(embedding_dim=2, w_size=8, momentum=1.0, num_samples=2).double()
    z = _rand(0, 16, 2)
    criterion(z)  # momentum 1: the running statistics are those of the last sub-batch
    torch.testing.assert_close(criterion.running_mean, z[8:].mean(dim=0))
    torch.testing.assert_close(criterion.running_covariance, torch.cov(z[8:].T))
    criterion.eval()
    other = _rand(1, 16, 2)
    expected = norm_mse_loss(
        *(
            (v - criterion.running_mean)
            @ torch.linalg.inv(torch.linalg.cholesky(criterion.running_covariance)).T
            for v in (other[:8], other[8:])
        )
    )
    torch.testing.assert_close(criterion(other), expected)


class _TwoViews(nn.Module):
    """WMSELoss(z) as a two-view loss ``(z0, z1) -> loss`` for the shared contract."""

    def __init__(self, **kwargs: float | int | None) -> None:
        super().__init__()
        self.loss = WMSELoss(**kwargs)  # type: ignore[arg-type]

    def forward(self, z0: Tensor, z1: Tensor) -> Tensor:
        out: Tensor = self.loss(torch.cat([z0, z1]))
        return out


def test_contract() -> None:
    # The contract's batch of 8 rows in 6 dimensions is exactly whitenable (8 > 6 + 1).
    def make() -> _TwoViews:
        return _TwoViews(embedding_dim=6, w_size=None)

    check_inputs_not_mutated(make)
    check_dtype_device_and_determinism(make)
    check_finite_gradients(make)


def test_training_lowers_the_loss_without_collapse() -> None:
    # The whole batch whitened at once: random slicing would make the loss of each step
    # noisier than what a few steps of a linear encoder can gain.
    check_training_lowers_loss_without_collapse(lambda: _TwoViews(embedding_dim=8, w_size=None))


def test_training_an_mlp_lowers_the_loss_without_collapse() -> None:
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4)).double()
    criterion = WMSELoss(embedding_dim=4, w_size=None)
    x = _rand(3, 64, 8)
    noisy = x + 0.5 * _rand(4, 64, 8)
    optimizer = torch.optim.SGD(encoder.parameters(), lr=0.05)
    losses = []
    for _ in range(40):
        loss = criterion(torch.cat([encoder(x), encoder(noisy)]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.9 * losses[0], losses
    with torch.no_grad():
        assert std_of_l2_normalized(encoder(x)) > 0.5 / 4**0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"embedding_dim": 0}, "embedding_dim must be an integer >= 1"),
        ({"num_samples": 1}, "num_samples must be an integer >= 2"),
        ({"w_iter": 0}, "w_iter must be an integer >= 1"),
        ({"w_size": 2.5}, "w_size must be an integer >= 2"),
        ({"eps": 1.5}, r"eps must be a finite number in \[0, 1\]"),
        ({"momentum": -0.1}, "momentum must be a finite number >= 0"),
        ({"embedding_dim": 128, "w_size": 128}, "w_size=128 rows cannot be whitened"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=f"WMSELoss: {message}"):
        WMSELoss(**kwargs)  # type: ignore[arg-type]  # bad input on purpose


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((8, 5), "input must have shape"),
        ((7, 4), "7 rows are not num_samples=2 views"),
        ((12, 4), "a batch of 6 images per view is smaller than w_size=8"),
    ],
)
def test_bad_inputs_are_rejected(shape: tuple[int, int], message: str) -> None:
    with pytest.raises(DataError, match=f"WMSELoss: {message}"):
        WMSELoss(embedding_dim=4, w_size=8)(torch.zeros(shape))


def test_a_singular_covariance_is_a_clear_error() -> None:
    collapsed = torch.ones(16, 4, dtype=torch.float64)
    with pytest.raises(DataError, match="not positive definite"):
        WMSELoss(embedding_dim=4, w_size=8)(collapsed)
