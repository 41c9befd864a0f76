"""DistillationLoss against its two equations written out in loops, its queue, its errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _contract import check_two_view_loss
from selfsup.errors import ConfigError, DataError
from selfsup.loss import DistillationLoss
from selfsup.loss.distillation_loss import distillation_loss


def _unit(v: list[float]) -> list[float]:
    norm = math.sqrt(sum(a * a for a in v))
    return [a / norm for a in v]


def ref_direct(s: list[list[float]], t: list[list[float]]) -> float:
    """L = (1/B) Σ_i ‖ŝ_i − t̂_i‖²."""
    total = 0.0
    for si, ti in zip(s, t, strict=True):
        total += sum((a - b) ** 2 for a, b in zip(_unit(si), _unit(ti), strict=True))
    return total / len(s)


def ref_soft(
    s: list[list[float]], t: list[list[float]], queue: list[list[float]], tau_s: float, tau_t: float
) -> float:
    """L = −(1/B) Σ_i Σ_j p_ij log r_ij over keys Q = [t̂_1..t̂_B, q_1..q_M]."""
    keys = [_unit(ti) for ti in t] + queue
    total = 0.0
    for si, ti in zip(s, t, strict=True):
        su, tu = _unit(si), _unit(ti)
        t_logits = [sum(a * b for a, b in zip(tu, k, strict=True)) / tau_t for k in keys]
        s_logits = [sum(a * b for a, b in zip(su, k, strict=True)) / tau_s for k in keys]
        t_norm = sum(math.exp(x) for x in t_logits)
        s_log_norm = math.log(sum(math.exp(x) for x in s_logits))
        for tl, sl in zip(t_logits, s_logits, strict=True):
            total -= math.exp(tl) / t_norm * (sl - s_log_norm)
    return total / len(s)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 5), dim=st.integers(1, 6))
def test_direct_loss_matches_the_equation(seed: int, n: int, dim: int) -> None:
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(n, dim, generator=g, dtype=torch.float64)
    t = torch.randn(n, dim, generator=g, dtype=torch.float64)
    expected = ref_direct(s.tolist(), t.tolist())
    assert distillation_loss(s, t).item() == pytest.approx(expected, abs=1e-12)
    assert DistillationLoss()(s, t).item() == pytest.approx(expected, abs=1e-12)
    # The normalised MSE is 2 − 2 cos: cosine similarity up to an affine map.
    cos = torch.nn.functional.cosine_similarity(s, t, dim=1).mean().item()
    assert expected == pytest.approx(2 - 2 * cos, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 4),
    m=st.integers(0, 5),
    dim=st.integers(1, 5),
    tau_s=st.floats(0.05, 1.0),
    tau_t=st.floats(0.05, 1.0),
)
def test_soft_assignment_matches_the_equation(
    seed: int, n: int, m: int, dim: int, tau_s: float, tau_t: float
) -> None:
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(n, dim, generator=g, dtype=torch.float64)
    t = torch.randn(n, dim, generator=g, dtype=torch.float64)
    queue = torch.nn.functional.normalize(torch.randn(m, dim, generator=g, dtype=torch.float64))
    expected = ref_soft(s.tolist(), t.tolist(), queue.tolist(), tau_s, tau_t)
    loss = distillation_loss(s, t, queue, student_temperature=tau_s, teacher_temperature=tau_t)
    assert loss.item() == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_direct_loss_closed_forms() -> None:
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    assert distillation_loss(3 * x, x).item() == pytest.approx(0.0, abs=1e-7)
    assert distillation_loss(-x, x).item() == pytest.approx(4.0)
    orthogonal = torch.tensor([[-2.0, 1.0], [1.0, 3.0]])
    assert distillation_loss(orthogonal, x).item() == pytest.approx(2.0)


@pytest.mark.parametrize("queue_size", [0, 16])
def test_two_view_loss_contract(queue_size: int) -> None:
    check_two_view_loss(lambda: DistillationLoss(queue_size=queue_size))


def test_queue_reads_past_batches_then_enqueues_in_training_mode_only() -> None:
    g = torch.Generator().manual_seed(0)
    criterion = DistillationLoss(queue_size=5, student_temperature=0.2, teacher_temperature=0.1)
    batches = [(torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)) for _ in range(3)]
    seen: list[torch.Tensor] = []
    for s, t in batches:
        # The queue as it was before this batch: the last 5 normalised teacher embeddings.
        past = torch.cat(seen)[-5:] if seen else torch.zeros(0, 4)
        expected = distillation_loss(s, t, past, 0.2, 0.1)
        torch.testing.assert_close(criterion(s, t), expected)
        seen.append(torch.nn.functional.normalize(t, dim=1))
    assert int(criterion.queue_filled) == 5
    criterion.eval()
    before = criterion.queue.clone()
    criterion(*batches[0])
    assert torch.equal(criterion.queue, before)
    criterion(*batches[0], update=True)
    assert not torch.equal(criterion.queue, before)


def test_queue_is_not_saved_in_checkpoints() -> None:
    criterion = DistillationLoss(queue_size=4)
    criterion(torch.randn(2, 3), torch.randn(2, 3))
    assert criterion.state_dict() == {}


def test_teacher_of_another_dimension_is_refused_by_the_queue() -> None:
    criterion = DistillationLoss(queue_size=4)
    criterion(torch.randn(2, 3), torch.randn(2, 3))
    with pytest.raises(DataError, match="dimension 5 but the queue holds vectors of dimension 3"):
        criterion(torch.randn(2, 5), torch.randn(2, 5))


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(DataError, match=r"same shape|\(batch_size, dim\)"):
        distillation_loss(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(DataError, match=r"queue must have shape \(entries, 3\)"):
        distillation_loss(torch.randn(2, 3), torch.randn(2, 3), torch.randn(4, 2))
    with pytest.raises(ConfigError, match="memory_bank_size"):
        DistillationLoss(queue_size=-1)
    with pytest.raises(ConfigError, match="temperature"):
        DistillationLoss(student_temperature=0.0)
