"""TiCo's model: the loss of the online first view against the momentum second view."""

from __future__ import annotations

import torch
from torch import nn

from selfsup.loss import TiCoLoss
from selfsup.methods import TrainProgress
from selfsup.methods.tico import TiCoModel


def _model(**kwargs: float) -> TiCoModel:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(1), nn.Linear(3 * 8 * 8, 12))
    return TiCoModel(backbone, num_ftrs=12, out_dim=4, **kwargs)


def _views(n: int = 6) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(n, 3, 8, 8, generator=g) for _ in range(2)]


def test_loss_is_ticos_of_online_first_and_momentum_second_view() -> None:
    model = _model(beta=0.5, rho=3.0)
    views = _views()
    loss = model.training_loss(views, TrainProgress())
    # The same forward pass again (BatchNorm in training mode: batch statistics).
    z_a, z_b = model.project(views[0]), model.project_momentum(views[1])
    expected = TiCoLoss(beta=0.5, rho=3.0)(z_a, z_b)
    torch.testing.assert_close(loss, expected)
    assert not z_b.requires_grad


def test_covariance_moves_on_training_steps_only() -> None:
    model = _model()
    views = _views()
    with torch.no_grad():
        model.training_loss(views, TrainProgress())
    assert model.criterion.covariance.numel() == 0
    model.training_loss(views, TrainProgress())
    assert model.criterion.covariance.shape == (4, 4)
    assert model.criterion.covariance.abs().sum() > 0


def test_covariance_is_saved_with_the_model() -> None:
    model = _model()
    model.training_loss(_views(), TrainProgress())
    state = model.state_dict()
    assert "criterion.covariance" in state
    fresh = _model()
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.criterion.covariance, model.criterion.covariance)
