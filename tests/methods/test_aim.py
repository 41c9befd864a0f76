"""AIM model: the loss of eq. 2 against loops, over the patches after each prefix only;
normalised pixel targets; ViT and one view required."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import VisionTransformer

from selfsup.errors import ConfigError, DataError
from selfsup.methods import TrainProgress
from selfsup.methods.aim import METHOD, AIMModel, aim_loss, normalized_pixel_targets
from selfsup.models.backbones import Backbone


def _model() -> AIMModel:
    torch.manual_seed(0)
    vit = VisionTransformer(
        image_size=16, patch_size=4, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32
    )
    vit.heads = nn.Identity()
    return AIMModel(Backbone(vit, 16, name="tiny-vit"), 16, 8, head_blocks=1)


def test_loss_matches_eq2_over_the_patches_after_the_prefix() -> None:
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(3, 5, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    prefix = torch.tensor([1, 2, 4])
    total, count = 0.0, 0
    for b in range(3):
        for k in range(int(prefix[b]), 5):  # patch k predicted by the token of patch k - 1
            total += sum((pred[b, k - 1, d] - target[b, k, d]).item() ** 2 for d in range(4)) / 4
            count += 1
    assert aim_loss(pred, target, prefix).item() == pytest.approx(total / count, rel=1e-6)


def test_targets_are_patches_normalised_over_their_pixels() -> None:
    images = torch.rand(2, 3, 8, 8)
    targets = normalized_pixel_targets(images, 4)
    assert targets.shape == (2, 4, 48)
    torch.testing.assert_close(targets.mean(dim=-1), torch.zeros(2, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        targets.std(dim=-1, unbiased=False), torch.ones(2, 4), atol=1e-3, rtol=0
    )
    patch = images[1, :, 4:, :4].permute(1, 2, 0).reshape(-1)  # patch 2, (row, col, channel)
    expected = (patch - patch.mean()) / torch.sqrt(patch.var(unbiased=False) + 1e-6)
    torch.testing.assert_close(targets[1, 2], expected)


def test_training_loss_trains_the_vit_and_the_head() -> None:
    model = _model()
    loss = model.training_loss([torch.randn(4, 3, 16, 16)], TrainProgress())
    assert loss.ndim == 0
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.head.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())


def test_not_a_vit_and_wrong_views_are_clear_errors() -> None:
    conv = Backbone(nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1)), 8, name="convy")
    with pytest.raises(ConfigError, match=r"'aim' needs a Vision Transformer.*'convy'"):
        METHOD.build_model(conv, 8, 8)
    with pytest.raises(DataError, match="aim trains on 1 view per image but the batch holds 2"):
        _model().training_loss([torch.randn(2, 3, 16, 16)] * 2, TrainProgress())


def test_every_trainable_parameter_gets_a_gradient() -> None:
    # DDP (find_unused_parameters=False) fails on a trainable parameter without gradient: the
    # ViT's mask token, unused here, is frozen.
    model = _model()
    torch.autograd.backward(model.training_loss([torch.randn(2, 3, 16, 16)], TrainProgress()))
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []
