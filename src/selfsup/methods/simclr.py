"""SimCLR (Chen et al. 2020): two views, a projection head and the NT-Xent loss.

"A stochastic data augmentation module that transforms any given data example randomly
resulting in two correlated views (...) a neural network base encoder f(·) (...) a small
neural network projection head g(·) (...) a contrastive loss function" (sec. 2.1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from selfsup.loss import NTXentLoss
from selfsup.methods._base import Method, MethodModel, OptimizerDefaults, TrainProgress, check_views
from selfsup.models.simclr import SimCLR


class SimCLRModel(SimCLR, MethodModel):
    """:class:`selfsup.models.SimCLR` (backbone and a projection head of hidden width
    ``num_ftrs``) with its NT-Xent loss; checkpoints of either load into the other.

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs).
        num_ftrs: Embedding size.
        out_dim: Projection size.
        temperature: τ of NT-Xent.
        memory_bank_size: Negatives kept in a memory bank (0: in-batch negatives only).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_ftrs: int,
        out_dim: int,
        temperature: float = 0.5,
        memory_bank_size: int = 0,
    ) -> None:
        super().__init__(backbone, num_ftrs=num_ftrs, out_dim=out_dim)
        self.criterion = NTXentLoss(
            temperature=temperature, memory_bank_size=memory_bank_size, gather_distributed=True
        )

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, 2, "simclr")
        out0, out1 = self(views[0], views[1])
        loss: Tensor = self.criterion(out0, out1)
        return loss


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import SimCLRTransform

    return SimCLRTransform(input_size=input_size)


METHOD = Method(
    name="simclr",
    title="SimCLR (Chen et al. 2020)",
    build_model=SimCLRModel,
    build_transform=_transform,
    # lightly's CLI defaults (optimizer.lr=1.0, weight_decay=1e-5), kept for `selfsup train`.
    optimizer=OptimizerDefaults(
        "sgd",
        lr=1.0,
        weight_decay=1e-5,
        source=(
            "lightly's CLI defaults (selfsup train kept them); the tuned Fashion-MNIST recipe is "
            "benchmarks/ssl_fashion_mnist.py"
        ),
    ),
)
