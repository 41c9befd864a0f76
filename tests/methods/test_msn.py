"""MSN / PMSN models: target unmasked through the momentum encoder, masked anchors online."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import VisionTransformer

from selfsup.errors import ConfigError
from selfsup.loss import MSNLoss, PMSNLoss
from selfsup.methods import TrainProgress, get_method
from selfsup.methods.msn import MSNModel
from selfsup.models.backbones import Backbone


def _vit_backbone() -> Backbone:
    vit = VisionTransformer(
        image_size=16, patch_size=4, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16
    )
    vit.heads = nn.Identity()
    return Backbone(vit, 8)


def test_pmsn_uses_the_power_law_loss() -> None:
    torch.manual_seed(0)
    msn = get_method("msn").build_model(_vit_backbone(), 8, 4)
    pmsn = get_method("pmsn").build_model(_vit_backbone(), 8, 4)
    assert type(msn.criterion) is MSNLoss
    assert isinstance(pmsn.criterion, PMSNLoss)
    assert msn.prototypes.weight.shape == (32, 4)


def test_vit_anchors_drop_tokens_and_focal_views_fit_the_patches() -> None:
    torch.manual_seed(0)
    model = MSNModel(_vit_backbone(), 8, 4, mask_ratio=0.5)
    assert model.masked_vit is not None
    calls: list[int] = []
    layers = model.masked_vit.vit.encoder.layers
    layers.register_forward_hook(lambda _m, inputs, _o: calls.append(inputs[0].shape[1]))
    views = [torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16), torch.randn(4, 3, 7, 7)]
    loss = model.training_loss(views, TrainProgress())
    # Anchor of 16 tokens keeps 8 (+ class token); the 7-pixel focal view is cropped to 4
    # pixels, one token, kept (at least one is).
    assert calls == [9, 2]
    loss.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
    assert grads
    assert all(torch.isfinite(g).all() for g in grads)
    assert model.prototypes.weight.grad is not None
    assert all(p.grad is None for p in model.backbone_momentum.parameters())


def test_the_target_is_the_momentum_encoder_on_the_unmasked_first_view() -> None:
    torch.manual_seed(0)
    model = MSNModel(_vit_backbone(), 8, 4, mask_ratio=0.5)
    seen: list[torch.Tensor] = []
    model.backbone_momentum.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    views = [torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)]
    model.training_loss(views, TrainProgress())
    assert len(seen) == 1
    assert torch.equal(seen[0], views[0])


def test_bad_mask_ratio_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"mask_ratio must be a number in \[0, 1\), got 1.5"):
        get_method("msn").build_model(_vit_backbone(), 8, 4, mask_ratio=1.5)


def test_a_registered_vit_behind_build_models_linear_drops_tokens() -> None:
    # selfsup.core.build_model gives methods Sequential(backbone, Linear to num_ftrs): the ViT
    # is found behind it, drops tokens, and the anchors still go through the Linear.
    from selfsup.models.backbones import get_backbone

    torch.manual_seed(0)
    vit = get_backbone("vit-tiny-p4", num_layers=1, hidden_dim=16, num_heads=2, mlp_dim=32)
    linear = nn.Linear(16, 8)
    model = MSNModel(nn.Sequential(vit, linear), 8, 4, mask_ratio=0.5)
    assert model.masked_vit is vit.features
    assert not vit.features.mask_token.requires_grad  # unused by MSN; DDP needs it frozen
    calls: list[int] = []
    layers: nn.Module = vit.features.get_submodule("vit.encoder.layers")
    layers.register_forward_hook(lambda _m, inputs, _o: calls.append(inputs[0].shape[1]))
    views = [torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)]
    loss = model.training_loss(views, TrainProgress())
    assert calls == [1 + 8]  # the anchor: 16 patches, half kept, plus the class token
    torch.autograd.backward(loss)
    assert linear.weight.grad is not None
