"""Import a script of ``benchmarks/`` in a test, for the tests that check a benchmark's parts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

#: The repository's ``benchmarks/`` folder (scripts, not a package).
BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` executed afresh as module ``benchmark_<name>``.

    The module is registered in ``sys.modules`` before it runs: dataclasses (and pickling)
    resolve a class's module by name.
    """
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
