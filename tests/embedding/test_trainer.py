"""Legacy trainer arguments map onto Lightning 2 arguments."""

from __future__ import annotations

import pytest
import torch

from selfsup.embedding import _trainer
from selfsup.embedding._trainer import (
    auto_training_precision,
    distributed_trainer_kwargs,
    lightning_trainer_kwargs,
    training_autocast_dtype,
)
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


@pytest.mark.parametrize(("native_bf16", "expected"), [(True, "bf16-mixed"), (False, 32)])
def test_auto_precision_on_the_cpu_is_bf16_only_where_native(
    monkeypatch: pytest.MonkeyPatch, native_bf16: bool, expected: int | str
) -> None:
    monkeypatch.setattr(_trainer, "cpu_has_native_bf16", lambda: native_bf16)
    assert auto_training_precision(on_cpu=True) == expected
    assert lightning_trainer_kwargs(gpus=0, precision="auto")["precision"] == expected


@pytest.mark.parametrize(("cuda_bf16", "expected"), [(True, "bf16-mixed"), (False, 32)])
def test_auto_precision_on_a_gpu_is_bf16_where_supported(
    monkeypatch: pytest.MonkeyPatch, cuda_bf16: bool, expected: int | str
) -> None:
    # float16 would need loss scaling; a GPU without bf16 trains in 32.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: cuda_bf16)
    monkeypatch.setattr(_trainer, "cpu_has_native_bf16", lambda: not cuda_bf16)
    assert auto_training_precision(on_cpu=False) == expected


@pytest.mark.parametrize(
    ("precision", "on_cpu", "native_bf16", "expected"),
    [
        ("auto", True, True, torch.bfloat16),
        ("auto", True, False, None),
        ("bf16-mixed", True, False, torch.bfloat16),
        ("bf16-true", False, False, torch.bfloat16),
        (16, False, False, torch.float16),
        ("16-mixed", False, False, torch.float16),
        ("16-mixed", True, True, None),  # 16-bit on the CPU falls back to 32
        (32, True, True, None),
        ("64", False, True, None),
    ],
)
def test_the_autocast_dtype_of_each_training_precision(
    monkeypatch: pytest.MonkeyPatch,
    precision: int | str,
    on_cpu: bool,
    native_bf16: bool,
    expected: torch.dtype | None,
) -> None:
    monkeypatch.setattr(_trainer, "cpu_has_native_bf16", lambda: native_bf16)
    assert training_autocast_dtype(precision, on_cpu) is expected


def test_conflicting_arguments() -> None:
    with pytest.raises(ConfigError, match="either gpus"):
        lightning_trainer_kwargs(gpus=1, accelerator="cpu")
    with pytest.raises(ConfigError, match="gpus must be >= 0"):
        lightning_trainer_kwargs(gpus=-1)


def test_devices_unset_keeps_the_meaning_of_gpus() -> None:
    assert distributed_trainer_kwargs(gpus=0, devices=None) == {
        "accelerator": "cpu",
        "devices": 1,
        "num_nodes": 1,
        "strategy": "auto",
    }


def test_devices_on_the_cpu_are_processes() -> None:
    kwargs = distributed_trainer_kwargs(gpus=0, devices=2, num_nodes=3, strategy="ddp")
    assert kwargs == {"accelerator": "cpu", "devices": 2, "num_nodes": 3, "strategy": "ddp"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_devices_with_gpus_but_no_cuda_warns_and_uses_cpu_processes() -> None:
    with pytest.warns(UserWarning, match="no CUDA GPU"):
        kwargs = distributed_trainer_kwargs(gpus=1, devices=2, strategy="ddp_spawn")
    assert kwargs["accelerator"] == "cpu"
    assert kwargs["devices"] == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_more_devices_than_gpus_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"trainer\.devices"):
        distributed_trainer_kwargs(gpus=1, devices=torch.cuda.device_count() + 1)


def test_a_run_that_cannot_be_relaunched_refuses_ddp_but_takes_ddp_spawn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match=r"trainer\.strategy=ddp_spawn"):
        distributed_trainer_kwargs(gpus=0, devices=2, strategy="ddp", can_relaunch=False)
    spawn = distributed_trainer_kwargs(gpus=0, devices=2, strategy="ddp_spawn", can_relaunch=False)
    assert spawn["strategy"] == "ddp_spawn"
    # One process: nothing is started again.
    one = distributed_trainer_kwargs(gpus=0, devices=1, strategy="ddp", can_relaunch=False)
    assert one["devices"] == 1
    # Every process started by torchrun: Lightning starts none.
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job")
    ddp = distributed_trainer_kwargs(gpus=0, devices=2, strategy="ddp", can_relaunch=False)
    assert ddp["strategy"] == "ddp"
