"""Tests for selfsup.loss.dino_loss against DINO's eq. 3 (loss) and eq. 4 (center update).

The reference below loops over views, samples and output dimensions with plain floats. The
2-process test runs this file as a script (``python test_dino_loss.py --worker ...``).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _ddp import gloo_group, run_workers
from selfsup.errors import ConfigError, DataError
from selfsup.loss import DINOLoss
from selfsup.loss.dino_loss import teacher_temperature

Views = list[list[list[float]]]  # [view][sample][dim]


def _softmax(x: list[float]) -> list[float]:
    top = max(x)
    e = [math.exp(v - top) for v in x]
    s = sum(e)
    return [v / s for v in e]


def ref_dino(
    teacher: Views, student: Views, center: list[float], tau_t: float, tau_s: float
) -> float:
    """Eq. 3 averaged over its terms: H(P_t(x), P_s(x')) for every global view x, every other
    view x' and every sample, with P_t = softmax((g_t - c)/τ_t), P_s = softmax(g_s/τ_s)."""
    total, count = 0.0, 0
    for t, t_view in enumerate(teacher):
        for s, s_view in enumerate(student):
            if s == t:  # x' ≠ x: the same crop is skipped
                continue
            for g_t, g_s in zip(t_view, s_view, strict=True):
                p_t = _softmax([(a - c) / tau_t for a, c in zip(g_t, center, strict=True)])
                p_s = _softmax([b / tau_s for b in g_s])
                total += -sum(a * math.log(b) for a, b in zip(p_t, p_s, strict=True))
                count += 1
    return total / count


def ref_center(teacher: Views, center: list[float], m: float) -> list[float]:
    """Eq. 4: c ← m c + (1 - m) · mean of the teacher outputs (all views and samples)."""
    rows = [row for view in teacher for row in view]
    return [m * c + (1 - m) * sum(row[d] for row in rows) / len(rows) for d, c in enumerate(center)]


def _lists(views: list[torch.Tensor]) -> Views:
    return [[[float(v) for v in row] for row in view] for view in views]


def _views(seed: int, n_views: int, batch: int, dim: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, generator=g, dtype=torch.float64) for _ in range(n_views)]


# --------------------------------------------------------------------------- paper formulas


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n_teacher=st.integers(1, 2),
    n_local=st.integers(0, 3),
    batch=st.integers(1, 3),
    dim=st.integers(2, 5),
    tau_t=st.sampled_from([0.04, 0.07, 0.5]),
    tau_s=st.sampled_from([0.1, 0.3]),
    momentum=st.sampled_from([0.0, 0.5, 0.9]),
)
def test_matches_eq3_and_eq4_over_two_steps(
    seed: int,
    n_teacher: int,
    n_local: int,
    batch: int,
    dim: int,
    tau_t: float,
    tau_s: float,
    momentum: float,
) -> None:
    n_student = max(n_teacher + n_local, 2)
    criterion = DINOLoss(
        output_dim=dim,
        warmup_teacher_temp=tau_t,
        teacher_temp=tau_t,
        student_temp=tau_s,
        center_momentum=momentum,
    )
    center = [0.0] * dim
    for step in range(2):  # the second step uses the center updated by the first
        teacher = _views(seed + 10 * step, n_teacher, batch, dim)
        student = _views(seed + 10 * step + 1, n_student, batch, dim)
        loss = criterion(teacher, student)
        expected = ref_dino(_lists(teacher), _lists(student), center, tau_t, tau_s)
        assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)
        center = ref_center(_lists(teacher), center, momentum)
        assert criterion.center.shape == (1, 1, dim)
        assert criterion.center.flatten().tolist() == pytest.approx(center, rel=1e-5, abs=1e-6)


