"""NNCLR (Dwibedi et al. 2021): nearest neighbours from a support set as positives.

The positive of a sample is the nearest neighbour of its embedding in the learned latent
space, "NN(z, Q) = argmin_{q ∈ Q} ‖z − q‖₂" (sec. 3.2), with Q a queue of past
embeddings; the loss is SimCLR's with the nearest neighbour in place of the view's own
embedding, "L_i^NNCLR = −log( exp(NN(z_i, Q) · z_i^+ / τ) / Σ_{k=1}^{n} exp(NN(z_i, Q) ·
z_k^+ / τ) )" (eq. 2), and with a prediction head the other side is the prediction p^+ of
the other view. The loss is symmetrised over the two views.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from selfsup.loss import NTXentLoss
from selfsup.methods._base import Method, MethodModel, OptimizerDefaults, TrainProgress, check_views
from selfsup.models.modules import NNCLRPredictionHead, NNCLRProjectionHead, NNMemoryBankModule


class NNCLRModel(MethodModel):
    """Backbone, NNCLR's projection and prediction heads, the support set and NT-Xent.

    Widths keep the paper's ratios to the projection size d: projection hidden layers of
    8·d (2048 for d = 256), prediction hidden layer of 16·d (4096).

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs).
        num_ftrs: Embedding size.
        out_dim: d, the projection and prediction size.
        temperature: τ of eq. 2 (0.1 in the paper).
        memory_bank_size: Size of the support set Q (paper: 98304; 4096 suits small
            datasets; must be >= 1).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_ftrs: int,
        out_dim: int,
        temperature: float = 0.1,
        memory_bank_size: int = 4096,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = NNCLRProjectionHead(num_ftrs, 8 * out_dim, out_dim)
        self.prediction_head = NNCLRPredictionHead(out_dim, 16 * out_dim, out_dim)
        self.memory_bank = NNMemoryBankModule(size=(memory_bank_size, out_dim))
        self.criterion = NTXentLoss(temperature=temperature, gather_distributed=True)

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, C, H, W) -> projection z (B, d) and prediction p (B, d)."""
        z = self.projection_head(self.backbone(x).flatten(start_dim=1))
        p = self.prediction_head(z)
        return z, p

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, 2, "nnclr")
        z0, p0 = self._forward(views[0])
        z1, p1 = self._forward(views[1])
        # Both searches see the support set as it was before this step; then the second
        # view's embeddings join it (only while training, not under no_grad).
        nn0 = self.memory_bank(z0.detach(), update=False)
        nn1 = self.memory_bank(z1.detach(), update=z1.requires_grad)
        loss: Tensor = 0.5 * (self.criterion(nn0, p1) + self.criterion(nn1, p0))
        return loss


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import SimCLRTransform

    # SimCLR's augmentations, as lightly's NNCLR example uses.
    return SimCLRTransform(input_size=input_size)


METHOD = Method(
    name="nnclr",
    title="NNCLR (Dwibedi et al. 2021)",
    build_model=NNCLRModel,
    build_transform=_transform,
    # The paper trains with LARS at batch 4096; SGD with momentum suits small batches, as in
    # lightly's NNCLR example.
    optimizer=OptimizerDefaults(
        "sgd",
        lr=0.06,
        weight_decay=5e-4,
        source="lightly's NNCLR example (paper: LARS at batch 4096)",
    ),
)
