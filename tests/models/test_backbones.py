"""Contract tests over the backbone registry, plus torchvision, timm and custom modules."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torchvision
from torch import nn

from _imports import loaded_after
from selfsup.errors import ConfigError
from selfsup.models import backbones
from selfsup.models.backbones import (
    STRIDE2_RESNETS,
    STRIDE2_SUFFIX,
    VIT_SIZES,
    Backbone,
    as_backbone,
    get_backbone,
    list_backbones,
    register_backbone,
)
from selfsup.models.resnet import RESNET_NAMES, ResNetGenerator

torch.set_num_threads(1)


def tiny_kwargs(name: str) -> dict[str, float]:
    """Smallest config per family so that the contract test stays fast."""
    if name in VIT_SIZES:
        return {"num_layers": 1}
    stride2 = {r + STRIDE2_SUFFIX for r in STRIDE2_RESNETS}
    return {"width": 0.125} if name in RESNET_NAMES or name in stride2 else {}


@pytest.mark.parametrize("name", list_backbones())
def test_every_registered_backbone_maps_images_to_pooled_features(name: str) -> None:
    torch.manual_seed(0)
    backbone = get_backbone(name, **tiny_kwargs(name))
    assert isinstance(backbone, Backbone)
    assert backbone.name == name
    x = torch.randn(2, 3, 32, 32)
    out = backbone(x)
    assert out.shape == (2, backbone.num_features)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    backbone.eval()
    with torch.no_grad():
        assert backbone(x[:1]).shape == (1, backbone.num_features)


def test_registry_lists_lightly_resnets_first() -> None:
    names = list_backbones()
    assert names[: len(RESNET_NAMES)] == list(RESNET_NAMES)
    assert "torchvision/resnet18" in names


def test_lightly_resnet_backbone_equals_generator_without_linear() -> None:
    torch.manual_seed(0)
    backbone = get_backbone("resnet-18", width=0.125).eval()
    resnet = ResNetGenerator("resnet-18", width=0.125)
    # The state dicts line up key for key (same child order), so the weights transfer.
    nn.Sequential(*list(resnet.children())[:-1]).load_state_dict(backbone.features.state_dict())
    resnet.linear = nn.Identity()
    resnet.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), resnet(x))
    assert backbone.num_features == 64


def test_stride2_resnet_has_the_weights_of_the_stride1_one_and_quarter_size_maps() -> None:
    torch.manual_seed(0)
    fast = get_backbone("resnet-9-s2", width=0.125).eval()
    plain = get_backbone("resnet-9", width=0.125).eval()
    assert fast.name == "resnet-9-s2"
    assert fast.num_features == plain.num_features
    # Same keys and shapes: weights move between the two, only the stem's stride differs.
    plain.load_state_dict(fast.state_dict())
    fast_features, plain_features = fast.features, plain.features
    assert isinstance(fast_features, nn.Sequential)
    assert isinstance(plain_features, nn.Sequential)
    stem = fast_features[0]
    assert isinstance(stem, nn.Conv2d)
    assert stem.stride == (2, 2)
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        assert fast_features[1](stem(x)).shape[-2:] == (14, 14)
        # Stride 2 samples the stride-1 stem's output at every other pixel.
        torch.testing.assert_close(stem(x), plain_features[0](x)[:, :, ::2, ::2])
        assert not torch.allclose(fast(x), plain(x))


def test_lightly_resnet_backbone_accepts_num_splits() -> None:
    backbone = get_backbone("resnet-9", width=0.125, num_splits=2)
    assert backbone(torch.randn(4, 3, 16, 16)).shape == (4, 64)


def test_lightly_resnet_backbone_rejects_unknown_arguments() -> None:
    with pytest.raises(ConfigError, match="num_splits"):
        get_backbone("resnet-9", num_split=2)


def test_torchvision_resnet18_plugs_in() -> None:
    torch.manual_seed(0)
    backbone = get_backbone("torchvision/resnet18").eval()
    assert backbone.num_features == 512
    reference = torchvision.models.resnet18()
    reference.fc = nn.Identity()
    reference.load_state_dict(backbone.features.state_dict())
    reference.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), reference(x))


def test_an_unregistered_torchvision_classifier_works() -> None:
    backbone = get_backbone("torchvision/shufflenet_v2_x0_5")
    assert backbone(torch.randn(2, 3, 32, 32)).shape == (2, backbone.num_features) == (2, 1024)


def test_torchvision_model_without_linear_classifier_is_refused() -> None:
    with pytest.raises(ConfigError, match="as_backbone"):
        get_backbone("torchvision/squeezenet1_0")


def test_timm_model_plugs_in() -> None:
    backbone = get_backbone("timm/resnet10t")
    assert backbone.num_features == 512
    assert backbone(torch.randn(2, 3, 32, 32)).shape == (2, 512)


def test_timm_model_with_hidden_head_reports_its_output_size() -> None:
    # MobileNetV3's pre-logits pass through a 1024-d conv head: num_features alone is wrong.
    backbone = get_backbone("timm/mobilenetv3_small_050")
    assert backbone(torch.randn(2, 3, 32, 32)).shape == (2, backbone.num_features)


def test_unknown_name_lists_registered_names_and_a_close_match() -> None:
    with pytest.raises(ConfigError) as info:
        get_backbone("resnet18")
    message = str(info.value)
    assert "Did you mean 'resnet-18'" in message
    assert all(name in message for name in list_backbones())
    assert "timm/<model>" in message


def test_unknown_torchvision_and_timm_names_suggest_a_match() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'resnet18'"):
        get_backbone("torchvision/resnt18")
    with pytest.raises(ConfigError, match="Did you mean 'resnet10t'"):
        get_backbone("timm/resnet10tt")


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("torchvision/resnet18", {"width": 0.5}, "width"),
        ("timm/resnet10t", {"width": 2.0}, "width"),
        ("torchvision/resnet18", {"weights": "DEFAULT"}, "never downloads"),
        ("timm/resnet10t", {"pretrained": True}, "never downloads"),
    ],
)
def test_refused_options(name: str, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        get_backbone(name, **kwargs)  # type: ignore[arg-type]


class MapNet(nn.Module):
    """A custom module returning a feature map (B, 5, H/2, W/2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.bn(self.conv(x))
        return out


def test_as_backbone_infers_num_features_and_pools() -> None:
    module = MapNet()
    module.train()
    backbone = as_backbone(module)
    assert backbone.num_features == 5
    assert module.training  # mode restored after the dummy forward
    assert module.bn.num_batches_tracked == 0  # the dummy forward ran in eval mode
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(backbone(x), module(x).mean(dim=(2, 3)))
    assert as_backbone(backbone) is backbone


def test_as_backbone_checks_declared_num_features() -> None:
    backbone = as_backbone(MapNet(), num_features=7)
    with pytest.raises(ValueError, match="num_features=7"):
        backbone(torch.randn(2, 3, 8, 8))
    with pytest.raises(ConfigError, match="disagrees"):
        as_backbone(backbone, num_features=3)


def test_backbone_rejects_token_sequences() -> None:
    backbone = Backbone(nn.Flatten(start_dim=2), num_features=3)
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        backbone(torch.randn(2, 3, 4, 4)[:, :, :, 0])


def test_register_backbone_makes_a_name_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backbones, "_REGISTRY", dict(backbones._REGISTRY))

    @register_backbone("mapnet")
    def make(width: float = 1.0) -> Backbone:
        return as_backbone(MapNet(), num_features=5)

    assert "mapnet" in list_backbones()
    assert get_backbone("mapnet")(torch.randn(2, 3, 8, 8)).shape == (2, 5)
    with pytest.raises(ConfigError, match="already registered"):
        register_backbone("mapnet", make)


