"""SwaVLoss and sinkhorn against eq. 1-3 and sec. 3.1-3.2 of Caron et al. (2020), in loops."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from _contract import check_two_view_loss
from _ddp import gloo_group, run_workers
from selfsup.errors import ConfigError, DataError
from selfsup.loss import SwaVLoss
from selfsup.loss.swav_loss import sinkhorn

Matrix = list[list[float]]


def ref_sinkhorn(scores: Matrix, iterations: int, eps: float) -> Matrix:
    """Sinkhorn-Knopp as sec. 3.1 states it, on Q = exp(CᵀZ / ε) of shape (K, B).

    Q is normalised to sum 1, then each iteration makes every row (prototype) sum to 1/K
    and every column (sample) sum to 1/B; the codes are the columns of B·Q.
    """
    b, k = len(scores), len(scores[0])
    q = [[math.exp(scores[n][j] / eps) for n in range(b)] for j in range(k)]
    total = sum(sum(row) for row in q)
    q = [[v / total for v in row] for row in q]
    for _ in range(iterations):
        for j in range(k):
            row_sum = sum(q[j])
            q[j] = [v / row_sum / k for v in q[j]]
        for n in range(b):
            col_sum = sum(q[j][n] for j in range(k))
            for j in range(k):
                q[j][n] = q[j][n] / col_sum / b
    return [[b * q[j][n] for j in range(k)] for n in range(b)]


def ref_ell(z: list[float], q: list[float], tau: float) -> float:
    """ℓ(z_t, q_s) = −Σ_k q^(k) log p^(k), p^(k) = exp(z_k / τ) / Σ_k' exp(z_k' / τ) (eq. 2)."""
    norm = sum(math.exp(v / tau) for v in z)
    return -sum(qk * math.log(math.exp(zk / tau) / norm) for zk, qk in zip(z, q, strict=True))


def ref_swav(
    high: list[Matrix],
    low: list[Matrix],
    queue: list[Matrix] | None,
    tau: float,
    iterations: int,
    eps: float,
) -> float:
    """Multi-crop (sec. 3.2): every other view predicts the codes of each high-resolution
    view, averaged over the predicting views, the high-resolution views and the batch."""
    views = high + low
    total = 0.0
    for i, h in enumerate(high):
        scores = h + (queue[i] if queue is not None else [])
        codes = ref_sinkhorn(scores, iterations, eps)[: len(h)]
        per_code = 0.0
        for v, z in enumerate(views):
            if v != i:
                per_code += sum(ref_ell(z[n], codes[n], tau) for n in range(len(h))) / len(h)
        total += per_code / (len(views) - 1)
    return total / len(high)


def _unit_scores(seed: int, *shape: int) -> Tensor:
    """Cosine similarities, as unit features against unit prototypes give: in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    return 2 * torch.rand(*shape, generator=g, dtype=torch.float64) - 1


# --------------------------------------------------------------------------- sinkhorn


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    b=st.integers(1, 6),
    k=st.integers(1, 6),
    iterations=st.integers(0, 4),
    eps=st.sampled_from([0.05, 0.5, 1.0]),
)
def test_sinkhorn_matches_the_algorithm(
    seed: int, b: int, k: int, iterations: int, eps: float
) -> None:
    scores = _unit_scores(seed, b, k)
    codes = sinkhorn(scores, iterations=iterations, epsilon=eps)
    expected = torch.tensor(ref_sinkhorn(scores.tolist(), iterations, eps), dtype=torch.float64)
    torch.testing.assert_close(codes, expected, rtol=1e-9, atol=1e-12)


def test_sinkhorn_codes_sum_to_one_and_share_out_the_prototypes() -> None:
    scores = _unit_scores(0, 12, 4)
    # Columns are rescaled last: every sample's code sums to 1 after any iteration.
    few = sinkhorn(scores, iterations=3)
    torch.testing.assert_close(few.sum(dim=1), torch.ones(12, dtype=torch.float64))
    assert (few >= 0).all()
    # The rows converge (slowly for a small ε): every prototype gets B/K of the batch (the
    # transportation polytope of sec. 3.1).
    many = sinkhorn(scores, iterations=200, epsilon=0.5)
    torch.testing.assert_close(many.sum(dim=1), torch.ones(12, dtype=torch.float64))
    torch.testing.assert_close(many.sum(dim=0), torch.full((4,), 3.0, dtype=torch.float64))


