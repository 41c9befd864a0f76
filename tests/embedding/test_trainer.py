"""Legacy trainer arguments map onto Lightning 2 arguments."""

from __future__ import annotations

import pytest
import torch

from selfsup.embedding._trainer import lightning_trainer_kwargs
from selfsup.errors import ConfigError


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_gpus_without_cuda_warns_and_uses_cpu() -> None:
    with pytest.warns(UserWarning, match="no CUDA GPU"):
        kwargs = lightning_trainer_kwargs(gpus=1, max_epochs=3)
    assert kwargs == {"accelerator": "cpu", "devices": 1, "max_epochs": 3}


def test_gpus_zero_is_cpu() -> None:
    assert lightning_trainer_kwargs(gpus=0) == {"accelerator": "cpu", "devices": 1}


def test_distributed_backend_becomes_strategy() -> None:
    assert lightning_trainer_kwargs(distributed_backend="ddp")["strategy"] == "ddp"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_fp16_on_cpu_falls_back_to_32() -> None:
    with pytest.warns(UserWarning, match="needs a CUDA GPU"):
        kwargs = lightning_trainer_kwargs(gpus=0, precision=16)
    assert kwargs["precision"] == 32


def test_conflicting_arguments() -> None:
    with pytest.raises(ConfigError, match="either gpus"):
        lightning_trainer_kwargs(gpus=1, accelerator="cpu")
    with pytest.raises(ConfigError, match="gpus must be >= 0"):
        lightning_trainer_kwargs(gpus=-1)
