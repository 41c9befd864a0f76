"""selfsup.utils.lightning_noise: Lightning's messages that say nothing about a run are
dropped while training, and only those; the module imports neither torch nor Lightning."""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

import selfsup.embedding._base as base
from _imports import loaded_after
from selfsup.embedding import SelfSupervisedEmbedding
from selfsup.utils.lightning_noise import lightning_noise_filtered

NOISE = (
    "💡 Tip",
    "litlogger",
    "smaller than the logging interval",
    "LeafSpec",
    "not supported by the model summary",
)


def test_importing_it_and_the_pipeline_imports_neither_torch_nor_lightning() -> None:
    code = "import selfsup.utils.lightning_noise, selfsup.curation.pipeline"
    assert loaded_after(code, ["torch", "pytorch_lightning"]) == []


def _trainer() -> None:
    pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)


def _printed(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    """What Lightning printed since the last call: to stderr through its own handler (no
    root handler when it was imported, as in ``selfsup train``) or to the root's (pytest)."""
    text = caplog.text + capfd.readouterr().err
    caplog.clear()
    return text


def test_the_tip_is_dropped_inside_the_block_only(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    _trainer()
    assert "💡 Tip" in _printed(caplog, capfd)  # Lightning prints it: the test can fail
    with lightning_noise_filtered():
        _trainer()
    inside = _printed(caplog, capfd)
    assert "💡 Tip" not in inside
    assert "GPU available" in inside  # other INFO lines pass
    _trainer()
    assert "💡 Tip" in _printed(caplog, capfd)  # the filter is removed afterwards


def test_only_the_noise_warnings_are_dropped() -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with lightning_noise_filtered():
            warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", stacklevel=1)
            warnings.warn(
                "The number of training batches (3) is smaller than the logging interval "
                "Trainer(log_every_n_steps=50).",
                stacklevel=1,
            )
            warnings.warn(
                "Precision bf16-mixed is not supported by the model summary.  Estimated model "
                "size in MB will not be accurate. Using 32 bits instead.",
                stacklevel=1,
            )
            warnings.warn("a real problem with the data", stacklevel=1)
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, later", stacklevel=1)
    assert [str(w.message) for w in seen] == [
        "a real problem with the data",
        "`isinstance(treespec, LeafSpec)` is deprecated, later",
    ]


class _TwoView(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))

    def forward(self, x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
        return self.backbone(x0), self.backbone(x1)


class _Loss(nn.Module):
    def forward(self, y0: Tensor, y1: Tensor) -> Tensor:
        return (y0 - y1).pow(2).mean()


def _train(tmp_path: Path) -> list[str]:
    """Train one epoch of 2 batches in bf16-mixed (what ``precision=auto`` is where the
    hardware has bf16); the warnings it raised, each as a fresh process would."""
    x = torch.randn(8, 4)
    samples = [([a, a + 0.1], 0, str(i)) for i, a in enumerate(x)]
    model = _TwoView()
    embedding = SelfSupervisedEmbedding(
        model, _Loss(), torch.optim.SGD(model.parameters(), lr=0.1), DataLoader(samples, 4)
    )
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        embedding.train_embedding(
            gpus=0,
            max_epochs=1,
            checkpoint_dir=tmp_path,
            enable_progress_bar=False,
            precision="bf16-mixed",
        )
    return [str(w.message) for w in seen]


@pytest.mark.parametrize("filtered", [True, False], ids=["filtered", "control"])
def test_training_prints_none_of_the_noise(
    filtered: bool,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The control trains without the filter: the noise is there, so the check can fail.
    if not filtered:
        monkeypatch.setattr(base, "lightning_noise_filtered", contextlib.nullcontext)
    caplog.set_level(logging.INFO)
    printed = "\n".join([*_train(tmp_path), _printed(caplog, capfd)])
    assert "Total params" in printed  # the model summary still shows
    found = [fragment for fragment in NOISE if fragment in printed]
    if filtered:
        assert found == []
    else:
        assert "💡 Tip" in found
        assert "smaller than the logging interval" in found
        assert "not supported by the model summary" in found
