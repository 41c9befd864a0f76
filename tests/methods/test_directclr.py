"""DirectCLR: NT-Xent on the first d0 dimensions of the representation, no projector."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from selfsup.errors import ConfigError
from selfsup.loss import NTXentLoss
from selfsup.methods import TrainProgress, get_method
from selfsup.methods.directclr import DirectCLRModel, subvector_dim


def _model(**kwargs: float | int | None) -> DirectCLRModel:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(1), nn.Linear(3 * 8 * 8, 12))
    return DirectCLRModel(backbone, num_ftrs=12, out_dim=4, **kwargs)  # type: ignore[arg-type]


def _views(n: int = 6) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(n, 3, 8, 8, generator=g) for _ in range(2)]


def test_loss_is_ntxent_of_the_first_d0_dimensions() -> None:
    model = _model(temperature=0.3, d0=5)
    views = _views()
    loss = model.training_loss(views, TrainProgress())
    r0, r1 = model.backbone(views[0]), model.backbone(views[1])
    torch.testing.assert_close(loss, NTXentLoss(temperature=0.3)(r0[:, :5], r1[:, :5]))


def test_only_the_first_d0_outputs_receive_gradient() -> None:
    model = _model(d0=5)
    model.training_loss(_views(), TrainProgress()).backward()
    last = model.backbone[1]
    assert isinstance(last, nn.Linear)
    assert last.weight.grad is not None
    assert last.weight.grad[:5].abs().sum() > 0
    assert torch.equal(last.weight.grad[5:], torch.zeros_like(last.weight.grad[5:]))


def test_no_projector_and_the_papers_ratio_by_default() -> None:
    model = _model()
    assert [name for name, _ in model.named_children()] == ["backbone", "criterion"]
    assert model.criterion.temperature == 0.1
    assert subvector_dim(2048) == 360
    assert model.d0 == subvector_dim(12) == 2
    assert subvector_dim(3) == 1  # at least one dimension


@pytest.mark.parametrize("d0", [0, 13, -1, 2.5, True])
def test_bad_d0_is_rejected(d0: object) -> None:
    with pytest.raises(
        ConfigError, match=r"directclr: d0=.* must be an integer in \[1, num_ftrs=12\]"
    ):
        subvector_dim(12, d0)  # type: ignore[arg-type]  # bad input on purpose


def test_temperature_and_d0_are_the_criterion_keys() -> None:
    # d0's upper bound (num_ftrs) is known only when the model is built: subvector_dim.
    assert get_method("directclr").criterion_keys == ("temperature", "d0")
