"""NNCLR's model: the symmetric loss of the paper with the support set as it was before."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from selfsup.errors import ConfigError
from selfsup.loss import NTXentLoss
from selfsup.methods import TrainProgress, get_method
from selfsup.methods.nnclr import NNCLRModel
from selfsup.models.modules.nn_memory_bank import nearest_neighbours


def _model(**kwargs: int) -> NNCLRModel:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(1), nn.Linear(3 * 8 * 8, 12))
    return NNCLRModel(backbone, num_ftrs=12, out_dim=4, **kwargs)


def _views(n: int = 6) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(n, 3, 8, 8, generator=g) for _ in range(2)]


def test_loss_is_the_symmetric_nnclr_loss() -> None:
    model = _model(memory_bank_size=10)
    views = _views()
    support = model.memory_bank.bank.T.clone()  # (10, 4), before the step
    loss = model.training_loss(views, TrainProgress())
    # The same forward pass again (BatchNorm in training mode: batch statistics).
    (z0, p0), (z1, p1) = model._forward(views[0]), model._forward(views[1])
    nn0, nn1 = nearest_neighbours(z0, support), nearest_neighbours(z1, support)
    criterion = NTXentLoss(temperature=0.1)
    expected = 0.5 * (criterion(nn0, p1) + criterion(nn1, p0))
    torch.testing.assert_close(loss, expected)


def test_second_views_join_the_support_set_only_while_training() -> None:
    model = _model(memory_bank_size=10)
    views = _views()
    before = model.memory_bank.bank.clone()
    with torch.no_grad():
        model.training_loss(views, TrainProgress())
    assert torch.equal(model.memory_bank.bank, before)
    model.training_loss(views, TrainProgress())
    z1 = model._forward(views[1])[0].detach()
    torch.testing.assert_close(model.memory_bank.bank[:, :6], z1.T)
    assert torch.equal(model.memory_bank.bank[:, 6:], before[:, 6:])


def test_defaults() -> None:
    model = _model()
    assert model.memory_bank.size == 4096
    assert model.criterion.temperature == 0.1
    method = get_method("nnclr")
    assert method.criterion_keys == ("temperature", "memory_bank_size")
    assert len(method.build_transform(16)(torch.rand(3, 20, 20))) == 2


def test_an_empty_support_set_is_refused() -> None:
    with pytest.raises(ConfigError, match="NNMemoryBankModule: size must be >= 1"):
        _model(memory_bank_size=0)
