"""iBOT / DINOv2 models (selfsup.methods.ibot, used by selfsup.methods.dinov2): masked global
views for the student, unmasked for the teacher, heads shared or not, KoLeo, ViT required."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torchvision.models import VisionTransformer

from selfsup.errors import ConfigError
from selfsup.loss.koleo_loss import koleo
from selfsup.methods import TrainProgress
from selfsup.methods.ibot import METHOD, IBOTModel
from selfsup.models.backbones import Backbone

WIDTH = 16


def _vit_backbone() -> Backbone:
    vit = VisionTransformer(
        image_size=16, patch_size=4, num_layers=1, num_heads=2, hidden_dim=WIDTH, mlp_dim=32
    )
    vit.heads = nn.Identity()
    return Backbone(vit, WIDTH, name="tiny-vit")


def _views(seed: int = 0) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    # Two global views of 16 px (4x4 patches), two local views of 7 px (not whole patches).
    sizes = [16, 16, 7, 7]
    return [torch.randn(4, 3, s, s, generator=g) for s in sizes]


def _model(seed: int = 0, **kwargs: object) -> IBOTModel:
    torch.manual_seed(seed)
    return IBOTModel(_vit_backbone(), WIDTH, 4, **kwargs)  # type: ignore[arg-type]


def test_a_backbone_that_is_not_a_vit_is_refused_with_the_accepted_names() -> None:
    conv = Backbone(nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1)), 8, name="convy")
    with pytest.raises(ConfigError, match=r"'ibot' needs a Vision Transformer.*'convy'.*accepted"):
        METHOD.build_model(conv, 8, 4)


def test_student_masks_its_global_views_and_the_teacher_does_not() -> None:
    model = _model(mask_probability=1.0, min_mask_ratio=0.25, max_mask_ratio=0.5)
    masks: dict[str, list[Tensor | None]] = {"student": [], "teacher": []}
    for role, vit in (("student", model.student_vit), ("teacher", model.teacher_vit)):
        original = vit.encode

        def spy(x: Tensor, *, mask: Tensor | None = None, _o=original, _r=role) -> Tensor:  # type: ignore[no-untyped-def]
            masks[_r].append(mask)
            return _o(x, mask=mask)

        vit.encode = spy  # type: ignore[method-assign]
    loss = model.training_loss(_views(), TrainProgress())
    assert masks["teacher"] == [None]
    student_global, *student_local = masks["student"]
    assert student_global is not None
    assert student_global.shape == (8, 16)  # 2 global views of 4 images, 4x4 patches
    assert bool(student_global.any(dim=1).all())  # mask_probability=1: every view masked
    assert student_local == [None]  # both local views in one batch, unmasked
    loss.backward()
    assert model.student_vit.mask_token.grad is not None
    assert model.student_vit.mask_token.grad.abs().sum() > 0


def test_gradients_reach_the_student_only() -> None:
    model = _model()
    model.training_loss(_views(), TrainProgress()).backward()
    assert all(p.grad is not None for p in model.backbone.parameters() if p.requires_grad)
    frozen = [p for n, p in model.named_parameters() if "momentum" in n or "teacher" in n]
    assert frozen
    assert all(not p.requires_grad and p.grad is None for p in frozen)


def test_ibot_shares_its_head_and_dinov2_does_not() -> None:
    from selfsup.methods import dinov2

    torch.manual_seed(0)
    ibot = METHOD.build_model(_vit_backbone(), WIDTH, 4)
    dino2 = dinov2.METHOD.build_model(_vit_backbone(), WIDTH, 4)
    assert ibot.projection_head.dino_head is ibot.projection_head.ibot_head
    assert dino2.projection_head.dino_head is not dino2.projection_head.ibot_head
    assert (ibot.koleo_weight, dino2.koleo_weight) == (0.0, 0.1)


def test_koleo_adds_its_weight_times_the_koleo_of_each_global_view() -> None:
    views = _views(1)
    losses, pooled = [], []
    for weight in (0.0, 0.5):
        model = _model(seed=3, separate_heads=True, koleo_weight=weight)
        torch.manual_seed(7)  # the same block masks for both models
        losses.append(model.training_loss(views, TrainProgress()))
        with torch.no_grad():
            torch.manual_seed(7)
            student = model.student_vit
            global_views = torch.cat(views[:2])
            # The KoLeo term reads the student's pooled tokens of the *masked* global views;
            # recompute them with the mask the loss drew.
            from selfsup.models.utils import random_block_mask

            mask = random_block_mask(
                (8, 4, 4), batch_mask_ratio=0.5, min_image_mask_ratio=0.1, max_image_mask_ratio=0.5
            ).flatten(1)
            pooled.append(student.pool(student.encode(global_views, mask=mask)))
    expected = 0.5 * sum(koleo(c) for c in pooled[1].chunk(2))
    torch.testing.assert_close(losses[1] - losses[0], expected, rtol=1e-4, atol=1e-5)


def test_local_views_are_resized_to_whole_patches() -> None:
    model = _model()
    shapes: list[tuple[int, ...]] = []
    model.student_vit.vit.conv_proj.register_forward_hook(
        lambda _m, inputs, _o: shapes.append(tuple(inputs[0].shape))
    )
    model.training_loss(_views(), TrainProgress())
    # Both local views in one batch, 7 px -> 2 patches of 4 px.
    assert shapes[-1] == (8, 3, 8, 8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mask_probability": 1.5}, "mask_probability=1.5"),
        ({"min_mask_ratio": 0.6, "max_mask_ratio": 0.5}, "min_mask_ratio=0.6"),
        ({"koleo_weight": -1.0}, "koleo_weight must be >= 0"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _model(**kwargs)


@pytest.mark.parametrize("separate_heads", [False, True])
def test_every_trainable_parameter_gets_a_gradient(separate_heads: bool) -> None:
    # DDP (find_unused_parameters=False) fails on a trainable parameter without gradient.
    model = _model(separate_heads=separate_heads, koleo_weight=0.1, mask_probability=1.0)
    torch.autograd.backward(model.training_loss(_views(), TrainProgress()))
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []
