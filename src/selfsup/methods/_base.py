"""What a registered SSL method is: a model builder, a view transform and optimiser defaults.

A method's model (:class:`MethodModel`) owns everything a training step needs — backbone,
heads, momentum or teacher copies, the loss with its buffers — and answers one question:
the loss of a batch of views. The trainer (:class:`selfsup.embedding.MethodEmbedding`)
knows nothing else about methods, and embedding uses only ``model.backbone``.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from selfsup.errors import DataError
from selfsup.methods._args import CATALOG_ARGS, ArgValue, MethodArg
from selfsup.models.utils import cosine_schedule, deactivate_requires_grad, update_momentum

__all__ = [
    "Method",
    "MethodModel",
    "MomentumEncoderModel",
    "OptimizerDefaults",
    "TrainProgress",
    "check_views",
    "local_crop_size",
    "momentum_copy",
]


@dataclass(frozen=True)
class TrainProgress:
    """Where training stands, for schedules (momentum, teacher temperature, frozen layers).

    Attributes:
        epoch: Current epoch, from 0.
        max_epochs: Epochs of the whole run.
        step: Optimisation steps done so far, from 0.
        total_steps: Optimisation steps of the whole run (>= 1), or 0 when the run has no
            set length (``max_epochs=-1``).
    """

    epoch: int = 0
    max_epochs: int = 1
    step: int = 0
    total_steps: int = 1

    def cosine(self, start: float, end: float) -> float:
        """A value going from ``start`` at the first step to ``end`` at the last, by a cosine
        (the momentum schedule of BYOL and DINO). A run of no set length stays at ``start``:
        with no last step there is no point on the way to ``end``."""
        if self.total_steps <= 0:
            return start
        return cosine_schedule(min(self.step, self.total_steps), self.total_steps, start, end)


@dataclass(frozen=True)
class OptimizerDefaults:
    """The optimiser a method trains with unless the user sets ``optimizer.*``.

    Attributes:
        name: ``sgd`` (momentum 0.9) or ``adamw``.
        lr: Learning rate.
        weight_decay: Weight decay.
        source: Where the values come from (the paper's, scaled to the batch; a reference
            example's; measured), for docs/methods.md.
    """

    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.06
    weight_decay: float = 5e-4
    source: str = ""

    def build(
        self,
        model: nn.Module,
        lr: float | None = None,
        weight_decay: float | None = None,
    ) -> torch.optim.Optimizer:
        """The optimiser over ``model``'s trainable parameters (momentum and teacher copies
        have none); ``lr``/``weight_decay`` override the defaults when given."""
        params = [p for p in model.parameters() if p.requires_grad]
        rate = self.lr if lr is None else lr
        decay = self.weight_decay if weight_decay is None else weight_decay
        if self.name == "adamw":
            return torch.optim.AdamW(params, lr=rate, weight_decay=decay)
        return torch.optim.SGD(params, lr=rate, momentum=0.9, weight_decay=decay)


class MethodModel(nn.Module):
    """Base class of a method's model.

    Subclasses set ``backbone`` (images (B, C, H, W) -> embeddings (B, num_ftrs)) and
    implement :meth:`training_loss`. Momentum encoders are updated inside
    :meth:`training_loss`, before the forward pass of the step, as the papers do.
    """

    backbone: nn.Module

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        """The scalar loss of one batch.

        Args:
            views: The method's views of the batch, each (B, C, H, W), in the order its
                transform makes them (e.g. two views; DINO: 2 global views, then local ones).
            progress: Where training stands (momentum and temperature schedules).
        """
        raise NotImplementedError

    def before_optimizer_step(self, progress: TrainProgress) -> None:
        """Called after the backward pass, before the optimiser step (e.g. DINO freezes its
        last layer in the first epoch by dropping its gradients). Default: nothing."""
        del progress

    def rebuild_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``build_model``, besides the backbone, sizes and criterion,
        that rebuild this model's structure from a checkpoint when its frozen parts are not
        in it (distillation: the teacher's embedding size). Recorded in checkpoints; JSON
        values only. Default: none."""
        return {}


def momentum_copy(module: nn.Module) -> nn.Module:
    """A frozen deep copy of ``module``, to follow it by exponential moving average.

    "θ_k ← m θ_k + (1 − m) θ_q" (MoCo, He et al. 2020, eq. 2): the copy never receives
    gradients; :func:`selfsup.models.utils.update_momentum` moves it.
    """
    copied = copy.deepcopy(module)
    deactivate_requires_grad(copied)
    return copied


