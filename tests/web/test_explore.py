"""Exploring a run by its signals (issue 12) through FastAPI's TestClient, over a real run.

The run (the real pipeline, precomputed embeddings) has a planted dark image and a planted
near duplicate (a 10 % brighter copy of ``green_square/img_00.png``). Expected values come
from the run's own files (quality_issues.txt, quality.csv, the embeddings CSV, tags.json)
and from numpy, never from the app.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from _web import EXPLORE_COPY as COPY
from _web import EXPLORE_DARK as DARK
from _web import EXPLORE_ORIGINAL as ORIGINAL
from _web import build_explore_run, complete_local_run
from selfsup.curation.manifest import read_filename_table
from selfsup.runfolder import RunFolder
from selfsup.web.app import create_view_app
from selfsup.web.outputs import RunOutputs
from selfsup.web.routes.explore import DROP_TAG, KEEP_TAG

pytestmark = pytest.mark.slow  # runs the pipeline once per module (~10 s)

TOKEN = "explore-token-0123456789"
RUN = "out"
BASE = "http://testserver"


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_explore_run(tmp_path_factory.mktemp("explore"))


@pytest.fixture(scope="module")
def app(run_folder: Path) -> FastAPI:
    return create_view_app([run_folder], token=TOKEN, cache_dir=run_folder.parent / "cache")


@pytest.fixture(scope="module")
def outputs(run_folder: Path) -> RunOutputs:
    return RunOutputs.open(run_folder, run_folder.parent / "expected-cache")


@pytest.fixture
def client(app: FastAPI, run_folder: Path) -> Iterator[TestClient]:
    RunFolder(run_folder).tags_json.unlink(missing_ok=True)
    with TestClient(app, base_url=BASE, follow_redirects=False) as c:
        assert c.post("/login", data={"token": TOKEN, "next": "/"}).status_code == 303
        yield c


def _tiles(html: str, testid: str = "tile") -> list[int]:
    return [int(i) for i in re.findall(rf'data-testid="{testid}" data-index="(\d+)"', html)]


def _index(outputs: RunOutputs, name: str) -> int:
    return outputs.name_index[name]


def _quality_column(run_folder: Path, column: str) -> dict[str, float]:
    with RunFolder(run_folder).quality_csv.open(encoding="utf-8", newline="") as handle:
        return {
            row["filename"]: float(row[column]) if row[column] else math.nan
            for row in csv.DictReader(handle)
        }


# --------------------------------------------------------------------------- grid filters


def test_the_grid_filters_by_a_quality_issue_as_written_in_quality_issues_txt(
    client: TestClient, run_folder: Path, outputs: RunOutputs
) -> None:
    rows = read_filename_table(RunFolder(run_folder).quality_issues)
    dark = sorted(_index(outputs, r[0]) for r in rows if r[1] == "dark")
    assert dark == [_index(outputs, DARK)]
    response = client.get(f"/runs/{RUN}/images?issue=dark")
    assert response.status_code == 200
    assert _tiles(response.text) == dark
    assert "dark" in re.findall(r'data-testid="tile-note">([^<]*)<', response.text)[0]
    flagged_any = sorted({_index(outputs, r[0]) for r in rows})
    assert _tiles(client.get(f"/runs/{RUN}/images?issue=any").text) == flagged_any
    # The issue filter combines with the status tabs: their counts are of the flagged ones.
    selected = [i for i in dark if outputs.samples[i].status == "selected"]
    page = client.get(f"/runs/{RUN}/images?issue=dark&status=selected").text
    assert _tiles(page) == selected
    assert f'data-testid="filter-all" data-count="{len(dark)}"' in page


def test_an_issue_the_run_does_not_flag_is_a_clear_400(client: TestClient) -> None:
    response = client.get(f"/runs/{RUN}/images?issue=sepia")
    assert response.status_code == 400
    assert "flags no &#39;sepia&#39; issue; it has: dark" in response.text


def test_the_grid_filters_near_duplicate_members_and_the_copies_not_kept(
    client: TestClient, run_folder: Path, outputs: RunOutputs
) -> None:
    rows = read_filename_table(RunFolder(run_folder).near_duplicate_filenames)
    members = sorted(_index(outputs, r[1]) for r in rows)
    copies = sorted(_index(outputs, r[1]) for r in rows if r[1] != r[2])
    assert {_index(outputs, COPY), _index(outputs, ORIGINAL)} <= set(members)
    assert _tiles(client.get(f"/runs/{RUN}/images?dup=any").text) == members
    assert _tiles(client.get(f"/runs/{RUN}/images?dup=copies").text) == copies
    assert client.get(f"/runs/{RUN}/images?dup=maybe").status_code == 400


def test_the_grid_sorts_by_a_quality_score_missing_values_last(
    client: TestClient, run_folder: Path, outputs: RunOutputs
) -> None:
    brightness = _quality_column(run_folder, "brightness")
    values = [brightness.get(name, math.nan) for name in outputs.filenames()]
    present = sorted((v, i) for i, v in enumerate(values) if not math.isnan(v))
    missing = [i for i, v in enumerate(values) if math.isnan(v)]
    expected = [i for _, i in present] + missing
    page = client.get(f"/runs/{RUN}/images?sort=brightness&order=asc")
    assert _tiles(page.text) == expected
    assert expected[0] == _index(outputs, DARK)
    descending = sorted(present, key=lambda p: (-p[0], p[1]))
    page = client.get(f"/runs/{RUN}/images?sort=brightness&order=desc")
    assert _tiles(page.text) == [i for _, i in descending] + missing
    assert client.get(f"/runs/{RUN}/images?sort=brightness&order=up").status_code == 400


def test_the_grid_offers_every_score_the_run_holds_and_sorts_by_the_distance_to_the_picks(
    client: TestClient, run_folder: Path, outputs: RunOutputs
) -> None:
    page = client.get(f"/runs/{RUN}/images").text
    offered = re.findall(r'<option value="([^"]+)" title="from ', page)
    with RunFolder(run_folder).quality_csv.open(encoding="utf-8") as handle:
        quality_columns = next(csv.reader(handle))[1:]
    assert offered[: len(quality_columns)] == quality_columns
    assert {"pick_rank", "pick_distance", "nearest_pick_distance"} <= set(offered)

    emb, _, names = RunFolder.read_embeddings(RunFolder(run_folder).normalized_embeddings)
    table = RunFolder(run_folder).read_selection()
    assert table is not None
    picked = [names.index(n) for n, s in zip(table.filenames, table.selected, strict=True) if s]
    nearest = {}
    for row, name in enumerate(names):
        others = [p for p in picked if p != row]
        nearest[outputs.name_index[name]] = float(
            np.linalg.norm(emb[others] - emb[row], axis=1).min()
        )
    expected = sorted(nearest, key=lambda i: (-nearest[i], i))
    shown = _tiles(client.get(f"/runs/{RUN}/images?sort=nearest_pick_distance&order=desc").text)
    assert shown[: len(expected)] == expected


# --------------------------------------------------------------------------- near duplicates


def test_keep_this_one_records_keep_and_drop_tags_and_a_new_choice_replaces_it(
    client: TestClient, run_folder: Path, outputs: RunOutputs
) -> None:
    page = client.get(f"/runs/{RUN}/near-duplicates").text
    rows = read_filename_table(RunFolder(run_folder).near_duplicate_filenames)
    assert f'data-testid="group-count" data-value="{len({r[0] for r in rows})}"' in page
    group = next(r[0] for r in rows if r[1] == COPY)
    copy, original = _index(outputs, COPY), _index(outputs, ORIGINAL)
    assert sorted(_tiles(page.split(f'id="group-{group}"')[1], "dup-member"))[:2] == sorted(
        [copy, original]
    )

    url = f"/runs/{RUN}/near-duplicates/{group}/keep"
    response = client.post(url, data={"index": str(original)}, headers={"Origin": BASE})
    assert response.status_code == 303
    assert response.headers["location"].endswith(f"#group-{group}")
    tags = RunFolder(run_folder).read_tags()
    assert tags == {KEEP_TAG: [ORIGINAL], DROP_TAG: [COPY]}

    client.post(url, data={"index": str(copy)}, headers={"Origin": BASE})
    assert RunFolder(run_folder).read_tags() == {KEEP_TAG: [COPY], DROP_TAG: [ORIGINAL]}
    page = client.get(f"/runs/{RUN}/near-duplicates").text
    assert f'data-index="{copy}" data-choice="keep"' in page
    assert f'data-index="{original}" data-choice="drop"' in page
    exported = client.get(f"/runs/{RUN}/export?tag={DROP_TAG}&format=txt")
    assert exported.text.splitlines() == [ORIGINAL]


def test_keep_this_one_refuses_other_sites_other_groups_and_non_members(
    client: TestClient, run_folder: Path, outputs: RunOutputs
) -> None:
    rows = read_filename_table(RunFolder(run_folder).near_duplicate_filenames)
    group = next(r[0] for r in rows if r[1] == COPY)
    url = f"/runs/{RUN}/near-duplicates/{group}/keep"
    copy = str(_index(outputs, COPY))
    assert (
        client.post(
            url, data={"index": copy}, headers={"Origin": "https://evil.example"}
        ).status_code
        == 403
    )
    dark = _index(outputs, DARK)
    response = client.post(url, data={"index": str(dark)}, headers={"Origin": BASE})
    assert response.status_code == 400
    assert f"sample {dark} is not a member of group {group}" in response.text
    missing = client.post(
        f"/runs/{RUN}/near-duplicates/999/keep", data={"index": copy}, headers={"Origin": BASE}
    )
    assert missing.status_code == 404
    assert RunFolder(run_folder).read_tags() == {}


# --------------------------------------------------------------------------- find similar


def _brute_force_nearest(run_folder: Path, outputs: RunOutputs, name: str, k: int) -> list[int]:
    emb, _, names = RunFolder.read_embeddings(RunFolder(run_folder).normalized_embeddings)
    row = names.index(name)
    distances = np.linalg.norm(emb - emb[row], axis=1)
    order = [r for r in np.lexsort((np.arange(len(names)), distances)) if r != row]
    return [outputs.name_index[names[r]] for r in order[:k]]


def test_find_similar_page_and_json_list_the_nearest_embeddings(
    client: TestClient, run_folder: Path, outputs: RunOutputs
) -> None:
    copy = _index(outputs, COPY)
    expected = _brute_force_nearest(run_folder, outputs, COPY, 5)
    image_page = client.get(f"/runs/{RUN}/images/{copy}").text
    assert f'href="/runs/{RUN}/images/{copy}/similar" data-testid="find-similar"' in image_page
    page = client.get(f"/runs/{RUN}/images/{copy}/similar?k=5")
    assert page.status_code == 200
    assert _tiles(page.text, "similar-result") == expected
    body = client.get(f"/ui-api/runs/{RUN}/similar?index={copy}&k=5").json()
    assert [r["index"] for r in body["results"]] == expected
    distances = [r["distance"] for r in body["results"]]
    assert distances == sorted(distances)
    assert client.get(f"/ui-api/runs/{RUN}/similar?index=99999").status_code == 400
    assert client.get(f"/ui-api/runs/{RUN}/similar?index={copy}&k=0").status_code == 422


def test_an_app_without_an_embedder_says_why_the_upload_search_is_unavailable(
    client: TestClient, run_folder: Path, outputs: RunOutputs
) -> None:
    # create_view_app of selfsup.web has no embedder (selfsup.cli.apps gives one; tested in
    # tests/cli/test_apps.py with a real model).
    copy = _index(outputs, COPY)
    grid = client.get(f"/runs/{RUN}/images").text
    assert f'href="/runs/{RUN}/similar" data-testid="find-similar-upload"' in grid
    for path in (f"/runs/{RUN}/similar", f"/runs/{RUN}/images/{copy}/similar"):
        page = client.get(path)
        assert page.status_code == 200
        assert 'data-testid="similar-upload-unavailable"' in page.text
        assert 'data-testid="similar-upload-form"' not in page.text
    image = (run_folder.parent / "images" / COPY).read_bytes()
    headers = {"Origin": BASE}
    r = client.post(f"/runs/{RUN}/similar", files={"image": ("q.png", image)}, headers=headers)
    assert r.status_code == 409
    assert "without an image embedder" in r.text
    # A bad upload is refused before any embedder is asked: 400 naming the accepted formats.
    r = client.post(
        f"/runs/{RUN}/similar", files={"image": ("q.png", b"not an image")}, headers=headers
    )
    assert r.status_code == 400
    assert "JPEG, PNG, WEBP" in r.text
    assert "q.png" in r.text
    r = client.post(
        f"/runs/{RUN}/similar", files={"image": ("q.png", image)}, data={"k": "0"}, headers=headers
    )
    assert r.status_code == 400
    cross = {"Origin": "http://evil.example"}
    r = client.post(f"/runs/{RUN}/similar", files={"image": ("q.png", image)}, headers=cross)
    assert r.status_code == 403


# --------------------------------------------------------------------------- map colours


def test_the_map_colours_by_folder_issue_tag_and_any_score(
    client: TestClient, run_folder: Path, outputs: RunOutputs
) -> None:
    folder = client.get(f"/ui-api/runs/{RUN}/colour?by=folder").json()
    assert folder["kind"] == "category"
    assert [folder["categories"][c] for c in folder["codes"]] == [
        n.split("/")[0] for n in outputs.filenames()
    ]
    issue = client.get(f"/ui-api/runs/{RUN}/colour?by=issue").json()
    assert issue["categories"][issue["codes"][_index(outputs, DARK)]] == "dark"
    brightness = _quality_column(run_folder, "brightness")
    score = client.get(f"/ui-api/runs/{RUN}/colour?by=score:brightness").json()
    assert score["kind"] == "number"
    for name, value in zip(outputs.filenames(), score["values"], strict=True):
        want = brightness.get(name, math.nan)
        assert (value is None and math.isnan(want)) or value == pytest.approx(want, abs=1e-6)
    client.post(
        f"/ui-api/runs/{RUN}/tag",
        json={"tag": "mine", "indices": [_index(outputs, DARK)]},
        headers={"Origin": BASE},
    )
    tagged = client.get(f"/ui-api/runs/{RUN}/colour?by=tag:mine").json()
    assert [i for i, c in enumerate(tagged["codes"]) if c == 0] == [_index(outputs, DARK)]
    bad = client.get(f"/ui-api/runs/{RUN}/colour?by=score:nope")
    assert bad.status_code == 400
    assert "score:brightness" in bad.json()["error"]


# --------------------------------------------------------------------------- server mode


def test_server_mode_keeps_the_choice_in_the_database_for_its_owner_only(
    run_folder: Path, outputs: RunOutputs, tmp_path: Path
) -> None:
    import shutil

    from selfsup.cli.apps import create_server_app
    from selfsup.server.testing import ServerHarness

    root = tmp_path / "root"
    shutil.copytree(run_folder.parent / "images", root / "images")
    (root / "out").mkdir()
    server = ServerHarness(
        f"sqlite:///{tmp_path / 'server.db'}",
        tmp_path / "data",
        local_roots=(root,),
        app_factory=create_server_app,
    )
    try:
        alice = server.token("alice")
        # The module's run folder may carry tags.json from earlier tests (selfsup view mode).
        tags_before = RunFolder(run_folder).read_tags()
        job, copied = complete_local_run(server, alice, root / "images", root / "out", run_folder)
        rows = read_filename_table(RunFolder(run_folder).near_duplicate_filenames)
        group = next(r[0] for r in rows if r[1] == COPY)
        url = f"/runs/{job}/near-duplicates/{group}/keep"
        original = str(_index(outputs, ORIGINAL))

        with TestClient(server.app, base_url=BASE, follow_redirects=False) as as_bob:
            assert as_bob.post("/login", data={"token": server.token("bob")}).status_code == 303
            refused = as_bob.post(url, data={"index": original}, headers={"Origin": BASE})
            assert refused.status_code == 404
        with TestClient(server.app, base_url=BASE, follow_redirects=False) as as_alice:
            assert as_alice.post("/login", data={"token": alice}).status_code == 303
            kept = as_alice.post(url, data={"index": original}, headers={"Origin": BASE})
            assert kept.status_code == 303
            keep = as_alice.get(f"/runs/{job}/export?tag={KEEP_TAG}&format=txt").text
            drop = as_alice.get(f"/runs/{job}/export?tag={DROP_TAG}&format=txt").text
            assert keep.splitlines() == [ORIGINAL]
            assert COPY in drop.splitlines()
            grid = as_alice.get(f"/runs/{job}/images?issue=dark").text
            assert _tiles(grid) == [_index(outputs, DARK)]
        # The database holds the choice, not the run folder.
        assert RunFolder(copied).read_tags() == tags_before
    finally:
        server.close()


def test_a_damaged_quality_file_costs_the_signal_filters_not_the_grid(
    run_folder: Path, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_folder, copy / RUN)
    quality = RunFolder(copy / RUN).quality_csv
    quality.write_text(quality.read_text(encoding="utf-8") + "short,row\n", encoding="utf-8")
    app = create_view_app([copy / RUN], token=TOKEN, cache_dir=tmp_path / "cache")
    with TestClient(app, base_url=BASE, follow_redirects=False) as c:
        assert c.post("/login", data={"token": TOKEN, "next": "/"}).status_code == 303
        grid = c.get(f"/runs/{RUN}/images")
        assert grid.status_code == 200
        assert "but the header has 8" in grid.text
        sorted_grid = c.get(f"/runs/{RUN}/images?sort=brightness")
        assert sorted_grid.status_code == 409
        assert "quality.csv" in sorted_grid.text
        assert c.get(f"/runs/{RUN}/map").status_code == 200
