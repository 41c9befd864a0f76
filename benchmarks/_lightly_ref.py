"""Importing the reference library, lightly 1.5.0, next to selfsup's environment (benchmarks only).

lightly 1.5.0 is not a dependency and must not be installed into selfsup's environment; it is
installed aside (``pip install --no-deps --target /tmp/lightly_ref lightly==1.5.0 lightly_utils
aenum omegaconf antlr4-python3-runtime==4.9.3 hydra-core``) and put on ``PYTHONPATH``. It then
fails to import for three reasons, each shimmed here in the benchmark's own process only:

* its API client is written against pydantic 1 (selfsup has pydantic 2): while lightly is
  imported, ``sys.modules["pydantic"]`` is pydantic 2's bundled ``pydantic.v1``, and the real
  module is put back afterwards so that selfsup's pydantic 2 models keep working in the same
  process;
* it uses ``np.float_``, removed in numpy 2: aliased to ``np.float64``;
* it reads ``torchvision.io._HAS_VIDEO_OPT``, gone from recent torchvision: set to ``False``
  (lightly's video support is then off; the benchmarks read images only).

Usage::

    from _lightly_ref import import_lightly, LIGHTLY_TRAIN_SOURCE
    lightly = import_lightly()  # the module, or None with a printed reason
    subprocess.run([sys.executable, "-c", LIGHTLY_TRAIN_SOURCE, "input_dir=...", ...])
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent

#: Where the benchmark docstrings tell to install lightly 1.5.0.
DEFAULT_PATH = "/tmp/lightly_ref"


def apply_shims() -> None:
    """Patch numpy and torchvision for lightly 1.5.0 (idempotent; this process only)."""
    import numpy as np
    import torchvision.io

    if not hasattr(np, "float_"):
        np.float_ = np.float64  # type: ignore[attr-defined]
    if not hasattr(torchvision.io, "_HAS_VIDEO_OPT"):
        torchvision.io._HAS_VIDEO_OPT = False


def import_lightly(quiet: bool = False) -> ModuleType | None:
    """lightly with the shims applied, or None (printing why unless ``quiet``) when it is not
    importable. pydantic is swapped for ``pydantic.v1`` during lightly's import only."""
    if "lightly" in sys.modules:
        return sys.modules["lightly"]
    apply_shims()
    real = sys.modules.get("pydantic")
    if real is None:
        real = importlib.import_module("pydantic")
    sys.modules["pydantic"] = importlib.import_module("pydantic.v1")
    try:
        lightly = importlib.import_module("lightly")
        # Load the parts the benchmarks use while pydantic is still v1: their imports are lazy.
        for name in ("data", "loss", "models", "transforms", "embedding", "cli.train_cli"):
            importlib.import_module(f"lightly.{name}")
    except (ImportError, TypeError) as exc:  # TypeError: lightly 1.5.0 under real pydantic 2
        for name in [n for n in sys.modules if n == "lightly" or n.startswith("lightly.")]:
            del sys.modules[name]  # a half-imported lightly must not look importable
        if not quiet:
            print(f"lightly is not importable ({type(exc).__name__}: {str(exc)[:160]})")
        return None
    finally:
        sys.modules["pydantic"] = real
    return lightly


#: ``python -c`` source of lightly's training command (``lightly-train``, named
#: ``lightly-ssl-train`` in later releases) with the shims applied; the hydra keys follow as
#: arguments. Keeping pydantic v1 for the whole process is fine there: selfsup is not used.
LIGHTLY_TRAIN_SOURCE = (
    "import importlib, sys; "
    f"sys.path.insert(0, {str(HERE)!r}); "
    "from _lightly_ref import apply_shims; apply_shims(); "
    "sys.modules['pydantic'] = importlib.import_module('pydantic.v1'); "
    "from lightly.cli.train_cli import entry; entry()"
)
