"""DCL and DCLW methods: SimCLR's model trained with the decoupled losses, τ = 0.1."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from selfsup.loss import DCLLoss, DCLWLoss
from selfsup.methods import TrainProgress, get_method


def _views(n: int = 6) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(n, 3, 8, 8, generator=g) for _ in range(2)]


@pytest.mark.parametrize(
    ("name", "expected_loss"),
    [("dcl", DCLLoss(temperature=0.1)), ("dclw", DCLWLoss(temperature=0.1, sigma=0.5))],
)
def test_loss_is_the_papers_loss_of_the_simclr_projections(
    name: str, expected_loss: nn.Module
) -> None:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(1), nn.Linear(3 * 8 * 8, 12))
    model = get_method(name).build_model(backbone, 12, 4)
    views = _views()
    loss = model.training_loss(views, TrainProgress())
    out0, out1 = model(views[0], views[1])
    torch.testing.assert_close(loss, expected_loss(out0, out1))


def test_temperature_is_the_one_criterion_key() -> None:
    for name in ("dcl", "dclw"):
        method = get_method(name)
        assert method.criterion_keys == ("temperature",)
        backbone = nn.Sequential(nn.Flatten(1), nn.Linear(3 * 8 * 8, 12))
        assert method.build_model(backbone, 12, 4, temperature=0.3).criterion.temperature == 0.3
