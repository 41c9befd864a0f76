"""SimMIM: mask cells replaced by the mask token, L1 on masked pixels, a ViT required."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from selfsup.errors import ConfigError, DataError
from selfsup.methods import TrainProgress, get_method
from selfsup.methods.simmim import SimMIMModel, random_cell_mask, simmim_loss
from selfsup.models.backbones import get_backbone

torch.set_num_threads(1)


def small_vit(dim: int = 16, layers: int = 1) -> nn.Module:
    vit = get_backbone("vit-tiny-p4", num_layers=layers, num_heads=2, hidden_dim=dim, mlp_dim=dim)
    return nn.Sequential(vit, nn.Linear(dim, 8))


def test_loss_is_the_mean_absolute_error_over_masked_pixels() -> None:
    torch.manual_seed(0)
    pred, target = torch.randn(2, 4, 6), torch.randn(2, 4, 6)
    mask = torch.tensor([[True, False, False, True], [False, False, True, False]])
    total, count = 0.0, 0
    for b in range(2):
        for i in range(4):
            if mask[b, i]:
                for k in range(6):
                    total += abs(float(pred[b, i, k]) - float(target[b, i, k]))
                    count += 1
    assert abs(float(simmim_loss(pred, target, mask)) - total / count) < 1e-5
    with pytest.raises(DataError, match="simmim_loss"):
        simmim_loss(pred, target, mask[:, :3])


def test_cell_mask_masks_whole_cells_at_the_ratio() -> None:
    torch.manual_seed(0)
    mask = random_cell_mask(5, (8, 8), 2, 0.6)
    assert mask.shape == (5, 64)
    grid = mask.view(5, 8, 8)
    cells = grid.unfold(1, 2, 2).unfold(2, 2, 2).reshape(5, 16, 4)
    assert bool((cells.all(-1) | ~cells.any(-1)).all())  # a cell is all masked or all kept
    assert cells.all(-1).sum(1).tolist() == [round(0.6 * 16)] * 5
    # A grid the cell does not divide: edge cells are smaller, the mask still fits.
    assert random_cell_mask(2, (7, 7), 2, 0.5).shape == (2, 49)


def test_masked_patches_are_the_mask_token_and_only_they_count() -> None:
    torch.manual_seed(0)
    model = SimMIMModel(small_vit(), 8, 8)
    images = torch.randn(2, 3, 16, 16)
    torch.manual_seed(1)
    pred, target, mask = model.reconstruct(images)
    assert pred.shape == target.shape == (2, 16, 48)
    changed = images.clone()
    for b in range(2):
        for patch in torch.nonzero(mask[b]).flatten().tolist():
            row, col = divmod(patch, 4)
            changed[b, :, row * 4 : row * 4 + 4, col * 4 : col * 4 + 4] += 3.0
    torch.manual_seed(1)
    pred2, target2, mask2 = model.reconstruct(changed)
    assert torch.equal(mask2, mask)
    torch.testing.assert_close(pred2, pred)  # the encoder never sees masked pixels
    assert not torch.equal(target2, target)


def test_training_lowers_the_loss_on_a_tiny_set() -> None:
    torch.manual_seed(0)
    model = SimMIMModel(small_vit(dim=32, layers=2), 8, 8)
    coarse = torch.rand(8, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    images = nn.functional.interpolate(coarse, size=(16, 16), mode="bilinear")
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)

    def fixed_mask_loss() -> float:
        torch.manual_seed(123)
        with torch.no_grad():
            return float(model.training_loss([images], TrainProgress()))

    before = fixed_mask_loss()
    for _ in range(30):
        loss = model.training_loss([images], TrainProgress())
        optimizer.zero_grad()
        torch.autograd.backward(loss)
        optimizer.step()
    assert fixed_mask_loss() < 0.7 * before


def test_errors_name_the_problem() -> None:
    cnn = nn.Sequential(get_backbone("resnet-9", width=0.125), nn.Linear(64, 8))
    with pytest.raises(ConfigError, match=r"'simmim' needs a Vision Transformer.*'resnet-9'"):
        get_method("simmim").build_model(cnn, 8, 8)
    with pytest.raises(ConfigError, match="multiple of the ViT's patch size 4"):
        SimMIMModel(small_vit(), mask_patch_size=6)
    with pytest.raises(DataError, match="simmim trains on 1 view per image"):
        SimMIMModel(small_vit()).training_loss([torch.randn(1, 3, 16, 16)] * 2, TrainProgress())


def test_every_trainable_parameter_gets_a_gradient() -> None:
    model = SimMIMModel(small_vit(), 8, 8)
    torch.autograd.backward(model.training_loss([torch.randn(2, 3, 16, 16)], TrainProgress()))
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []
