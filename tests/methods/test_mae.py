"""MAE: masked patches only, the paper's loss, a ViT required, reconstruction improves."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from selfsup.errors import ConfigError, DataError
from selfsup.methods import TrainProgress, get_method
from selfsup.methods.mae import MAEModel, decoder_size, mae_loss, normalize_patches
from selfsup.models.backbones import get_backbone

torch.set_num_threads(1)


def small_vit(dim: int = 16, layers: int = 1) -> nn.Sequential:
    """vit-tiny-p4 cut down, behind a Linear as selfsup.core.build_model gives it."""
    vit = get_backbone("vit-tiny-p4", num_layers=layers, num_heads=2, hidden_dim=dim, mlp_dim=dim)
    return nn.Sequential(vit, nn.Linear(dim, 8))


def smooth_images(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    return nn.functional.interpolate(coarse, size=(size, size), mode="bilinear") * 2 - 1


def test_loss_and_normalisation_match_the_papers_formula() -> None:
    torch.manual_seed(0)
    pred, target = torch.randn(2, 3, 12), torch.randn(2, 3, 12)
    total = 0.0
    for b in range(2):
        for i in range(3):
            # (1 / (p²·C)) ‖x̂ − x‖² per masked patch, averaged over the B·|M| patches.
            total += (
                sum((float(pred[b, i, k]) - float(target[b, i, k])) ** 2 for k in range(12)) / 12
            )
    expected = total / (2 * 3)
    assert abs(float(mae_loss(pred, target)) - expected) < 1e-5
    normalized = normalize_patches(target)
    for b in range(2):
        for i in range(3):
            values = [float(v) for v in target[b, i]]
            mean = sum(values) / 12
            var = sum((v - mean) ** 2 for v in values) / 11  # unbiased, as MAE's code
            for k in range(12):
                want = (values[k] - mean) / (var + 1e-6) ** 0.5
                assert abs(float(normalized[b, i, k]) - want) < 1e-4
    with pytest.raises(DataError, match="mae_loss"):
        mae_loss(pred, target[:, :2])


def test_only_masked_patches_are_predicted_and_compared() -> None:
    torch.manual_seed(0)
    model = MAEModel(small_vit(), 8, 8, mask_ratio=0.75, norm_pix_loss=False)
    images = torch.randn(2, 3, 16, 16)
    torch.manual_seed(1)
    pred, target, idx = model.reconstruct(images)
    assert pred.shape == target.shape == (2, 12, 48)  # 16 patches of 4x4x3, 75% masked
    # The target is the masked patches' own pixels.
    for b in range(2):
        for m, patch in enumerate(idx[b].tolist()):
            row, col = divmod(patch, 4)
            pixels = images[b, :, row * 4 : row * 4 + 4, col * 4 : col * 4 + 4]
            assert torch.equal(target[b, m], pixels.permute(1, 2, 0).reshape(-1))
    # The encoder never sees masked patches: changing them leaves the prediction unchanged.
    changed = images.clone()
    for b in range(2):
        for patch in idx[b].tolist():
            row, col = divmod(patch, 4)
            changed[b, :, row * 4 : row * 4 + 4, col * 4 : col * 4 + 4] += 3.0
    torch.manual_seed(1)
    pred2, _, idx2 = model.reconstruct(changed)
    assert torch.equal(idx2, idx)
    torch.testing.assert_close(pred2, pred)


def test_reconstruction_loss_lowers_on_a_tiny_set() -> None:
    torch.manual_seed(0)
    model = MAEModel(small_vit(dim=32, layers=2), 8, 8)
    images = smooth_images(8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)

    def fixed_mask_loss() -> float:
        torch.manual_seed(123)  # the same masks before and after training
        with torch.no_grad():
            return float(model.training_loss([images], TrainProgress()))

    before = fixed_mask_loss()
    for step in range(40):
        loss = model.training_loss([images], TrainProgress(step=step, total_steps=40))
        optimizer.zero_grad()
        torch.autograd.backward(loss)
        optimizer.step()
    after = fixed_mask_loss()
    assert after < 0.7 * before, (before, after)


def test_the_embedding_is_the_vits_class_token_without_the_linear() -> None:
    backbone = small_vit()
    model = get_method("mae").build_model(backbone, 8, 8)
    assert model.backbone is backbone[0]
    x = torch.randn(2, 3, 16, 16)
    assert model.backbone(x).shape == (2, 16)
    assert not any(p is backbone[1].weight for p in model.parameters())


def test_a_timm_vit_with_registers_trains() -> None:
    timm = pytest.importorskip("timm")
    vit = timm.models.vision_transformer.VisionTransformer(
        img_size=16, patch_size=4, embed_dim=16, depth=1, num_heads=2, num_classes=0, reg_tokens=2
    )
    model = MAEModel(vit, 8, 8)
    assert model.encoder.num_prefix_tokens == 3
    loss = model.training_loss([torch.randn(2, 3, 16, 16)], TrainProgress())
    torch.autograd.backward(loss)
    assert vit.reg_token.grad is not None
    assert torch.isfinite(loss)


def test_a_cnn_backbone_is_refused_naming_model_name() -> None:
    cnn = nn.Sequential(get_backbone("resnet-9", width=0.125), nn.Linear(64, 8))
    with pytest.raises(
        ConfigError, match=r"'mae' needs a Vision Transformer.*'resnet-9'.*vit-tiny-p4"
    ):
        get_method("mae").build_model(cnn, 8, 8)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ConfigError, match="MAEModel: mask_ratio"):
        MAEModel(small_vit(), mask_ratio=1.0)
    with pytest.raises(DataError, match="mae trains on 1 view per image but the batch holds 2"):
        MAEModel(small_vit()).training_loss([torch.randn(1, 3, 16, 16)] * 2, TrainProgress())


def test_decoder_size_follows_the_paper_and_scales_down() -> None:
    assert decoder_size(768) == (512, 8, 16)
    assert decoder_size(192) == (192, 2, 6)
    assert decoder_size(16) == (16, 2, 1)


def test_every_trainable_parameter_gets_a_gradient() -> None:
    # DDP (find_unused_parameters=False) fails on a trainable parameter without gradient: the
    # encoder's mask token, which MAE never uses, is frozen.
    model = MAEModel(small_vit(), 8, 8)
    assert not model.encoder.mask_token.requires_grad
    torch.autograd.backward(model.training_loss([torch.randn(2, 3, 16, 16)], TrainProgress()))
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []
