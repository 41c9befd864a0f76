"""Distillation: a student backbone learns to match a frozen teacher's embeddings.

The recipe of LightlyTrain's ``distillation`` method: "Knowledge distillation involves
transferring knowledge from a large, compute-intensive teacher model to a smaller, efficient
student model by encouraging similarity between the student and teacher representations."
The teacher is a model the user has on disk (a DINOv2 ViT, a pretrained ResNet, a selfsup
checkpoint: ``teacher.name`` and ``teacher.weights``); it runs in eval mode without
gradients and is never updated. The student is any registered backbone (``model.name``);
a projection head maps its embedding to the teacher's size and
:class:`selfsup.loss.DistillationLoss` compares the two, directly (normalised MSE, the
default) or by soft assignment against a queue of teacher embeddings
(``criterion.memory_bank_size``).

Views are "consistent" (Beyer et al. 2022, "Knowledge distillation: A good teacher is
patient and consistent": "teacher and student (...) see the same view of the image"): each
of the two augmented views of an image goes to both networks, and the loss averages over
them, so every image gives two pairs per step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from selfsup.errors import ConfigError
from selfsup.loss import DistillationLoss
from selfsup.methods._base import Method, MethodModel, OptimizerDefaults, TrainProgress, check_views
from selfsup.models.backbones import as_backbone
from selfsup.models.modules.heads import DistillationProjectionHead
from selfsup.models.utils import deactivate_requires_grad

__all__ = ["METHOD", "DistillationModel"]


class DistillationModel(MethodModel):
    """Student ``backbone`` and projection head, a frozen ``teacher`` and the loss.

    The teacher is held as a submodule (it moves with the model to the training device)
    but is left out of :meth:`state_dict`: a checkpoint holds the student and its head only,
    so it stays the student's size, and a model rebuilt to embed with (``teacher=None``,
    ``teacher_dim`` from the checkpoint, see :meth:`rebuild_kwargs`) loads it strictly.

    Args:
        backbone: Student, images (B, C, H, W) -> embeddings (B, num_ftrs).
        num_ftrs: The student's embedding size.
        out_dim: Unused: the head's output size is the teacher's embedding size. Kept for
            the registry's ``build_model(backbone, num_ftrs, out_dim)`` signature.
        teacher: Images (B, C, H, W) -> embeddings (B, D), frozen here; None only to rebuild
            a trained student to embed with (training then raises an error).
        teacher_dim: D; read from the teacher when it is given (its ``num_features``, or one
            forward pass of two blank images of ``teacher_input_size`` pixels).
        memory_bank_size: Queue of teacher embeddings for the soft-assignment loss (0: the
            direct loss).
        teacher_input_size: Side in pixels the views are resized to for the teacher (e.g. a
            multiple of 14 for a DINOv2 ViT); None gives it the views as they are.
        hidden_dim: Hidden width of the projection head; None for a linear head.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_ftrs: int,
        out_dim: int = 0,
        teacher: nn.Module | None = None,
        teacher_dim: int | None = None,
        memory_bank_size: int = 0,
        teacher_input_size: int | None = None,
        hidden_dim: int | None = None,
    ) -> None:
        super().__init__()
        del out_dim  # the head maps to the teacher's size
        if teacher_input_size is not None and teacher_input_size < 1:
            raise ConfigError(
                f"distillation: teacher_input_size must be >= 1 pixel or None, "
                f"got {teacher_input_size!r}"
            )
        self.teacher_input_size = teacher_input_size
        self.backbone = backbone
        self.teacher: nn.Module | None = None
        if teacher is not None:
            wrapped = as_backbone(teacher, teacher_dim, input_size=teacher_input_size or 64)
            deactivate_requires_grad(wrapped)
            wrapped.eval()
            self.teacher = wrapped
            teacher_dim = wrapped.num_features
        if teacher_dim is None or teacher_dim < 1:
            raise ConfigError(
                "distillation needs a teacher (a module mapping images to embeddings, "
                "teacher.name/teacher.weights in a config) or, to rebuild a trained student "
                f"without it, teacher_dim >= 1; got teacher=None, teacher_dim={teacher_dim!r}"
            )
        self.teacher_dim = int(teacher_dim)
        self.hidden_dim = hidden_dim
        self.projection_head = DistillationProjectionHead(num_ftrs, self.teacher_dim, hidden_dim)
        self.criterion = DistillationLoss(queue_size=memory_bank_size, gather_distributed=True)
        # The teacher is not part of the student's checkpoint (see the class docstring);
        # torch declares these two registrations without types.
        self.register_state_dict_post_hook(_drop_teacher_keys)  # type: ignore[no-untyped-call]
        self.register_load_state_dict_pre_hook(_keep_own_teacher)  # type: ignore[no-untyped-call]

    def train(self, mode: bool = True) -> DistillationModel:
        """Set the student's mode; the teacher stays in eval mode (its batch norms must not
        move their running statistics towards the user's images)."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def rebuild_kwargs(self) -> dict[str, Any]:
        """What rebuilds this model's structure without the teacher: its embedding size and
        the head's hidden width."""
        return {"teacher_dim": self.teacher_dim, "hidden_dim": self.hidden_dim}

    @torch.no_grad()
    def teacher_embedding(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> the frozen teacher's embeddings (B, teacher_dim)."""
        if self.teacher is None:
            raise ConfigError(
                "this distillation model was rebuilt without its teacher (to embed with the "
                "student); to train, give a teacher: teacher.name=<backbone> "
                "teacher.weights=<weights file or zoo:name>"
            )
        if self.teacher_input_size is not None and x.shape[-1] != self.teacher_input_size:
            size = (self.teacher_input_size, self.teacher_input_size)
            x = nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
        z: Tensor = self.teacher(x).flatten(start_dim=1)
        return z

    def student_projection(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> the student's projections (B, teacher_dim)."""
        z: Tensor = self.projection_head(self.backbone(x).flatten(start_dim=1))
        return z

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, 2, "distillation")
        # Both views in one batch: one forward pass each for student and teacher, and the
        # queue gets the teacher embeddings of both views.
        x = torch.cat(list(views), dim=0)
        teacher = self.teacher_embedding(x)
        loss: Tensor = self.criterion(self.student_projection(x), teacher)
        return loss


def _drop_teacher_keys(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any
) -> None:
    del module, local_metadata
    for key in [k for k in state_dict if k.startswith(f"{prefix}teacher.")]:
        del state_dict[key]


def _keep_own_teacher(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any
) -> None:
    # A checkpoint never holds the teacher, so its keys would be missing by design: the
    # model's own teacher fills them (loading it onto itself), and any other key still
    # missing or unexpected is reported as usual.
    del args
    teacher = getattr(module, "teacher", None)
    if isinstance(teacher, nn.Module):
        for key, value in teacher.state_dict().items():
            state_dict.setdefault(f"{prefix}teacher.{key}", value)


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import SimCLRTransform

    # Milder than SimCLR's (no contrastive task to make hard): crops keep at least a fifth of
    # the image and colours move half as far, so the teacher still recognises the content.
    return SimCLRTransform(input_size=input_size, cj_strength=0.5, min_scale=0.2)


METHOD = Method(
    name="distillation",
    title="Distillation of a frozen teacher (LightlyTrain's recipe)",
    build_model=DistillationModel,
    build_transform=_transform,
    optimizer=OptimizerDefaults(
        "adamw",
        lr=1e-3,
        weight_decay=1e-4,
        source="AdamW at DINO's example lr; weight decay 1e-4 (selfsup's choice, not tuned)",
    ),
    takes_teacher=True,
)
