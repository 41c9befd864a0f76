"""``selfsup.utils.cpus``: what ``num_workers=-1`` means."""

from __future__ import annotations

import os

import pytest

from selfsup.utils.cpus import available_cpus, resolve_num_workers


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
