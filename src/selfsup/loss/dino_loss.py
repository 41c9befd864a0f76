"""DINO's self-distillation loss with teacher centering and sharpening.

DINO (Caron et al. 2021, eq. 3), the multi-crop objective:

    min_θs Σ_{x ∈ {x1g, x2g}} Σ_{x' ∈ V, x' ≠ x} H(P_t(x), P_s(x'))

with H(a, b) = -a log b, the student's P_s(x) = softmax(g_θs(x) / τ_s) and the teacher's
centred and sharpened P_t(x) = softmax((g_θt(x) - c) / τ_t). The center follows eq. 4:

    c ← m c + (1 - m) (1/B) Σ_{i=1}^{B} g_θt(x_i)

and gradients flow only through the student (stop-gradient on the teacher). As in the
authors' code, the batch mean of eq. 4 runs over all global views and all processes.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError
from selfsup.utils import dist

__all__ = ["DINOLoss", "dino_cross_entropy", "teacher_temperature"]


def teacher_temperature(
    epoch: int, warmup_teacher_temp: float, teacher_temp: float, warmup_teacher_temp_epochs: int
) -> float:
    """Teacher temperature at ``epoch``: linear warm-up, then constant.

    DINO warms τ_t up linearly (from 0.04 to 0.07 over the first 30 epochs in the paper) to
    avoid early instability. Epoch 0 gives ``warmup_teacher_temp``; epoch
    ``warmup_teacher_temp_epochs - 1`` and later give ``teacher_temp`` (lightly's schedule,
    ``torch.linspace(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs)``).
    """
    if epoch >= warmup_teacher_temp_epochs:
        return teacher_temp
    if warmup_teacher_temp_epochs == 1:
        return warmup_teacher_temp
    frac = epoch / (warmup_teacher_temp_epochs - 1)
    return warmup_teacher_temp + frac * (teacher_temp - warmup_teacher_temp)


def dino_cross_entropy(
    teacher_out: Tensor,
    student_out: Tensor,
    center: Tensor,
    teacher_temp: float,
    student_temp: float,
) -> Tensor:
    """Mean of H(P_t, P_s) over all (teacher view, other student view) pairs and samples.

    Teacher view t and student view s are the same crop when t == s (the global crops come
    first in both lists), and those pairs are skipped as in eq. 3.

    Args:
        teacher_out: (T, B, D) teacher outputs of the T global views; no gradient flows to it.
        student_out: (S, B, D) student outputs of all S views, the T global ones first.
        center: (D,) or broadcastable center C subtracted from the teacher outputs.
        teacher_temp: τ_t > 0.
        student_temp: τ_s > 0.

    Returns:
        Scalar loss: Σ_{t≠s} Σ_b H(P_t[t, b], P_s[s, b]) / (n_pairs * B).
    """
    n_t, batch_size, _ = teacher_out.shape
    n_s = student_out.shape[0]
    n_pairs = n_t * n_s - min(n_t, n_s)
    if n_pairs == 0:
        raise DataError(
            "dino_cross_entropy: need at least two views in total (one teacher view and a "
            f"different student view), got {n_t} teacher and {n_s} student view(s)"
        )
    p_t = F.softmax((teacher_out.detach() - center) / teacher_temp, dim=-1)
    log_p_s = F.log_softmax(student_out / student_temp, dim=-1)
    # h[t, s] = Σ_b H(P_t[t, b], P_s[s, b]); t indexes teacher, s student views.
    h = -torch.einsum("tbd,sbd->ts", p_t, log_p_s)
    same_view = torch.eye(n_t, n_s, dtype=torch.bool, device=h.device)
    return h.masked_fill(same_view, 0.0).sum() / (n_pairs * batch_size)


class DINOLoss(nn.Module):
    """Cross-entropy between the centred, sharpened teacher and the student (DINO).

    Args:
        output_dim: Dimension D of the head's output (number of prototypes).
        warmup_teacher_temp: Teacher temperature at epoch 0.
        teacher_temp: Teacher temperature after the warm-up.
        warmup_teacher_temp_epochs: Epochs of linear warm-up of the teacher temperature.
        student_temp: Student temperature τ_s.
        center_momentum: Momentum m of the center's moving average.

    The center is a (1, 1, output_dim) buffer, saved in checkpoints. Under
    ``torch.distributed`` its update averages the teacher outputs of all processes (all
    processes must use the same batch size), so every process keeps the same center.

    Examples:
        >>> loss_fn = DINOLoss(output_dim=2048)
        >>> teacher_out = [teacher(v) for v in global_views]  # (batch_size, 2048) each
        >>> student_out = [student(v) for v in global_views + local_views]
        >>> loss = loss_fn(teacher_out, student_out, epoch=epoch)
    """

    center: Tensor

    def __init__(
        self,
        output_dim: int = 65536,
        warmup_teacher_temp: float = 0.04,
        teacher_temp: float = 0.04,
        warmup_teacher_temp_epochs: int = 30,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
    ) -> None:
        super().__init__()
        if isinstance(output_dim, bool) or not isinstance(output_dim, int) or output_dim < 1:
            raise ConfigError(f"DINOLoss: output_dim must be an integer >= 1, got {output_dim!r}")
        for name, value in (
            ("warmup_teacher_temp", warmup_teacher_temp),
            ("teacher_temp", teacher_temp),
            ("student_temp", student_temp),
        ):
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"DINOLoss: {name} must be a finite number > 0, got {value!r}")
        if warmup_teacher_temp_epochs < 0:
            raise ConfigError(
                f"DINOLoss: warmup_teacher_temp_epochs must be >= 0, "
                f"got {warmup_teacher_temp_epochs!r}"
            )
        if not 0.0 <= center_momentum <= 1.0:
            raise ConfigError(
                f"DINOLoss: center_momentum must be in [0, 1], got {center_momentum!r}"
            )
        self.output_dim = output_dim
        self.warmup_teacher_temp = warmup_teacher_temp
        self.teacher_temp = teacher_temp
        self.warmup_teacher_temp_epochs = warmup_teacher_temp_epochs
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, 1, output_dim))

    def forward(
        self,
        teacher_out: list[Tensor],
        student_out: list[Tensor],
        epoch: int | None = None,
        *,
        teacher_temp: float | None = None,
    ) -> Tensor:
        """Return the loss, then update the center with the teacher outputs.

        Args:
            teacher_out: T tensors of shape (batch_size, output_dim), one per global view.
            student_out: S tensors of shape (batch_size, output_dim), the global views first
                in the same order as ``teacher_out``, then the local views.
            epoch: Current epoch, selects the warmed-up teacher temperature. None means
                after the warm-up.
            teacher_temp: Overrides the teacher temperature for this call.

        Returns:
            Scalar loss computed with the center from before this call.
        """
        if not teacher_out or not student_out:
            raise DataError(
                f"DINOLoss: teacher_out and student_out must be non-empty lists of tensors, "
                f"got {len(teacher_out)} and {len(student_out)}"
            )
        shape = teacher_out[0].shape
        for name, views in (("teacher_out", teacher_out), ("student_out", student_out)):
            for i, v in enumerate(views):
                if v.ndim != 2 or v.shape != shape or v.shape[1] != self.output_dim:
                    raise DataError(
                        f"DINOLoss: {name}[{i}] has shape {tuple(v.shape)}; every view must "
                        f"have shape (batch_size, output_dim={self.output_dim}) and the same "
                        f"batch size as teacher_out[0] {tuple(shape)}"
                    )
        if teacher_temp is None:
            temp = self.teacher_temp
            if epoch is not None:
                temp = teacher_temperature(
                    epoch,
                    self.warmup_teacher_temp,
                    self.teacher_temp,
                    self.warmup_teacher_temp_epochs,
                )
        else:
            temp = teacher_temp
        t = torch.stack(teacher_out)
        loss = dino_cross_entropy(
            t, torch.stack(student_out), self.center.to(t.dtype), temp, self.student_temp
        )
        self.update_center(t)
        return loss

    @torch.no_grad()
    def update_center(self, teacher_out: Tensor) -> None:
        """c ← m c + (1 - m) mean(teacher_out) over views, samples and processes.

        Args:
            teacher_out: (T, B, output_dim) teacher outputs.
        """
        batch_center = teacher_out.detach().mean(dim=(0, 1), keepdim=True).to(self.center)
        if dist.is_dist_initialized():
            torch_dist.all_reduce(batch_center, op=torch_dist.ReduceOp.SUM)
            batch_center /= dist.world_size()
        self.center.mul_(self.center_momentum).add_((1.0 - self.center_momentum) * batch_center)
