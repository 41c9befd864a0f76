"""``selfsup.utils.cpus``: what ``num_workers=-1`` means, and whether the CPU has bf16."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

from _imports import loaded_after
from selfsup.utils.cpus import available_cpus, cpu_has_native_bf16, resolve_num_workers


def test_available_cpus_is_the_affinity_mask() -> None:
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert available_cpus() == max(1, expected or 1)


def test_without_an_affinity_mask_the_cpu_count_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert available_cpus() == 1


@pytest.mark.parametrize("given", [0, 1, 7])
def test_a_count_is_kept(given: int) -> None:
    assert resolve_num_workers(given) == given


@pytest.mark.parametrize("given", [-1, -5])
def test_negative_means_one_per_cpu(given: int) -> None:
    assert resolve_num_workers(given) == available_cpus()


@pytest.fixture
def fresh_bf16_answer() -> Iterator[None]:
    """``cpu_has_native_bf16`` is cached per process; each test here asks afresh."""
    cpu_has_native_bf16.cache_clear()
    yield
    cpu_has_native_bf16.cache_clear()


def _flags(monkeypatch: pytest.MonkeyPatch, **flags: object) -> None:
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        if name in flags:
            value = flags[name]
            monkeypatch.setattr(torch.cpu, name, value, raising=False)
        else:
            monkeypatch.delattr(torch.cpu, name, raising=False)


@pytest.mark.usefixtures("fresh_bf16_answer")
@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"),
    [(False, False, False), (True, False, True), (False, True, True), (True, True, True)],
)
def test_native_bf16_is_either_instruction_set(
    monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool, expected: bool
) -> None:
    _flags(
        monkeypatch,
        _is_avx512_bf16_supported=lambda: avx512_bf16,
        _is_amx_tile_supported=lambda: amx,
    )
    assert cpu_has_native_bf16() is expected


@pytest.mark.usefixtures("fresh_bf16_answer")
def test_without_torch_s_private_helpers_bf16_is_not_assumed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _flags(monkeypatch)
    assert cpu_has_native_bf16() is False


@pytest.mark.usefixtures("fresh_bf16_answer")
def test_a_helper_that_fails_means_no_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> bool:
        raise RuntimeError("changed signature")

    _flags(monkeypatch, _is_avx512_bf16_supported=broken, _is_amx_tile_supported=lambda: False)
    assert cpu_has_native_bf16() is False


@pytest.mark.usefixtures("fresh_bf16_answer")
def test_without_onednn_bf16_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    _flags(monkeypatch, _is_avx512_bf16_supported=lambda: True)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert cpu_has_native_bf16() is False


def test_importing_the_module_does_not_import_torch() -> None:
    assert loaded_after("import selfsup.utils.cpus", ["torch"]) == []
