"""Tests for selfsup.loss.ibot_loss against iBOT's eq. 2 written as loops.

Reference: for every image b and masked patch i of b, H(P_t(u_i), P_s(û_i)) with
P_t = softmax((h_t - c)/τ_t) and P_s = softmax(h_s/τ_s), averaged over the masked patches of
each image, then over the images; c ← m c + (1 - m) · mean of the masked teacher outputs.
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
from selfsup.loss import IBOTPatchLoss


def _softmax(x: list[float]) -> list[float]:
    top = max(x)
    e = [math.exp(v - top) for v in x]
    s = sum(e)
    return [v / s for v in e]


def ref_ibot(
    teacher: list[list[float]],
    student: list[list[float]],
    mask: list[list[bool]],
    center: list[float],
    tau_t: float,
    tau_s: float,
) -> float:
    """(1/B) Σ_b (1/M_b) Σ_{i masked in b} -P_t(u_i)·log P_s(û_i); rows in mask order."""
    total, row = 0.0, 0
    for image in mask:
        image_sum, count = 0.0, 0
        for masked in image:
            if not masked:
                continue
            p_t = _softmax([(a - c) / tau_t for a, c in zip(teacher[row], center, strict=True)])
            p_s = _softmax([b / tau_s for b in student[row]])
            image_sum += -sum(a * math.log(b) for a, b in zip(p_t, p_s, strict=True))
            count += 1
            row += 1
        total += image_sum / max(count, 1)
    return total / len(mask)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 3),
    patches=st.integers(1, 5),
    dim=st.integers(2, 5),
    tau_t=st.sampled_from([0.04, 0.5]),
    tau_s=st.sampled_from([0.1, 0.3]),
    momentum=st.sampled_from([0.0, 0.9]),
)
def test_matches_eq2_and_the_center_update_over_two_steps(
    seed: int, batch: int, patches: int, dim: int, tau_t: float, tau_s: float, momentum: float
) -> None:
    g = torch.Generator().manual_seed(seed)
    criterion = IBOTPatchLoss(
        output_dim=dim, teacher_temp=tau_t, student_temp=tau_s, center_momentum=momentum
    )
    center = [0.0] * dim
    for _ in range(2):
        mask = torch.rand(batch, patches, generator=g) < 0.5
        m = int(mask.sum())
        teacher = torch.randn(m, dim, generator=g, dtype=torch.float64)
        student = torch.randn(m, dim, generator=g, dtype=torch.float64)
        loss = criterion(teacher, student, mask)
        expected = ref_ibot(teacher.tolist(), student.tolist(), mask.tolist(), center, tau_t, tau_s)
        assert loss.item() == pytest.approx(expected, rel=1e-6, abs=1e-9)
        if m:
            mean = teacher.mean(dim=0).tolist()
            center = [momentum * c + (1 - momentum) * v for c, v in zip(center, mean, strict=True)]
        assert criterion.center.flatten().tolist() == pytest.approx(center, rel=1e-5, abs=1e-6)


def test_mask_of_images_as_grids_is_accepted() -> None:
    mask = torch.zeros(2, 2, 3, dtype=torch.bool)
    mask[0, 0, 1] = mask[1, 1, 2] = mask[1, 0, 0] = True
    teacher, student = torch.randn(3, 4), torch.randn(3, 4)
    flat = IBOTPatchLoss(output_dim=4)(teacher, student, mask.flatten(1))
    torch.testing.assert_close(IBOTPatchLoss(output_dim=4)(teacher, student, mask), flat)


def test_uniform_student_gives_log_output_dim() -> None:
    mask = torch.ones(2, 3, dtype=torch.bool)
    loss = IBOTPatchLoss(output_dim=5)(torch.randn(6, 5), torch.zeros(6, 5), mask)
    assert loss.item() == pytest.approx(math.log(5), abs=1e-6)


class _PairOfViews(nn.Module):
    """Each view as teacher and as student of the other; all 8 rows are masked patches of
    two images. The loss is built on first use, with the dimension of the inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.loss: IBOTPatchLoss | None = None

    def forward(self, z0: Tensor, z1: Tensor) -> Tensor:
        if self.loss is None:
            self.loss = IBOTPatchLoss(output_dim=z0.shape[1]).to(z0)
        mask = torch.ones(2, z0.shape[0] // 2, dtype=torch.bool)
        out: Tensor = 0.5 * (self.loss(z0, z1, mask) + self.loss(z1, z0, mask))
        return out


def test_contract() -> None:
    check_two_view_loss(_PairOfViews)


def test_shapes_that_do_not_match_the_mask_are_a_clear_error() -> None:
    mask = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(DataError, match=r"student_out has shape \(5, 4\); expected \(masked"):
        IBOTPatchLoss(output_dim=4)(torch.randn(6, 4), torch.randn(5, 4), mask)
    with pytest.raises(DataError, match="mask must be a boolean"):
        IBOTPatchLoss(output_dim=4)(torch.randn(6, 4), torch.randn(6, 4), mask.float())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"output_dim": 0}, "output_dim must be an integer >= 1, got 0"),
        ({"teacher_temp": 0.0}, "teacher_temp must be a finite number > 0"),
        ({"student_temp": math.inf}, "student_temp must be a finite number > 0"),
        ({"center_momentum": 1.5}, r"center_momentum must be in \[0, 1\]"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        IBOTPatchLoss(**kwargs)  # type: ignore[arg-type]
