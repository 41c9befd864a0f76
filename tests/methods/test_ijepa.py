"""I-JEPA model: the context encoder sees only the context patches, the momentum target
encoder the whole image; the loss is the distance of the predictions to the layer-normalised
target tokens; a ViT is required and one view per image."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import VisionTransformer

from selfsup.errors import ConfigError, DataError
from selfsup.methods import TrainProgress
from selfsup.methods.ijepa import METHOD, IJEPAModel
from selfsup.models.backbones import Backbone

WIDTH = 16


def _model(seed: int = 0, **kwargs: object) -> IJEPAModel:
    torch.manual_seed(seed)
    vit = VisionTransformer(
        image_size=16, patch_size=4, num_layers=1, num_heads=2, hidden_dim=WIDTH, mlp_dim=32
    )
    vit.heads = nn.Identity()
    return IJEPAModel(Backbone(vit, WIDTH, name="tiny-vit"), WIDTH, 8, **kwargs)  # type: ignore[arg-type]


def _lengths(model: nn.Module) -> list[int]:
    lengths: list[int] = []
    model.encoder.vit.encoder.layers.register_forward_hook(  # type: ignore[union-attr]
        lambda _m, inputs, _o: lengths.append(inputs[0].shape[1])
    )
    return lengths


def test_context_encoder_sees_only_the_context_and_the_target_encoder_everything() -> None:
    model = _model()
    online, target = _lengths(model), []
    model.target_encoder.vit.encoder.layers.register_forward_hook(  # type: ignore[union-attr]
        lambda _m, inputs, _o: target.append(inputs[0].shape[1])
    )
    torch.manual_seed(1)
    model.training_loss([torch.randn(4, 3, 16, 16)], TrainProgress())
    assert target == [17]  # class token + 16 patches
    assert len(online) == 1
    assert 2 <= online[0] < 17  # class token + the context patches, targets removed


def test_loss_is_the_distance_to_the_layer_normalised_target_blocks() -> None:
    model = _model()
    x = torch.randn(2, 3, 16, 16)
    captured: dict[str, Tensor] = {}

    def keep(_m: nn.Module, _i: object, out: Tensor) -> None:
        captured["pred"] = out

    model.predictor.register_forward_hook(keep)
    from selfsup.data.collate import sample_ijepa_masks

    torch.manual_seed(5)
    loss = model.training_loss([x], TrainProgress())
    torch.manual_seed(5)
    _, masks_pred = sample_ijepa_masks(2, (4, 4))
    with torch.no_grad():
        tokens = model.target_encoder.encode(x)[:, 1:]
        tokens = F.layer_norm(tokens, (WIDTH,))
        targets = torch.cat([torch.stack([tokens[b, m[b]] for b in range(2)]) for m in masks_pred])
    torch.testing.assert_close(loss, F.mse_loss(captured["pred"], targets))


def test_gradients_reach_the_context_encoder_and_predictor_only() -> None:
    model = _model(loss="smooth_l1")
    model.training_loss([torch.randn(4, 3, 16, 16)], TrainProgress()).backward()
    trained = [p for n, p in model.named_parameters() if p.requires_grad]
    assert all(p.grad is not None for p in model.predictor.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())
    frozen = [p for n, p in model.named_parameters() if "target" in n]
    assert frozen
    assert all(not p.requires_grad for p in frozen)
    assert trained


def test_not_a_vit_and_wrong_views_are_clear_errors() -> None:
    conv = Backbone(nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1)), 8, name="convy")
    with pytest.raises(ConfigError, match=r"'ijepa' needs a Vision Transformer.*'convy'"):
        METHOD.build_model(conv, 8, 8)
    with pytest.raises(DataError, match="ijepa trains on 1 view per image but the batch holds 2"):
        _model().training_loss([torch.randn(2, 3, 16, 16)] * 2, TrainProgress())
    with pytest.raises(ConfigError, match="loss must be 'l2' or 'smooth_l1'"):
        _model(loss="l1")


def test_transform_gives_one_view() -> None:
    views = METHOD.build_transform(16)(torch.rand(3, 20, 20))
    assert len(views) == 1
    assert views[0].shape == (3, 16, 16)


def test_every_trainable_parameter_gets_a_gradient() -> None:
    # DDP (find_unused_parameters=False) fails on a trainable parameter without gradient: the
    # ViT's mask token, unused here, is frozen.
    model = _model()
    torch.autograd.backward(model.training_loss([torch.randn(2, 3, 16, 16)], TrainProgress()))
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []
