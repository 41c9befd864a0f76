"""Recomputed BatchNorm statistics equal the batch statistics of the current weights."""

from __future__ import annotations

import torch
from torch import nn

from selfsup.models.batchnorm import batchnorm_layers, recompute_batchnorm_statistics


def test_statistics_are_the_average_batch_statistics_of_the_current_weights() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3)
    bn = nn.BatchNorm2d(4)
    model = nn.Sequential(conv, bn, nn.ReLU()).eval()
    batches = [torch.randn(5, 3, 8, 8) * (i + 1) for i in range(3)]
    before = [p.detach().clone() for p in model.parameters()]
    assert recompute_batchnorm_statistics(model, batches) == 3
    with torch.no_grad():
        outs = [conv(b) for b in batches]
    # momentum=None: the plain mean over batches of each batch's mean and unbiased variance
    mean = torch.stack([o.mean(dim=(0, 2, 3)) for o in outs]).mean(0)
    var = torch.stack([o.transpose(0, 1).reshape(4, -1).var(dim=1) for o in outs]).mean(0)
    assert bn.running_mean is not None
    assert bn.running_var is not None
    assert torch.allclose(bn.running_mean, mean, atol=1e-5)
    assert torch.allclose(bn.running_var, var, rtol=1e-4)
    # mode and momentum as before; the weights untouched
    assert not model.training
    assert bn.momentum == 0.1
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


def test_no_batch_or_no_batchnorm_changes_nothing() -> None:
    bn = nn.BatchNorm1d(3)
    assert bn.running_var is not None
    bn.running_var.fill_(7.0)
    assert recompute_batchnorm_statistics(bn, []) == 0
    assert torch.equal(bn.running_var, torch.full((3,), 7.0))
    assert bn.training
    assert recompute_batchnorm_statistics(nn.Linear(2, 2), [torch.zeros(2, 2)]) == 0
    no_stats = nn.BatchNorm1d(3, track_running_stats=False)
    assert batchnorm_layers(nn.Sequential(bn, no_stats)) == [bn]


def test_statistics_are_collected_without_autograd() -> None:
    """Called from the training loop (grad enabled), the passes build no graph."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    grad_modes: list[bool] = []
    model.register_forward_hook(lambda *_: grad_modes.append(torch.is_grad_enabled()))
    assert torch.is_grad_enabled()
    recompute_batchnorm_statistics(model, [torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)])
    assert grad_modes == [False, False]
    assert torch.is_grad_enabled()
    assert all(p.grad is None for p in model.parameters())