def test_sinkhorn_spreads_identical_samples_over_all_prototypes() -> None:
    # Collapsed features would all pick the same prototype; equipartition forbids it.
    scores = torch.tensor([[0.9, 0.1, -0.3]] * 6, dtype=torch.float64)
    codes = sinkhorn(scores, iterations=3)
    torch.testing.assert_close(codes, torch.full((6, 3), 1 / 3, dtype=torch.float64))


def test_sinkhorn_is_stable_for_large_scores_and_keeps_dtype() -> None:
    # exp(100 / 0.05) overflows; the shift by the largest score cancels in the normalisation.
    scores = _unit_scores(1, 5, 3)
    torch.testing.assert_close(sinkhorn(scores + 100.0), sinkhorn(scores))
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        codes = sinkhorn((scores * 100).to(dtype))
        assert codes.dtype == dtype
        assert torch.isfinite(codes).all()


def test_sinkhorn_neither_needs_nor_keeps_gradients() -> None:
    scores = _unit_scores(2, 4, 3).requires_grad_(True)
    codes = sinkhorn(scores)
    assert not codes.requires_grad
    assert scores.grad is None


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (3,), (2, 3, 4)])
def test_sinkhorn_refuses_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(DataError, match=r"sinkhorn: out must have shape \(batch_size"):
        sinkhorn(torch.zeros(shape))


# --------------------------------------------------------------------------- the loss


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    b=st.integers(1, 4),
    k=st.integers(1, 5),
    n_high=st.integers(1, 3),
    n_low=st.integers(0, 3),
    with_queue=st.booleans(),
    tau=st.sampled_from([0.1, 0.5]),
    iterations=st.integers(0, 3),
)
def test_loss_matches_the_paper(
    seed: int,
    b: int,
    k: int,
    n_high: int,
    n_low: int,
    with_queue: bool,
    tau: float,
    iterations: int,
) -> None:
    if n_high + n_low < 2:
        n_low = 1
    high = [_unit_scores(seed + i, b, k) for i in range(n_high)]
    low = [_unit_scores(seed + 100 + i, b, k) for i in range(n_low)]
    queue = [_unit_scores(seed + 200 + i, 3, k) for i in range(n_high)] if with_queue else None
    loss = SwaVLoss(temperature=tau, sinkhorn_iterations=iterations)(high, low, queue)
    expected = ref_swav(
        [h.tolist() for h in high],
        [z.tolist() for z in low],
        [q.tolist() for q in queue] if queue is not None else None,
        tau,
        iterations,
        0.05,
    )
    assert loss.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_two_views_give_eq_3() -> None:
    # −(1/N) Σ_n [ z_ntᵀC q_ns / τ + z_nsᵀC q_nt / τ − log Σ_k exp(z_ntᵀc_k / τ)
    #             − log Σ_k exp(z_nsᵀc_k / τ) ], the sum over the pair (s, t) of eq. 1; the
    # loss averages its two terms.
    tau = 0.1
    s_t, s_s = _unit_scores(3, 5, 4), _unit_scores(4, 5, 4)
    q_t, q_s = sinkhorn(s_t).tolist(), sinkhorn(s_s).tolist()
    zt, zs = s_t.tolist(), s_s.tolist()
    total = 0.0
    for n in range(5):
        total += sum(zt[n][k] * q_s[n][k] for k in range(4)) / tau
        total += sum(zs[n][k] * q_t[n][k] for k in range(4)) / tau
        total -= math.log(sum(math.exp(zt[n][k] / tau) for k in range(4)))
        total -= math.log(sum(math.exp(zs[n][k] / tau) for k in range(4)))
    eq_3 = -total / 5
    assert SwaVLoss(temperature=tau)([s_t, s_s], []).item() == pytest.approx(eq_3 / 2, rel=1e-12)


