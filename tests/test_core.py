"""The three-line interface and the checkpoint helpers behind selfsup train/embed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from selfsup.config import ModelConfig
from selfsup.core import (
    build_model,
    build_train_loader,
    embed_images,
    model_from_checkpoint,
    read_checkpoint,
    resolve_config,
    train_embedding_model,
)
from selfsup.errors import ConfigError, DataError

TINY = {
    "model": {"name": "resnet-9", "width": 0.125, "num_ftrs": 16, "out_dim": 8},
    "collate": {"input_size": 32},
    "loader": {"num_workers": 0, "batch_size": 4},
}


def test_resolve_config_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="did you mean 'trainer'"):
        resolve_config(trainr={"max_epochs": 1})


def test_method_arguments_reach_the_model_train_builds() -> None:
    # train_embedding_model(criterion={...}) and criterion.<arg>=... resolve to this config;
    # train builds its model from method_criterion exactly so.
    from selfsup.core import method_criterion

    cfg = resolve_config(method="barlowtwins", criterion={"lambda_param": 0.02}, **TINY)
    assert method_criterion(cfg) == {"lambda_param": 0.02}
    model = build_model(cfg.model, cfg.method, method_criterion(cfg))
    assert model.criterion.lambda_param == 0.02
    # Unset arguments keep the builder's defaults (the declared ones).
    assert method_criterion(resolve_config(method="barlowtwins")) == {}


def test_build_model_embeds_to_num_ftrs() -> None:
    model = build_model(ModelConfig(name="resnet-9", width=0.125, num_ftrs=16, out_dim=8))
    x = torch.randn(2, 3, 32, 32)
    assert tuple(model.backbone(x).shape) == (2, 16)
    assert tuple(model(x).shape) == (2, 8)


def test_train_loader_shrinks_batch_and_rejects_tiny_sets(
    make_image_folder: Callable[..., Path],
) -> None:
    cfg = resolve_config(**TINY)
    root = make_image_folder(n_classes=1, n_per_class=3)
    with pytest.warns(UserWarning, match="larger than the 3 samples"):
        loader = build_train_loader(
            str(root), cfg.loader.model_copy(update={"batch_size": 8}), cfg.collate
        )
    assert loader.batch_size == 3
    single = make_image_folder(n_classes=1, n_per_class=1)
    with (
        pytest.warns(UserWarning, match="larger than"),
        pytest.raises(DataError, match="at least 2 samples"),
    ):
        build_train_loader(str(single), cfg.loader, cfg.collate)


def test_read_checkpoint_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.ckpt"):
        read_checkpoint(tmp_path / "missing.ckpt")
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match=r"garbage\.ckpt"):
        read_checkpoint(garbage)


def test_checkpoint_that_does_not_fit_the_model(tmp_path: Path) -> None:
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"model.weight": torch.zeros(3)}}, path)
    with pytest.raises(ConfigError, match="does not fit the configured model"):
        model_from_checkpoint(path, ModelConfig(name="resnet-9", width=0.125))


@pytest.mark.slow
def test_train_then_embed_rebuilds_the_model_from_the_checkpoint(
    make_image_folder: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=4)
    checkpoint = train_embedding_model(
        input_dir=str(root), output_dir=str(tmp_path / "out"), trainer={"max_epochs": 1}, **TINY
    )
    assert Path(checkpoint).parent == tmp_path / "out"
    _, metadata = read_checkpoint(checkpoint)
    assert metadata["model"]["num_ftrs"] == 16
    # A configured model that differs from the checkpoint's: the checkpoint's own wins.
    with pytest.warns(UserWarning, match="was trained with"):
        emb, labels, names = embed_images(
            input_dir=str(root),
            checkpoint=checkpoint,
            model={"name": "resnet-34"},
            loader={"num_workers": 0},
            collate={"input_size": 32},
        )
    assert emb.shape == (8, 16)
    assert labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert names[0] == "class_0/img_0_0.png"
    again, _, _ = embed_images(input_dir=str(root), checkpoint=checkpoint, **TINY)
    np.testing.assert_allclose(again, emb, rtol=1e-5, atol=1e-6)


def test_training_checks_the_folder_once(
    make_image_folder: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recipe's probe and timed step and the training loader share one check of the
    folder: every file is decoded once, and an unreadable one is reported once."""
    import warnings

    from selfsup.data import SkippedFilesWarning
    from selfsup.data._folder import FolderSource

    root = make_image_folder(n_classes=2, n_per_class=4, size=(28, 28))
    (root / "class_0" / "broken.png").write_bytes(b"not a png")
    built: list[str] = []
    probe_all = FolderSource._probe_all

    def counted(self: FolderSource, *args: object, **kwargs: object) -> object:
        built.append(self.root)
        return probe_all(self, *args, **kwargs)

    monkeypatch.setattr(FolderSource, "_probe_all", counted)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        checkpoint = train_embedding_model(
            input_dir=str(root),
            output_dir=str(tmp_path / "out"),
            trainer={"max_epochs": 1},
            **{**TINY, "loader": {"num_workers": 0, "batch_size": 4}},
        )
    assert Path(checkpoint).is_file()
    assert built == [str(root)]
    skipped = [w for w in caught if issubclass(w.category, SkippedFilesWarning)]
    assert len(skipped) == 1
    assert "broken.png" in str(skipped[0].message)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["byol", "dino"])
