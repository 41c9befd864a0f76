"""Distillation of a frozen teacher's embeddings into a student: direct or by soft assignment.

The recipe is that of LightlyTrain's ``distillation`` method: a student network, followed by
a projection head to the teacher's embedding size, learns to reproduce the embeddings a
frozen foundation model (e.g. DINOv2) gives the same images. LightlyTrain "use[s] a ViT-B/14
from DINOv2 as the teacher backbone, which we use to compute a queue of representations to
serve the role of a pseudo classifier. The teacher batch representations are projected on
the queue to obtain soft pseudo labels" (LightlyTrain docs, "Distillation: what's under the
hood"). Both variants are implemented, on L2-normalised vectors ŝ_i = s_i / ‖s_i‖ (student
projection) and t̂_i = t_i / ‖t_i‖ (teacher embedding), i = 1..B:

**Direct** (no queue): the mean squared error of the normalised vectors,

    L = (1/B) Σ_i ‖ŝ_i − t̂_i‖²  =  (1/B) Σ_i (2 − 2 cos(s_i, t_i)),

i.e. cosine similarity up to an affine map (as BYOL's normalised MSE). It asks the student
to point where the teacher points, and nothing else.

**Soft assignment** (a queue of K past teacher embeddings q_1..q_M, M ≤ K): the keys are the
teacher embeddings of the batch followed by the queue, Q = [t̂_1..t̂_B, q_1..q_M]; teacher
and student are both "classified" against them,

    p_ij = softmax_j( t̂_i · Q_j / τ_t ),    r_ij = softmax_j( ŝ_i · Q_j / τ_s ),

    L = −(1/B) Σ_i Σ_j p_ij log r_ij,

the cross-entropy of the student's soft pseudo-labels against the teacher's. The student
then learns the teacher's *relations* between images (which ones are near, which far), a
softer target than the exact vector that works with a student too small to copy the
teacher. Why the batch's own teacher embeddings are keys too: the queue is empty at the
first step and still small on a small folder, and the key t̂_i carries the identity of
image i (p_ii is the largest entry of p_i), so the loss is never without a target. The
teacher's temperature is lower than the student's (sharper targets), as in DINO.

The queue stores detached teacher embeddings only (the teacher is frozen, so old entries
stay valid — unlike MoCo's queue of a moving encoder) and is not saved in checkpoints.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError
from selfsup.loss._pair import check_gather_available
from selfsup.loss.memory_bank import enqueue
from selfsup.loss.ntx_ent_loss import check_temperature
from selfsup.utils import dist

__all__ = ["DistillationLoss", "distillation_loss"]


def distillation_loss(
    student: Tensor,
    teacher: Tensor,
    queue: Tensor | None = None,
    student_temperature: float = 0.1,
    teacher_temperature: float = 0.07,
) -> Tensor:
    """The distillation loss of a batch (see the module docstring for both equations).

    Args:
        student: (B, D) student projections s_i.
        teacher: (B, D) teacher embeddings t_i of the same images (the caller computes them
            without gradients; the loss does not detach them, so it stays a function of both).
        queue: None for the direct loss; else (M, D) past teacher embeddings, L2-normalised,
            M >= 0, for the soft-assignment loss (M = 0: the batch's own keys only).
        student_temperature: τ_s of the soft-assignment loss.
        teacher_temperature: τ_t of the soft-assignment loss.

    Returns:
        Scalar loss: in [0, 4] for the direct loss (0 when every ŝ_i = t̂_i); a cross-entropy
        >= the teacher's entropy for the soft-assignment one.
    """
    if student.ndim != 2 or student.shape != teacher.shape:
        raise DataError(
            "distillation_loss: student and teacher must both have shape (batch_size, dim), "
            f"got {tuple(student.shape)} and {tuple(teacher.shape)}; the projection head "
            "maps the student to the teacher's embedding size"
        )
    s = F.normalize(student, dim=1)
    t = F.normalize(teacher, dim=1)
    if queue is None:
        return (s - t).pow(2).sum(dim=1).mean()
    if queue.ndim != 2 or queue.shape[1] != t.shape[1]:
        raise DataError(
            f"distillation_loss: queue must have shape (entries, {t.shape[1]}), "
            f"got {tuple(queue.shape)}"
        )
    keys = torch.cat([t, queue.to(t)], dim=0)
    targets = F.softmax(t @ keys.T / teacher_temperature, dim=1)
    log_student = F.log_softmax(s @ keys.T / student_temperature, dim=1)
    return -(targets * log_student).sum(dim=1).mean()


class DistillationLoss(nn.Module):
    """The distillation loss, holding its temperatures and the queue of teacher embeddings.

    Args:
        queue_size: K, teacher embeddings kept from past batches for the soft-assignment
            loss; 0 gives the direct loss (normalised MSE, i.e. 2 − 2 cos).
        student_temperature: τ_s (soft assignment only).
        teacher_temperature: τ_t (soft assignment only); lower than τ_s gives sharper
            targets than predictions.
        gather_distributed: Enqueue the teacher embeddings of every process (in rank order),
            so all processes keep the same queue.

    Examples:
        >>> criterion = DistillationLoss(queue_size=1024)
        >>> with torch.no_grad():
        ...     t = teacher(x)
        >>> loss = criterion(head(student(x)), t)
    """

    queue: Tensor
    queue_ptr: Tensor
    queue_filled: Tensor

    def __init__(
        self,
        queue_size: int = 0,
        student_temperature: float = 0.1,
        teacher_temperature: float = 0.07,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 0:
            raise ConfigError(
                "DistillationLoss: queue_size (criterion.memory_bank_size) must be an integer "
                f">= 0 (0: direct loss without a queue), got {queue_size!r}"
            )
        check_temperature(student_temperature, "DistillationLoss student_temperature")
        check_temperature(teacher_temperature, "DistillationLoss teacher_temperature")
        check_gather_available(gather_distributed, "DistillationLoss")
        self.queue_size = queue_size
        self.student_temperature = float(student_temperature)
        self.teacher_temperature = float(teacher_temperature)
        self.gather_distributed = gather_distributed
        # (D, K) as MemoryBankModule's bank, created at the first batch once D is known;
        # non-persistent so checkpoints stay small (a resumed run refills it in K/B steps).
        self.register_buffer("queue", torch.empty(0), persistent=False)
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long), persistent=False)
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long), persistent=False)

    def forward(self, student: Tensor, teacher: Tensor, update: bool | None = None) -> Tensor:
        """Scalar loss of student projections (B, D) against teacher embeddings (B, D).

        With a queue, the loss reads the queue as it was before this batch, then enqueues
        the batch's normalised teacher embeddings when ``update`` (default: in training mode).
        """
        if self.queue_size == 0:
            return distillation_loss(student, teacher)
        dim = teacher.shape[-1]
        if self.queue.numel() == 0:
            self.queue = torch.zeros(
                dim, self.queue_size, dtype=teacher.dtype, device=teacher.device
            )
        elif self.queue.shape[0] != dim:
            raise DataError(
                f"DistillationLoss: teacher embeddings have dimension {dim} but the queue "
                f"holds vectors of dimension {self.queue.shape[0]}"
            )
        filled = int(self.queue_filled)
        past = self.queue[:, :filled].T.detach()
        loss = distillation_loss(
            student, teacher, past, self.student_temperature, self.teacher_temperature
        )
        if self.training if update is None else update:
            self._enqueue(F.normalize(teacher.detach(), dim=1))
        return loss

    @torch.no_grad()
    def _enqueue(self, batch: Tensor) -> None:
        if self.gather_distributed:
            batch = torch.cat(dist.gather_no_grad(batch), dim=0)
        self.queue = self.queue.to(batch)
        ptr = enqueue(self.queue, int(self.queue_ptr), batch)
        self.queue_ptr.fill_(ptr)
        self.queue_filled.fill_(min(self.queue_size, int(self.queue_filled) + batch.shape[0]))
