"""SMoG's periodic k-means reset of the groups (Pang et al. 2022, Table 7b: every 300 steps)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from selfsup.errors import ConfigError
from selfsup.methods import TrainProgress, get_method
from selfsup.methods.smog import RESET_INTERVAL, SMoGModel
from selfsup.models.modules.smog import smog_assign_groups


def _model(reset_interval: int) -> SMoGModel:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(1), nn.Linear(3 * 4 * 4, 8))
    model = get_method("smog").build_model(backbone, 8, 2, reset_interval=reset_interval)
    assert isinstance(model, SMoGModel)
    return model


def _views(step: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(step)
    x = torch.randn(4, 3, 4, 4, generator=g)
    return [x, x + 0.1 * torch.randn(4, 3, 4, 4, generator=g)]


def _step(model: SMoGModel, step: int) -> None:
    model.training_loss(_views(step), TrainProgress(step=step, total_steps=100)).backward()


def test_default_interval_is_the_papers() -> None:
    assert RESET_INTERVAL == 300
    assert SMoGModel(nn.Linear(2, 8), 8, 2).reset_interval == 300


def test_groups_are_reset_to_kmeans_centres_at_the_interval() -> None:
    # K = 8 groups, a bank of 32 features; 8 target features per step (2 views of 4).
    model = _model(reset_interval=3)
    for step in range(3):
        _step(model, step)
    # No reset before the interval: the momentum encoder lags behind the online one.
    assert int(model.bank_count) == 24
    online = [p.detach().clone() for p in model.backbone.parameters()]
    moved = [p.detach().clone() for p in model.backbone_momentum.parameters()]
    assert not all(torch.equal(a, b) for a, b in zip(online, moved, strict=True))
    bank = model.feature_bank[:24].clone()
    groups_before = model.smog.group_features.detach().clone()

    assert model.reset_groups() is True  # what step 3 does first
    groups = model.smog.group_features.detach()
    assert not torch.allclose(groups, groups_before)
    # Every group is a k-means centre: the normalised mean of the bank features nearest it.
    assignments = smog_assign_groups(bank, groups)
    x = F.normalize(bank, dim=1)
    for k in assignments.unique().tolist():
        centre = F.normalize(x[assignments == k].mean(dim=0), dim=0)
        torch.testing.assert_close(groups[k], centre)
    # The momentum encoder restarts from the online one.
    for a, b in zip(model.backbone.parameters(), model.backbone_momentum.parameters(), strict=True):
        assert torch.equal(a, b)


def test_training_loss_resets_at_multiples_of_the_interval_only() -> None:
    model = _model(reset_interval=2)
    resets: list[int] = []
    original = model.reset_groups

    def counting() -> bool:
        resets.append(len(steps_done))
        return original()

    model.reset_groups = counting  # type: ignore[method-assign]
    steps_done: list[int] = []
    for step in [0, 1, 2, 2, 3, 4, 5, 6]:
        _step(model, step)
        steps_done.append(step)
    # Steps 2, 4 and 6, once each (step 2 given twice resets once); never at step 0.
    assert resets == [2, 5, 7]
    with torch.no_grad():  # evaluation never resets
        model.training_loss(_views(8), TrainProgress(step=8, total_steps=100))
    assert len(resets) == 3


def test_no_reset_before_the_bank_holds_k_features() -> None:
    model = _model(reset_interval=1)
    before = model.smog.group_features.detach().clone()
    assert model.reset_groups() is False
    torch.testing.assert_close(model.smog.group_features.detach(), before)


def test_zero_interval_disables_resets_and_bad_values_are_refused() -> None:
    model = _model(reset_interval=0)
    for step in range(6):
        _step(model, step)
    assert model.last_reset_step == -1
    for bad in (-1, 2.5, True):
        with pytest.raises(ConfigError, match="reset_interval must be an integer >= 0"):
            SMoGModel(nn.Linear(2, 8), 8, 2, reset_interval=bad)  # type: ignore[arg-type]


def test_bank_is_a_fifo_of_the_latest_target_features() -> None:
    model = _model(reset_interval=0)
    for step in range(5):  # 40 features into a bank of 32
        _step(model, step)
    assert int(model.bank_count) == 32
    assert int(model.bank_pointer) == 40 % 32
