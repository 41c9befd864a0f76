"""Tests of the legacy MoCo model: momentum encoder, gradients, batch shuffle."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from selfsup.models import MoCo, ResNetGenerator
from selfsup.models.modules import MoCoProjectionHead

torch.set_num_threads(1)


def tiny_backbone(num_splits: int = 0) -> nn.Module:
    resnet = ResNetGenerator("resnet-9", width=0.125, num_splits=num_splits)
    return nn.Sequential(*list(resnet.children())[:-1])  # (B, 64, 1, 1)


def perturb(module: nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p))


def test_momentum_copy_starts_equal_and_frozen() -> None:
    model = MoCo(tiny_backbone(), num_ftrs=64, out_dim=16)
    assert isinstance(model.projection_head, MoCoProjectionHead)
    for q, k in zip(model.backbone.parameters(), model.backbone_momentum.parameters(), strict=True):
        assert k is not q
        torch.testing.assert_close(k, q, rtol=0, atol=0)
    momentum = [*model.backbone_momentum.parameters(), *model.projection_head_momentum.parameters()]
    assert momentum
    assert not any(p.requires_grad for p in momentum)
    assert model.momentum_backbone is model.backbone_momentum
    assert model.momentum_projection_head is model.projection_head_momentum


def test_forward_applies_the_ema_formula_before_computing_keys() -> None:
    torch.manual_seed(0)
    m = 0.9
    model = MoCo(tiny_backbone(), num_ftrs=64, out_dim=16, m=m).eval()
    perturb(model.backbone)
    perturb(model.projection_head)
    query = [
        p.detach().clone()
        for p in [*model.backbone.parameters(), *model.projection_head.parameters()]
    ]
    key = [
        p.detach().clone()
        for p in [
            *model.backbone_momentum.parameters(),
            *model.projection_head_momentum.parameters(),
        ]
    ]
    x0, x1 = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)
    _, out1 = model(x0, x1)
    updated = [*model.backbone_momentum.parameters(), *model.projection_head_momentum.parameters()]
    for new, k, q in zip(updated, key, query, strict=True):
        torch.testing.assert_close(new, m * k + (1 - m) * q)
    # the keys come from the updated momentum encoder
    with torch.no_grad():
        expected = model.projection_head_momentum(model.backbone_momentum(x1).flatten(start_dim=1))
    torch.testing.assert_close(out1, expected)


def test_outputs_and_gradients() -> None:
    torch.manual_seed(0)
    model = MoCo(tiny_backbone(), num_ftrs=64, out_dim=16)
    x0, x1 = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)
    out0, out1 = model(x0, x1)
    assert out0.shape == out1.shape == (4, 16)
    assert out0.requires_grad
    assert not out1.requires_grad
    (out0 * out1).sum().backward()
    assert all(p.grad is None for p in model.backbone_momentum.parameters())
    assert all(p.grad is None for p in model.projection_head_momentum.parameters())
    assert all(p.grad is not None for p in model.projection_head.parameters())
    assert all(p.grad is not None for p in model.backbone.parameters())


def test_single_input_and_return_features() -> None:
    model = MoCo(tiny_backbone(), num_ftrs=64, out_dim=16)
    x = torch.randn(2, 3, 8, 8)
    assert model(x).shape == (2, 16)
    (o0, f0), (o1, f1) = model(x, x, return_features=True)
    assert (o0.shape, f0.shape, o1.shape, f1.shape) == ((2, 16), (2, 64), (2, 16), (2, 64))
    o, f = model(x, return_features=True)
    assert (o.shape, f.shape) == ((2, 16), (2, 64))


def test_batch_shuffle_is_undone() -> None:
    # With plain BatchNorm on one device the shuffle must not change the keys or features.
    torch.manual_seed(0)
    plain = MoCo(tiny_backbone(), num_ftrs=64, out_dim=16, m=0.5)
    shuffled = copy.deepcopy(plain)
    shuffled.batch_shuffle = True
    x0, x1 = torch.randn(8, 3, 8, 8), torch.randn(8, 3, 8, 8)
    (_, _), (k_plain, f_plain) = plain(x0, x1, return_features=True)
    (_, _), (k_shuffled, f_shuffled) = shuffled(x0, x1, return_features=True)
    torch.testing.assert_close(k_shuffled, k_plain, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(f_shuffled, f_plain, rtol=1e-4, atol=1e-5)


def test_batch_shuffle_changes_split_batchnorm_statistics() -> None:
    # With SplitBatchNorm the shuffle regroups the splits: keys differ, shapes do not.
    torch.manual_seed(0)
    plain = MoCo(tiny_backbone(num_splits=2), num_ftrs=64, out_dim=16)
    shuffled = copy.deepcopy(plain)
    shuffled.batch_shuffle = True
    x0, x1 = torch.randn(8, 3, 8, 8), torch.randn(8, 3, 8, 8)
    torch.manual_seed(1)
    _, k_plain = plain(x0, x1)
    _, k_shuffled = shuffled(x0, x1)
    assert k_shuffled.shape == k_plain.shape
    assert not torch.allclose(k_shuffled, k_plain, atol=1e-4)


def test_invalid_momentum_is_rejected() -> None:
    with pytest.raises(ValueError, match="momentum"):
        MoCo(tiny_backbone(), num_ftrs=64, m=1.5)
