"""MomentumEncoderModel: the online encoder, its frozen momentum copy and the EMA step."""

from __future__ import annotations

import torch
from torch import nn

from selfsup.methods._base import MomentumEncoderModel


def _model() -> MomentumEncoderModel:
    torch.manual_seed(0)
    return MomentumEncoderModel(nn.Sequential(nn.Flatten(), nn.Linear(12, 5)), nn.Linear(5, 3))


def test_momentum_copy_starts_equal_frozen_and_separate() -> None:
    model = _model()
    x = torch.randn(2, 3, 2, 2)
    torch.testing.assert_close(model.project_momentum(x), model.project(x))
    assert all(not p.requires_grad for p in model.backbone_momentum.parameters())
    assert all(not p.requires_grad for p in model.projection_head_momentum.parameters())
    assert all(p.requires_grad for p in model.projection_head.parameters())
    assert model.projection_head_momentum is not model.projection_head
    assert not model.project_momentum(x).requires_grad
    assert model.project(x).requires_grad


def test_update_momentum_encoder_moves_both_copies_by_ema() -> None:
    model = _model()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(1.0)
    before = [p.clone() for p in model.backbone_momentum.parameters()]
    model.update_momentum_encoder(0.75)
    for ema, old, online in zip(
        model.backbone_momentum.parameters(), before, model.backbone.parameters(), strict=True
    ):
        torch.testing.assert_close(ema, 0.75 * old + 0.25 * online)
    model.update_momentum_encoder(0.0)
    x = torch.randn(2, 3, 2, 2)
    torch.testing.assert_close(model.project_momentum(x), model.project(x))
