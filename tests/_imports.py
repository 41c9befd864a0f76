"""What a fresh Python process has imported after running some code, for the tests that keep
heavy libraries (torch, Lightning) out of the server, the web app and config checks."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable


def loaded_after(code: str, modules: Iterable[str]) -> list[str]:
    """The ``modules`` (names as ``sys.modules`` keys them, top-level or dotted) that a fresh
    interpreter has in ``sys.modules`` after running ``code``, sorted; ``[]`` when it kept
    clear of all of them. ``code`` failing fails the test (``CalledProcessError`` with its
    output)."""
    names = sorted(set(modules))
    probe = (
        f"import json, sys\n{code}\nprint(json.dumps([m for m in {names!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    found: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return found
