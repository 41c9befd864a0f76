"""Local pretrained weights: every format loads into every kind of backbone, keys are matched
by the documented rule, and mismatches are named. Weights are saved from randomly initialised
models here; nothing is downloaded."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from selfsup.errors import ConfigError, DataError
from selfsup.models.backbones import get_backbone
from selfsup.models.weights import (
    load_backbone_weights,
    match_keys,
    open_weights,
    read_weights,
    weights_file,
)

timm = pytest.importorskip("timm")


def _save_all_formats(
    model: nn.Module, folder: Path, architecture: str | None = None
) -> dict[str, Path]:
    """The model's state dict as .pt, wrapped .pth, .safetensors and a model folder."""
    folder.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    paths = {
        "pt": folder / "w.pt",
        "wrapped": folder / "w.pth",
        "ddp": folder / "ddp.bin",
        "safetensors": folder / "w.safetensors",
        "folder": folder / "hub",
    }
    torch.save(state, paths["pt"])
    torch.save({"state_dict": state, "epoch": 3}, paths["wrapped"])
    torch.save({f"module.{k}": v for k, v in state.items()}, paths["ddp"])
    tensors = {k: v.contiguous() for k, v in state.items()}
    save_file(tensors, str(paths["safetensors"]))
    paths["folder"].mkdir()
    save_file(tensors, str(paths["folder"] / "model.safetensors"))
    config = {"architecture": architecture} if architecture else {}
    (paths["folder"] / "config.json").write_text(json.dumps(config))
    return paths


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


CASES: list[tuple[str, Callable[[], nn.Module], str | None]] = [
    ("torchvision/resnet18", lambda: torchvision.models.resnet18(), None),
    ("torchvision/efficientnet_b0", lambda: torchvision.models.efficientnet_b0(), None),
    ("timm/convnext_atto", lambda: timm.create_model("convnext_atto"), "convnext_atto"),
    (
        "timm/vit_small_patch14_reg4_dinov2",
        lambda: timm.create_model("vit_small_patch14_reg4_dinov2", img_size=28, depth=2),
        "vit_small_patch14_reg4_dinov2.lvd142m",
    ),
]


