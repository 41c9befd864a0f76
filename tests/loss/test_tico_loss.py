"""TiCoLoss against sec. 3 / Algorithm 1 of Zhu et al. (2022), written out in loops.

The DDP test runs this file as a script (``python test_tico_loss.py --worker ...``) in two
fresh interpreters.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from _contract import (
    check_dtype_device_and_determinism,
    check_finite_gradients,
    check_inputs_not_mutated,
    check_training_lowers_loss_without_collapse,
    check_two_view_loss,
)
from _ddp import assert_ddp_matches_full_batch, two_view_loss_worker
from selfsup.errors import ConfigError, DataError
from selfsup.loss import TiCoLoss

Vec = list[float]
Matrix = list[list[float]]


def _unit(v: Vec) -> Vec:
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def ref_covariance(previous: Matrix, z: list[Vec], beta: float) -> Matrix:
    """C_t[a][b] = β C_{t-1}[a][b] + (1 - β) (1/N) Σ_i z_i[a] z_i[b], unit rows."""
    zs = [_unit(v) for v in z]
    d = len(zs[0])
    return [
        [
            beta * previous[a][b] + (1 - beta) * sum(v[a] * v[b] for v in zs) / len(zs)
            for b in range(d)
        ]
        for a in range(d)
    ]


def ref_tico(z_a: list[Vec], z_b: list[Vec], c: Matrix, rho: float) -> float:
    """1 - (1/N) Σ_i z_iᵀ z'_i + ρ (1/N) Σ_i z_iᵀ C z_i on unit rows."""
    za, zb = [_unit(v) for v in z_a], [_unit(v) for v in z_b]
    n, d = len(za), len(za[0])
    pairs = zip(za, zb, strict=True)
    invariance = sum(sum(x * y for x, y in zip(u, v, strict=True)) for u, v in pairs) / n
    contrast = sum(sum(u[a] * c[a][b] * u[b] for a in range(d) for b in range(d)) for u in za) / n
    return 1 - invariance + rho * contrast


def _rand(seed: int, *shape: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 6),
    d=st.integers(1, 4),
    beta=st.sampled_from([0.0, 0.5, 0.9, 1.0]),
    rho=st.sampled_from([0.0, 1.0, 20.0]),
)
def test_matches_the_paper_over_three_steps(
    seed: int, n: int, d: int, beta: float, rho: float
) -> None:
    criterion = TiCoLoss(beta=beta, rho=rho)
    c = [[0.0] * d for _ in range(d)]  # C_0 = 0
    for step in range(3):
        z_a, z_b = _rand(seed + 2 * step, n, d), _rand(seed + 2 * step + 1, n, d)
        loss = criterion(z_a, z_b)
        c = ref_covariance(c, z_a.tolist(), beta)
        assert loss.item() == pytest.approx(
            ref_tico(z_a.tolist(), z_b.tolist(), c, rho), rel=1e-9, abs=1e-12
        )
        torch.testing.assert_close(criterion.covariance, torch.tensor(c, dtype=torch.float64))


def test_without_update_the_covariance_stays() -> None:
    criterion = TiCoLoss()
    criterion(_rand(0, 4, 3), _rand(1, 4, 3))
    before = criterion.covariance.clone()
    first = criterion(_rand(2, 4, 3), _rand(3, 4, 3), update_covariance_matrix=False)
    assert torch.equal(criterion.covariance, before)
    again = criterion(_rand(2, 4, 3), _rand(3, 4, 3), update_covariance_matrix=False)
    assert torch.equal(first, again)


def test_identical_views_without_contrast_give_zero() -> None:
    z = _rand(0, 5, 3)
    assert TiCoLoss(rho=0.0)(z, z.clone()).item() == pytest.approx(0.0, abs=1e-12)