def test_uniform_student_gives_log_output_dim() -> None:
    # P_s uniform => H(P_t, P_s) = -Σ P_t log(1/D) = log D whatever the teacher.
    dim = 7
    teacher = _views(0, 2, 3, dim)
    student = [torch.zeros(3, dim, dtype=torch.float64) for _ in range(4)]
    loss = DINOLoss(output_dim=dim)(teacher, student)
    assert loss.item() == pytest.approx(math.log(dim), abs=1e-12)


def test_teacher_temperature_schedule() -> None:
    args = (0.04, 0.07, 31)
    assert teacher_temperature(0, *args) == pytest.approx(0.04)
    assert teacher_temperature(15, *args) == pytest.approx(0.055)
    assert teacher_temperature(30, *args) == pytest.approx(0.07)
    assert teacher_temperature(100, *args) == pytest.approx(0.07)
    expected = torch.linspace(0.04, 0.07, 31, dtype=torch.float64)  # lightly's schedule
    for epoch in range(31):
        assert teacher_temperature(epoch, *args) == pytest.approx(float(expected[epoch]))
    assert teacher_temperature(0, 0.04, 0.07, 1) == pytest.approx(0.04)
    assert teacher_temperature(0, 0.04, 0.07, 0) == pytest.approx(0.07)


@pytest.mark.parametrize(
    ("epoch", "override", "expected_temp"),
    [(None, None, 0.07), (0, None, 0.04), (10, None, 0.07), (0, 0.5, 0.5), (None, 0.2, 0.2)],
)
def test_forward_uses_the_scheduled_or_given_teacher_temperature(
    epoch: int | None, override: float | None, expected_temp: float
) -> None:
    teacher, student = _views(0, 2, 2, 4), _views(1, 3, 2, 4)
    criterion = DINOLoss(
        output_dim=4, warmup_teacher_temp=0.04, teacher_temp=0.07, warmup_teacher_temp_epochs=5
    )
    loss = criterion(teacher, student, epoch, teacher_temp=override)
    expected = ref_dino(_lists(teacher), _lists(student), [0.0] * 4, expected_temp, 0.1)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


# --------------------------------------------------------------------------- properties


def test_optimising_the_student_lowers_the_loss_and_teacher_gets_no_gradient() -> None:
    torch.manual_seed(0)
    teacher = [torch.randn(4, 8, requires_grad=True) for _ in range(2)]
    student = [torch.randn(4, 8, requires_grad=True) for _ in range(4)]
    criterion = DINOLoss(output_dim=8, center_momentum=1.0)  # frozen center: same objective
    first = criterion(teacher, student).item()
    for _ in range(20):
        # Plain gradient descent by hand: torch.optim's first use imports torch._dynamo (slow).
        grads = torch.autograd.grad(criterion(teacher, student), student)
        with torch.no_grad():
            for v, g in zip(student, grads, strict=True):
                v -= 0.05 * g
    assert criterion(teacher, student).item() < first - 0.1
    # Stop-gradient on the teacher: backward reaches the student only.
    criterion(teacher, student).backward()
    assert all(t.grad is None for t in teacher)
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in student)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_kept_and_inputs_not_mutated(dtype: torch.dtype) -> None:
    teacher = [v.to(dtype) for v in _views(0, 2, 3, 5)]
    student = [v.to(dtype).requires_grad_(True) for v in _views(1, 3, 3, 5)]
    before = [v.detach().clone() for v in teacher + student]
    loss = DINOLoss(output_dim=5)(teacher, student)
    assert loss.dtype == dtype
    assert loss.shape == ()
    loss.backward()
    for v, b in zip(teacher + student, before, strict=True):
        assert torch.equal(v.detach(), b)