def test_the_queue_shapes_the_codes_and_gets_no_gradient() -> None:
    high = [_unit_scores(5, 4, 6).requires_grad_(True) for _ in range(2)]
    low = [_unit_scores(6, 4, 6).requires_grad_(True)]
    queue = [_unit_scores(7 + i, 16, 6).requires_grad_(True) for i in range(2)]
    criterion = SwaVLoss()
    with_queue = criterion(high, low, queue)
    assert with_queue.item() != pytest.approx(criterion(high, low).item())
    with_queue.backward()
    assert all(q.grad is None for q in queue)
    assert all(z.grad is not None and torch.isfinite(z.grad).all() for z in [*high, *low])


def test_subloss_is_eq_2_averaged_over_the_batch() -> None:
    z, q = _unit_scores(8, 3, 4), sinkhorn(_unit_scores(9, 3, 4))
    expected = sum(ref_ell(z.tolist()[n], q.tolist()[n], 0.1) for n in range(3)) / 3
    assert SwaVLoss().subloss(z, q).item() == pytest.approx(expected, rel=1e-12)


class _PairOfViews(nn.Module):
    """Two views through SwAV's scoring: unit features against 16 fixed unit prototypes."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.prototypes = nn.functional.normalize(torch.randn(16, 8, generator=g), dim=1)
        self.criterion = SwaVLoss()

    def forward(self, z0: Tensor, z1: Tensor) -> Tensor:
        c = self.prototypes[:, : z0.shape[1]].to(z0)
        s0 = nn.functional.normalize(z0, dim=1) @ c.T
        s1 = nn.functional.normalize(z1, dim=1) @ c.T
        loss: Tensor = self.criterion([s0, s1], [])
        return loss


def test_contract() -> None:
    check_two_view_loss(_PairOfViews)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": 0.0}, "temperature must be a finite number > 0, got 0.0"),
        ({"temperature": -0.1}, "temperature must be a finite number > 0"),
        ({"temperature": math.nan}, "temperature must be a finite number > 0"),
        ({"temperature": True}, "temperature must be a finite number > 0"),
        ({"sinkhorn_epsilon": 0}, "sinkhorn_epsilon must be a finite number > 0, got 0"),
        ({"sinkhorn_epsilon": math.inf}, "sinkhorn_epsilon must be a finite number > 0"),
        ({"sinkhorn_iterations": -1}, r"sinkhorn_iterations must be an integer >= 0 \(the"),
        ({"sinkhorn_iterations": 2.5}, "sinkhorn_iterations must be an integer >= 0"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match="SwaVLoss: " + message):
        SwaVLoss(**kwargs)  # type: ignore[arg-type]  # bad input on purpose


@pytest.mark.parametrize(
    ("high", "low", "queue", "message"),
    [
        ([(4, 3)], [], None, "needs at least one high-resolution output and two"),
        ([], [(4, 3), (4, 3)], None, "needs at least one high-resolution output"),
        ([(4, 3), (4, 5)], [], None, r"high_resolution_outputs\[1\] has shape \(4, 5\)"),
        ([(4, 3)], [(2, 3)], None, r"low_resolution_outputs\[0\] has shape \(2, 3\)"),
        ([(4, 3)], [(4,)], None, r"low_resolution_outputs\[0\] has shape \(4,\)"),
        ([(4, 3), (4, 3)], [], [(8, 3)], "queue_outputs holds 1 tensors; expected one per"),
        ([(4, 3), (4, 3)], [], [(8, 3), (8, 2)], r"queue_outputs\[1\] has shape \(8, 2\)"),
    ],
)
def test_bad_outputs_are_refused(
    high: list[tuple[int, ...]],
    low: list[tuple[int, ...]],
    queue: list[tuple[int, ...]] | None,
    message: str,
) -> None:
    def tensors(shapes: list[tuple[int, ...]]) -> list[Tensor]:
        return [torch.zeros(s) for s in shapes]

    with pytest.raises(DataError, match="SwaVLoss: " + message):
        SwaVLoss()(tensors(high), tensors(low), tensors(queue) if queue is not None else None)


def test_gather_distributed_without_process_group_is_single_process() -> None:
    high, low = [_unit_scores(10, 4, 3), _unit_scores(11, 4, 3)], [_unit_scores(12, 4, 3)]
    torch.testing.assert_close(
        SwaVLoss(sinkhorn_gather_distributed=True)(high, low), SwaVLoss()(high, low)
    )


# --------------------------------------------------------------------------- DDP, 2 processes

WORLD_SIZE, N_LOCAL, N_QUEUE, IN_DIM, K = 2, 3, 4, 5, 6


def _make_model() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(IN_DIM, K).double()


def _global_views() -> list[Tensor]:
    """Two high-resolution views and one low-resolution view of the global batch."""
    g = torch.Generator().manual_seed(100)
    n = WORLD_SIZE * N_LOCAL
    return [torch.randn(n, IN_DIM, generator=g, dtype=torch.float64) for _ in range(3)]


def _global_scores() -> Tensor:
    """Scores of the global batch, for sinkhorn alone."""
    return _unit_scores(300, WORLD_SIZE * N_LOCAL, K)


def _queues(rank: int) -> list[Tensor]:
    """Each process's own queue of scores, one per high-resolution view."""
    g = torch.Generator().manual_seed(200 + rank)
    return [torch.rand(N_QUEUE, K, generator=g, dtype=torch.float64) for _ in range(2)]


