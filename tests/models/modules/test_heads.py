"""Tests of the projection heads: layer structure as the papers describe, DINO's head math."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from selfsup.models import modules
from selfsup.models.modules import (
    BarlowTwinsProjectionHead,
    BYOLPredictionHead,
    BYOLProjectionHead,
    DenseCLProjectionHead,
    DINOProjectionHead,
    MMCRProjectionHead,
    MoCoProjectionHead,
    MoCoV3PredictionHead,
    MoCoV3ProjectionHead,
    MSNProjectionHead,
    NNCLRPredictionHead,
    NNCLRProjectionHead,
    ProjectionHead,
    SimCLRProjectionHead,
    SimSiamPredictionHead,
    SimSiamProjectionHead,
    SMoGPredictionHead,
    SMoGProjectionHead,
    SwaVProjectionHead,
    TiCoProjectionHead,
    VICRegProjectionHead,
)
from selfsup.models.modules.heads import DistillationProjectionHead

torch.set_num_threads(1)

L, BN, R, G = nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.GELU


def structure(head: ProjectionHead) -> list[type[nn.Module]]:
    return [type(m) for m in head.layers]


def linears(head: ProjectionHead) -> list[nn.Linear]:
    return [m for m in head.layers if isinstance(m, nn.Linear)]


def test_projection_head_builds_blocks_in_order() -> None:
    head = ProjectionHead([(6, 5, nn.BatchNorm1d(5), nn.ReLU()), (5, 3, None, None)])
    assert structure(head) == [L, BN, R, L]
    first, last = linears(head)
    assert (first.in_features, first.out_features) == (6, 5)
    assert first.bias is None  # the norm's shift replaces the bias
    assert (last.in_features, last.out_features) == (5, 3)
    assert last.bias is not None
    assert head(torch.randn(4, 6)).shape == (4, 3)


def test_projection_head_rejects_mismatched_blocks() -> None:
    with pytest.raises(ValueError, match="block 1"):
        ProjectionHead([(6, 5, None, None), (4, 3, None, None)])
    with pytest.raises(ValueError, match="at least one block"):
        ProjectionHead([])


def test_simclr_v1_head() -> None:
    # g(h) = W2 σ(W1 h) with BN after each linear as in the official code (and lightly).
    head = SimCLRProjectionHead(8, 16, 4)
    assert structure(head) == [L, BN, R, L, BN]
    assert [(m.in_features, m.out_features) for m in linears(head)] == [(8, 16), (16, 4)]
    assert all(m.bias is None for m in linears(head))


def test_simclr_v1_head_without_batch_norm_is_the_paper_mlp() -> None:
    head = SimCLRProjectionHead(8, 16, 4, batch_norm=False)
    assert structure(head) == [L, R, L]
    assert all(m.bias is not None for m in linears(head))
    x = torch.randn(5, 8)
    w1, w2 = linears(head)
    torch.testing.assert_close(head(x), w2(F.relu(w1(x))))


def test_simclr_v2_head_has_three_layers() -> None:
    head = SimCLRProjectionHead(8, 16, 4, num_layers=3)
    assert structure(head) == [L, BN, R, L, BN, R, L, BN]
    assert [(m.in_features, m.out_features) for m in linears(head)] == [(8, 16), (16, 16), (16, 4)]


def test_simclr_head_defaults() -> None:
    head = SimCLRProjectionHead()
    assert [(m.in_features, m.out_features) for m in linears(head)] == [(2048, 2048), (2048, 128)]


def test_moco_v2_head() -> None:
    head = MoCoProjectionHead(8, 16, 4)
    assert structure(head) == [L, R, L]
    assert all(m.bias is not None for m in linears(head))
    assert linears(MoCoProjectionHead())[-1].out_features == 128


def test_moco_v3_head_has_bn_in_all_layers() -> None:
    head = MoCoProjectionHead(8, 16, 4, num_layers=3, batch_norm=True)
    assert structure(head) == [L, BN, R, L, BN, R, L, BN]


def test_moco_v3_heads_have_bn_in_all_layers_and_no_affine_output_bn() -> None:
    # "In MoCo v3, all layers in both MLPs have BN"; the output BN without affine parameters.
    projection = MoCoV3ProjectionHead(8, 16, 4)
    assert structure(projection) == [L, BN, R, L, BN, R, L, BN]
    prediction = MoCoV3PredictionHead(4, 16, 4)
    assert structure(prediction) == [L, BN, R, L, BN]
    for head in (projection, prediction):
        assert all(m.bias is None for m in linears(head))
        assert not head.layers[-1].affine
        assert head.layers[1].affine
    assert structure(MoCoV3ProjectionHead(8, 16, 4, num_layers=2)) == [L, BN, R, L, BN]
    assert [m.out_features for m in linears(MoCoV3ProjectionHead())] == [4096, 4096, 256]
    assert [m.out_features for m in linears(MoCoV3PredictionHead())] == [4096, 256]


def test_mmcr_head_counts_hidden_layers_and_drops_biases_by_default() -> None:
    head = MMCRProjectionHead()
    assert [(m.in_features, m.out_features) for m in linears(head)] == [
        (2048, 8192),
        (8192, 8192),
        (8192, 512),
    ]
    assert all(m.bias is None for m in linears(head))
    with_bias = MMCRProjectionHead(8, 16, 4, use_bias=True)
    assert [m.bias is not None for m in linears(with_bias)] == [False, False, True]
    with pytest.raises(ValueError, match="hidden layers"):
        MMCRProjectionHead(8, 16, 4, num_layers=0)


def test_num_layers_below_two_is_rejected() -> None:
    with pytest.raises(ValueError, match="num_layers"):
        SimCLRProjectionHead(8, 8, 4, num_layers=1)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (BYOLProjectionHead(8, 16, 4), [L, BN, R, L]),
        (BYOLPredictionHead(4, 16, 4), [L, BN, R, L]),
        (SimSiamProjectionHead(8, 16, 4), [L, BN, R, L, BN, R, L, BN]),
        (SimSiamPredictionHead(4, 16, 4), [L, BN, R, L]),
        (BarlowTwinsProjectionHead(8, 16, 4), [L, BN, R, L, BN, R, L]),
        (NNCLRProjectionHead(8, 16, 4), [L, BN, R, L, BN, R, L, BN]),
        (NNCLRPredictionHead(4, 16, 4), [L, BN, R, L]),
        (SwaVProjectionHead(8, 16, 4), [L, BN, R, L]),
        (SMoGProjectionHead(8, 16, 4), [L, BN, R, L, BN]),
        (SMoGPredictionHead(4, 16, 4), [L, BN, R, L]),
        (MSNProjectionHead(8, 16, 4), [L, BN, G, L, BN, G, L]),
        (DenseCLProjectionHead(8, 16, 4), [L, R, L]),
        (VICRegProjectionHead(8, 16, 4), [L, BN, R, L, BN, R, L]),
        (VICRegProjectionHead(8, 16, 4, num_layers=2), [L, BN, R, L]),
        (TiCoProjectionHead(8, 16, 4), [L, BN, R, L]),
        (MMCRProjectionHead(8, 16, 4), [L, BN, R, L, BN, R, L]),
        (MMCRProjectionHead(8, 16, 4, num_layers=1, batch_norm=False), [L, R, L]),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "",
)
def test_other_heads_structure(head: ProjectionHead, expected: list[type[nn.Module]]) -> None:
    assert structure(head) == expected
    assert head(torch.randn(3, linears(head)[0].in_features)).shape == (3, 4)


def test_simsiam_output_bn_has_no_affine() -> None:
    last_bn = SimSiamProjectionHead(8, 16, 4).layers[-1]
    assert isinstance(last_bn, nn.BatchNorm1d)
    assert not last_bn.affine


@pytest.mark.parametrize("name", modules.__all__)
def test_every_method_head_quotes_its_paper(name: str) -> None:
    cls = getattr(modules, name)
    assert cls.__doc__
    if name != "ProjectionHead":
        assert "arxiv.org" in cls.__doc__


# --- DINO -------------------------------------------------------------------------------


def test_dino_head_structure_and_shape() -> None:
    head = DINOProjectionHead(8, 16, 6, 32)
    assert structure(head) == [L, G, L, G, L]
    assert [(m.in_features, m.out_features) for m in linears(head)] == [(8, 16), (16, 16), (16, 6)]
    assert head(torch.randn(3, 8)).shape == (3, 32)


def test_dino_head_batch_norm_layers_are_distinct() -> None:
    head = DINOProjectionHead(8, 16, 6, 32, batch_norm=True)
    assert structure(head) == [L, BN, G, L, BN, G, L]
    bns = [m for m in head.layers if isinstance(m, nn.BatchNorm1d)]
    assert bns[0] is not bns[1]


def test_dino_head_forward_matches_formula() -> None:
    # z = normalize(mlp(x)); out = z @ (g * v / ||v||)^T with g = 1 at initialisation.
    torch.manual_seed(0)
    head = DINOProjectionHead(8, 16, 6, 32)
    x = torch.randn(5, 8)
    lin = linears(head)
    h = lin[2](F.gelu(lin[1](F.gelu(lin[0](x)))))
    z = h / h.norm(dim=1, keepdim=True)
    v = head.last_layer.parametrizations.weight.original1
    w = v / v.norm(dim=1, keepdim=True)
    torch.testing.assert_close(head(x), z @ w.T)
    torch.testing.assert_close(head.last_layer.weight.norm(dim=1), torch.ones(32))


def test_dino_head_mlp_init_is_small_truncated_normal() -> None:
    torch.manual_seed(0)
    head = DINOProjectionHead(64, 256, 64, 16)
    weight = linears(head)[1].weight
    assert 0.015 < weight.std().item() < 0.025
    assert all(m.bias is not None and torch.all(m.bias == 0) for m in linears(head))


@pytest.mark.parametrize("norm_last_layer", [True, False])
def test_dino_head_norm_last_layer_freezes_magnitude(norm_last_layer: bool) -> None:
    head = DINOProjectionHead(8, 16, 6, 32, norm_last_layer=norm_last_layer)
    magnitude = head.last_layer.parametrizations.weight.original0
    assert magnitude.requires_grad is not norm_last_layer
    assert torch.all(magnitude == 1)


def test_dino_head_cancel_last_layer_gradients() -> None:
    head = DINOProjectionHead(8, 16, 6, 32, freeze_last_layer=1, norm_last_layer=False)
    last_params = list(head.last_layer.parameters())

    head(torch.randn(4, 8)).sum().backward()
    head.cancel_last_layer_gradients(current_epoch=0)
    assert all(p.grad is None for p in last_params)
    assert all(p.grad is not None for p in head.layers.parameters())

    head(torch.randn(4, 8)).sum().backward()
    head.cancel_last_layer_gradients(current_epoch=1)
    assert all(p.grad is not None for p in last_params)


def test_dino_head_default_never_freezes() -> None:
    head = DINOProjectionHead(8, 16, 6, 32)
    head(torch.randn(4, 8)).sum().backward()
    head.cancel_last_layer_gradients(current_epoch=0)
    assert head.last_layer.parametrizations.weight.original1.grad is not None


# --- DINOv2 -----------------------------------------------------------------------------


def test_dinov2_head_is_dino_head_with_a_trained_magnitude() -> None:
    from selfsup.models.modules import DINOv2ProjectionHead

    torch.manual_seed(0)
    head = DINOv2ProjectionHead(8, 16, 6, 32)
    assert structure(head) == [L, G, L, G, L]
    magnitude = head.last_layer.parametrizations.weight.original0
    assert magnitude.requires_grad
    with torch.no_grad():
        magnitude.mul_(2.0)
    # out = normalize(mlp(x)) @ (g · v / ||v||)^T, here with g = 2.
    x = torch.randn(5, 8)
    lin = linears(head)
    h = lin[2](F.gelu(lin[1](F.gelu(lin[0](x)))))
    z = h / h.norm(dim=1, keepdim=True)
    v = head.last_layer.parametrizations.weight.original1
    torch.testing.assert_close(head(x), 2.0 * z @ (v / v.norm(dim=1, keepdim=True)).T)
    head(x).sum().backward()
    assert magnitude.grad is not None
    assert magnitude.grad.abs().sum() > 0


def test_dinov2_head_zero_input_stays_finite() -> None:
    from selfsup.models.modules import DINOv2ProjectionHead

    head = DINOv2ProjectionHead(8, 16, 6, 32)
    for module in head.layers:
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.weight)
    assert torch.isfinite(head(torch.zeros(2, 8))).all()


def test_dinov2_head_floors_the_bottleneck_norm_at_1e6() -> None:
    from selfsup.models.modules import DINOv2ProjectionHead

    head = DINOv2ProjectionHead(6, 16, 6, 32)
    head.layers = nn.Sequential()  # the bottleneck is the input itself
    tiny = 1e-8 * F.normalize(torch.randn(3, 6), dim=1)  # norms below the 1e-6 floor
    torch.testing.assert_close(head(tiny), head.last_layer(tiny / 1e-6))
    # DINO's head keeps torch's floor: the same vectors are scaled to unit norm.
    dino = DINOProjectionHead(6, 16, 6, 32, batch_norm=False)
    dino.layers = nn.Sequential()
    torch.testing.assert_close(dino(tiny), dino.last_layer(tiny / 1e-8))


# --- Distillation -----------------------------------------------------------------------


def test_distillation_head_maps_the_student_to_the_teachers_size() -> None:
    linear = DistillationProjectionHead(8, 24)
    assert structure(linear) == [L]
    assert linear(torch.randn(3, 8)).shape == (3, 24)
    hidden = DistillationProjectionHead(8, 24, hidden_dim=16)
    assert structure(hidden) == [L, BN, R, L]
    assert [(m.in_features, m.out_features) for m in linears(hidden)] == [(8, 16), (16, 24)]
    assert hidden(torch.randn(3, 8)).shape == (3, 24)
