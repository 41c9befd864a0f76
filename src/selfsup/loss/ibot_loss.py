"""iBOT's masked-image-modelling loss on patch tokens, against a centred, sharpened teacher.

iBOT (Zhou et al. 2022, https://arxiv.org/abs/2111.07832, eq. 2): the student sees a view
whose masked patches are replaced by a mask token, the teacher the plain view, and every
masked patch of the student predicts the teacher's distribution of the same patch:

    L_MIM = - Σ_{i=1}^{N} m_i · P_θ'^patch(u_i)^T log P_θ^patch(û_i)

with P_θ^patch = softmax(h_s(·) / τ_s) for the student and, as in DINO, the teacher's
P_θ'^patch = softmax((h_t(·) - c) / τ_t) with its own center c, a moving average of the
teacher's patch outputs. As in the authors' code (and DINOv2's), each image's sum is divided
by its number of masked patches and the result averaged over the images, so an image with
few masked patches counts as much as one with many.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError
from selfsup.utils import dist

__all__ = ["IBOTPatchLoss", "ibot_patch_cross_entropy"]


def ibot_patch_cross_entropy(
    teacher_out: Tensor,
    student_out: Tensor,
    mask: Tensor,
    center: Tensor,
    teacher_temp: float,
    student_temp: float,
) -> Tensor:
    """Eq. 2 averaged per image over its masked patches, then over the images.

    Args:
        teacher_out: (M, D) teacher outputs of the M masked patches of the batch, in the
            order of ``mask.nonzero()`` (row-major: image, then patch); no gradient flows
            to it.
        student_out: (M, D) student outputs of the same patches.
        mask: (B, ...) boolean mask of the patches (e.g. (B, H, W) or (B, N)); exactly M
            entries are True. An image with no masked patch adds 0 to the sum.
        center: (D,) or broadcastable center subtracted from the teacher outputs.
        teacher_temp: τ_t > 0.
        student_temp: τ_s > 0.

    Returns:
        Scalar (1/B) Σ_b (1/M_b) Σ_{i masked in b} H(P_t(u_i), P_s(û_i)).
    """
    batch_size = mask.shape[0]
    per_image = mask.flatten(start_dim=1).sum(dim=1)  # (B,) masked patches per image
    p_t = F.softmax((teacher_out.detach() - center) / teacher_temp, dim=-1)
    log_p_s = F.log_softmax(student_out / student_temp, dim=-1)
    h = -(p_t * log_p_s).sum(dim=-1)  # (M,) cross-entropy per masked patch
    weight = (1.0 / per_image.clamp(min=1).to(h.dtype)).repeat_interleave(per_image)
    return (h * weight).sum() / batch_size


class IBOTPatchLoss(nn.Module):
    """iBOT's patch loss (see :func:`ibot_patch_cross_entropy`) with its teacher center.

    Args:
        output_dim: D, the size of the patch head's output.
        teacher_temp: τ_t (0.04 in iBOT and DINOv2 after warm-up).
        student_temp: τ_s (0.1).
        center_momentum: m of the center's moving average, c ← m c + (1 - m) mean(h_t).

    The center is a (1, output_dim) buffer, saved in checkpoints. Under ``torch.distributed``
    its update averages the masked teacher outputs of all processes together (each patch
    weighs the same, however the masked patches are spread over the processes).

    Examples:
        >>> loss_fn = IBOTPatchLoss(output_dim=1024)
        >>> # mask: (B, H, W) bool; *_masked: (mask.sum(), 1024) head outputs of those patches
        >>> loss = loss_fn(teacher_masked, student_masked, mask)
    """

    center: Tensor

    def __init__(
        self,
        output_dim: int = 65536,
        teacher_temp: float = 0.04,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
    ) -> None:
        super().__init__()
        if isinstance(output_dim, bool) or not isinstance(output_dim, int) or output_dim < 1:
            raise ConfigError(
                f"IBOTPatchLoss: output_dim must be an integer >= 1, got {output_dim!r}"
            )
        for name, value in (("teacher_temp", teacher_temp), ("student_temp", student_temp)):
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(
                    f"IBOTPatchLoss: {name} must be a finite number > 0, got {value!r}"
                )
        if not 0.0 <= center_momentum <= 1.0:
            raise ConfigError(
                f"IBOTPatchLoss: center_momentum must be in [0, 1], got {center_momentum!r}"
            )
        self.output_dim = output_dim
        self.teacher_temp = teacher_temp
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, output_dim))

    def forward(
        self,
        teacher_out: Tensor,
        student_out: Tensor,
        mask: Tensor,
        teacher_temp: float | None = None,
    ) -> Tensor:
        """Return the loss, then update the center with the teacher outputs.

        Args:
            teacher_out: (M, output_dim) teacher outputs of the masked patches.
            student_out: (M, output_dim) student outputs of the same patches.
            mask: (B, ...) boolean patch mask with exactly M True entries.
            teacher_temp: Overrides τ_t for this call (DINOv2 warms it up).

        Returns:
            Scalar loss computed with the center from before this call.
        """
        if mask.dtype != torch.bool or mask.ndim < 2:
            raise DataError(
                f"IBOTPatchLoss: mask must be a boolean (batch_size, ...) tensor, got "
                f"dtype {mask.dtype} and shape {tuple(mask.shape)}"
            )
        n_masked = int(mask.sum())
        expected = (n_masked, self.output_dim)
        for name, out in (("teacher_out", teacher_out), ("student_out", student_out)):
            if tuple(out.shape) != expected:
                raise DataError(
                    f"IBOTPatchLoss: {name} has shape {tuple(out.shape)}; expected "
                    f"(masked patches={n_masked}, output_dim={self.output_dim}), one row per "
                    f"True entry of mask"
                )
        temp = self.teacher_temp if teacher_temp is None else teacher_temp
        loss = ibot_patch_cross_entropy(
            teacher_out,
            student_out,
            mask,
            self.center.to(teacher_out.dtype),
            temp,
            self.student_temp,
        )
        self.update_center(teacher_out)
        return loss

    @torch.no_grad()
    def update_center(self, teacher_out: Tensor) -> None:
        """c ← m c + (1 - m) mean(teacher_out) over patches and processes.

        Args:
            teacher_out: (M, output_dim) teacher outputs of the masked patches; M = 0 leaves
                the center as it is on this process.
        """
        if teacher_out.shape[0] == 0 and not dist.is_dist_initialized():
            return
        total = teacher_out.detach().sum(dim=0, keepdim=True).to(self.center)
        count = torch.tensor(float(teacher_out.shape[0]), device=self.center.device)
        if dist.is_dist_initialized():
            torch_dist.all_reduce(total, op=torch_dist.ReduceOp.SUM)
            torch_dist.all_reduce(count, op=torch_dist.ReduceOp.SUM)
        if float(count) == 0:
            return
        self.center.mul_(self.center_momentum).add_((1.0 - self.center_momentum) * total / count)
