"""BarlowTwinsLoss against eq. 1 and 2 of Zbontar et al. (2021), written out in loops."""

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
from selfsup.loss import BarlowTwinsLoss

Matrix = list[list[float]]


def ref_barlow_twins(z_a: Matrix, z_b: Matrix, lam: float) -> float:
    """L_BT = Σ_i (1 - C_ii)² + λ Σ_i Σ_{j≠i} C_ij² with C of eq. 2 on batch-centred outputs."""
    n, d = len(z_a), len(z_a[0])

    def centred(z: Matrix) -> Matrix:
        means = [sum(z[b][i] for b in range(n)) / n for i in range(d)]
        return [[z[b][i] - means[i] for i in range(d)] for b in range(n)]

    a, b = centred(z_a), centred(z_b)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            num = sum(a[k][i] * b[k][j] for k in range(n))
            den = math.sqrt(sum(a[k][i] ** 2 for k in range(n))) * math.sqrt(
                sum(b[k][j] ** 2 for k in range(n))
            )
            c = num / den
            loss += (1 - c) ** 2 if i == j else lam * c**2
    return loss


def _rand(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 6),
    d=st.integers(1, 5),
    lam=st.sampled_from([0.0, 5e-3, 0.5, 2.0]),
)
def test_matches_the_paper(seed: int, n: int, d: int, lam: float) -> None:
    z_a, z_b = _rand(seed, n, d), _rand(seed + 1, n, d)
    loss = BarlowTwinsLoss(lambda_param=lam)(z_a, z_b)
    assert loss.item() == pytest.approx(ref_barlow_twins(z_a.tolist(), z_b.tolist(), lam), rel=1e-9)


def test_identical_decorrelated_views_give_zero() -> None:
    # Orthogonal, centred columns: C is the identity.
    z = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    assert BarlowTwinsLoss()(z, z.clone()).item() == pytest.approx(0.0, abs=1e-12)


def test_scale_and_shift_invariant() -> None:
    z_a, z_b = _rand(0, 6, 3), _rand(1, 6, 3)
    loss = BarlowTwinsLoss()(z_a, z_b)
    torch.testing.assert_close(BarlowTwinsLoss()(3 * z_a + 2, 0.5 * z_b - 1), loss)


def test_constant_feature_does_not_give_nan() -> None:
    z = _rand(0, 4, 3)
    z[:, 1] = 2.0
    loss = BarlowTwinsLoss()(z, z.clone())
    assert torch.isfinite(loss)
    # The constant feature correlates with nothing: its diagonal term is (1 - 0)² = 1, and
    # the rest is the loss of the other two features.
    rest = ref_barlow_twins(z[:, [0, 2]].tolist(), z[:, [0, 2]].tolist(), 5e-3)
    assert loss.item() == pytest.approx(1.0 + rest, rel=1e-9)


def test_contract() -> None:
    check_two_view_loss(lambda: BarlowTwinsLoss(lambda_param=5e-3))


@pytest.mark.parametrize("lam", [-1.0, math.nan, math.inf, True, "5e-3"])
def test_bad_lambda_is_rejected(lam: object) -> None:
    with pytest.raises(ConfigError, match=r"lambda_param must be a finite number >= 0"):
        BarlowTwinsLoss(lambda_param=lam)  # type: ignore[arg-type]  # bad input on purpose


@pytest.mark.parametrize(("a", "b"), [((3, 4), (3, 5)), ((3,), (3,)), ((1, 4), (1, 4))])
def test_bad_shapes_are_rejected(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    with pytest.raises(DataError, match="BarlowTwinsLoss"):
        BarlowTwinsLoss()(torch.zeros(a), torch.zeros(b))


def test_gather_distributed_without_process_group_is_single_process() -> None:
    z_a, z_b = _rand(0, 4, 3), _rand(1, 4, 3)
    torch.testing.assert_close(
        BarlowTwinsLoss(gather_distributed=True)(z_a, z_b), BarlowTwinsLoss()(z_a, z_b)
    )


# --------------------------------------------------------------------------- DDP, 2 processes

WORLD_SIZE, N_LOCAL, IN_DIM, OUT_DIM = 2, 3, 5, 4


def _make_model() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(IN_DIM, OUT_DIM).double()


def _global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    n = WORLD_SIZE * N_LOCAL
    return _rand(100, n, IN_DIM), _rand(200, n, IN_DIM)


def _loss(gather_distributed: bool) -> BarlowTwinsLoss:
    return BarlowTwinsLoss(lambda_param=0.1, gather_distributed=gather_distributed)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ddp_two_processes_reproduce_one_process(tmp_path: Path) -> None:
    # C is computed over the gathered global batch on every process, so each process's
    # loss is the single-process loss of the whole batch, and DDP's averaged gradient
    # (with GatherLayer summing the slices' gradients) is its gradient.
    assert_ddp_matches_full_batch(
        Path(__file__), tmp_path, WORLD_SIZE, _make_model, _global_batch, lambda: _loss(False)
    )


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--worker":
    two_view_loss_worker(sys.argv, _make_model, _global_batch, lambda: _loss(True), N_LOCAL)
