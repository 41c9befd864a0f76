"""MMCR's model: the loss of the online and momentum embeddings of every view, per image."""

from __future__ import annotations

import torch
from torch import nn

from selfsup.loss import MMCRLoss
from selfsup.methods import TrainProgress, get_method
from selfsup.methods.mmcr import NUM_VIEWS, MMCRModel


def _model(**kwargs: float) -> MMCRModel:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(1), nn.Linear(3 * 8 * 8, 12))
    return MMCRModel(backbone, num_ftrs=12, out_dim=4, **kwargs)


def _views(k: int = 3, n: int = 5) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(n, 3, 8, 8, generator=g) for _ in range(k)]


def test_embeddings_are_grouped_per_image() -> None:
    model = _model()
    model.eval()  # BatchNorm with running statistics: rows do not depend on the batch
    views = _views()
    z = model.online(views)
    assert z.shape == (5, 3, 4)
    for j, view in enumerate(views):
        torch.testing.assert_close(z[:, j], model.online([view])[:, 0])


def test_loss_is_mmcr_of_online_and_momentum_views() -> None:
    model = _model(lmda=0.1)
    views = _views()
    loss = model.training_loss(views, TrainProgress())
    # The same forward pass again (BatchNorm in training mode: batch statistics).
    online, momentum = model.online(views), model.momentum(views)
    torch.testing.assert_close(loss, MMCRLoss(lmda=0.1)(online, momentum))
    assert not momentum.requires_grad


def test_transform_makes_the_methods_views() -> None:
    assert NUM_VIEWS == 8
    views = get_method("mmcr").build_transform(16)(torch.rand(3, 20, 20))
    assert len(views) == NUM_VIEWS
