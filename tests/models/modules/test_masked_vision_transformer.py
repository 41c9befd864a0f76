"""Token masking of a torchvision ViT and image-patch masking (MSN's anchors)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import VisionTransformer

from selfsup.errors import ConfigError, DataError
from selfsup.models.backbones import Backbone
from selfsup.models.modules import MaskedVisionTransformerTorchvision
from selfsup.models.modules.masked_vision_transformer import (
    as_torchvision_vit,
    check_mask_ratio,
    mask_image_patches,
    random_token_mask,
)


def tiny_vit() -> VisionTransformer:
    torch.manual_seed(0)
    vit = VisionTransformer(
        image_size=16, patch_size=4, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16
    )
    vit.heads = nn.Identity()
    return vit.eval()


def test_without_mask_it_is_the_vit() -> None:
    vit = tiny_vit()
    x = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(MaskedVisionTransformerTorchvision(vit)(x), vit(x))


def test_keeping_tokens_equals_the_vit_on_those_tokens_only() -> None:
    # The class token sees only the kept patch tokens: changing a dropped patch changes
    # nothing, changing a kept one does.
    vit = tiny_vit()
    masked = MaskedVisionTransformerTorchvision(vit)
    x = torch.randn(2, 3, 16, 16)
    keep = torch.tensor([[0, 5, 15], [1, 2, 3]])
    out = masked(x, keep)
    assert out.shape == (2, 8)
    y = x.clone()
    y[:, :, 12:16, 0:4] += 5.0  # patch 12: dropped in both samples
    torch.testing.assert_close(masked(y, keep), out)
    y[:, :, 0:4, 0:4] += 5.0  # patch 0: kept by sample 0 only
    changed = masked(y, keep)
    assert not torch.allclose(changed[0], out[0])
    torch.testing.assert_close(changed[1], out[1])


def test_smaller_views_use_interpolated_position_embeddings() -> None:
    masked = MaskedVisionTransformerTorchvision(tiny_vit())
    assert masked(torch.randn(2, 3, 8, 12)).shape == (2, 8)
    with pytest.raises(DataError, match="multiples of the patch size 4"):
        masked(torch.randn(2, 3, 10, 12))


def test_random_token_mask_keeps_distinct_sorted_tokens() -> None:
    keep = random_token_mask(5, 16, 0.25, None)
    assert keep.shape == (5, 12)
    for row in keep:
        assert row.tolist() == sorted(set(row.tolist()))
        assert int(row.min()) >= 0
        assert int(row.max()) < 16
    assert random_token_mask(2, 4, 0.99).shape == (2, 1)


def test_mask_image_patches_blanks_the_fraction_of_cells() -> None:
    x = torch.rand(4, 3, 8, 8) + 1.0
    before = x.clone()
    out = mask_image_patches(x, 0.5, 2)
    assert torch.equal(x, before)
    cells = out[:, 0].unfold(1, 2, 2).unfold(2, 2, 2)  # (B, 4, 4, 2, 2)
    blank = (cells == 0).all(-1).all(-1)
    kept = (cells > 0).all(-1).all(-1)
    assert (blank | kept).all()
    assert blank.flatten(1).sum(1).tolist() == [8, 8, 8, 8]
    assert torch.equal(mask_image_patches(x, 0.0, 2), x)


def test_as_torchvision_vit_finds_wrapped_vits_only() -> None:
    vit = tiny_vit()
    assert as_torchvision_vit(vit) is vit
    assert as_torchvision_vit(Backbone(vit, 8)) is vit
    assert as_torchvision_vit(nn.Linear(2, 2)) is None


@pytest.mark.parametrize("ratio", [1.0, -0.1, True, "0.3"])
def test_bad_mask_ratio_is_refused(ratio: object) -> None:
    with pytest.raises(ConfigError, match="MSNModel: mask_ratio must be a number in"):
        check_mask_ratio(ratio, "MSNModel")
