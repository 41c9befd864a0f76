"""The hypersphere method: SimCLR's model trained with the alignment-uniformity loss."""

from __future__ import annotations

import torch
from torch import nn

from selfsup.loss import HypersphereLoss
from selfsup.methods import TrainProgress
from selfsup.methods.hypersphere import HypersphereModel


def test_loss_is_the_hypersphere_loss_of_the_simclr_projections() -> None:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(1), nn.Linear(3 * 8 * 8, 12))
    model = HypersphereModel(backbone, 12, 4, t=2.0, lam=0.5, alpha=1.0)
    g = torch.Generator().manual_seed(1)
    views = [torch.rand(6, 3, 8, 8, generator=g) for _ in range(2)]
    loss = model.training_loss(views, TrainProgress())
    out0, out1 = model(views[0], views[1])
    torch.testing.assert_close(loss, HypersphereLoss(t=2.0, lam=0.5, alpha=1.0)(out0, out1))
