"""Token masking of torchvision and timm ViTs: masked tokens really removed, unmasked = the ViT."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torchvision.models import VisionTransformer

from selfsup.errors import ConfigError, DataError
from selfsup.models.backbones import Backbone
from selfsup.models.modules import (
    MaskedVisionTransformer,
    MaskedVisionTransformerTIMM,
    MaskedVisionTransformerTorchvision,
)
from selfsup.models.modules.masked_vision_transformer import split_vit

timm = pytest.importorskip("timm")


def tiny_vit() -> VisionTransformer:
    torch.manual_seed(0)
    vit = VisionTransformer(
        image_size=16, patch_size=4, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16
    )
    vit.heads = nn.Identity()
    return vit.eval()


def tiny_timm_vit(**kwargs: object) -> Any:
    torch.manual_seed(0)
    vit = timm.models.vision_transformer.VisionTransformer(
        img_size=16,
        patch_size=4,
        embed_dim=8,
        depth=1,
        num_heads=2,
        num_classes=0,
        **kwargs,
    )
    return vit.eval()


def both() -> list[MaskedVisionTransformer]:
    return [
        MaskedVisionTransformerTorchvision(tiny_vit()),
        MaskedVisionTransformerTIMM(tiny_timm_vit()),
        MaskedVisionTransformerTIMM(tiny_timm_vit(reg_tokens=2)),
        MaskedVisionTransformerTIMM(tiny_timm_vit(reg_tokens=1, no_embed_class=True)),
    ]


@pytest.mark.parametrize("init", [True, False])
def test_torchvision_without_mask_is_the_vit(init: bool) -> None:
    vit = tiny_vit()
    masked = MaskedVisionTransformerTorchvision(vit, initialize_weights=init).eval()
    x = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(masked(x), vit(x))
    # The tokens too: the ViT's own encoder on its own input.
    tokens = vit._process_input(x)
    own = vit.encoder(torch.cat([vit.class_token.expand(3, -1, -1), tokens], dim=1))
    torch.testing.assert_close(masked.encode(x), own)
    assert masked.sequence_length == 17


@pytest.mark.parametrize(
    "kwargs", [{}, {"reg_tokens": 2}, {"reg_tokens": 1, "no_embed_class": True}]
)
def test_timm_without_mask_is_the_vit(kwargs: dict[str, object]) -> None:
    vit = tiny_timm_vit(**kwargs)
    masked = MaskedVisionTransformerTIMM(vit).eval()
    x = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(masked.encode(x), vit.forward_features(x))
    torch.testing.assert_close(masked(x), vit(x))
    prefix = 1 + int(kwargs.get("reg_tokens", 0))  # type: ignore[call-overload]
    assert masked.num_prefix_tokens == prefix
    assert masked.sequence_length == prefix + 16


def test_timm_global_average_pool_is_kept() -> None:
    vit = tiny_timm_vit(global_pool="avg", reg_tokens=1)
    masked = MaskedVisionTransformerTIMM(vit).eval()
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(masked(x), vit(x))


@pytest.mark.parametrize("index", range(4))
def test_dropped_tokens_cannot_change_the_output(index: int) -> None:
    # Kept tokens are encoded without the dropped ones: changing a dropped patch's pixels
    # changes nothing, changing a kept patch's pixels changes its sample's output.
    masked = both()[index].eval()
    p = masked.num_prefix_tokens
    x = torch.randn(2, 3, 16, 16)
    # Sample 0 keeps patches 0, 5, 15, sample 1 keeps 1, 2, 3 (+ all prefix tokens).
    patches = torch.tensor([[0, 5, 15], [1, 2, 3]])
    prefix = torch.arange(p).expand(2, -1)
    keep = torch.cat([prefix, patches + p], dim=1)
    out = masked.encode(x, idx_keep=keep)
    assert out.shape == (2, p + 3, 8)
    pooled = masked(x, idx_keep=keep)
    assert pooled.shape == (2, 8)
    y = x.clone()
    y[:, :, 12:16, 0:4] += 5.0  # patch 12: dropped in both samples
    torch.testing.assert_close(masked.encode(y, idx_keep=keep), out)
    y[:, :, 0:4, 0:4] += 5.0  # patch 0: kept by sample 0 only
    changed = masked.encode(y, idx_keep=keep)
    assert not torch.allclose(changed[0], out[0])
    torch.testing.assert_close(changed[1], out[1])


@pytest.mark.parametrize("index", range(4))
def test_mask_token_replaces_masked_patches(index: int) -> None:
    # SimMIM: a masked patch is the mask token (plus its position), whatever its pixels.
    masked = both()[index].eval()
    p = masked.num_prefix_tokens
    x = torch.randn(2, 3, 16, 16)
    idx_mask = torch.tensor([[p + 0, p + 7], [p + 0, p + 3]])
    bool_mask = torch.zeros(2, 16, dtype=torch.bool)
    bool_mask[0, [0, 7]] = True
    bool_mask[1, [0, 3]] = True
    out = masked.encode(x, idx_mask=idx_mask)
    assert out.shape == (2, p + 16, 8)
    # A (B, N) patch mask and a (B, P + N) sequence mask say the same.
    torch.testing.assert_close(masked.encode(x, mask=bool_mask), out)
    full = torch.cat([torch.zeros(2, p, dtype=torch.bool), bool_mask], dim=1)
    torch.testing.assert_close(masked.encode(x, mask=full), out)
    y = x.clone()
    y[:, :, 0:4, 0:4] = torch.randn(2, 3, 4, 4)  # patch 0: masked in both
    torch.testing.assert_close(masked.encode(y, idx_mask=idx_mask), out)
    assert not torch.allclose(masked.encode(y), masked.encode(x))
    with pytest.raises(ConfigError, match="idx_mask or mask, not both"):
        masked.encode(x, idx_mask=idx_mask, mask=bool_mask)


@pytest.mark.parametrize("index", range(4))
def test_random_patch_mask_keeps_prefix_tokens(index: int) -> None:
    masked = both()[index]
    p = masked.num_prefix_tokens
    keep, drop = masked.random_patch_mask(5, 16, 0.75, torch.device("cpu"))
    assert keep.shape == (5, p + 4)
    assert drop.shape == (5, 12)
    for k, d in zip(keep.tolist(), drop.tolist(), strict=True):
        assert k[:p] == list(range(p))
        assert sorted(k + d) == list(range(p + 16))
    assert masked.encode(torch.randn(5, 3, 16, 16), idx_keep=keep).shape == (5, p + 4, 8)


@pytest.mark.parametrize("index", range(4))
def test_other_image_sizes_interpolate_position_embeddings(index: int) -> None:
    masked = both()[index]
    if isinstance(masked, MaskedVisionTransformerTIMM):
        masked.vit.patch_embed.strict_img_size = False
    assert masked(torch.randn(2, 3, 8, 12)).shape == (2, 8)
    assert masked.encode(torch.randn(2, 3, 8, 12)).shape == (2, masked.num_prefix_tokens + 6, 8)
    with pytest.raises(DataError, match="multiples of the patch size 4"):
        masked(torch.randn(2, 3, 10, 12))


def test_mean_pool_averages_patch_tokens() -> None:
    masked = MaskedVisionTransformerTorchvision(tiny_vit(), pool="mean")
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(masked(x), masked.encode(x)[:, 1:].mean(1))
    with pytest.raises(ConfigError, match="pool must be one of cls, mean"):
        MaskedVisionTransformerTorchvision(tiny_vit(), pool="max")  # type: ignore[arg-type]


def test_initialize_weights_sets_sincos_positions() -> None:
    from selfsup.models.utils import get_2d_sincos_pos_embed

    vit = tiny_vit()
    MaskedVisionTransformerTorchvision(vit)
    expected = get_2d_sincos_pos_embed(8, 4, cls_token=True)
    torch.testing.assert_close(vit.encoder.pos_embedding[0], expected)
    untouched = tiny_vit()
    before = untouched.encoder.pos_embedding.clone()
    MaskedVisionTransformerTorchvision(untouched, initialize_weights=False)
    assert torch.equal(untouched.encoder.pos_embedding, before)


def test_gradients_reach_the_vit_through_the_wrapper() -> None:
    vit = tiny_vit()
    masked = MaskedVisionTransformerTorchvision(vit)
    keep, drop = masked.random_patch_mask(2, 16, 0.5, torch.device("cpu"))
    torch.autograd.backward(masked.encode(torch.randn(2, 3, 16, 16), idx_keep=keep).sum())
    assert vit.conv_proj.weight.grad is not None
    assert vit.class_token.grad is not None
    torch.autograd.backward(masked.encode(torch.randn(2, 3, 16, 16), idx_mask=drop).sum())
    assert masked.mask_token.grad is not None


def as_masked_vit(backbone: nn.Module) -> MaskedVisionTransformer | None:
    """The masked ViT :func:`split_vit` finds behind ``backbone``, or None."""
    split = split_vit(backbone)
    return None if split is None else split[1]


def test_split_vit_finds_vits_only() -> None:
    vit = tiny_vit()
    wrapped = as_masked_vit(vit)
    assert isinstance(wrapped, MaskedVisionTransformerTorchvision)
    assert wrapped.vit is vit
    inner = MaskedVisionTransformerTorchvision(tiny_vit())
    assert as_masked_vit(Backbone(inner, 8)) is inner
    found = as_masked_vit(Backbone(vit, 8))
    assert found is not None
    assert found.vit is vit
    assert isinstance(as_masked_vit(tiny_timm_vit()), MaskedVisionTransformerTIMM)
    assert as_masked_vit(nn.Linear(2, 2)) is None
    with pytest.raises(ConfigError, match="needs a timm VisionTransformer"):
        MaskedVisionTransformerTIMM(nn.Linear(2, 2))


def test_split_vit_looks_behind_build_models_linear() -> None:
    from selfsup.models.backbones import get_backbone
    from selfsup.models.modules.masked_vision_transformer import require_vit

    vit = get_backbone("vit-tiny-p4", num_layers=1, hidden_dim=8, num_heads=2, mlp_dim=16)
    linear = nn.Linear(8, 4)
    backbone = nn.Sequential(vit, linear)
    split = split_vit(backbone)
    assert split is not None
    head, masked, tail = split
    assert head is vit
    assert masked is vit.features
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(tail(head(x)), backbone(x))
    assert require_vit(backbone, "mae") == (vit, vit.features)
    assert split_vit(nn.Sequential(nn.Linear(2, 2))) is None


def test_require_vit_names_the_backbone_and_the_accepted_ones() -> None:
    from selfsup.models.backbones import get_backbone
    from selfsup.models.modules.masked_vision_transformer import require_vit

    resnet = nn.Sequential(get_backbone("resnet-9", width=0.125), nn.Linear(64, 4))
    with pytest.raises(
        ConfigError,
        match=r"'mae' needs a Vision Transformer.*model.name='resnet-9'.*vit-tiny-p4, vit-s16",
    ):
        require_vit(resnet, "mae")
    with pytest.raises(ConfigError, match=r"model.name='Linear' is not one"):
        require_vit(nn.Linear(2, 2), "simmim")