def test_train_and_embed_with_a_registered_method(
    method: str, make_image_folder: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=4)
    checkpoint = train_embedding_model(
        input_dir=str(root),
        output_dir=str(tmp_path / "out"),
        method=method,
        trainer={"max_epochs": 1},
        **TINY,
    )
    _, metadata = read_checkpoint(checkpoint)
    assert metadata["method"] == method
    model, _ = model_from_checkpoint(checkpoint, ModelConfig())
    assert type(model).__name__ == {"byol": "BYOLModel", "dino": "DINOModel"}[method]
    emb, _, names = embed_images(input_dir=str(root), checkpoint=checkpoint, **TINY)
    assert emb.shape == (8, 16)
    assert np.isfinite(emb).all()
    assert len(names) == 8


def test_method_is_checked_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"unknown method 'vicrg'; did you mean 'vicreg'\?"):
        resolve_config(method="vicrg")


def test_checkpoints_without_a_method_are_simclr(tmp_path: Path) -> None:
    # Checkpoints written before methods were recorded hold a SimCLR model's state dict.
    from selfsup.models import SimCLR

    tiny = ModelConfig(name="resnet-9", width=0.125, num_ftrs=16, out_dim=8)
    old = build_model(tiny)
    legacy = SimCLR(old.backbone, num_ftrs=16, out_dim=8)
    path = tmp_path / "legacy.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in legacy.state_dict().items()}}, path)
    model, _ = model_from_checkpoint(
        path, ModelConfig(name="resnet-9", width=0.125, num_ftrs=16, out_dim=8)
    )
    assert type(model).__name__ == "SimCLRModel"
    for key, value in legacy.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"collate": {"cj_prob": 0.3}},
            r"collate.cj_prob sets SimCLR's augmentations; method=byol",
        ),
        # A criterion key the method does not take is refused when the config resolves:
        # tests/config/test_lightly_config.py.
    ],
)
def test_settings_a_method_does_not_use_are_refused(
    settings: dict[str, dict[str, float]], message: str, make_image_folder: Callable[..., Path]
) -> None:
    root = make_image_folder(n_classes=1, n_per_class=4)
    cfg = resolve_config(input_dir=str(root), method="byol", **{**TINY, **settings})
    from selfsup.core import train

    with pytest.raises(ConfigError, match=message):
        train(cfg)


def test_optimizer_defaults_come_from_the_method_unless_changed(
    make_image_folder: Callable[..., Path],
) -> None:
    from selfsup.core import _embedding_model

    root = make_image_folder(n_classes=1, n_per_class=4)
    for overrides, expected in (({}, 1e-3), ({"optimizer": {"lr": 0.5}}, 0.5)):
        cfg = resolve_config(input_dir=str(root), method="dino", **{**TINY, **overrides})
        model = build_model(cfg.model, "dino")
        loader = build_train_loader(str(root), cfg.loader, cfg.collate, method="dino")
        optimizer = _embedding_model(model, cfg, loader).optimizer
        assert isinstance(optimizer, torch.optim.AdamW)
        assert optimizer.param_groups[0]["lr"] == expected


