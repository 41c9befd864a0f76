"""Comparing two runs over the same folder: selfsup.web.compare and the /compare page.

Two real runs (the pipeline, precomputed embeddings) select 4 and 8 of the same images;
expected sets come from each run's selection.csv."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from _web import build_small_run
from selfsup.runfolder import RunFolder
from selfsup.web.app import create_view_app
from selfsup.web.compare import compare_runs
from selfsup.web.outputs import RunOutputs

pytestmark = pytest.mark.slow  # two pipeline runs

TOKEN = "compare-token-0123456789"
BASE = "http://testserver"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("compare")
    a = build_small_run(root, n_per_class=3, n_samples=4, out_name="run_a")
    b = build_small_run(root, n_per_class=3, n_samples=8, out_name="run_b")
    return a, b


def _selected(folder: Path) -> set[str]:
    table = RunFolder(folder).read_selection()
    assert table is not None
    return {n for n, s in zip(table.filenames, table.selected, strict=True) if s}


def test_compare_runs_splits_the_selections(runs: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = runs
    comparison = compare_runs(RunOutputs.open(a, tmp_path), RunOutputs.open(b, tmp_path))
    sel_a, sel_b = _selected(a), _selected(b)
    assert comparison.both == sorted(sel_a & sel_b)
    assert comparison.only_a == sorted(sel_a - sel_b)
    assert comparison.only_b == sorted(sel_b - sel_a)
    assert (comparison.n_selected_a, comparison.n_selected_b) == (4, 8)
    assert comparison.same_folder
    assert comparison.jaccard == pytest.approx(len(sel_a & sel_b) / len(sel_a | sel_b))


@pytest.fixture
def client(runs: tuple[Path, Path]) -> Iterator[TestClient]:
    a, b = runs
    app = create_view_app([a, b], token=TOKEN, cache_dir=a.parent / "cache")
    with TestClient(app, base_url=BASE, follow_redirects=False) as c:
        assert c.post("/login", data={"token": TOKEN, "next": "/"}).status_code == 303
        yield c


def test_the_compare_page_and_its_downloads(client: TestClient, runs: tuple[Path, Path]) -> None:
    a, b = runs
    sel_a, sel_b = _selected(a), _selected(b)
    assert 'data-testid="compare-runs"' in client.get("/").text
    form = client.get("/compare")
    assert form.status_code == 200
    assert 'data-testid="compare-form"' in form.text
    page = client.get("/compare?a=run_a&b=run_b").text
    assert re.findall(r'data-testid="n-both">(\d+)<', page) == [str(len(sel_a & sel_b))]
    assert re.findall(r'data-testid="n-only-b">(\d+)<', page) == [str(len(sel_b - sel_a))]
    listed = client.get("/compare/list.txt?a=run_a&b=run_b&list=only_b")
    assert listed.status_code == 200
    assert listed.text.splitlines() == sorted(sel_b - sel_a)
    assert 'filename="run_a-vs-run_b-only_b.txt"' in listed.headers["content-disposition"]
    assert client.get("/compare/list.txt?a=run_a&b=run_b&list=all").status_code == 400
    assert client.get("/compare?a=run_a&b=nope").status_code == 404
