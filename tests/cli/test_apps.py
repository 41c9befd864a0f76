"""``selfsup.cli.apps``: the app of ``selfsup serve`` is the server's API plus the web app,
put together here because neither imports the other."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _probe(tmp_path: Path, factory: str) -> dict[str, object]:
    """Build the app of ``factory`` in a fresh interpreter and report what it answers and
    which torch-family modules the process imported."""
    code = f"""
import json, sys
from pathlib import Path
from fastapi.testclient import TestClient
from {factory.rsplit(".", 1)[0]} import {factory.rsplit(".", 1)[1]} as factory
from selfsup.server.settings import ServerSettings
tmp = Path({str(tmp_path)!r})
app = factory(ServerSettings(
    database_url=f"sqlite:///{{tmp / 'server.db'}}", data_dir=tmp / "data",
    sweep_interval_seconds=0,
))
with TestClient(app) as client:
    answers = {{path: client.get(path).status_code for path in ("/health", "/login")}}
heavy = {{"torch", "torchvision", "lightning", "pytorch_lightning", "timm"}}
print(json.dumps({{
    "answers": answers,
    "heavy": sorted(m for m in sys.modules if m.split(".")[0] in heavy),
}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_the_server_app_serves_the_api_and_the_pages_without_torch(tmp_path: Path) -> None:
    result = _probe(tmp_path, "selfsup.cli.apps.create_server_app")
    assert result["answers"] == {"/health": 200, "/login": 200}
    assert result["heavy"] == []


@pytest.mark.slow
def test_the_api_alone_has_no_pages(tmp_path: Path) -> None:
    result = _probe(tmp_path, "selfsup.server.app.create_app")
    assert result["answers"] == {"/health": 200, "/login": 404}
    assert result["heavy"] == []
