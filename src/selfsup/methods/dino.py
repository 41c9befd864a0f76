"""DINO (Caron et al. 2021): self-distillation of a momentum teacher, with multi-crop.

"We train the student network to match the output distribution of the teacher network
(...) Both networks share the same architecture g with different sets of parameters θs and
θt" (sec. 3.1); "all crops are passed through the student while only the global views are
passed through the teacher"; the teacher is an exponential moving average of the student,
with λ following "a cosine schedule from 0.996 to 1 during training".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from selfsup.loss import DINOLoss
from selfsup.methods._base import (
    Method,
    MethodModel,
    OptimizerDefaults,
    TrainProgress,
    check_views,
    local_crop_size,
    momentum_copy,
)
from selfsup.models.modules.heads import DINOProjectionHead
from selfsup.models.utils import update_momentum

#: Global views come first in the transform's output; the teacher sees only them.
N_GLOBAL_VIEWS = 2


class DINOModel(MethodModel):
    """Student (backbone + :class:`DINOProjectionHead`) and its momentum teacher.

    Head sizes scale with out_dim as the bottleneck: hidden 8·out_dim, K = 16·out_dim
    prototypes (2048 for out_dim 128, as lightly's DINO example; the paper's ViTs use a
    256-d bottleneck, 2048 hidden and K = 65536). The last layer is frozen in the first
    epoch, "typically doing so during the first epoch helps training".

    Args:
        backbone: Images (B, C, H, W) of any size -> embeddings (B, num_ftrs).
        num_ftrs: Embedding size.
        out_dim: Bottleneck size of the head.
        teacher_temp: Teacher temperature after the warm-up (0.04).
        warmup_teacher_temp: Teacher temperature at the start (0.04).
        warmup_teacher_temp_epochs: Epochs of the linear warm-up between the two (30).
        student_temp: Student temperature (0.1).
        center_momentum: Momentum of the centre subtracted from the teacher's outputs (0.9).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_ftrs: int,
        out_dim: int,
        teacher_temp: float = 0.04,
        warmup_teacher_temp: float = 0.04,
        warmup_teacher_temp_epochs: int = 30,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
    ) -> None:
        super().__init__()
        prototypes = 16 * out_dim
        self.backbone = backbone
        self.head = DINOProjectionHead(
            num_ftrs, 8 * out_dim, out_dim, prototypes, freeze_last_layer=1
        )
        self.teacher_backbone = momentum_copy(backbone)
        self.teacher_head = momentum_copy(self.head)
        self.criterion = DINOLoss(
            output_dim=prototypes,
            warmup_teacher_temp=warmup_teacher_temp,
            teacher_temp=teacher_temp,
            warmup_teacher_temp_epochs=warmup_teacher_temp_epochs,
            student_temp=student_temp,
            center_momentum=center_momentum,
        )

    def _student(self, x: Tensor) -> Tensor:
        out: Tensor = self.head(self.backbone(x).flatten(start_dim=1))
        return out

    @torch.no_grad()
    def _teacher(self, x: Tensor) -> Tensor:
        out: Tensor = self.teacher_head(self.teacher_backbone(x).flatten(start_dim=1))
        return out

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, None, "dino")
        m = progress.cosine(0.996, 1.0)
        update_momentum(self.backbone, self.teacher_backbone, m)
        update_momentum(self.head, self.teacher_head, m)
        teacher_out = [self._teacher(v) for v in views[:N_GLOBAL_VIEWS]]
        student_out = [self._student(v) for v in views]
        loss: Tensor = self.criterion(teacher_out, student_out, epoch=progress.epoch)
        return loss

    def before_optimizer_step(self, progress: TrainProgress) -> None:
        self.head.cancel_last_layer_gradients(progress.epoch)


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import DINOTransform

    return DINOTransform(global_crop_size=input_size, local_crop_size=local_crop_size(input_size))


METHOD = Method(
    name="dino",
    title="DINO (Caron et al. 2021)",
    build_model=DINOModel,
    build_transform=_transform,
    # Paper: AdamW, lr 0.0005 · batch/256, weight decay 0.04 -> 0.4; lightly's example: 1e-3.
    optimizer=OptimizerDefaults(
        "adamw",
        lr=1e-3,
        weight_decay=0.04,
        source="lightly's DINO example (paper: AdamW, lr 5e-4 per 256, weight decay 0.04 -> 0.4)",
    ),
)
