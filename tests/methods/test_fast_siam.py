"""FastSiam: each view's prediction against the stop-gradient mean of the other views."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from selfsup.methods import TrainProgress, get_method
from selfsup.methods.fast_siam import FastSiamModel
from selfsup.methods.simsiam import SimSiamModel


def _model(cls: type[SimSiamModel] = FastSiamModel) -> SimSiamModel:
    torch.manual_seed(0)
    # No BatchNorm in the backbone; the heads' BatchNorm sees one view at a time either way.
    backbone = nn.Sequential(nn.Flatten(1), nn.Linear(3 * 8 * 8, 12))
    return cls(backbone, 12, 8)


def _views(count: int, n: int = 5) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(n, 3, 8, 8, generator=g) for _ in range(count)]


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)


def test_loss_matches_a_loop_over_views_and_images() -> None:
    # L = 1/(K+1) Σ_i 1/B Σ_b -cos(p_i[b], 1/K Σ_{j≠i} z_j[b]).
    model = _model()
    views = _views(4)
    loss = model.training_loss(views, TrainProgress())
    with torch.no_grad():
        projections = [model.projection_head(model.backbone(v)) for v in views]
        zs = [z.tolist() for z in projections]
        ps = [model.prediction_head(z).tolist() for z in projections]
    total = 0.0
    for i in range(4):
        for b in range(5):
            others = [zs[j][b] for j in range(4) if j != i]
            target = [sum(col) / 3 for col in zip(*others, strict=True)]
            total += -_cosine(ps[i][b], target)
    assert loss.item() == pytest.approx(total / (4 * 5), rel=1e-5, abs=1e-6)


def test_two_views_are_simsiam() -> None:
    views = _views(2)
    fast = _model().training_loss(views, TrainProgress())
    simsiam = _model(SimSiamModel).training_loss(views, TrainProgress())
    torch.testing.assert_close(fast, simsiam)


def test_targets_carry_no_gradient() -> None:
    # The same loss with the targets detached by hand gives the same gradients.
    model = _model()
    views = _views(3)
    model.training_loss(views, TrainProgress()).backward()
    grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    zs = [model.projection_head(model.backbone(v)) for v in views]
    ps = [model.prediction_head(z) for z in zs]
    cos = nn.functional.cosine_similarity
    loss = (
        sum(
            -cos(ps[i], sum(zs[j] for j in range(3) if j != i).detach() / 2).mean()
            for i in range(3)
        )
        / 3
    )
    loss.backward()
    for g, p in zip(grads, [p for p in model.parameters() if p.grad is not None], strict=True):
        torch.testing.assert_close(g, p.grad)


def test_transform_makes_four_views() -> None:
    from PIL import Image

    views = get_method("fastsiam").build_transform(16)(Image.new("RGB", (20, 20)))
    assert len(views) == 4
