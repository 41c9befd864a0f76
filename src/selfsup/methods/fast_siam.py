"""FastSiam (Pototzky et al. 2022): SimSiam with the mean of several target views.

Of the K + 1 views of an image, each view's prediction p_i is pulled towards the
stop-gradient mean of the other K views' projections z_j, a stabler target than SimSiam's
single view, and the loss averages over the views:

    L = 1/(K+1) Σ_i D(p_i, stopgrad( 1/K Σ_{j≠i} z_j ))

with D SimSiam's negative cosine similarity and K = 3 (four views per image), which lets
it train on a single GPU with small batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from selfsup.methods._base import Method, TrainProgress, check_views
from selfsup.methods.simsiam import METHOD as SIMSIAM
from selfsup.methods.simsiam import SimSiamModel


class FastSiamModel(SimSiamModel):
    """SimSiam's backbone, projector and predictor (:class:`SimSiamModel`) trained on K + 1
    views with the mean of the other views as target.

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs).
        num_ftrs: Embedding size.
        out_dim: Projection size.
    """

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        check_views(views, None, "fastsiam")
        zs, ps = [], []
        for view in views:
            z = self.projection_head(self.backbone(view).flatten(start_dim=1))
            ps.append(self.prediction_head(z))
            zs.append(z.detach())
        total = torch.stack(zs).sum(dim=0)  # Σ_j z_j, (B, out_dim), no gradient
        k = len(views) - 1
        losses = [self.criterion(p, (total - z) / k) for p, z in zip(ps, zs, strict=True)]
        loss: Tensor = torch.stack(losses).mean()
        return loss


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import FastSiamTransform

    return FastSiamTransform(num_views=4, input_size=input_size)


METHOD = Method(
    name="fastsiam",
    title="FastSiam (Pototzky et al. 2022)",
    build_model=FastSiamModel,
    build_transform=_transform,
    optimizer=SIMSIAM.optimizer,
)
