"""The local model zoo: entries are added whole with their metadata, resolved by name, checked
by sha256 on use, and never reached by a download."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from selfsup.errors import ConfigError, DataError
from selfsup.models.backbones import get_backbone
from selfsup.models.weights import load_backbone_weights, read_weights
from selfsup.models.zoo import (
    IMAGENET_MEAN,
    add_entry,
    list_entries,
    remove_entry,
    resolve_entry,
    zoo_root,
)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SELFSUP_HOME", str(home))
    return home


@pytest.fixture
def r18(tmp_path: Path) -> Path:
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def test_an_added_entry_is_listed_resolved_and_loads(r18: Path, home: Path) -> None:
    entry = add_entry("r18", r18, model="torchvision/resnet18", input_size=224)
    assert zoo_root() == home / "zoo"
    meta = json.loads((home / "zoo" / "r18" / "meta.json").read_text())
    assert meta["model"] == "torchvision/resnet18"
    assert meta["sha256"] == hashlib.sha256(r18.read_bytes()).hexdigest()
    assert meta["source"] == str(r18.resolve())
    assert meta["format"] == "state_dict"
    assert meta["input_size"] == 224
    assert tuple(meta["mean"]) == IMAGENET_MEAN
    assert meta["added"].endswith("+00:00")
    assert [e.name for e in list_entries()] == ["r18"]
    assert resolve_entry("r18") == entry
    # a copy, not the user's file: removing the source does not break the entry
    original = torch.load(r18, weights_only=True)
    r18.unlink()
    tensors = read_weights("zoo:r18")
    assert torch.equal(tensors["conv1.weight"], original["conv1.weight"])
    backbone = get_backbone("torchvision/resnet18")
    assert load_backbone_weights(backbone, "zoo:r18").complete


def test_a_model_folder_brings_its_architecture_and_preprocessing(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    folder = tmp_path / "convnext_atto.d2_in1k"
    folder.mkdir()
    state = timm.create_model("convnext_atto").state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    config = {
        "architecture": "convnext_atto",
        "pretrained_cfg": {"input_size": [3, 288, 288], "mean": [0.5] * 3, "std": [0.25] * 3},
    }
    (folder / "config.json").write_text(json.dumps(config))
    entry = add_entry("atto", folder)
    assert entry.model == "timm/convnext_atto"
    assert entry.format == "model_folder"
    assert entry.input_size == 288
    assert entry.mean == (0.5, 0.5, 0.5)
    assert entry.std == (0.25, 0.25, 0.25)
    assert (entry.folder / "config.json").is_file()
    assert entry.open().architecture == "convnext_atto"


def test_a_changed_file_is_a_corrupt_entry(r18: Path) -> None:
    entry = add_entry("r18", r18, model="torchvision/resnet18")
    with open(entry.path, "r+b") as handle:
        handle.seek(-10, 2)
        handle.write(b"0123456789")
    with pytest.raises(DataError, match=r"zoo entry 'r18' is corrupt: .*sha256"):
        read_weights("zoo:r18")
    entry.path.unlink()
    with pytest.raises(DataError, match="missing"):
        load_backbone_weights(get_backbone("torchvision/resnet18"), "zoo:r18")


def test_unknown_names_list_the_entries(r18: Path) -> None:
    with pytest.raises(ConfigError, match=r"none \(add one"):
        resolve_entry("r18")
    add_entry("resnet18-in1k", r18, model="torchvision/resnet18")
    with pytest.raises(ConfigError, match=r"did you mean 'resnet18-in1k'.*entries: resnet18-in1k"):
        read_weights("zoo:resnet18-in1")
    with pytest.raises(ConfigError, match="not valid"):
        resolve_entry("../etc")


def test_weights_that_do_not_fit_are_not_added(r18: Path, home: Path) -> None:
    with pytest.raises(ConfigError, match="unexpected"):
        add_entry("bad", r18, model="torchvision/mobilenet_v3_small")
    with pytest.raises(ConfigError, match="Pass the model name"):
        add_entry("bad", r18)
    assert list_entries() == []
    zoo = home / "zoo"
    assert not zoo.exists() or not list(zoo.iterdir())


def test_names_are_unique_unless_replaced_and_remove_deletes(r18: Path, tmp_path: Path) -> None:
    add_entry("r18", r18, model="torchvision/resnet18")
    with pytest.raises(ConfigError, match="already exists"):
        add_entry("r18", r18, model="torchvision/resnet18")
    other = tmp_path / "other.pth"
    torch.save(torchvision.models.resnet18().state_dict(), other)
    replaced = add_entry("r18", other, model="torchvision/resnet18", replace=True)
    assert replaced.sha256 == hashlib.sha256(other.read_bytes()).hexdigest()
    removed = remove_entry("r18")
    assert not removed.folder.exists()
    assert list_entries() == []


def test_link_hard_links_the_file(r18: Path) -> None:
    entry = add_entry("r18", r18, model="torchvision/resnet18", link=True)
    assert entry.path.stat().st_ino == r18.stat().st_ino


def test_a_selfsup_checkpoint_names_its_own_backbone_and_width(tmp_path: Path) -> None:
    backbone = get_backbone("resnet-9", width=0.125)
    state = {f"model.backbone.0.features.{k}": v for k, v in backbone.features.state_dict().items()}
    ckpt = tmp_path / "run.ckpt"
    model_config = {"name": "resnet-9", "width": 0.125, "num_ftrs": 16}
    torch.save({"state_dict": state, "selfsup": {"model": model_config}}, ckpt)
    entry = add_entry("mine", ckpt)  # no model given: the checkpoint's config says it
    assert (entry.format, entry.model, entry.width) == ("selfsup_checkpoint", "resnet-9", 0.125)
    # an explicit model name the weights do not fit is refused, naming it
    with pytest.raises(ConfigError, match="resnet-18"):
        add_entry("other", ckpt, model="resnet-18")
