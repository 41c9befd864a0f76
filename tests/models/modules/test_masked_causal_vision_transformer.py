"""MaskedCausalVisionTransformer: the prefix-causal mask against its definition, causality of
the outputs, equality with the bidirectional ViT when everything is prefix; AIM's head."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import VisionTransformer

from selfsup.errors import ConfigError, DataError
from selfsup.models.modules.masked_causal_vision_transformer import (
    AIMPredictionHead,
    MaskedCausalVisionTransformer,
    prefix_causal_mask,
)
from selfsup.models.modules.masked_vision_transformer import MaskedVisionTransformerTorchvision


def _causal() -> MaskedCausalVisionTransformer:
    torch.manual_seed(0)
    vit = VisionTransformer(
        image_size=16, patch_size=4, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32
    )
    return MaskedCausalVisionTransformer(MaskedVisionTransformerTorchvision(vit)).eval()


def test_mask_matches_its_definition() -> None:
    prefix = torch.tensor([1, 3, 5])
    blocked = prefix_causal_mask(prefix, 5)
    for b, s in enumerate(prefix.tolist()):
        for i in range(5):
            for j in range(5):
                allowed = j <= i or j < s
                assert bool(blocked[b, i, j]) is not allowed


def test_outputs_do_not_depend_on_later_patches_outside_the_prefix() -> None:
    model = _causal()
    x = torch.randn(2, 3, 16, 16)
    later = x.clone()
    later[:, :, 12:, :] = torch.randn(2, 3, 4, 16)  # the last row of patches (12..15)
    prefix = torch.tensor([3, 3])
    with torch.no_grad():
        a, b = model.encode(x, prefix), model.encode(later, prefix)
    # Tokens: class token, patches 0..15; patches 0..11 come before the change.
    torch.testing.assert_close(a[:, :13], b[:, :13])
    assert not torch.allclose(a[:, 13:], b[:, 13:])


def test_prefix_tokens_see_the_whole_prefix() -> None:
    model = _causal()
    x = torch.randn(1, 3, 16, 16)
    changed = x.clone()
    changed[:, :, :4, 8:12] = 0.0  # patch 2
    with torch.no_grad():
        a = model.encode(x, torch.tensor([4]))
        b = model.encode(changed, torch.tensor([4]))
    # Patch 0 (token 1) is in the prefix with patch 2, so it sees the change.
    assert not torch.allclose(a[:, 1], b[:, 1])


def test_a_prefix_of_every_patch_is_the_bidirectional_vit() -> None:
    model = _causal()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.encode(x, torch.tensor([16, 16])), model.vit.encode(x))


def test_bad_inputs_are_clear_errors() -> None:
    model = _causal()
    with pytest.raises(DataError, match=r"prefix_length must be \(2,\) patch counts in \[0, 16\]"):
        model.encode(torch.randn(2, 3, 16, 16), torch.tensor([3, 17]))
    with pytest.raises(ConfigError, match="torchvision VisionTransformer"):
        MaskedCausalVisionTransformer(nn.Identity())  # type: ignore[arg-type]


def test_aim_head_maps_each_token_alone() -> None:
    torch.manual_seed(0)
    head = AIMPredictionHead(16, 48, hidden_dim=8, num_blocks=2).eval()
    tokens = torch.randn(2, 5, 16)
    out = head(tokens)
    assert out.shape == (2, 5, 48)
    torch.testing.assert_close(out[:, 2], head(tokens[:, 2]))
    assert sum(isinstance(m, nn.LayerNorm) for m in head.modules()) == 3
    with pytest.raises(ConfigError, match="num_blocks >= 0"):
        AIMPredictionHead(16, 48, num_blocks=-1)