@pytest.mark.slow
def test_importing_models_does_not_import_timm() -> None:
    assert loaded_after("import selfsup.models", ["timm"]) == []


def test_vit_backbones_embed_with_the_class_token_or_the_mean_of_patch_tokens() -> None:
    from selfsup.models.modules import MaskedVisionTransformerTorchvision

    torch.manual_seed(0)
    cls = get_backbone("vit-tiny-p4", num_layers=1)
    assert cls.num_features == 192
    assert isinstance(cls.features, MaskedVisionTransformerTorchvision)
    x = torch.randn(2, 3, 32, 32)
    tokens = cls.features.encode(x)
    assert tokens.shape == (2, 1 + 64, 192)
    torch.testing.assert_close(cls(x), tokens[:, 0])
    mean = get_backbone("vit-tiny-p4", num_layers=1, pool="mean")
    mean.load_state_dict(cls.state_dict())
    torch.testing.assert_close(mean(x), tokens[:, 1:].mean(1))
    # Fashion-MNIST and 64 px images: the position embeddings are interpolated.
    assert cls(torch.randn(2, 3, 28, 28)).shape == (2, 192)
    assert cls(torch.randn(2, 3, 64, 64)).shape == (2, 192)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pool": "max"}, "pool must be one of cls, mean"),
        ({"depth": 3}, "unknown arguments \\['depth'\\]"),
        ({"width": 0.5}, "has no width multiplier"),
    ],
)
def test_vit_backbone_refuses_bad_options(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        get_backbone("vit-tiny-p4", **kwargs)


def test_standard_vit_sizes() -> None:
    assert VIT_SIZES["vit-s16"][1:5] == (16, 12, 6, 384)
    assert VIT_SIZES["vit-b16"][1:5] == (16, 12, 12, 768)
    assert get_backbone("vit-s16", num_layers=1).num_features == 384


def test_vit_pool_kwargs_only_for_vits() -> None:
    from selfsup.models.backbones import vit_pool_kwargs

    assert vit_pool_kwargs("vit-s16", "mean") == {"pool": "mean"}
    assert vit_pool_kwargs("resnet-18", "cls") == {}
    with pytest.raises(ConfigError, match=r"model\.name='resnet-18'"):
        vit_pool_kwargs("resnet-18", "mean")
