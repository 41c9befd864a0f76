"""benchmarks/_lightly_ref.py: lightly 1.5.0's shims must not leak into selfsup's process."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import numpy as np
import pydantic
import pytest
import torchvision.io

from _benchmarks import load_benchmark


def _module() -> ModuleType:
    return load_benchmark("_lightly_ref")


@pytest.mark.skipif(
    importlib.util.find_spec("lightly") is not None, reason="tests the absent-lightly path"
)
def test_absent_lightly_returns_none_and_restores_pydantic(
    capsys: pytest.CaptureFixture[str],
) -> None:
    had_float = hasattr(np, "float_")
    had_video = hasattr(torchvision.io, "_HAS_VIDEO_OPT")
    try:
        assert _module().import_lightly() is None
        assert "lightly is not importable (ModuleNotFoundError" in capsys.readouterr().out
        # selfsup's pydantic 2 is back, and no half-imported lightly is left behind.
        assert sys.modules["pydantic"] is pydantic
        assert not any(n == "lightly" or n.startswith("lightly.") for n in sys.modules)
        assert np.float_ is np.float64  # type: ignore[attr-defined]
        assert torchvision.io._HAS_VIDEO_OPT is False
    finally:  # the shims are for benchmark processes: undo them for the other tests
        if not had_float:
            del np.float_  # type: ignore[attr-defined]
        if not had_video:
            del torchvision.io._HAS_VIDEO_OPT


def test_train_source_is_python_that_applies_the_shims() -> None:
    source = _module().LIGHTLY_TRAIN_SOURCE
    compile(source, "<lightly-train>", "exec")
    assert "apply_shims()" in source
    assert "pydantic.v1" in source
    assert source.endswith("from lightly.cli.train_cli import entry; entry()")
