"""Tags and exports of the web app: the folder backend's tags.json, the tag and export
routes over a real ``selfsup run`` folder, and what the exports hold.

The server backend's tags (the database) are tested in tests/server/test_web_backend.py;
tagging in the browser in tests/e2e/test_view_app.py.
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from _web import build_small_run, complete_local_run
from selfsup.apphelpers.web_backend import InvalidTag, WebNotFound, check_tag
from selfsup.curation.manifest import read_manifest
from selfsup.runfolder import RunFolder
from selfsup.server.testing import ServerHarness
from selfsup.web.app import create_view_app
from selfsup.web.folder_backend import FolderBackend
from selfsup.web.outputs import RunOutputs
from selfsup.web.tags import CSV_COLUMNS, TagStorageError

TOKEN = "test-token-0123456789"
RUN = "small"
BASE = "http://testserver"


# --------------------------------------------------------------------------- tag names


@pytest.mark.parametrize("good", ["keep", "Keep_2", "a", "v1.2-final", "x" * 64])
def test_valid_tag_names_pass(good: str) -> None:
    assert check_tag(good) == good


@pytest.mark.parametrize("bad", ["", " keep", "keep\n", "_x", ".hidden", "x" * 65, "a,b", "é"])
def test_invalid_tag_names_say_what_is_accepted(bad: str) -> None:
    with pytest.raises(InvalidTag, match=r"1 to 64 ASCII letters, digits"):
        check_tag(bad)


# --------------------------------------------------------------------------- folder backend


def _backend(*folders: Path) -> FolderBackend:
    return FolderBackend(list(folders), token=TOKEN)


def test_folder_tags_live_in_the_run_folders_tags_json(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    viewer = backend.login(TOKEN)
    run_id = backend.runs(viewer)[0].id
    assert backend.list_tags(viewer, run_id) == {}
    assert backend.tag(viewer, run_id, ["b.png", "a.png"], "keep") == 2
    assert backend.tag(viewer, run_id, ["a.png", "c.png"], "keep") == 1
    assert backend.tag(viewer, run_id, ["a.png"], "blurry") == 1
    assert backend.list_tags(viewer, run_id) == {"blurry": 1, "keep": 3}
    assert RunFolder(tmp_path).read_tags() == {
        "blurry": ["a.png"],
        "keep": ["a.png", "b.png", "c.png"],
    }
    assert backend.untag(viewer, run_id, ["a.png", "nope.png"], "blurry") == 1
    assert backend.list_tags(viewer, run_id) == {"keep": 3}

    # A new process (a restart of selfsup view) reads them back from the folder.
    again = _backend(tmp_path)
    assert again.names_with_tag(again.login(TOKEN), run_id, "keep") == ["a.png", "b.png", "c.png"]


def test_folder_tags_refuse_bad_names_and_unknown_runs(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    viewer = backend.login(TOKEN)
    run_id = backend.runs(viewer)[0].id
    with pytest.raises(InvalidTag, match="'no spaces'"):
        backend.tag(viewer, run_id, ["a.png"], "no spaces")
    with pytest.raises(WebNotFound):
        backend.tag(viewer, "other", ["a.png"], "keep")
    assert not RunFolder(tmp_path).tags_json.exists()


def test_concurrent_tagging_loses_nothing(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    viewer = backend.login(TOKEN)
    run_id = backend.runs(viewer)[0].id

    def tag(k: int) -> None:
        for i in range(20):
            backend.tag(viewer, run_id, [f"{k}-{i}.png"], "many")

    threads = [threading.Thread(target=tag, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert backend.list_tags(viewer, run_id) == {"many": 80}


def test_a_damaged_tags_file_is_reported_not_overwritten(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    viewer = backend.login(TOKEN)
    run_id = backend.runs(viewer)[0].id
    RunFolder(tmp_path).tags_json.write_text("{broken", encoding="utf-8")
    with pytest.raises(TagStorageError, match=r"tags\.json is not readable JSON"):
        backend.tag(viewer, run_id, ["a.png"], "keep")
    assert RunFolder(tmp_path).tags_json.read_text(encoding="utf-8") == "{broken"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_run_folder_says_tags_cannot_be_kept(tmp_path: Path) -> None:
    backend = _backend(tmp_path)
    viewer = backend.login(TOKEN)
    run_id = backend.runs(viewer)[0].id
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(TagStorageError, match="must be writable"):
            backend.tag(viewer, run_id, ["a.png"], "keep")
    finally:
        tmp_path.chmod(0o755)


# --------------------------------------------------------------------------- routes


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_small_run(tmp_path_factory.mktemp("web_tags"), n_per_class=4, out_name=RUN)


def _app(run_folder: Path) -> FastAPI:
    return create_view_app([run_folder], token=TOKEN, cache_dir=run_folder.parent / "cache")


@pytest.fixture(scope="module")
def app(run_folder: Path) -> FastAPI:
    return _app(run_folder)


@pytest.fixture(scope="module")
def outputs(run_folder: Path) -> RunOutputs:
    return RunOutputs.open(run_folder, run_folder.parent / "expected-cache")


def _login(app: FastAPI) -> TestClient:
    client = TestClient(app, base_url=BASE, follow_redirects=False)
    assert client.post("/login", data={"token": TOKEN, "next": "/"}).status_code == 303
    return client


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with _login(app) as c:
        yield c


def _post(client: TestClient, path: str, body: dict[str, object]) -> dict[str, object]:
    response = client.post(path, json=body, headers={"Origin": BASE})
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()
    return data


def test_tag_untag_list_and_persist_across_restarts(
    client: TestClient, run_folder: Path, outputs: RunOutputs
) -> None:
    chosen = [1, 3, 5]
    data = _post(client, f"/ui-api/runs/{RUN}/tag", {"tag": "keep", "indices": chosen})
    assert data["changed"] == 3
    assert {"name": "keep", "count": 3} in data["tags"]  # type: ignore[operator]
    data = _post(client, f"/ui-api/runs/{RUN}/untag", {"tag": "keep", "indices": [3]})
    assert data["changed"] == 1
    expected = sorted(outputs.samples[i].filename for i in (1, 5))
    assert RunFolder(run_folder).read_tags()["keep"] == expected
    # A new app over the same folder (selfsup view restarted) has the same tags.
    with _login(_app(run_folder)) as again:
        listed = again.get(f"/ui-api/runs/{RUN}/tags").json()["tags"]
        assert {"name": "keep", "count": 2} in listed
        assert again.get(f"/ui-api/runs/{RUN}/tags/keep").json() == {
            "tag": "keep",
            "indices": [1, 5],
        }


def test_the_grid_filters_by_tag_with_counts_per_status(
    client: TestClient, outputs: RunOutputs
) -> None:
    chosen = [0, 2, 4, 6]
    _post(client, f"/ui-api/runs/{RUN}/tag", {"tag": "grid-filter", "indices": chosen})
    html = client.get(f"/runs/{RUN}/images?tag=grid-filter").text
    shown = [int(i) for i in _attr_values(html, "data-index")]
    assert shown == chosen
    statuses = [outputs.samples[i].status for i in chosen]
    for status in set(statuses):
        page = client.get(f"/runs/{RUN}/images?tag=grid-filter&status={status}").text
        assert [int(i) for i in _attr_values(page, "data-index")] == [
            i for i in chosen if outputs.samples[i].status == status
        ]
    assert 'data-tag="grid-filter"' in html
    # The search within a tag matches case-insensitively, as the plain grid's does.
    needle = outputs.samples[chosen[1]].filename.rsplit("/", 1)[-1].upper()
    searched = client.get(f"/runs/{RUN}/images", params={"tag": "grid-filter", "q": needle})
    found = [int(i) for i in _attr_values(searched.text, "data-index")]
    assert chosen[1] in found
    assert found == [i for i in chosen if needle.lower() in outputs.samples[i].filename.lower()]
    bad = client.get(f"/runs/{RUN}/images?tag=no%20spaces")
    assert bad.status_code == 400
    assert "letters, digits" in bad.text


def _attr_values(html: str, attr: str) -> list[str]:
    import re

    return re.findall(rf'data-testid="tile" {attr}="([^"]*)"', html)


def test_tag_requests_are_checked(client: TestClient, outputs: RunOutputs) -> None:
    url = f"/ui-api/runs/{RUN}/tag"
    bad_name = client.post(url, json={"tag": "a b", "indices": [0]}, headers={"Origin": BASE})
    assert bad_name.status_code == 400
    assert bad_name.json()["code"] == "INVALID_TAG"
    n = len(outputs.samples)
    bad_index = client.post(url, json={"tag": "ok", "indices": [n]}, headers={"Origin": BASE})
    assert bad_index.status_code == 400
    assert f"{n} is not a sample" in bad_index.json()["error"]
    unknown = client.post(
        "/ui-api/runs/nope/tag", json={"tag": "ok", "indices": [0]}, headers={"Origin": BASE}
    )
    assert unknown.status_code == 404
    assert client.get("/ui-api/runs/nope/tags").status_code == 404


@pytest.mark.parametrize("origin", ["http://evil.example", "null"])
def test_cross_site_tagging_and_exports_are_refused(
    client: TestClient, run_folder: Path, origin: str
) -> None:
    for path, body in (
        (f"/ui-api/runs/{RUN}/tag", {"tag": "evil", "indices": [0]}),
        (f"/ui-api/runs/{RUN}/untag", {"tag": "evil", "indices": [0]}),
        (f"/ui-api/runs/{RUN}/export", {"indices": [0], "format": "txt"}),
    ):
        response = client.post(path, json=body, headers={"Origin": origin})
        assert response.status_code == 403, path
        assert response.json()["code"] == "FORBIDDEN"
    assert "evil" not in RunFolder(run_folder).read_tags()


def test_without_a_session_tags_and_exports_are_401(app: FastAPI) -> None:
    with TestClient(app, base_url=BASE, follow_redirects=False) as anonymous:
        assert anonymous.get(f"/ui-api/runs/{RUN}/tags").status_code == 401
        assert anonymous.get(f"/runs/{RUN}/export?tag=keep").status_code == 401
        tagged = anonymous.post(
            f"/ui-api/runs/{RUN}/tag", json={"tag": "x", "indices": [0]}, headers={"Origin": BASE}
        )
        assert tagged.status_code == 401


def test_exports_of_a_tag_hold_its_samples(
    client: TestClient, run_folder: Path, outputs: RunOutputs
) -> None:
    chosen = [2, 7, 9]
    _post(client, f"/ui-api/runs/{RUN}/tag", {"tag": "export-me", "indices": chosen})
    _post(client, f"/ui-api/runs/{RUN}/tag", {"tag": "also", "indices": [7]})
    names = [outputs.samples[i].filename for i in chosen]

    txt = client.get(f"/runs/{RUN}/export?tag=export-me&format=txt")
    assert txt.status_code == 200
    assert txt.headers["content-disposition"] == 'attachment; filename="small-export-me.txt"'
    assert txt.text.splitlines() == names

    coco = client.get(f"/runs/{RUN}/export?tag=export-me&format=coco").json()
    records = {r.filename: r for r in read_manifest(RunFolder(run_folder).manifest).records}
    assert coco == {
        "images": [
            {
                "id": i,
                "file_name": outputs.samples[i].filename,
                "width": records[outputs.samples[i].filename].width,
                "height": records[outputs.samples[i].filename].height,
            }
            for i in chosen
        ]
    }

    rows = list(
        csv.DictReader(io.StringIO(client.get(f"/runs/{RUN}/export?tag=export-me&format=csv").text))
    )
    assert [r["filename"] for r in rows] == names
    assert tuple(rows[0]) == CSV_COLUMNS
    table = RunFolder(run_folder).read_selection()
    assert table is not None
    with_selection = 0
    for row in rows:
        record = records[row["filename"]]
        assert row["status"] == outputs.samples[int(row["index"])].status
        assert float(row["brightness"]) == pytest.approx(record.brightness, rel=1e-6)
        if row["filename"] in table.filenames:
            with_selection += 1
            j = table.filenames.index(row["filename"])
            assert row["selected"] == ("1" if table.selected[j] else "0")
            assert (row["rank"] or "0") == str(int(table.rank[j]))
            assert float(row["pick_distance"] or "nan") == pytest.approx(
                float(table.pick_distance[j]), rel=1e-6, nan_ok=True
            )
        else:
            assert row["selected"] == row["rank"] == row["pick_distance"] == ""
        # Other tests of this module tag the same folder: only these two tags are known here.
        tags = row["tags"].split(";")
        assert tags == sorted(tags)
        assert "export-me" in tags
        assert ("also" in tags) == (row["index"] == "7")
    assert with_selection > 0  # the selection's columns were compared at all

    bad = client.get(f"/runs/{RUN}/export?tag=export-me&format=xml")
    assert bad.status_code == 400
    assert "txt, csv, coco" in bad.json()["error"]


def test_exports_of_a_selection(client: TestClient, outputs: RunOutputs) -> None:
    response = client.post(
        f"/ui-api/runs/{RUN}/export",
        json={"indices": [4, 1, 4], "format": "txt"},
        headers={"Origin": BASE},
    )
    assert response.status_code == 200
    assert "selection" in response.headers["content-disposition"]
    assert response.text.splitlines() == [outputs.samples[i].filename for i in (1, 4)]
    coco = client.post(
        f"/ui-api/runs/{RUN}/export",
        json={"indices": [1], "format": "coco"},
        headers={"Origin": BASE},
    ).json()
    assert coco["images"][0]["file_name"] == outputs.samples[1].filename
    assert json.dumps(coco)  # valid JSON with no NaN


def test_a_damaged_tags_file_is_a_409_naming_it(client: TestClient, run_folder: Path) -> None:
    tags = RunFolder(run_folder).tags_json
    saved = tags.read_bytes() if tags.exists() else None
    tags.write_text("[]", encoding="utf-8")
    try:
        response = client.post(
            f"/ui-api/runs/{RUN}/tag", json={"tag": "x", "indices": [0]}, headers={"Origin": BASE}
        )
        assert response.status_code == 409
        assert "tags.json" in response.json()["error"]
        page = client.get(f"/runs/{RUN}/images")  # the grid still works
        assert page.status_code == 200
        # Filtering by a tag cannot: the file is at fault (409), not the tag (400).
        filtered = client.get(f"/runs/{RUN}/images?tag=x")
        assert filtered.status_code == 409
        assert "tags.json" in filtered.text
    finally:
        if saved is None:
            tags.unlink()
        else:
            tags.write_bytes(saved)


# --------------------------------------------------------------------------- server mode


@pytest.mark.slow
def test_server_mode_tags_go_to_the_database_and_stay_with_the_owner(
    run_folder: Path, tmp_path: Path
) -> None:
    import shutil

    from selfsup.cli.apps import create_server_app

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
        job, copied = complete_local_run(server, alice, root / "images", root / "out", run_folder)

        with _login_as(server, alice) as as_alice:
            data = _post(as_alice, f"/ui-api/runs/{job}/tag", {"tag": "db", "indices": [0, 2]})
            assert data["changed"] == 2
            assert as_alice.get(f"/ui-api/runs/{job}/tags/db").json()["indices"] == [0, 2]
            listed = as_alice.get(f"/runs/{job}/export?tag=db&format=txt").text.splitlines()
            assert len(listed) == 2
        # The database holds them, not the run folder (which may hold tags of selfsup view).
        assert "db" not in RunFolder(copied).read_tags()

        with _login_as(server, server.token("bob")) as as_bob:
            assert as_bob.get(f"/ui-api/runs/{job}/tags").status_code == 404
            assert as_bob.get(f"/ui-api/runs/{job}/tags/db").status_code == 404
            assert as_bob.get(f"/runs/{job}/export?tag=db").status_code == 404
            for path in ("tag", "untag"):
                refused = as_bob.post(
                    f"/ui-api/runs/{job}/{path}",
                    json={"tag": "db", "indices": [0]},
                    headers={"Origin": BASE},
                )
                assert refused.status_code == 404
        with _login_as(server, alice) as as_alice:
            assert as_alice.get(f"/ui-api/runs/{job}/tags").json()["tags"] == [
                {"name": "db", "count": 2}
            ]
    finally:
        server.close()


def _login_as(server: ServerHarness, token: str) -> TestClient:
    client = TestClient(server.app, base_url=BASE, follow_redirects=False)
    assert client.post("/login", data={"token": token}).status_code == 303
    return client
