"""Tests of the lightly-style ResNets and SplitBatchNorm."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from selfsup.errors import ConfigError
from selfsup.models.resnet import (
    RESNET_NAMES,
    BatchNorm2dReLU,
    ResNetGenerator,
    SplitBatchNorm,
    SplitBatchNormReLU,
)

torch.set_num_threads(1)

# name -> (bottleneck?, blocks per stage); written from the ResNet paper's Table 1.
DEPTHS: dict[str, tuple[bool, tuple[int, int, int, int]]] = {
    "resnet-9": (False, (1, 1, 1, 1)),
    "resnet-18": (False, (2, 2, 2, 2)),
    "resnet-34": (False, (3, 4, 6, 3)),
    "resnet-50": (True, (3, 4, 6, 3)),
    "resnet-101": (True, (3, 4, 23, 3)),
    "resnet-152": (True, (3, 8, 36, 3)),
}


def expected_num_params(name: str, width: float, num_classes: int) -> int:
    """Parameter count from the architecture: 3x3 stem, four stages, linear classifier."""
    bottleneck, layers = DEPTHS[name]
    base = max(1, int(64 * width))
    bn = 2  # weight and bias per channel
    total = 3 * base * 9 + bn * base
    in_planes = base
    for stage, n_blocks in enumerate(layers):
        planes = base * 2**stage
        for i in range(n_blocks):
            stride = 2 if stage > 0 and i == 0 else 1
            if bottleneck:
                out = 4 * planes
                total += in_planes * planes + bn * planes
                total += planes * planes * 9 + bn * planes
                total += planes * out + bn * out
            else:
                out = planes
                total += in_planes * planes * 9 + bn * planes
                total += planes * planes * 9 + bn * planes
            if stride != 1 or in_planes != out:
                total += in_planes * out + bn * out
            in_planes = out
    return total + in_planes * num_classes + num_classes


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", RESNET_NAMES)
def test_parameter_count_matches_architecture(name: str) -> None:
    model = ResNetGenerator(name, width=0.125, num_classes=7)
    assert n_params(model) == expected_num_params(name, 0.125, 7)


@pytest.mark.parametrize(
    ("name", "tv_name"), [("resnet-18", "resnet18"), ("resnet-50", "resnet50")]
)
def test_full_width_matches_torchvision_except_stem_and_classifier(name: str, tv_name: str) -> None:
    # torchvision's ResNet has the same stages; only its 7x7 stem and 1000-way fc differ.
    ours = ResNetGenerator(name, width=1.0, num_classes=10)
    tv = torchvision.models.get_model(tv_name, weights=None)
    fc_in = tv.fc.in_features
    expected = n_params(tv) - 3 * 64 * 49 + 3 * 64 * 9 - (fc_in * 1000 + 1000) + fc_in * 10 + 10
    assert n_params(ours) == expected
    assert ours.num_features == fc_in


def test_resnet18_has_the_known_cifar_parameter_count() -> None:
    assert n_params(ResNetGenerator("resnet-18")) == 11_173_962


@pytest.mark.parametrize("name", RESNET_NAMES)
def test_output_shapes(name: str) -> None:
    model = ResNetGenerator(name, width=0.0625, num_classes=5)
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 5)
    features = nn.Sequential(*list(model.children())[:-1])(x)
    assert features.shape == (2, model.num_features, 1, 1)
    expansion = 4 if DEPTHS[name][0] else 1
    assert model.num_features == 8 * 4 * expansion  # base = int(64 * 0.0625) = 4


def test_stem_keeps_resolution_and_stages_halve_it() -> None:
    model = ResNetGenerator("resnet-9", width=0.125).eval()
    x = torch.randn(1, 3, 32, 32)
    out = model.bn1(model.conv1(x))
    sizes = [out.shape[-1]]
    for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
        out = layer(out)
        sizes.append(out.shape[-1])
    assert sizes == [32, 32, 16, 8, 4]


def test_children_without_linear_equal_model_with_identity_linear() -> None:
    torch.manual_seed(0)
    model = ResNetGenerator("resnet-18", width=0.125).eval()
    extractor = nn.Sequential(*list(model.children())[:-1])
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        from_children = extractor(x).flatten(start_dim=1)
        model.linear = nn.Identity()
        from_model = model(x)
    torch.testing.assert_close(from_children, from_model, rtol=0, atol=0)


def test_stem_relu_is_not_lost_when_cutting_children() -> None:
    # lightly's old ResNet applied the stem ReLU functionally, so children()[:-1] lost it.
    model = ResNetGenerator("resnet-9", width=0.125)
    stem = nn.Sequential(*list(model.children())[:2])
    assert isinstance(model.bn1, BatchNorm2dReLU)
    assert stem(torch.randn(4, 3, 8, 8)).min() >= 0


def test_lightly_checkpoint_layout_of_the_feature_extractor() -> None:
    # lightly saved backbones as Sequential(*children()[:-1], AdaptiveAvgPool2d(1)):
    # conv1=0, bn1=1, layer1..4=2..5. The same keys must load into ours.
    model = ResNetGenerator("resnet-18", width=0.125)
    lightly_idiom = nn.Sequential(*list(model.children())[:-1], nn.AdaptiveAvgPool2d(1))
    keys = set(lightly_idiom.state_dict())
    assert {"0.weight", "1.weight", "1.running_mean", "2.0.conv1.weight", "5.1.bn2.bias"} <= keys
    assert "5.0.shortcut.0.weight" in keys
    assert lightly_idiom(torch.randn(2, 3, 16, 16)).shape == (2, model.num_features, 1, 1)


def test_num_classes_is_honoured() -> None:
    # lightly's generator ignored num_classes and always built 10 outputs.
    assert ResNetGenerator("resnet-9", width=0.125, num_classes=3)(
        torch.randn(2, 3, 8, 8)
    ).shape == (
        2,
        3,
    )


def test_tiny_width_keeps_at_least_one_channel() -> None:
    model = ResNetGenerator("resnet-9", width=0.001)
    assert model.conv1.out_channels == 1
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_unknown_name_lists_accepted_names() -> None:
    with pytest.raises(ConfigError) as info:
        ResNetGenerator("resnet-19")
    message = str(info.value)
    assert "resnet-19" in message
    assert all(name in message for name in RESNET_NAMES)


def test_invalid_width_is_rejected() -> None:
    with pytest.raises(ConfigError, match="width"):
        ResNetGenerator("resnet-9", width=0.0)


def test_input_is_not_modified() -> None:
    model = ResNetGenerator("resnet-9", width=0.125)
    x = torch.randn(2, 3, 16, 16)
    before = x.clone()
    model(x).sum().backward()
    torch.testing.assert_close(x, before, rtol=0, atol=0)


# --- SplitBatchNorm ---------------------------------------------------------------------


def split_reference(x: torch.Tensor, num_splits: int, eps: float = 1e-5) -> torch.Tensor:
    """Sample i belongs to split i % num_splits; each split uses its own batch statistics."""
    out = torch.empty_like(x)
    for k in range(num_splits):
        part = x[k::num_splits]
        mean = part.mean(dim=(0, 2, 3), keepdim=True)
        var = part.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        out[k::num_splits] = (part - mean) / torch.sqrt(var + eps)
    return out


def test_split_batchnorm_training_normalises_each_split_separately() -> None:
    torch.manual_seed(0)
    bn = SplitBatchNorm(3, num_splits=2)
    x = torch.randn(8, 3, 4, 4)
    x[0::2] = x[0::2] * 3.0 + 5.0  # give the two splits different statistics
    torch.testing.assert_close(bn(x), split_reference(x, 2), rtol=1e-4, atol=1e-5)
    # a plain BatchNorm over the whole batch differs
    assert not torch.allclose(bn(x), F.batch_norm(x, None, None, training=True), atol=1e-3)


def test_split_batchnorm_running_stats_are_per_split_then_averaged() -> None:
    torch.manual_seed(0)
    bn = SplitBatchNorm(3, num_splits=2, momentum=0.5)
    x = torch.randn(8, 3, 4, 4)
    x[1::2] += 4.0
    bn(x)
    assert bn.running_mean is not None
    per_split = bn.running_mean.view(2, 3)
    for k in range(2):
        torch.testing.assert_close(per_split[k], 0.5 * x[k::2].mean(dim=(0, 2, 3)))
    bn.eval()
    averaged = 0.5 * x.mean(dim=(0, 2, 3))
    torch.testing.assert_close(bn.running_mean.view(2, 3)[0], averaged)
    torch.testing.assert_close(bn.running_mean.view(2, 3)[1], averaged)
    assert bn.running_var is not None
    expected = F.batch_norm(x, averaged, bn.running_var[:3], training=False)
    torch.testing.assert_close(bn(x), expected)


def test_split_batchnorm_needs_batch_divisible_by_splits() -> None:
    bn = SplitBatchNorm(3, num_splits=4)
    with pytest.raises(ValueError, match="divisible by 4"):
        bn(torch.randn(6, 3, 2, 2))


def test_resnet_with_num_splits_uses_split_batchnorm_everywhere() -> None:
    model = ResNetGenerator("resnet-9", width=0.125, num_splits=2)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms
    assert all(isinstance(m, SplitBatchNorm) for m in norms)
    assert isinstance(model.bn1, SplitBatchNormReLU)
    assert model(torch.randn(4, 3, 8, 8)).shape == (4, 10)
    model.eval()
    assert model(torch.randn(3, 3, 8, 8)).shape == (3, 10)  # any batch size in eval
