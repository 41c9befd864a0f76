"""benchmarks/batched_transforms.py: one tiny case runs, and ``--steps`` attributes time to
every step of the SimCLR view and leaves the batched path unpatched afterwards."""

from __future__ import annotations

from types import ModuleType

import pytest
import torch

import selfsup.transforms.batched_view as batched_view
from _benchmarks import load_benchmark


def _module() -> ModuleType:
    return load_benchmark("batched_transforms")


def test_run_case_with_steps_prints_each_step(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _module()
    original = batched_view._apply
    per_image, batched = bench.run_case(4, 16, 1, torch.device("cpu"), steps=True)
    assert per_image > 0
    assert batched > 0
    assert batched_view._apply is original
    out = capsys.readouterr().out
    line = next(s for s in out.splitlines() if "by step" in s)
    for step in ("RandomResizedCrop", "RandomColorJitter", "GaussianBlur"):
        assert step in line