class MomentumEncoderModel(MethodModel):
    """A method model with an online encoder (``backbone``, ``projection_head``) followed by
    a momentum copy (``backbone_momentum``, ``projection_head_momentum``), as in BYOL, MoCo
    v3, TiCo, MMCR, SMoG, MSN, DenseCL, DetCon-B, iBOT and DINOv2.

    Subclasses build their projection head, pass it with the backbone to ``__init__`` and add
    their other heads and loss after; the attribute names are those of the checkpoints.

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs).
        projection_head: Embeddings (B, num_ftrs) -> projections.
    """

    def __init__(self, backbone: nn.Module, projection_head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = projection_head
        self.backbone_momentum = momentum_copy(backbone)
        self.projection_head_momentum = momentum_copy(projection_head)

    def update_momentum_encoder(self, m: float) -> None:
        """One EMA step of the momentum copies towards the online encoder (m = 0 copies it)."""
        update_momentum(self.backbone, self.backbone_momentum, m)
        update_momentum(self.projection_head, self.projection_head_momentum, m)

    def project(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> online projections."""
        z: Tensor = self.projection_head(self.backbone(x).flatten(start_dim=1))
        return z

    @torch.no_grad()
    def project_momentum(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> momentum projections, without gradients."""
        z: Tensor = self.projection_head_momentum(self.backbone_momentum(x).flatten(start_dim=1))
        return z


def local_crop_size(input_size: int) -> int:
    """Side of multi-crop's local views for global views of ``input_size`` pixels: the
    papers' 96/224 ratio (DINO, SwAV), at least 8 pixels."""
    return max(8, round(input_size * 96 / 224))


def check_views(views: Sequence[Tensor], expected: int | None, method: str) -> None:
    """Refuse a batch that does not hold the method's number of views (``None``: >= 2)."""
    n = len(views)
    if (n < 2) if expected is None else (n != expected):
        wanted = f"{expected}" if expected is not None else "at least 2"
        noun = "view" if expected == 1 else "views"
        raise DataError(
            f"{method} trains on {wanted} {noun} per image but the batch holds {n}; use the "
            f"method's transform (selfsup.methods.get_method({method!r}).build_transform)"
        )


@dataclass(frozen=True)
class Method:
    """One registered SSL method.

    Attributes:
        name: Registry name (``method=<name>``), lower case.
        title: Paper, for help texts and reports.
        build_model: ``(backbone, num_ftrs, out_dim, **criterion) -> MethodModel``: the
            backbone maps images to (B, num_ftrs) embeddings; ``out_dim`` sizes the
            projection; ``criterion`` holds values of the declared ``args`` (each a keyword
            argument with a default: that default is the argument's default).
        build_transform: ``input_size -> transform`` turning one image into the list of
            views :meth:`MethodModel.training_loss` expects.
        optimizer: Optimiser defaults (used unless ``optimizer.*`` is set).
        args: The tunable arguments of ``build_model`` that are ``criterion.<name>`` config
            keys (setting another is an error). Catalogue methods leave it empty: theirs are
            declared once in :data:`selfsup.methods._args.CATALOG_ARGS` (torch-free, so
            configs are checked without importing the method) and filled in here.
        takes_teacher: The method distils a frozen teacher: ``build_model`` takes
            ``teacher`` (a module mapping images to embeddings, built from the config's
            ``teacher`` section), and a config for it must name one.
        needs_vit: The method works on a Vision Transformer's tokens (MAE, SimMIM) and
            refuses other backbones; the contract tests and benchmarks give it a ViT.
    """

    name: str
    title: str
    build_model: Callable[..., MethodModel]
    build_transform: Callable[[int], Callable[[Any], list[Tensor]]]
    optimizer: OptimizerDefaults = OptimizerDefaults()
    args: tuple[MethodArg, ...] = ()
    takes_teacher: bool = False
    needs_vit: bool = False

    def __post_init__(self) -> None:
        if not self.args and self.name in CATALOG_ARGS:
            object.__setattr__(self, "args", CATALOG_ARGS[self.name])

    @property
    def criterion_keys(self) -> tuple[str, ...]:
        """Names of the ``criterion.*`` keys the method takes (its ``args``)."""
        return tuple(arg.name for arg in self.args)

    def arg_defaults(self) -> dict[str, ArgValue]:
        """Each declared argument's default: ``build_model``'s own keyword default, read
        from its signature so that it is stated once.

        Raises:
            TypeError: a declared argument is not a keyword argument of ``build_model`` with
                a default (a registration error, caught by the contract tests).
        """
        parameters = inspect.signature(self.build_model).parameters
        defaults: dict[str, ArgValue] = {}
        for arg in self.args:
            parameter = parameters.get(arg.name)
            if parameter is None or parameter.default is inspect.Parameter.empty:
                raise TypeError(
                    f"method {self.name!r} declares criterion.{arg.name} but its build_model "
                    f"has no keyword argument {arg.name!r} with a default"
                )
            defaults[arg.name] = parameter.default
        return defaults
