"""MoCoV3Loss against eq. 1 and Algorithm 1 of Chen, Xie and He (2021), written out in loops.

The DDP test runs this file as a script (``python test_mocov3_loss.py --worker ...``) in two
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

from _contract import check_two_view_loss
from _ddp import assert_ddp_matches_full_batch, two_view_loss_worker
from selfsup.errors import ConfigError, DataError
from selfsup.loss import MoCoV3Loss
from selfsup.loss.mocov3_loss import mocov3_contrastive

Vec = list[float]


def _unit(v: Vec) -> Vec:
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def _dot(a: Vec, b: Vec) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def ref_ctr(q: list[Vec], k: list[Vec], tau: float) -> float:
    """2τ · (1/N) Σ_i -log( exp(q_i·k_i/τ) / Σ_j exp(q_i·k_j/τ) ), unit vectors (eq. 1 with
    the batch's keys as negatives; Algorithm 1's ``2 * tau * loss``)."""
    qs, ks = [_unit(v) for v in q], [_unit(v) for v in k]
    total = 0.0
    for i, qi in enumerate(qs):
        positive = math.exp(_dot(qi, ks[i]) / tau)
        denominator = sum(math.exp(_dot(qi, kj) / tau) for kj in ks)
        total += -math.log(positive / denominator)
    return 2 * tau * total / len(qs)


def _rand(seed: int, *shape: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 6),
    d=st.integers(1, 5),
    tau=st.sampled_from([0.1, 0.2, 1.0]),
)
def test_matches_the_paper(seed: int, n: int, d: int, tau: float) -> None:
    q, k = _rand(seed, n, d), _rand(seed + 1, n, d)
    loss = MoCoV3Loss(temperature=tau)(q, k)
    assert loss.item() == pytest.approx(ref_ctr(q.tolist(), k.tolist(), tau), rel=1e-9)


def test_loss_is_not_symmetric_in_its_arguments() -> None:
    # ctr(q, k) normalises over keys for each query: swapping the roles changes the value,
    # which is why the method adds both view orders.
    q, k = _rand(0, 5, 3), _rand(1, 5, 3)
    criterion = MoCoV3Loss()
    assert not torch.allclose(criterion(q, k), criterion(k, q))


def test_the_2_tau_factor_keeps_the_gradient_scale() -> None:
    # d/dq of 2τ·CE(q·k/τ) = 2·(softmax(q·k/τ) - onehot)·k: no 1/τ left in front.
    q, k = _rand(2, 4, 3), _rand(3, 4, 3)
    logits = nn.functional.normalize(q, dim=1) @ nn.functional.normalize(k, dim=1).T
    ce = nn.functional.cross_entropy(logits / 0.2, torch.arange(4))
    assert mocov3_contrastive(q, k, 0.2).item() == pytest.approx(0.4 * ce.item(), rel=1e-12)


def test_perfectly_aligned_distinct_keys_give_a_small_loss() -> None:
    keys = torch.eye(4, dtype=torch.float64)
    assert MoCoV3Loss(temperature=0.05)(keys, keys.clone()).item() < 1e-6


def test_contract() -> None:
    check_two_view_loss(MoCoV3Loss)


@pytest.mark.parametrize("temperature", [0.0, -0.2, math.nan, math.inf])
def test_bad_temperature_is_rejected(temperature: float) -> None:
    with pytest.raises(ConfigError, match="MoCoV3Loss: temperature must be"):
        MoCoV3Loss(temperature=temperature)


@pytest.mark.parametrize(("a", "b"), [((3, 4), (3, 5)), ((3,), (3,)), ((1, 4), (1, 4))])
def test_bad_shapes_are_rejected(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    with pytest.raises(DataError, match="MoCoV3Loss"):
        MoCoV3Loss()(torch.zeros(a), torch.zeros(b))


def test_gather_distributed_without_process_group_is_single_process() -> None:
    q, k = _rand(0, 4, 3), _rand(1, 4, 3)
    torch.testing.assert_close(MoCoV3Loss(gather_distributed=True)(q, k), MoCoV3Loss()(q, k))


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
    # Queries and keys of both processes are gathered: every key is a negative for every
    # query, as with one process on the whole batch.
    assert_ddp_matches_full_batch(
        Path(__file__), tmp_path, WORLD_SIZE, _make_model, _global_batch, MoCoV3Loss
    )


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--worker":
    two_view_loss_worker(
        sys.argv, _make_model, _global_batch, lambda: MoCoV3Loss(gather_distributed=True), N_LOCAL
    )