def test_recipe_keeps_the_keys_the_user_set_and_prints_the_estimate(
    make_image_folder: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from selfsup.config.recipe import SIMCLR_TEMPERATURE, SMALL_IMAGE_MIN_SCALE, sgd_lr
    from selfsup.core import with_recipe

    root = make_image_folder(n_classes=2, n_per_class=8, size=(28, 28))
    cfg = resolve_config(
        input_dir=str(root),
        model={"name": "resnet-9", "width": 0.125, "num_ftrs": 16, "out_dim": 8},
        loader={"num_workers": 0, "batch_size": 4},
        trainer={"max_epochs": 2},
    )
    out = with_recipe(cfg)
    # Set by the user: kept (and the user's epochs need no time budget).
    assert (out.model.name, out.model.width, out.loader.batch_size) == ("resnet-9", 0.125, 4)
    assert out.trainer.max_epochs == 2
    assert out.trainer.max_time is None
    # Left at the defaults: chosen for 16 images of 28 px.
    assert out.collate.input_size == 32
    assert out.optimizer.lr == pytest.approx(sgd_lr(4))
    assert out.criterion.temperature == SIMCLR_TEMPERATURE
    assert out.collate.min_scale == SMALL_IMAGE_MIN_SCALE  # SimCLR's crops of small images
    printed = capsys.readouterr().err
    assert "collate.input_size=32" in printed
    assert f"collate.min_scale={SMALL_IMAGE_MIN_SCALE}" in printed
    assert "trainer.max_epochs=2  (set by you)" in printed
    assert "estimated training time:" in printed
    # The config given is not changed.
    assert cfg.collate.input_size == 64


def test_recipe_keeps_a_key_the_user_gave_with_its_default_value(
    make_image_folder: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """``model.name=resnet-18`` equals lightly's default but was typed: it is kept (the
    recipe chose resnet-9 at width 0.25 on a CPU for it before)."""
    from selfsup.config import LightlyConfig
    from selfsup.config._base import parse_overrides, validate
    from selfsup.core import with_recipe

    root = make_image_folder(n_classes=2, n_per_class=8, size=(28, 28))
    overrides = ["model.name=resnet-18", "loader.batch_size=16", "trainer.max_epochs=1"]
    given = parse_overrides(LightlyConfig, overrides)
    assert given["loader"]["batch_size"] == LightlyConfig().loader.batch_size  # a default too
    cfg = validate(LightlyConfig, {**given, "input_dir": str(root)})
    cfg.loader.num_workers = 0
    out = with_recipe(cfg)
    assert (out.model.name, out.model.width) == ("resnet-18", 1.0)
    assert out.loader.batch_size == 16
    printed = capsys.readouterr().err
    assert "model.name=resnet-18  (set by you)" in printed
    assert "loader.batch_size=16  (set by you)" in printed
    # Not given: the recipe chooses the model.
    cfg = validate(LightlyConfig, {"input_dir": str(root), "trainer": {"max_epochs": 1}})
    cfg.loader.num_workers = 0
    assert with_recipe(cfg).model.name == "resnet-9"


def test_recipe_chooses_for_a_scheduled_run_what_the_user_left_out(
    make_image_folder: Callable[..., Path],
) -> None:
    """The server stores lightly_config resolved (every key written out); the worker
    validates only the changed keys again (changed_lightly_config), so the recipe still
    chooses the keys left at their defaults and keeps the changed ones."""
    from selfsup.config import LightlyConfig
    from selfsup.config._base import validate
    from selfsup.config.run_configs import changed_lightly_config, validate_run_configs
    from selfsup.core import with_recipe

    root = make_image_folder(n_classes=2, n_per_class=8, size=(28, 28))
    stored = validate_run_configs(
        {"stopping_condition": {"n_samples": 2}},
        {"loader": {"batch_size": 4}, "trainer": {"max_epochs": 1}},
        None,
        check_selection=False,
    ).lightly_config
    assert stored["model"]["name"] == "resnet-18"  # resolved: the default written out
    given = changed_lightly_config(stored)
    assert given["loader"] == {"batch_size": 4}
    assert "model" not in given
    cfg = validate(LightlyConfig, {**given, "input_dir": str(root)})
    cfg.loader.num_workers = 0
    out = with_recipe(cfg)
    assert (out.model.name, out.loader.batch_size) == ("resnet-9", 4)
    # A stored config that does not validate is passed on whole, for the worker to report.
    assert changed_lightly_config({"loader": {"batch_size": "many"}}) == {
        "loader": {"batch_size": "many"}
    }


def test_recipe_is_not_timed_when_several_processes_train(
    make_image_folder: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import selfsup.core
    from selfsup.core import with_recipe

    def timed(*args: object, **kwargs: object) -> float:
        raise AssertionError("a distributed run must not time a step (processes would differ)")

    monkeypatch.setattr(selfsup.core, "_seconds_per_sample", timed)
    root = make_image_folder(n_classes=2, n_per_class=2, size=(28, 28))
    # trainer.gpus=2 without trainer.devices is two processes too (Lightning's devices=2).
    for trainer in ({"gpus": 2}, {"devices": 2}, {"num_nodes": 2}, {"strategy": "ddp_spawn"}):
        cfg = resolve_config(input_dir=str(root), loader={"num_workers": 0}, trainer=trainer)
        assert with_recipe(cfg).loader.batch_size >= 1


@pytest.mark.parametrize(
    ("precision", "expected"), [("bf16-mixed", torch.bfloat16), ("32", None), ("auto", None)]
)
def test_the_recipe_times_its_step_in_the_training_arithmetic(
    make_image_folder: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    precision: str,
    expected: torch.dtype | None,
) -> None:
    """Under bf16 a step costs about half: a float32 timing would plan half the epochs that
    fit the budget. ``auto`` is float32 here (the CPU's bf16 answer is patched to no)."""
    import selfsup.core
    from selfsup.embedding import _trainer

    monkeypatch.setattr(_trainer, "cpu_has_native_bf16", lambda: False)
    seen: list[torch.dtype | None] = []
    build = selfsup.core.build_model

    def recording(*args: Any, **kwargs: Any) -> Any:
        model = build(*args, **kwargs)
        loss = model.training_loss

        def training_loss(*a: Any, **k: Any) -> Any:
            on = torch.is_autocast_enabled("cpu")
            seen.append(torch.get_autocast_dtype("cpu") if on else None)
            return loss(*a, **k)

        model.training_loss = training_loss
        return model

    monkeypatch.setattr(selfsup.core, "build_model", recording)
    root = make_image_folder(n_classes=2, n_per_class=2, size=(28, 28))
    cfg = resolve_config(
        input_dir=str(root),
        loader={"num_workers": 0, "batch_size": 2},
        model={"name": "resnet-9", "width": 0.125},
        collate={"input_size": 16},
        trainer={"gpus": 0, "precision": precision},
    )
    assert selfsup.core._seconds_per_sample(cfg, None, None, "cpu") is not None
    assert seen == [expected, expected]  # the warm-up and the timed batch


def test_recipe_lightly_and_a_checkpoint_keep_the_model(
    make_image_folder: Callable[..., Path], tmp_path: Path
) -> None:
    from selfsup.core import with_recipe

    root = make_image_folder(n_classes=2, n_per_class=2, size=(28, 28))
    lightly = resolve_config(input_dir=str(root), recipe="lightly")
    assert lightly.recipe == "lightly"
    # Fine-tuning a checkpoint: its weights fit only its own model, so model.* stay.
    fine_tune = resolve_config(
        input_dir=str(root), checkpoint=str(tmp_path / "x.ckpt"), loader={"num_workers": 0}
    )
    out = with_recipe(fine_tune)
    assert (out.model.name, out.model.width) == ("resnet-18", 1.0)
    assert out.loader.batch_size == 4  # chosen: a quarter of 4 samples rounds up to 8, capped at 4


@pytest.mark.slow
def test_max_time_stops_training_and_embedding_uses_the_trained_input_size(
    make_image_folder: Callable[..., Path], tmp_path: Path
) -> None:
    from selfsup.core import embed_input_size

    root = make_image_folder(n_classes=2, n_per_class=4, size=(28, 28))
    model = {"name": "resnet-9", "width": 0.125, "num_ftrs": 16, "out_dim": 8}
    checkpoint = train_embedding_model(
        input_dir=str(root),
        output_dir=str(tmp_path / "out"),
        model=model,
        loader={"num_workers": 0, "batch_size": 4},
        trainer={"max_epochs": 10_000, "max_time": "00:00:00:01"},
    )
    epochs = [
        int(p.stem.rsplit("_", 1)[1]) for p in (tmp_path / "out").glob("selfsup_epoch_*.ckpt")
    ]
    assert max(epochs) < 9_999  # the budget, not the epochs, ended training
    # The recipe chose 32 px for 28 px images; embedding uses it unless the user sets one.
    assert embed_input_size(resolve_config(), checkpoint) == 32
    assert embed_input_size(resolve_config(collate={"input_size": 48}), checkpoint) == 48
    emb, _, _ = embed_images(input_dir=str(root), checkpoint=checkpoint, loader={"num_workers": 0})
    assert emb.shape == (8, 16)


def test_model_vit_pool_picks_a_vits_embedding() -> None:
    from selfsup.core import build_backbone
    from selfsup.models.modules import MaskedVisionTransformerTorchvision

    torch.manual_seed(0)
    cls = build_backbone(ModelConfig(name="vit-tiny-p4"))
    mean = build_backbone(ModelConfig(name="vit-tiny-p4", vit_pool="mean"))
    mean.load_state_dict(cls.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        vit = cls.features
        assert isinstance(vit, MaskedVisionTransformerTorchvision)
        tokens = vit.encode(x)
        torch.testing.assert_close(cls(x), tokens[:, 0])
        torch.testing.assert_close(mean(x), tokens[:, 1:].mean(1))
    with pytest.raises(ConfigError, match=r"model.vit_pool='mean' applies to the ViT backbones"):
        build_backbone(ModelConfig(name="resnet-9", vit_pool="mean"))


def test_a_torchvision_vit_teacher_gets_the_only_size_it_accepts() -> None:
    from torchvision.models import VisionTransformer

    from selfsup.config.lightly_config import TeacherConfig
    from selfsup.core import _teacher_input_size
    from selfsup.models.backbones import Backbone

    vit = VisionTransformer(
        image_size=16, patch_size=4, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16
    )
    # torchvision's ViT asserts its image_size; the teacher's views are resized to it.
    assert _teacher_input_size(TeacherConfig(), Backbone(vit, 8)) == 16
    assert _teacher_input_size(TeacherConfig(input_size=32), Backbone(vit, 8)) == 32


@pytest.mark.slow
def test_training_fills_the_image_cache_and_a_second_run_reads_only_the_cache(
    make_image_folder: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from _decode_counter import count_decodes

    decoded = count_decodes(monkeypatch)
    # 10 images in batches of 4 with drop_last: each epoch skips 2 of them.
    root = make_image_folder(n_classes=2, n_per_class=5, size=(16, 16))
    cache_dir = tmp_path / "cache"
    loader = {"num_workers": 0, "batch_size": 4, "cache_dir": str(cache_dir)}

    for run in ("first", "second"):
        train_embedding_model(
            input_dir=str(root),
            output_dir=str(tmp_path / run),
            recipe="lightly",
            trainer={"max_epochs": 2},
            model=TINY["model"],
            collate=TINY["collate"],
            loader=loader,
        )
        # Sources at twice the largest view (32 px): one complete cache, no build folder.
        assert [p.name.endswith("-s64") for p in cache_dir.iterdir()] == [True]
        # Every file once in the first run (the epoch, then the rows it skipped), none later.
        assert len(decoded) == (10 if run == "first" else 0)
        assert len(set(decoded)) == len(decoded)
        decoded.clear()
