"""Tests of the legacy SimCLR model: outputs as lightly, and it learns."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from selfsup.models import ResNetGenerator, SimCLR
from selfsup.models.modules import SimCLRProjectionHead

torch.set_num_threads(1)


def tiny_backbone() -> nn.Module:
    resnet = ResNetGenerator("resnet-9", width=0.125)
    return nn.Sequential(*list(resnet.children())[:-1])  # (B, 64, 1, 1)


def nt_xent(z0: torch.Tensor, z1: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent from the SimCLR paper: -log softmax of the positive among the 2N-1 others."""
    z = F.normalize(torch.cat([z0, z1]), dim=1)
    n = z0.shape[0]
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(sim, positives)


def test_attributes_and_head() -> None:
    model = SimCLR(tiny_backbone(), num_ftrs=64, out_dim=16)
    assert isinstance(model.projection_head, SimCLRProjectionHead)
    first = model.projection_head.layers[0]
    last = [m for m in model.projection_head.layers if isinstance(m, nn.Linear)][-1]
    assert isinstance(first, nn.Linear)
    assert (first.in_features, first.out_features, last.out_features) == (64, 64, 16)


def test_forward_outputs_as_lightly() -> None:
    torch.manual_seed(0)
    model = SimCLR(tiny_backbone(), num_ftrs=64, out_dim=16).eval()
    x0, x1 = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        out0 = model(x0)
        pair = model(x0, x1)
        with_features = model(x0, x1, return_features=True)
        single_with_features = model(x0, return_features=True)
        f0 = model.backbone(x0).flatten(start_dim=1)
        f1 = model.backbone(x1).flatten(start_dim=1)
        ref0, ref1 = model.projection_head(f0), model.projection_head(f1)
    assert isinstance(out0, torch.Tensor)
    assert out0.shape == (4, 16)
    torch.testing.assert_close(out0, ref0)
    assert isinstance(pair, tuple)
    torch.testing.assert_close(pair[0], ref0)
    torch.testing.assert_close(pair[1], ref1)
    (o0, g0), (o1, g1) = with_features
    torch.testing.assert_close(o0, ref0)
    torch.testing.assert_close(g0, f0)
    torch.testing.assert_close(o1, ref1)
    torch.testing.assert_close(g1, f1)
    o, g = single_with_features
    assert o.shape == (4, 16)
    assert g.shape == (4, 64)


def test_seed_usage_with_a_torchvision_resnet18() -> None:
    resnet = torchvision.models.resnet18()
    backbone = nn.Sequential(*list(resnet.children())[:-1])
    model = SimCLR(backbone, num_ftrs=512)
    out0, out1 = model(torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32))
    assert out0.shape == out1.shape == (2, 128)


def test_wrong_num_ftrs_names_the_right_value() -> None:
    model = SimCLR(tiny_backbone(), num_ftrs=32)
    with pytest.raises(ValueError, match="num_ftrs=64"):
        model(torch.randn(2, 3, 8, 8))


def test_a_few_steps_lower_a_contrastive_loss() -> None:
    torch.manual_seed(0)
    model = SimCLR(tiny_backbone(), num_ftrs=64, out_dim=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    images = torch.rand(16, 3, 16, 16)
    x0 = images + 0.05 * torch.randn_like(images)
    x1 = images + 0.05 * torch.randn_like(images)

    def loss_now() -> float:
        with torch.no_grad():
            z0, z1 = model(x0, x1)
            return float(nt_xent(z0, z1))

    model.train()
    before = loss_now()
    for _ in range(15):
        z0, z1 = model(x0, x1)
        loss = nt_xent(z0, z1)
        optimizer.zero_grad()
        torch.autograd.backward(loss)
        optimizer.step()
    after = loss_now()
    assert after < before - 0.1


def test_same_seed_same_model_and_output() -> None:
    x = torch.randn(2, 3, 8, 8)
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        outs.append(SimCLR(tiny_backbone(), num_ftrs=64).eval()(x))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
