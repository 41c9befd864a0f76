"""MoCo v3's model: the symmetrised loss of Algorithm 1 from its query and key encoders."""

from __future__ import annotations

import torch
from torch import nn

from selfsup.loss.mocov3_loss import mocov3_contrastive
from selfsup.methods import TrainProgress, get_method
from selfsup.methods.mocov3 import MoCoV3Model


def _model(**kwargs: float) -> MoCoV3Model:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(1), nn.Linear(3 * 8 * 8, 12))
    return MoCoV3Model(backbone, num_ftrs=12, out_dim=4, **kwargs)


def _views(n: int = 6) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(n, 3, 8, 8, generator=g) for _ in range(2)]


def test_loss_is_ctr_q1_k2_plus_ctr_q2_k1() -> None:
    model = _model(temperature=0.3)
    views = _views()
    loss = model.training_loss(views, TrainProgress(step=0, total_steps=0))  # m = 0.99
    # The same forward pass again (BatchNorm in training mode: batch statistics).
    q1, q2 = model.query(views[0]), model.query(views[1])
    k1, k2 = model.key(views[0]), model.key(views[1])
    expected = mocov3_contrastive(q1, k2, 0.3) + mocov3_contrastive(q2, k1, 0.3)
    torch.testing.assert_close(loss, expected)
    assert not k1.requires_grad  # the keys come from the momentum encoder


def test_key_encoder_has_no_predictor_and_follows_by_moving_average() -> None:
    model = _model()
    assert not any(
        "prediction" in name for name, _ in model.named_parameters() if "momentum" in name
    )
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(1.0)
    before = [p.clone() for p in model.backbone_momentum.parameters()]
    model.training_loss(_views(), TrainProgress(step=0, total_steps=0))
    for old, new, online in zip(
        before, model.backbone_momentum.parameters(), model.backbone.parameters(), strict=True
    ):
        torch.testing.assert_close(new, 0.99 * old + 0.01 * online)


def test_temperature_is_the_one_criterion_key() -> None:
    method = get_method("mocov3")
    assert method.criterion_keys == ("temperature",)
    assert _model().criterion.temperature == 0.2
    assert _model(temperature=0.5).criterion.temperature == 0.5


def test_heads_keep_the_papers_width_ratio() -> None:
    model = _model()
    widths = [m.out_features for m in model.projection_head.layers if isinstance(m, nn.Linear)]
    assert widths == [64, 64, 4]
    widths = [m.out_features for m in model.prediction_head.layers if isinstance(m, nn.Linear)]
    assert widths == [64, 4]
