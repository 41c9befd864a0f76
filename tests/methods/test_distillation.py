"""The distillation method: the student learns, the teacher never moves, checkpoints hold
the student only and rebuild without the teacher."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from selfsup.errors import ConfigError
from selfsup.methods import TrainProgress, get_method
from selfsup.methods.distillation import DistillationModel

NUM_FTRS, TEACHER_DIM = 8, 12


def _student() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(8, NUM_FTRS),
    )


def _teacher() -> nn.Module:
    """A random teacher with batch norm, whose running statistics must not move either."""
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, stride=2, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(1),
        nn.Linear(24, TEACHER_DIM),
    )


def _views(n: int = 8, seed: int = 0) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    images = nn.functional.interpolate(coarse, size=(16, 16), mode="bilinear")
    return [images, images.flip(-1)]


def _model(**kwargs: object) -> DistillationModel:
    torch.manual_seed(0)
    model = get_method("distillation").build_model(
        _student(), NUM_FTRS, 4, teacher=_teacher(), **kwargs
    )
    assert isinstance(model, DistillationModel)
    return model


def _train(model: DistillationModel, steps: int) -> list[float]:
    optimizer = get_method("distillation").optimizer.build(model, lr=1e-2)
    views = _views()
    model.train()
    losses = []
    for step in range(steps):
        loss = model.training_loss(views, TrainProgress(step=step, total_steps=steps))
        optimizer.zero_grad()
        torch.autograd.backward(loss)
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.parametrize("queue", [0, 32])
def test_student_loss_falls_and_teacher_never_changes(queue: int) -> None:
    model = _model(memory_bank_size=queue)
    assert model.teacher is not None
    teacher_before = copy.deepcopy(model.teacher.state_dict())
    losses = _train(model, 15)
    # With a queue the keys grow until it is full (16 teacher embeddings a step: 2 views of
    # 8 images), which raises the loss; compare from the first step that reads a full queue.
    # The soft-assignment loss is a cross-entropy whose floor is the teacher's entropy (near
    # log(keys) for this random teacher, whose embeddings are alike), so it falls by less.
    first_full = -(-queue // 16)
    factor = 0.7 if queue == 0 else 0.999
    assert losses[-1] < factor * losses[first_full], losses
    # Parameters and batch-norm running statistics alike.
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key
    assert not model.teacher.training
    assert all(not p.requires_grad for p in model.teacher.parameters())


def test_the_teacher_is_not_optimised_nor_saved() -> None:
    model = _model()
    optimizer = get_method("distillation").optimizer.build(model)
    optimised = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert model.teacher is not None
    assert not any(id(p) in optimised for p in model.teacher.parameters())
    state = model.state_dict()
    assert state
    assert not any(key.startswith("teacher.") for key in state)
    assert any(key.startswith("backbone.") for key in state)
    assert any(key.startswith("projection_head.") for key in state)


def test_a_checkpoint_rebuilds_without_the_teacher_and_embeds_the_same() -> None:
    model = _model(hidden_dim=16)
    _train(model, 2)
    model.eval()
    rebuilt = get_method("distillation").build_model(
        _student(), NUM_FTRS, 4, **model.rebuild_kwargs()
    )
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    rebuilt.eval()
    x = _views()[0]
    torch.testing.assert_close(rebuilt.backbone(x), model.backbone(x))
    with pytest.raises(ConfigError, match=r"rebuilt without its teacher.*teacher\.name"):
        rebuilt.training_loss(_views(), TrainProgress())
    # Loading the student into a model with a teacher keeps that teacher.
    other = _model()
    assert other.teacher is not None
    teacher_state = copy.deepcopy(other.teacher.state_dict())
    other.load_state_dict(_model().state_dict(), strict=True)
    for key, value in other.teacher.state_dict().items():
        assert torch.equal(value, teacher_state[key])


def test_a_wrong_student_checkpoint_is_still_a_mismatch() -> None:
    state = _model().state_dict()
    del state["projection_head.layers.0.weight"]
    with pytest.raises(RuntimeError, match=r"projection_head\.layers\.0\.weight"):
        _model().load_state_dict(state, strict=True)


def test_teacher_input_size_resizes_the_teachers_views() -> None:
    seen: list[tuple[int, ...]] = []

    class Recording(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = _teacher()

        def forward(self, x: Tensor) -> Tensor:
            seen.append(tuple(x.shape))
            out: Tensor = self.inner(x)
            return out

    model = get_method("distillation").build_model(
        _student(), NUM_FTRS, 4, teacher=Recording(), teacher_input_size=14
    )
    assert model.teacher_dim == TEACHER_DIM
    seen.clear()
    model.training_loss(_views(n=4), TrainProgress())
    assert seen == [(8, 3, 14, 14)]


def test_no_teacher_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"distillation needs a teacher.*teacher\.name"):
        get_method("distillation").build_model(_student(), NUM_FTRS, 4)
    with pytest.raises(ConfigError, match="teacher_input_size"):
        get_method("distillation").build_model(
            _student(), NUM_FTRS, 4, teacher=_teacher(), teacher_input_size=0
        )


@pytest.mark.slow
def test_cli_trains_a_student_from_a_teacher_file_and_embeds_with_it(
    make_image_folder: Callable[..., Path], tmp_path: Path
) -> None:
    from selfsup.cli.main import main
    from selfsup.core import read_checkpoint
    from selfsup.models.backbones import get_backbone

    root = make_image_folder(n_classes=2, n_per_class=4)
    torch.manual_seed(0)
    teacher_file = tmp_path / "teacher.pt"
    # The torchvision-style state dict a user saves (the model the backbone wraps).
    torch.save(get_backbone("resnet-9").features.state_dict(), teacher_file)
    saved = torch.load(teacher_file, weights_only=True)
    tiny = [
        "model.name=resnet-9",
        "model.width=0.125",
        "model.num_ftrs=16",
        "collate.input_size=32",
        "loader.num_workers=0",
        "loader.batch_size=4",
        "trainer.gpus=0",
    ]
    out = tmp_path / "out"
    main(
        [
            "train",
            f"input_dir={root}",
            f"output_dir={out}",
            "method=distillation",
            "teacher.name=resnet-9",
            f"teacher.weights={teacher_file}",
            "trainer.max_epochs=1",
            *tiny,
        ]
    )
    checkpoint = out / "last.ckpt"
    state, metadata = read_checkpoint(checkpoint)
    assert metadata["method"] == "distillation"
    assert metadata["method_kwargs"]["teacher_dim"] == get_backbone("resnet-9").num_features
    assert not any(key.startswith("teacher.") for key in state)
    # The teacher's file is read, never written.
    for key, value in torch.load(teacher_file, weights_only=True).items():
        assert torch.equal(value, saved[key]), key
    embeddings = tmp_path / "embeddings.csv"
    main(
        [
            "embed",
            f"input_dir={root}",
            f"checkpoint={checkpoint}",
            f"embeddings={embeddings}",
            *tiny,
        ]
    )
    rows = np.loadtxt(embeddings, delimiter=",", skiprows=1, usecols=range(1, 17))
    assert rows.shape == (8, 16)
    assert np.isfinite(rows).all()


def test_the_configured_teacher_is_frozen_and_sized(tmp_path: Path) -> None:
    from selfsup.config.lightly_config import TeacherConfig
    from selfsup.core import _teacher_input_size, build_teacher
    from selfsup.models.backbones import get_backbone

    torch.manual_seed(0)
    weights = tmp_path / "teacher.pt"
    source = get_backbone("resnet-9")
    torch.save(source.features.state_dict(), weights)
    teacher = build_teacher(TeacherConfig(name="resnet-9", weights=str(weights)))
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    x = torch.rand(2, 3, 32, 32)
    source.eval()
    torch.testing.assert_close(teacher(x), source(x))
    assert _teacher_input_size(TeacherConfig(), teacher) is None
    assert _teacher_input_size(TeacherConfig(input_size=48), teacher) == 48
    # A timm ViT takes only the size it was built for.
    vit = get_backbone("timm/vit_tiny_patch16_224")
    assert _teacher_input_size(TeacherConfig(), vit) == 224


def test_a_teacher_file_that_does_not_fit_is_an_error_naming_it(tmp_path: Path) -> None:
    from selfsup.config.lightly_config import TeacherConfig
    from selfsup.core import build_teacher

    bad = tmp_path / "bad.pt"
    torch.save({"not_a_layer.weight": torch.zeros(3)}, bad)
    with pytest.raises(ConfigError, match=r"bad\.pt"):
        build_teacher(TeacherConfig(name="resnet-9", weights=str(bad)))