def _loss_of(model: nn.Module, views: list[Tensor], queues: list[Tensor], gather: bool) -> Tensor:
    # One forward call per backward, as DDP expects.
    scores = list(model(torch.cat(views)).chunk(len(views)))
    criterion = SwaVLoss(sinkhorn_gather_distributed=gather)
    loss: Tensor = criterion(scores[:2], scores[2:], queues)
    return loss


def _worker(argv: list[str]) -> None:
    """One process: its half of the views and its own queues, SwaVLoss with the Sinkhorn
    step gathered over both processes."""
    with gloo_group(argv) as (rank, _, out_dir):
        local = slice(rank * N_LOCAL, (rank + 1) * N_LOCAL)
        model = nn.parallel.DistributedDataParallel(_make_model())
        views = [v[local] for v in _global_views()]
        loss = _loss_of(model, views, _queues(rank), gather=True)
        loss.backward()
        scores = torch.cat([_global_scores()[local], _queues(rank)[0]])
        codes = sinkhorn(scores, 3, 0.05, gather_distributed=True)
        result = {"loss": loss.detach(), "codes": codes}
        for name, p in model.module.named_parameters():
            assert p.grad is not None
            result[f"grad.{name}"] = p.grad
        torch.save(result, out_dir / f"rank{rank}.pt")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ddp_codes_are_balanced_over_the_global_batch(tmp_path: Path) -> None:
    # The codes of every process are those of one process holding the global batch and all
    # queues; each process's loss is the mean over its own samples, so the mean of the
    # processes' losses is the global loss and DDP's averaged gradient is its gradient.
    run_workers(Path(__file__), tmp_path, WORLD_SIZE, timeout=120.0)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE)]
    model = _make_model()
    views = _global_views()
    all_queues = [torch.cat([_queues(r)[i] for r in range(WORLD_SIZE)]) for i in range(2)]
    loss = _loss_of(model, views, all_queues, gather=False)
    loss.backward()
    mean_loss = sum(res["loss"] for res in results) / WORLD_SIZE
    torch.testing.assert_close(mean_loss, loss.detach(), rtol=1e-12, atol=1e-12)
    assert not torch.allclose(results[0]["loss"], results[1]["loss"])
    for res in results:
        for name, p in model.named_parameters():
            assert p.grad is not None
            torch.testing.assert_close(res[f"grad.{name}"], p.grad, rtol=1e-10, atol=1e-12)
    # sinkhorn alone: each process's codes (batch rows, then its queue's) are its block of
    # the codes of one process holding every block.
    blocks = [
        torch.cat([_global_scores()[r * N_LOCAL : (r + 1) * N_LOCAL], _queues(r)[0]])
        for r in range(WORLD_SIZE)
    ]
    full = sinkhorn(torch.cat(blocks), 3, 0.05).split(N_LOCAL + N_QUEUE)
    for res, expected in zip(results, full, strict=True):
        torch.testing.assert_close(res["codes"], expected, rtol=1e-12, atol=1e-14)


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--worker":
    _worker(sys.argv)
