"""Client fixtures: a server app on SQLite with a fake clock, called in-process or over a
real socket (the server's own suite covers PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from selfsup.server.testing import ServerHarness


@pytest.fixture
def local_root(tmp_path: Path) -> Path:
    root = tmp_path / "roots" / "main"
    (root / "images").mkdir(parents=True)
    return root


@pytest.fixture
def harness(tmp_path: Path, local_root: Path) -> Iterator[ServerHarness]:
    h = ServerHarness(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "data", (local_root,))
    yield h
    h.close()
