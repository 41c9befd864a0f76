"""SwAV (Caron et al. 2020): swapped prediction of online cluster assignments, multi-crop.

"Our method simultaneously clusters the data while enforcing consistency between cluster
assignments produced for different augmentations (or "views") of the same image, instead
of comparing features directly" (abstract): each view's features z = g(f(x)) / ‖·‖ are
scored against K prototypes; the codes of the two high-resolution crops, balanced over the
batch by Sinkhorn-Knopp, are predicted from every other crop (sec. 3.2). The prototypes are
normalised at every step and, as in the paper, frozen during the first epoch. With small
batches the paper computes the codes together with a queue of features kept from earlier
batches (3840 of them for batches of 256).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.loss import MemoryBankModule, SwaVLoss
from selfsup.methods._base import (
    Method,
    MethodModel,
    OptimizerDefaults,
    TrainProgress,
    check_views,
    local_crop_size,
)
from selfsup.models.modules import SwaVProjectionHead, SwaVPrototypes

#: High-resolution crops come first in the transform's output; codes come from them only.
N_HIGH_RESOLUTION_VIEWS = 2


class SwaVModel(MethodModel):
    """Backbone, :class:`SwaVProjectionHead`, :class:`SwaVPrototypes` and the SwAV loss.

    The projection's hidden width is ``num_ftrs`` (the paper: 2048 for ResNet-50's 2048
    features) and there are K = 4·out_dim prototypes (512 for out_dim 128, as lightly's
    SwaV example; the paper: 3000 for ImageNet).

    Args:
        backbone: Images (B, C, H, W) of any size -> embeddings (B, num_ftrs).
        num_ftrs: Embedding size.
        out_dim: Size of the features scored against the prototypes.
        temperature: τ of the swapped prediction (0.1).
        memory_bank_size: Length of the queue of past features kept per high-resolution
            view for the codes (the paper: 3840 for batches of 256); 0: no queue. The queue
            is used once it holds only real features (after ``memory_bank_size`` samples).
        sinkhorn_epsilon: ε of the Sinkhorn-Knopp codes (0.05).
        sinkhorn_iterations: Sinkhorn-Knopp iterations (3).
    """

    queued: Tensor

    def __init__(
        self,
        backbone: nn.Module,
        num_ftrs: int,
        out_dim: int,
        temperature: float = 0.1,
        memory_bank_size: int = 0,
        sinkhorn_epsilon: float = 0.05,
        sinkhorn_iterations: int = 3,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = SwaVProjectionHead(num_ftrs, num_ftrs, out_dim)
        self.prototypes = SwaVPrototypes(out_dim, 4 * out_dim)
        self.criterion = SwaVLoss(
            temperature=temperature,
            sinkhorn_iterations=sinkhorn_iterations,
            sinkhorn_epsilon=sinkhorn_epsilon,
            sinkhorn_gather_distributed=True,
        )
        self.queues = nn.ModuleList(
            MemoryBankModule(size=(memory_bank_size, out_dim))
            for _ in range(N_HIGH_RESOLUTION_VIEWS if memory_bank_size > 0 else 0)
        )
        self.queue_length = memory_bank_size
        # Samples enqueued so far (capped at the queue length): the queue starts out random.
        self.register_buffer("queued", torch.zeros((), dtype=torch.long), persistent=False)

    def _features(self, views: Sequence[Tensor]) -> list[Tensor]:
        """Unit features (B, out_dim) of every view; views of one size share a forward pass,
        as in the authors' code."""
        features: list[Tensor] = []
        start = 0
        while start < len(views):
            end = start + 1
            while end < len(views) and views[end].shape == views[start].shape:
                end += 1
            x = torch.cat(list(views[start:end]))
            z = self.projection_head(self.backbone(x).flatten(start_dim=1))
            features += F.normalize(z, dim=1).chunk(end - start)
            start = end
        return features

    def _scores(self, z: Tensor) -> Tensor:
        out = self.prototypes(z)
        assert isinstance(out, Tensor)  # one set of prototypes
        return out

    def _queue_scores(self, high: list[Tensor]) -> list[Tensor] | None:
        """Scores of the queued features (read before this batch joins the queues)."""
        if not self.queues:
            return None
        ready = int(self.queued) >= self.queue_length
        banks = []
        for queue, z in zip(self.queues, high, strict=True):
            _, bank = queue(z.detach(), update=z.requires_grad)
            banks.append(bank)
        if high[0].requires_grad:
            self.queued.add_(high[0].shape[0]).clamp_(max=self.queue_length)
        if not ready:
            return None
        with torch.no_grad():
            return [self._scores(bank.T) for bank in banks if bank is not None]

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, None, "swav")
        self.prototypes.normalize()
        features = self._features(views)
        n_high = min(N_HIGH_RESOLUTION_VIEWS, len(views))
        high = [self._scores(z) for z in features[:n_high]]
        low = [self._scores(z) for z in features[n_high:]]
        loss: Tensor = self.criterion(high, low, self._queue_scores(features[:n_high]))
        return loss

    def before_optimizer_step(self, progress: TrainProgress) -> None:
        # Frozen during the first epoch, as in the paper; a one-epoch run would never
        # train them, so it does not freeze.
        if progress.epoch < 1 < progress.max_epochs:
            for param in self.prototypes.parameters():
                param.grad = None


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import SwaVTransform

    return SwaVTransform(
        crop_sizes=(input_size, local_crop_size(input_size)),
        crop_counts=(N_HIGH_RESOLUTION_VIEWS, 6),
    )


METHOD = Method(
    name="swav",
    title="SwAV (Caron et al. 2020)",
    build_model=SwaVModel,
    build_transform=_transform,
    # The paper trains with LARS at batch 4096 (lr 4.8, weight decay 1e-6); SGD with momentum
    # suits small batches.
    optimizer=OptimizerDefaults(
        "sgd",
        lr=0.06,
        weight_decay=1e-6,
        source="paper's weight decay; lr of lightly's example (paper: LARS, lr 4.8 at batch 4096)",
    ),
)
