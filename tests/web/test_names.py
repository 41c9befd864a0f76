"""The web app over a run holding a file name that is not valid UTF-8.

Names are bytes on Linux; the pipeline keeps them exact (selfsup.utils.names). The app must
open such a run, list, show, search, preview and map the sample, and send only valid UTF-8
(HTML and JSON) to the browser, showing the odd bytes as ``\\xNN``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from _web import build_small_run
from selfsup.web.app import create_view_app
from selfsup.web.outputs import RunOutputs

TOKEN = "names-token"
BASE = "http://127.0.0.1"
RUN = "out"
ODD = "blue_triangle/caf\udce9.png"  # the file name b"caf\xe9.png"
SHOWN = "blue_triangle/caf\\xe9.png"


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("web_names")
    out = build_small_run(root, n_per_class=4, n_samples=6, extra_images=[ODD], out_name=RUN)
    assert (root / "images" / "blue_triangle").joinpath(ODD.split("/")[1]).is_file()
    return out


@pytest.fixture(scope="module")
def client(run_folder: Path) -> Iterator[TestClient]:
    app: FastAPI = create_view_app([run_folder], token=TOKEN, cache_dir=run_folder.parent / "c")
    with TestClient(app, base_url=BASE, follow_redirects=False) as c:
        assert c.post("/login", data={"token": TOKEN, "next": "/"}).status_code == 303
        yield c


def test_outputs_open_and_keep_the_exact_name(run_folder: Path) -> None:
    for cache in ("cold", "cold"):  # the second open reads the cache written by the first
        outputs = RunOutputs.open(run_folder, run_folder.parent / cache)
        assert ODD in [s.filename for s in outputs.samples]


def test_pages_show_the_name_with_escaped_bytes(client: TestClient, run_folder: Path) -> None:
    outputs = RunOutputs.open(run_folder, run_folder.parent / "expected")
    [index] = [s.index for s in outputs.samples if s.filename == ODD]
    for path in (f"/runs/{RUN}/images?q=caf", f"/runs/{RUN}/images/{index}"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        response.content.decode("utf-8")  # valid UTF-8, no lone surrogates
        assert SHOWN in response.text, path
    thumb = client.get(f"/runs/{RUN}/thumbs/{index}")
    assert thumb.status_code == 200
    assert thumb.headers["content-type"].startswith("image/")
    samples = client.post(f"/ui-api/runs/{RUN}/samples", json={"indices": [index]})
    assert samples.status_code == 200
    json.loads(samples.content.decode("utf-8"))
    assert samples.json()[0]["filename"] == SHOWN
    projection = client.get(f"/ui-api/runs/{RUN}/projection")
    assert projection.status_code == 200
    json.loads(projection.content.decode("utf-8"))
