"""Pretrained backbones through every entry point (selfsup.core's model and embed functions):
``model.weights`` in each format gives exactly the embeddings of a direct forward pass of the
same backbone with the same weights, without a random projection on top."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from selfsup.cli.main import EXIT_USAGE, main
from selfsup.config import LightlyConfig, ModelConfig
from selfsup.core import (
    PretrainedModel,
    build_backbone,
    build_embed_loader,
    build_model,
    embed,
    embed_images,
    embedding_model,
    resolve_config,
)
from selfsup.errors import ConfigError
from selfsup.models.backbones import Backbone, get_backbone
from selfsup.models.zoo import add_entry
from selfsup.utils.io import load_embeddings

NAME = "torchvision/resnet18"
#: In float32: the reference is a float32 forward pass (``embedding.precision=auto`` is bf16 on
#: a CPU with bf16 instructions, whose features differ from it in the third digit).
COMMON: dict[str, Any] = {
    "collate": {"input_size": 32},
    "loader": {"num_workers": 0, "batch_size": 4},
    "trainer": {"gpus": 0},
    "embedding": {"precision": "32"},
}


def _weights(tmp_path: Path) -> dict[str, Path]:
    """One random ResNet-18 saved as a state dict, safetensors, a model folder and a
    selfsup-style checkpoint (the backbone inside a method model)."""
    torch.manual_seed(3)
    model = torchvision.models.resnet18()
    state = model.state_dict()
    folder = tmp_path / "weights"
    folder.mkdir()
    paths = {
        "state_dict": folder / "r18.pth",
        "safetensors": folder / "r18.safetensors",
        "model_folder": folder / "hub",
        "selfsup_checkpoint": folder / "run.ckpt",
    }
    torch.save(state, paths["state_dict"])
    save_file({k: v.contiguous() for k, v in state.items()}, str(paths["safetensors"]))
    paths["model_folder"].mkdir()
    save_file(
        {k: v.contiguous() for k, v in state.items()},
        str(paths["model_folder"] / "model.safetensors"),
    )
    (paths["model_folder"] / "config.json").write_text(json.dumps({"num_classes": 1000}))
    method_state = {
        f"model.backbone.0.features.{k}": v for k, v in state.items() if not k.startswith("fc.")
    }
    method_state["model.backbone.1.weight"] = torch.zeros(32, 512)
    method_state["model.projection_head.layer.weight"] = torch.zeros(8, 32)
    torch.save({"state_dict": method_state}, paths["selfsup_checkpoint"])
    return paths


def _direct(input_dir: Path, weights: Path) -> np.ndarray:
    """The reference: the same backbone with the same weights, forward on the same tensors."""
    backbone = get_backbone(NAME)
    backbone.features.load_state_dict(torch.load(weights, weights_only=True), strict=False)
    loader = build_embed_loader(
        str(input_dir), LightlyConfig().loader.model_copy(update={"num_workers": 0}), 32
    )
    backbone.eval()
    with torch.no_grad():
        return torch.cat([backbone(images) for images, _, _ in loader]).numpy()


@pytest.mark.slow
def test_every_format_embeds_like_a_direct_forward_pass(
    tmp_path: Path, make_image_folder: Callable[..., Path]
) -> None:
    images = make_image_folder(n_classes=2, n_per_class=3)
    paths = _weights(tmp_path)
    expected = _direct(images, paths["state_dict"])
    assert expected.shape == (6, 512)
    for fmt, path in paths.items():
        emb, _, names = embed_images(
            input_dir=str(images), model={"name": NAME, "weights": str(path)}, **COMMON
        )
        assert emb.shape == (6, 512), fmt  # the backbone's features, no projection to num_ftrs
        assert np.allclose(emb, expected, atol=1e-5), fmt
        assert len(names) == 6


@pytest.mark.slow
def test_cli_embed_and_run_use_the_pretrained_backbone(
    tmp_path: Path, make_image_folder: Callable[..., Path]
) -> None:
    images = make_image_folder(n_classes=2, n_per_class=4)
    paths = _weights(tmp_path)
    expected = _direct(images, paths["state_dict"])
    out = tmp_path / "embed_out"
    code = main(
        [
            "embed",
            f"input_dir={images}",
            f"output_dir={out}",
            f"model.name={NAME}",
            f"model.weights={paths['safetensors']}",
            "collate.input_size=32",
            "loader.num_workers=0",
            "trainer.gpus=0",
            "embedding.precision=32",
        ]
    )
    assert code == 0
    emb, _, _ = load_embeddings(str(out / "embeddings.csv"))
    assert np.allclose(emb, expected, atol=1e-4)
    run_out = tmp_path / "run_out"
    code = main(
        [
            "run",
            f"input_dir={images}",
            f"output_dir={run_out}",
            "enable_training=false",
            "stopping_condition.n_samples=3",
            "num_workers=0",
            f"lightly.model.name={NAME}",
            f"lightly.model.weights={paths['state_dict']}",
            "lightly.collate.input_size=32",
            "lightly.loader.num_workers=0",
            "lightly.trainer.gpus=0",
            "lightly.embedding.precision=32",
        ]
    )
    assert code == 0
    emb, _, names = load_embeddings(str(run_out / "data" / "embeddings.csv"))
    order = {n: i for i, n in enumerate(load_embeddings(str(out / "embeddings.csv"))[2])}
    assert np.allclose(emb, expected[[order[n] for n in names]], atol=1e-4)
    report = json.loads((run_out / "report.json").read_text())
    assert "pretrained weights" in report["job"]["extra"]["model"]
    assert not list(run_out.glob("*.ckpt"))  # nothing was trained


def test_mismatched_weights_are_refused_with_the_keys_named(
    tmp_path: Path, make_image_folder: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    images = make_image_folder(n_classes=1, n_per_class=2)
    torch.save({"conv1.weight": torch.zeros(1), "other.bias": torch.zeros(2)}, tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match=r"bad\.pt.*'other\.bias'.*weights_strict=false"):
        embed_images(
            input_dir=str(images),
            model={"name": NAME, "weights": str(tmp_path / "bad.pt")},
            **COMMON,
        )
    code = main(
        [
            "embed",
            f"input_dir={images}",
            f"output_dir={tmp_path / 'o'}",
            f"model.name={NAME}",
            f"model.weights={tmp_path / 'bad.pt'}",
        ]
    )
    assert code == EXIT_USAGE
    assert "missing" in capsys.readouterr().err


def test_embedding_needs_a_checkpoint_or_weights(make_image_folder: Callable[..., Path]) -> None:
    images = make_image_folder(n_classes=1, n_per_class=2)
    with pytest.raises(ConfigError, match=r"checkpoint is required.*model\.weights"):
        embed(resolve_config(input_dir=str(images), **COMMON))


def test_training_starts_from_the_weights_and_a_checkpoint_does_not_need_them(
    tmp_path: Path,
) -> None:
    paths = _weights(tmp_path)
    cfg = ModelConfig(name=NAME, weights=str(paths["state_dict"]), num_ftrs=16)
    model = build_model(cfg, "simclr")
    backbone = model.backbone
    assert isinstance(backbone, nn.Sequential)
    first = backbone[0]
    assert isinstance(first, Backbone)
    loaded = first.features.state_dict()
    saved = torch.load(paths["state_dict"], weights_only=True)
    assert all(torch.equal(loaded[k], saved[k]) for k in loaded)
    # the projection to num_ftrs stays: a lightly-style config keeps its meaning in training
    assert backbone[1].out_features == 16
    # rebuilding from a checkpoint does not read the weights file (it may be gone)
    gone = cfg.model_copy(update={"weights": str(tmp_path / "deleted.pth")})
    rebuilt = build_model(gone, "simclr", pretrained=False).backbone
    assert isinstance(rebuilt, nn.Sequential)
    assert rebuilt[1].out_features == 16


def test_a_zoo_entry_brings_its_backbone_and_preprocessing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_image_folder: Callable[..., Path]
) -> None:
    monkeypatch.setenv("SELFSUP_HOME", str(tmp_path / "home"))
    paths = _weights(tmp_path)
    half, quarter = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    add_entry("r18", paths["state_dict"], model=NAME, input_size=40, mean=half, std=quarter)
    images = make_image_folder(n_classes=1, n_per_class=3)
    cfg = resolve_config(
        input_dir=str(images),
        model={"weights": "zoo:r18"},  # model.name left at its default: the entry's is used
        loader={"num_workers": 0},
        trainer={"gpus": 0},
        embedding=COMMON["embedding"],  # compared with a float32 forward pass
    )
    model, side, normalize = embedding_model(cfg)
    assert isinstance(model, PretrainedModel)
    assert model.backbone.name == NAME
    assert side == 40
    assert normalize == (half, quarter)
    emb, _, _ = embed(cfg)
    loader = build_embed_loader(str(images), cfg.loader, 40, normalize=(half, quarter))
    model.eval()
    with torch.no_grad():
        expected = torch.cat([model.backbone(x) for x, _, _ in loader]).numpy()
    assert np.allclose(emb, expected, atol=1e-5)
    with pytest.raises(ConfigError, match="holds weights of the backbone"):
        build_backbone(ModelConfig(name="torchvision/resnet34", weights="zoo:r18"))


def test_cli_refuses_missing_weights_before_writing(
    tmp_path: Path,
    make_image_folder: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SELFSUP_HOME", str(tmp_path / "home"))
    images = make_image_folder(n_classes=1, n_per_class=2)
    out = tmp_path / "out"
    for weights in (str(tmp_path / "absent.pth"), "zoo:absent"):
        code = main(
            ["embed", f"input_dir={images}", f"output_dir={out}", f"model.weights={weights}"]
        )
        assert code == EXIT_USAGE
        assert "absent" in capsys.readouterr().err
        assert not out.exists()


def test_a_vit_is_fed_the_only_size_it_accepts(
    tmp_path: Path, make_image_folder: Callable[..., Path]
) -> None:
    timm = pytest.importorskip("timm")
    torch.save(timm.create_model("vit_tiny_patch16_224").state_dict(), tmp_path / "vit.pth")
    images = make_image_folder(n_classes=1, n_per_class=2)
    model = {"name": "timm/vit_tiny_patch16_224", "weights": str(tmp_path / "vit.pth")}
    cfg = resolve_config(input_dir=str(images), model=model, loader={"num_workers": 0})
    _, side, _ = embedding_model(cfg)
    assert side == 224
    cfg.collate.input_size = 96
    with pytest.raises(ConfigError, match=r"takes only 224x224 images.*collate\.input_size=96"):
        embedding_model(cfg)
