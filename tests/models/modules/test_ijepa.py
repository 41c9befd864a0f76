"""IJEPAPredictor: shapes, order of the blocks, position conditioning, errors."""

from __future__ import annotations

import pytest
import torch

from selfsup.errors import ConfigError, DataError
from selfsup.models.modules.ijepa import IJEPAPredictor


def _predictor() -> IJEPAPredictor:
    torch.manual_seed(0)
    return IJEPAPredictor(embed_dim=12, predictor_embed_dim=8, depth=1, num_heads=2).eval()


def test_one_prediction_per_target_patch_in_block_order() -> None:
    predictor = _predictor()
    context = torch.randn(3, 5, 12)
    masks_enc = torch.tensor([[0, 1, 2, 3, 4]] * 3)
    block_a = torch.tensor([[10, 11]] * 3)
    block_b = torch.tensor([[14, 15]] * 3)
    out = predictor(context, masks_enc, [block_a, block_b], (4, 4))
    assert out.shape == (6, 2, 12)
    # The second block's predictions are the same as predicting that block alone.
    torch.testing.assert_close(out[3:], predictor(context, masks_enc, [block_b], (4, 4)))


def test_predictions_depend_on_the_target_position_and_the_context() -> None:
    predictor = _predictor()
    context = torch.randn(2, 4, 12)
    masks_enc = torch.tensor([[0, 1, 2, 3]] * 2)
    here = predictor(context, masks_enc, [torch.tensor([[8], [8]])], (4, 4))
    there = predictor(context, masks_enc, [torch.tensor([[15], [15]])], (4, 4))
    assert not torch.allclose(here, there)
    other = predictor(context + 1.0, masks_enc, [torch.tensor([[8], [8]])], (4, 4))
    assert not torch.allclose(here, other)


def test_gradients_reach_the_context_and_the_mask_token() -> None:
    predictor = _predictor().train()
    context = torch.randn(2, 4, 12, requires_grad=True)
    out = predictor(context, torch.tensor([[0, 1, 2, 3]] * 2), [torch.tensor([[9], [10]])], (4, 4))
    out.square().sum().backward()
    assert context.grad is not None
    assert context.grad.abs().sum() > 0
    assert predictor.mask_token.grad is not None


def test_bad_inputs_are_clear_errors() -> None:
    predictor = _predictor()
    context = torch.randn(2, 4, 12)
    masks_enc = torch.tensor([[0, 1, 2, 3]] * 2)
    with pytest.raises(DataError, match="must address the 4x4 grid for 2 images"):
        predictor(context, masks_enc, [torch.tensor([[16], [0]])], (4, 4))
    with pytest.raises(DataError, match=r"masks_enc \(B, Kc\)"):
        predictor(context, masks_enc[:, :2], [torch.tensor([[1], [0]])], (4, 4))
    with pytest.raises(DataError, match="masks_pred is empty"):
        predictor(context, masks_enc, [], (4, 4))
    with pytest.raises(ConfigError, match="multiple of 4"):
        IJEPAPredictor(embed_dim=12, predictor_embed_dim=6, num_heads=2)