def _pre_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The features a classifier sees: what the backbone must compute with the same weights."""
    with torch.no_grad():
        head, features = (
            getattr(model, "forward_head", None),
            getattr(model, "forward_features", None),
        )
        if callable(head) and callable(features):  # timm
            out: torch.Tensor = head(features(x), pre_logits=True)
            return out
        # torchvision: the classifier is the last Linear (ResNet fc, EfficientNet classifier.1)
        last = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
        parent, _, attr = last.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, nn.Identity())
        out = model(x)
        return out


@pytest.mark.slow
@pytest.mark.parametrize(("name", "make", "arch"), CASES, ids=[c[0] for c in CASES])
def test_every_format_loads_and_the_backbone_computes_what_the_model_does(
    tmp_path: Path, name: str, make: Callable[[], nn.Module], arch: str | None
) -> None:
    torch.manual_seed(0)
    model = make().eval()
    paths = _save_all_formats(model, tmp_path / "w", arch)
    kwargs = {"img_size": 28, "depth": 2} if "dinov2" in name else {}
    side = 28 if "dinov2" in name else 32
    x = torch.randn(2, 3, side, side)
    expected = _pre_logits(model, x)
    for fmt, path in paths.items():
        backbone = get_backbone(name, **kwargs).eval()
        report = load_backbone_weights(backbone, path)
        assert report.complete, (fmt, report.problems())
        assert report.loaded == list(backbone.features.state_dict())
        with torch.no_grad():
            got = backbone(x)
        assert got.shape == (2, backbone.num_features)
        assert torch.allclose(got, expected, atol=1e-5), fmt


def test_the_removed_classifier_is_expected_and_reported_at_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = torchvision.models.resnet18()
    torch.save(model.state_dict(), tmp_path / "r18.pt")
    backbone = get_backbone("torchvision/resnet18").eval()
    with caplog.at_level(logging.INFO, logger="selfsup.models.weights"):
        report = load_backbone_weights(backbone, tmp_path / "r18.pt")
    assert report.complete
    assert sorted(report.dropped_head) == ["fc.bias", "fc.weight"]
    assert "fc.weight" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # the backbone now computes the torchvision model's pooled features exactly
    model.fc = nn.Identity()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(backbone(x), model.eval()(x), atol=1e-6)


def test_prefixes_are_stripped_by_the_documented_rule() -> None:
    target = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    state = {f"module.encoder.{k}": v for k, v in target.state_dict().items()}
    report, usable = match_keys(target, state)
    assert report.prefix == "module.encoder."
    assert report.complete
    assert set(usable) == set(target.state_dict())
    # a prefix shared by every key that is part of the model's own names is kept
    named = nn.Module()
    named.features = nn.Linear(2, 2)
    report, _ = match_keys(named, named.state_dict())
    assert report.prefix == ""
    assert report.complete


def test_mismatched_keys_are_an_error_naming_file_and_keys(tmp_path: Path) -> None:
    torch.save(torchvision.models.resnet34().state_dict(), tmp_path / "r34.pt")
    with pytest.raises(ConfigError) as err:
        load_backbone_weights(get_backbone("torchvision/resnet18"), tmp_path / "r34.pt")
    message = str(err.value)
    assert "r34.pt" in message
    assert "unexpected" in message
    assert "layer1.2.conv1.weight" in message
    assert "model.weights_strict=false" in message
    torch.save(torchvision.models.resnet50().state_dict(), tmp_path / "r50.pt")
    with pytest.raises(ConfigError, match=r"with other shapes: 'layer1\.0\.conv1\.weight' file"):
        load_backbone_weights(get_backbone("torchvision/resnet18"), tmp_path / "r50.pt")


def test_non_strict_loads_the_matching_keys_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = torchvision.models.resnet18()
    state = source.state_dict()
    del state["layer4.1.bn2.weight"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "partial.pt")
    backbone = get_backbone("torchvision/resnet18")
    with caplog.at_level(logging.WARNING, logger="selfsup.models.weights"):
        report = load_backbone_weights(backbone, tmp_path / "partial.pt", strict=False)
    assert report.missing == ["layer4.1.bn2.weight"]
    assert report.unexpected == ["extra.weight"]
    assert "layer4.1.bn2.weight" in caplog.text
    assert "extra.weight" in caplog.text
    assert torch.equal(backbone.features.state_dict()["conv1.weight"], state["conv1.weight"])


def test_a_selfsup_checkpoint_gives_its_backbone(tmp_path: Path) -> None:
    backbone = get_backbone("resnet-9", width=0.125)
    method_model = nn.Module()
    method_model.backbone = nn.Sequential(backbone, nn.Linear(backbone.num_features, 4))
    method_model.projection_head = nn.Linear(4, 2)
    torch.save(
        {"state_dict": {f"model.{k}": v for k, v in method_model.state_dict().items()}},
        tmp_path / "run.ckpt",
    )
    weights = open_weights(tmp_path / "run.ckpt")
    assert weights.format == "selfsup_checkpoint"
    assert "projection_head.weight" in weights.ignored
    assert "backbone.1.weight" in weights.ignored
    fresh = get_backbone("resnet-9", width=0.125)
    report = load_backbone_weights(fresh, tmp_path / "run.ckpt")
    assert report.complete
    assert _same_weights(fresh, backbone)


def test_a_model_folder_names_its_architecture(tmp_path: Path) -> None:
    paths = _save_all_formats(timm.create_model("convnext_atto"), tmp_path, "convnext_atto.d2_in1k")
    assert open_weights(paths["folder"]).architecture == "convnext_atto.d2_in1k"
    assert weights_file(paths["folder"]) == paths["folder"] / "model.safetensors"
    with pytest.raises(ConfigError, match=r"convnext_atto.*set model\.name=timm/convnext_atto"):
        load_backbone_weights(get_backbone("timm/convnext_femto"), paths["folder"])


def test_transformers_folders_and_bad_files_are_refused_by_name(tmp_path: Path) -> None:
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"architectures": ["Dinov2Model"]}))
    save_file({"embeddings.cls_token": torch.zeros(1, 1, 4)}, str(hf / "model.safetensors"))
    with pytest.raises(ConfigError, match="transformers"):
        read_weights(hf)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"model\.safetensors"):
        read_weights(empty)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match=r"junk\.pt"):
        read_weights(junk)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(DataError, match="does not hold a state dict"):
        read_weights(tmp_path / "list.pt")
    with pytest.raises(ConfigError, match="do not exist"):
        read_weights(tmp_path / "absent.pt")


def test_the_format_comes_from_the_bytes_not_the_suffix(tmp_path: Path) -> None:
    state = {"w": torch.arange(3.0)}
    save_file(state, str(tmp_path / "actually_safetensors.bin"))
    assert open_weights(tmp_path / "actually_safetensors.bin").format == "safetensors"
    assert torch.equal(read_weights(tmp_path / "actually_safetensors.bin")["w"], state["w"])
