"""feature_map / embedding_and_feature_map over the backbone layouts selfsup builds."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from selfsup.errors import ConfigError
from selfsup.models import ResNetGenerator
from selfsup.models.backbones import as_backbone, get_backbone
from selfsup.models.feature_map import embedding_and_feature_map, feature_map

torch.set_num_threads(1)


def _sequential() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(8, 5),
    )


def test_sequential_stops_at_the_pooling_and_the_rest_runs_on_the_pooled_map() -> None:
    model = _sequential().eval()
    x = torch.randn(2, 3, 16, 16)
    fmap = feature_map(model, x)
    assert fmap.shape == (2, 8, 8, 8)
    torch.testing.assert_close(fmap, model[1](model[0](x)))
    embedding, fmap2 = embedding_and_feature_map(model, x)
    torch.testing.assert_close(embedding, model(x))
    torch.testing.assert_close(fmap2, fmap)


def test_registered_resnet_backbone() -> None:
    backbone = get_backbone("resnet-18", width=0.125).eval()
    x = torch.randn(2, 3, 32, 32)
    embedding, fmap = embedding_and_feature_map(backbone, x)
    assert fmap.shape[:2] == (2, backbone.num_features)
    torch.testing.assert_close(embedding, backbone(x))
    torch.testing.assert_close(fmap.mean(dim=(2, 3)), backbone(x))


def test_a_backbone_followed_by_layers_as_core_builds_it() -> None:
    # selfsup.core.build_model gives methods nn.Sequential(backbone, nn.Linear(...)): dense
    # methods (DenseCL, VICRegL, DetCon) trained by `selfsup train` failed on it before.
    backbone = get_backbone("resnet-9", width=0.125)
    model = nn.Sequential(backbone, nn.Linear(backbone.num_features, 6)).eval()
    x = torch.randn(2, 3, 32, 32)
    fmap = feature_map(model, x)
    torch.testing.assert_close(fmap, feature_map(backbone, x))
    embedding, fmap2 = embedding_and_feature_map(model, x)
    torch.testing.assert_close(embedding, model(x))
    torch.testing.assert_close(fmap2, fmap)


def test_selfsup_and_torchvision_resnets() -> None:
    resnet = ResNetGenerator("resnet-18", width=0.125).eval()
    resnet.linear = nn.Identity()
    x = torch.randn(2, 3, 32, 32)
    embedding, fmap = embedding_and_feature_map(resnet, x)
    torch.testing.assert_close(embedding, resnet(x))
    torch.testing.assert_close(fmap.mean(dim=(2, 3)), resnet(x))
    tv = torchvision.models.resnet18(weights=None).eval()
    tv.fc = nn.Identity()
    fmap = feature_map(tv, torch.randn(2, 3, 64, 64))
    assert fmap.shape == (2, 512, 2, 2)
    torch.testing.assert_close(feature_map(as_backbone(tv, 512), x), feature_map(tv, x))


def test_module_returning_a_map_and_refused_modules() -> None:
    conv = nn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 8, 8)
    embedding, fmap = embedding_and_feature_map(conv, x)
    torch.testing.assert_close(fmap, conv(x))
    torch.testing.assert_close(embedding, conv(x).mean(dim=(2, 3)))
    with pytest.raises(ConfigError, match=r"feature_map: Linear gives \(2, 4\), not a"):
        feature_map(nn.Linear(8, 4), torch.randn(2, 8))