def test_center_is_saved_in_checkpoints_and_deterministic() -> None:
    losses = []
    for _ in range(2):
        criterion = DINOLoss(output_dim=3)
        losses.append(criterion(_views(0, 2, 2, 3), _views(1, 2, 2, 3)))
        assert set(criterion.state_dict()) == {"center"}
    assert torch.equal(losses[0], losses[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda_like_on_cpu() -> None:
    teacher, student = _views(0, 2, 3, 5), _views(1, 4, 3, 5)
    cpu = DINOLoss(output_dim=5)
    gpu = DINOLoss(output_dim=5).cuda()
    for _ in range(2):
        expected = cpu(teacher, student)
        loss = gpu([v.cuda() for v in teacher], [v.cuda() for v in student])
        assert loss.device.type == "cuda"
        torch.testing.assert_close(loss.cpu(), expected)
    torch.testing.assert_close(gpu.center.cpu(), cpu.center)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"output_dim": 0}, "output_dim must be an integer >= 1, got 0"),
        ({"teacher_temp": 0.0}, "teacher_temp must be a finite number > 0, got 0.0"),
        ({"student_temp": -1.0}, "student_temp must be a finite number > 0, got -1.0"),
        ({"warmup_teacher_temp": math.nan}, "warmup_teacher_temp must be a finite number > 0"),
        ({"warmup_teacher_temp_epochs": -1}, "warmup_teacher_temp_epochs must be >= 0, got -1"),
        ({"center_momentum": 1.5}, r"center_momentum must be in \[0, 1\], got 1.5"),
    ],
)
def test_bad_config_is_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DINOLoss(**kwargs)


def test_bad_views_are_rejected() -> None:
    criterion = DINOLoss(output_dim=4)
    with pytest.raises(DataError, match=r"student_out\[1\] has shape \(3, 4\)"):
        criterion(_views(0, 1, 2, 4), [torch.zeros(2, 4), torch.zeros(3, 4)])
    with pytest.raises(DataError, match=r"teacher_out\[0\] has shape \(2, 5\).*output_dim=4"):
        criterion(_views(0, 1, 2, 5), _views(1, 2, 2, 5))
    with pytest.raises(DataError, match="non-empty lists"):
        criterion([], _views(1, 2, 2, 4))
    with pytest.raises(DataError, match="at least two views"):
        criterion(_views(0, 1, 2, 4), _views(1, 1, 2, 4))


# --------------------------------------------------------------------------- 2 processes

WORLD_SIZE = 2
N_LOCAL = 2
DIM = 5
MOMENTUM = 0.6


def _global_views(step: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    return _views(10 * step, 2, WORLD_SIZE * N_LOCAL, DIM), _views(
        10 * step + 1, 4, WORLD_SIZE * N_LOCAL, DIM
    )


def _worker(argv: list[str]) -> None:
    """One process: its half of the batch, two steps of DINOLoss."""
    with gloo_group(argv) as (rank, _, out_dir):
        local = slice(rank * N_LOCAL, (rank + 1) * N_LOCAL)
        criterion = DINOLoss(output_dim=DIM, center_momentum=MOMENTUM)
        losses = []
        for step in range(2):
            teacher, student = _global_views(step)
            losses.append(criterion([v[local] for v in teacher], [v[local] for v in student]))
        result = {"losses": torch.stack(losses), "center": criterion.center}
        torch.save(result, out_dir / f"rank{rank}.pt")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_processes_share_the_center_of_the_global_batch(tmp_path: Path) -> None:
    run_workers(Path(__file__), tmp_path, WORLD_SIZE, timeout=120.0)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE)]
    single = DINOLoss(output_dim=DIM, center_momentum=MOMENTUM)
    single_losses = torch.stack([single(*_global_views(step)) for step in range(2)])
    for res in results:
        # Same center everywhere: the update averaged the teacher outputs of both processes.
        torch.testing.assert_close(res["center"], single.center)
    # Each process averages over its own samples with the shared center, so the mean of the
    # per-process losses is the full-batch loss, also at step 2 (after one center update).
    mean_losses = torch.stack([res["losses"] for res in results]).mean(dim=0)
    torch.testing.assert_close(mean_losses, single_losses)
    assert not torch.allclose(results[0]["losses"], results[1]["losses"])


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--worker":
    _worker(sys.argv)
