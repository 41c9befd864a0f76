"""W-MSE's model: WMSELoss over the projections of both views, the batch whitened whole."""

from __future__ import annotations

import torch
from torch import nn

from selfsup.loss import WMSELoss
from selfsup.methods import TrainProgress
from selfsup.methods.wmse import WMSEModel


def _model(**kwargs: float) -> WMSEModel:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(1), nn.Linear(3 * 8 * 8, 12))
    return WMSEModel(backbone, num_ftrs=12, out_dim=4, **kwargs)


def _views(n: int = 6) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(n, 3, 8, 8, generator=g) for _ in range(2)]


def test_loss_is_wmse_of_both_views_projections() -> None:
    model = _model(eps=0.0)
    views = _views()
    loss = model.training_loss(views, TrainProgress())
    z = model.embed(views)
    assert z.shape == (12, 4)
    expected = WMSELoss(embedding_dim=4, w_size=6, num_samples=2)(z)
    torch.testing.assert_close(loss, expected)


def test_batches_smaller_than_the_embedding_train_with_the_default_shrinkage() -> None:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(1), nn.Linear(3 * 8 * 8, 12))
    model = WMSEModel(backbone, num_ftrs=12, out_dim=16)
    loss = model.training_loss(_views(n=4), TrainProgress())
    loss.backward()
    assert torch.isfinite(loss)