def test_collapsed_embeddings_pay_the_contrast() -> None:
    # Every row the same unit vector u: C_1 = (1 - β) u uᵀ, so the loss is ρ (1 - β).
    z = torch.ones(4, 3, dtype=torch.float64)
    assert TiCoLoss()(z, z.clone()).item() == pytest.approx(20.0 * 0.1, rel=1e-12)


def test_covariance_round_trips_through_a_state_dict() -> None:
    trained = TiCoLoss()
    trained(_rand(0, 4, 3), _rand(1, 4, 3))
    fresh = TiCoLoss()
    fresh.load_state_dict(trained.state_dict())
    torch.testing.assert_close(fresh.covariance, trained.covariance)
    z_a, z_b = _rand(2, 4, 3), _rand(3, 4, 3)
    torch.testing.assert_close(fresh(z_a, z_b), trained(z_a, z_b))


def test_contract_without_memory() -> None:
    # β = 0: C_t is the batch's own covariance, and the loss a function of the batch alone.
    check_two_view_loss(lambda: TiCoLoss(beta=0.0))


def _warm_tico() -> TiCoLoss:
    """The default loss with C at the covariance of isotropic unit vectors (I / d), where a
    warm-up on spread-out embeddings leaves it. From C_0 = 0 the loss first rises while C
    fills up (C_t = (1 - β^t) B for a constant batch), whatever the model does."""
    criterion = TiCoLoss()
    criterion.covariance = torch.eye(8, dtype=torch.float64) / 8
    return criterion


def test_contract_with_the_running_covariance() -> None:
    check_training_lowers_loss_without_collapse(_warm_tico)
    check_dtype_device_and_determinism(TiCoLoss)
    check_inputs_not_mutated(TiCoLoss)
    check_finite_gradients(TiCoLoss)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beta": -0.1}, "beta must be a finite number >= 0"),
        ({"beta": 1.5}, r"beta must be a finite number in \[0, 1\]"),
        ({"beta": math.nan}, "beta must be a finite number"),
        ({"rho": -1.0}, "rho must be a finite number >= 0"),
        ({"rho": math.inf}, "rho must be a finite number >= 0"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=f"TiCoLoss: {message}"):
        TiCoLoss(**kwargs)


@pytest.mark.parametrize(("a", "b"), [((3, 4), (3, 5)), ((3,), (3,)), ((1, 4), (1, 4))])
def test_bad_shapes_are_rejected(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    with pytest.raises(DataError, match="TiCoLoss"):
        TiCoLoss()(torch.zeros(a), torch.zeros(b))


def test_a_new_embedding_size_is_a_clear_error() -> None:
    criterion = TiCoLoss()
    criterion(_rand(0, 4, 3), _rand(1, 4, 3))
    with pytest.raises(DataError, match=r"embeddings of size 5 but the running covariance"):
        criterion(_rand(0, 4, 5), _rand(1, 4, 5))


def test_gather_distributed_without_process_group_is_single_process() -> None:
    z_a, z_b = _rand(0, 4, 3), _rand(1, 4, 3)
    torch.testing.assert_close(TiCoLoss(gather_distributed=True)(z_a, z_b), TiCoLoss()(z_a, z_b))


# --------------------------------------------------------------------------- DDP, 2 processes

WORLD_SIZE, N_LOCAL, IN_DIM, OUT_DIM = 2, 3, 5, 4


def _make_model() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(IN_DIM, OUT_DIM).double()


def _global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    n = WORLD_SIZE * N_LOCAL
    return _rand(100, n, IN_DIM), _rand(200, n, IN_DIM)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ddp_two_processes_reproduce_one_process(tmp_path: Path) -> None:
    # The covariance and the loss are those of the gathered global batch on every process.
    assert_ddp_matches_full_batch(
        Path(__file__), tmp_path, WORLD_SIZE, _make_model, _global_batch, TiCoLoss
    )


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--worker":
    two_view_loss_worker(
        sys.argv, _make_model, _global_batch, lambda: TiCoLoss(gather_distributed=True), N_LOCAL
    )
