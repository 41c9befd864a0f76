"""``selfsup zoo add|list|show|remove`` on a temporary selfsup home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision

from selfsup.cli.main import main


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SELFSUP_HOME", str(home))
    return home


def test_add_list_show_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    args = ["zoo", "add", "r18", str(weights), "--model", "torchvision/resnet18"]
    assert main([*args, "--input-size", "224", "--mean", "0.5,0.5,0.5"]) == 0
    assert "model.weights=zoo:r18" in capsys.readouterr().out
    assert main(["zoo", "list"]) == 0
    listed = capsys.readouterr().out
    assert "r18" in listed
    assert "torchvision/resnet18" in listed
    assert main(["zoo", "list", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["mean"] == [0.5, 0.5, 0.5]
    assert entry["input_size"] == 224
    assert main(["zoo", "show", "r18"]) == 0
    assert "sha256 ok" in capsys.readouterr().out
    assert main(["zoo", "remove", "r18"]) == 0
    assert main(["zoo", "list"]) == 0
    assert "no zoo entries" in capsys.readouterr().out


def test_errors_exit_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "show", "nothing"]) == 2
    assert "no zoo entry 'nothing'" in capsys.readouterr().err
    assert main(["zoo", "add", "x", str(tmp_path / "absent.pt")]) == 2
    assert "do not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["zoo", "add", "x", str(tmp_path), "--mean", "1,2"])
    assert "three comma-separated numbers" in capsys.readouterr().err
