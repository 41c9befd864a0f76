"""``selfsup.cli.apps``: the app of ``selfsup serve`` is the server's API plus the web app,
put together here because neither imports the other."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image


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


# --------------------------------------------------------------------------- find similar


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run that embedded with a tiny checkpoint; its output folder."""
    from _web import build_model_run

    return build_model_run(tmp_path_factory.mktemp("tiny_run"))


@pytest.mark.slow
def test_view_finds_the_run_image_an_uploaded_copy_shows_first(tiny_run: Path) -> None:
    from fastapi.testclient import TestClient

    from selfsup.cli.apps import create_view_app
    from selfsup.web.outputs import RunOutputs

    outputs = RunOutputs.open(tiny_run, tiny_run.parent / "expected-cache")
    name = "c1/img_5.png"
    image = (tiny_run.parent / "images" / name).read_bytes()
    app = create_view_app([tiny_run], token="t" * 24, cache_dir=tiny_run.parent / "cache")
    base = "http://testserver"
    with TestClient(app, base_url=base, follow_redirects=False) as client:
        assert client.post("/login", data={"token": "t" * 24, "next": "/"}).status_code == 303
        form = client.get("/runs/out/similar")
        assert 'data-testid="similar-upload-form"' in form.text
        r = client.post(
            "/runs/out/similar",
            files={"image": ("mine.png", image)},
            data={"k": "3"},
            headers={"Origin": base},
        )
        assert r.status_code == 200, r.text
        tiles = re.findall(
            r'data-testid="similar-result" data-index="(\d+)" data-status="\w+" '
            r'data-distance="([^"]+)"',
            r.text,
        )
        assert len(tiles) == 3
        # The copy is the run's own image: embedded the run's way, it is its own nearest.
        assert int(tiles[0][0]) == outputs.name_index[name]
        assert float(tiles[0][1]) < 1e-4
        assert float(tiles[1][1]) > 1e-3
        assert "mine.png" in r.text
        r = client.post(
            "/runs/out/similar",
            files={"image": ("x.png", b"\x89PNG junk")},
            headers={"Origin": base},
        )
        assert r.status_code == 400
        assert "JPEG, PNG" in r.text


def test_the_embedder_says_why_a_run_without_a_model_cannot_embed(tmp_path: Path) -> None:
    from selfsup.apphelpers.query_image import EmbedderUnavailable, RunModelFiles
    from selfsup.cli.apps import RunImageEmbedder

    config = tmp_path / "config.yaml"
    stop = "stopping_condition: {n_samples: 2}\n"
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    embedder = RunImageEmbedder()
    with pytest.raises(EmbedderUnavailable, match=r"config\.yaml' is missing"):
        embedder.embed(RunModelFiles(config), png.getvalue())
    config.write_text(stop + "embeddings: /x/emb.csv\n", encoding="utf-8")
    with pytest.raises(EmbedderUnavailable, match="precomputed embeddings"):
        embedder.embed(RunModelFiles(config), png.getvalue())
    config.write_text(stop, encoding="utf-8")
    with pytest.raises(EmbedderUnavailable, match=r"checkpoint \(\*\.ckpt\) is not kept"):
        embedder.embed(RunModelFiles(config, (tmp_path / "gone.ckpt",)), png.getvalue())
    config.write_text(stop + "checkpoint: /nowhere/m.ckpt\n", encoding="utf-8")
    with pytest.raises(EmbedderUnavailable, match=r"'/nowhere/m\.ckpt', which is not on this"):
        embedder.embed(RunModelFiles(config), png.getvalue())
