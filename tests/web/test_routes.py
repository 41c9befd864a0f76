"""The web app's routes through FastAPI's TestClient, over a real ``selfsup run`` folder.

The run is made once per module by the real pipeline (precomputed embeddings, no training):
four classes of generated shapes, three corrupt files, one exact duplicate, and one image
whose name holds HTML markup. A second folder without report.json plays a run that is still
going. Server mode (other users, a job that is running) uses the server's test harness.
JavaScript behaviour is tested in Chromium (tests/e2e); here: status codes, headers, what
the HTML says (test ids and numbers), and what must never be served.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import time
from collections.abc import Iterator, MutableMapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import anyio
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from _web import build_small_run
from selfsup.web.app import create_view_app
from selfsup.web.outputs import STATUSES, RunOutputs
from selfsup.web.routes import MAX_SAMPLES_PER_REQUEST, PER_PAGE, STATIC_DIR

TOKEN = "test-token-0123456789"
RUN = "small"
RUNNING = "running"
#: A sample name a browser would run as a script if the pages did not escape it.
NASTY = "red_disc/x<script>alert(1)<i>&.png"
BASE = "http://testserver"
SECRET = "top secret outside the run folder\n"


# --------------------------------------------------------------------------- HTML helpers

_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)


class _Element:
    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag = tag
        self.attrs = attrs
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        return " ".join("".join(self.parts).split())


class _Page(HTMLParser):
    """Every element of a page with its attributes and text; fails on unbalanced tags and
    duplicate ids (a cheap HTML5 well-formedness check of the templates)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[_Element] = []
        self._open: list[_Element] = []
        self.ids: set[str] = set()
        self.doctype = False
        self.feed(html)
        self.close()
        assert not self._open, f"unclosed tags: {[e.tag for e in self._open]}"

    def handle_decl(self, decl: str) -> None:
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = _Element(tag, {k: v or "" for k, v in attrs})
        if "id" in element.attrs:
            assert element.attrs["id"] not in self.ids, f"duplicate id {element.attrs['id']}"
            self.ids.add(element.attrs["id"])
        self.elements.append(element)
        if tag not in _VOID:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self._open.pop()

    def handle_endtag(self, tag: str) -> None:
        assert tag not in _VOID, f"end tag of void element <{tag}>"
        assert self._open, f"</{tag}> without an open tag"
        top = self._open.pop()
        assert top.tag == tag, f"</{tag}> closes <{top.tag}>"

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.parts.append(data)

    def by_testid(self, testid: str) -> list[_Element]:
        return [e for e in self.elements if e.attrs.get("data-testid") == testid]

    def one(self, testid: str) -> _Element:
        found = self.by_testid(testid)
        assert len(found) == 1, f"{len(found)} elements with data-testid={testid!r}"
        return found[0]


def _page(client: TestClient, path: str, status: int = 200) -> _Page:
    response = client.get(path)
    assert response.status_code == status, (path, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("text/html")
    page = _Page(response.text)
    assert page.doctype, f"{path}: no <!doctype html>"
    return page


def _number(text: str) -> int:
    return int(re.sub(r"[^\d]", "", text))


def _query(href: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(href).query).items()}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("web_routes")
    out = build_small_run(root, n_per_class=6, n_samples=8, extra_images=[NASTY], out_name=RUN)
    # Bait for path traversal: next to the run folder, and linked from inside it.
    (root / "secret.txt").write_text(SECRET)
    (out / "plots" / "escape.png").symlink_to(root / "secret.txt")
    (out / ".selfsup").mkdir(exist_ok=True)
    (out / ".selfsup" / "hidden.txt").write_text(SECRET)
    # A run still going: its manifest is written, report.json (written last) is not.
    running = root / RUNNING
    (running / "data").mkdir(parents=True)
    shutil.copy(out / "data" / "manifest.jsonl", running / "data" / "manifest.jsonl")
    return out


@pytest.fixture(scope="module")
def app(run_folder: Path) -> FastAPI:
    return create_view_app(
        [run_folder, run_folder.parent / RUNNING],
        token=TOKEN,
        cache_dir=run_folder.parent / "cache",
    )


@pytest.fixture(scope="module")
def outputs(run_folder: Path) -> RunOutputs:
    """The same outputs the app reads, opened independently for expected values."""
    return RunOutputs.open(run_folder, run_folder.parent / "expected-cache")


@pytest.fixture
def anonymous(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        yield client


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A logged-in browser."""
    with TestClient(app, base_url=BASE, follow_redirects=False) as c:
        response = c.post("/login", data={"token": TOKEN, "next": "/"})
        assert response.status_code == 303, response.text
        yield c


def _index_of(outputs: RunOutputs, filename: str) -> int:
    [index] = [s.index for s in outputs.samples if s.filename == filename]
    return index


# --------------------------------------------------------------------------- access


PAGES = [
    "/",
    f"/runs/{RUN}",
    f"/runs/{RUN}/images?status=removed&page=2",
    f"/runs/{RUN}/images/0",
    f"/runs/{RUN}/map",
    f"/runs/{RUNNING}",
]
DATA = [
    f"/runs/{RUN}/thumbs/0",
    f"/runs/{RUN}/preview/0",
    f"/runs/{RUN}/files/report.json",
    f"/runs/{RUN}/files/report.pdf",
    f"/runs/{RUN}/artifacts/x",
    "/ui-api/runs",
    f"/ui-api/runs/{RUN}",
    f"/ui-api/runs/{RUN}/log?offset=0",
    f"/ui-api/runs/{RUN}/projection?method=pca",
]


@pytest.mark.parametrize("path", PAGES)
def test_pages_without_a_session_redirect_to_the_login(anonymous: TestClient, path: str) -> None:
    response = anonymous.get(path)
    assert response.status_code == 303
    location = response.headers["location"]
    assert urlsplit(location).path == "/login"
    assert unquote(_query(location)["next"]) == path


@pytest.mark.parametrize("path", DATA)
def test_files_and_data_without_a_session_are_401(anonymous: TestClient, path: str) -> None:
    response = anonymous.get(path)
    assert response.status_code == 401
    assert "report" not in response.text
    assert "JFIF" not in response.text


def test_posts_without_a_session_are_401(anonymous: TestClient) -> None:
    response = anonymous.post(f"/ui-api/runs/{RUN}/samples", json={"indices": [0]})
    assert response.status_code == 401


def test_a_forged_or_foreign_cookie_is_not_a_session(app: FastAPI) -> None:
    with TestClient(app, base_url=BASE, follow_redirects=False) as c:
        c.cookies.set("selfsup_session", "local.99999999999.forged-signature")
        assert c.get("/").status_code == 303
        assert c.get(f"/runs/{RUN}/thumbs/0").status_code == 401


def test_static_files_need_no_session_and_stay_in_their_folder(anonymous: TestClient) -> None:
    for name, kind in [("app.js", "javascript"), ("map.js", "javascript"), ("style.css", "css")]:
        response = anonymous.get(f"/static/{name}")
        assert response.status_code == 200
        assert kind in response.headers["content-type"]
    assert anonymous.get("/static/%2e%2e/routes.py").status_code == 404
    assert anonymous.get("/static/..%2froutes.py").status_code == 404


# --------------------------------------------------------------------------- login


def test_login_form_has_the_test_ids(anonymous: TestClient) -> None:
    page = _page(anonymous, "/login?next=/runs/small")
    assert page.one("token-input").attrs["name"] == "token"
    assert page.one("login-submit").tag == "button"
    [hidden] = [e for e in page.elements if e.attrs.get("name") == "next"]
    assert hidden.attrs["value"] == "/runs/small"
    assert not page.by_testid("logout")  # nobody is logged in


def test_a_wrong_token_shows_why_and_sets_no_cookie(anonymous: TestClient) -> None:
    response = anonymous.post("/login", data={"token": "wrong", "next": "/runs/small"})
    assert response.status_code == 200
    page = _Page(response.text)
    assert "wrong token" in page.one("login-error").text
    assert "set-cookie" not in response.headers
    assert anonymous.get("/").status_code == 303  # still logged out
    empty = anonymous.post("/login", data={"token": "  ", "next": "/"})
    assert "Enter a token" in _Page(empty.text).one("login-error").text


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        (f"/runs/{RUN}/images?status=selected", f"/runs/{RUN}/images?status=selected"),
        ("//evil.example/phish", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("evil.example", "/"),
        ("", "/"),
    ],
)
def test_login_goes_to_next_only_on_this_site(
    anonymous: TestClient, next_url: str, expected: str
) -> None:
    response = anonymous.post("/login", data={"token": TOKEN, "next": next_url})
    assert response.status_code == 303
    assert response.headers["location"] == expected
    assert "selfsup_session=" in response.headers["set-cookie"]
    assert anonymous.get("/").status_code == 200


def test_login_page_of_a_logged_in_browser_goes_on_to_next(client: TestClient) -> None:
    response = client.get("/login?next=//evil.example")
    assert (response.status_code, response.headers["location"]) == (303, "/")


def test_token_in_the_url_logs_in_and_leaves_the_address_bar(anonymous: TestClient) -> None:
    response = anonymous.get(f"/?token={TOKEN}")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    assert "selfsup_session=" in response.headers["set-cookie"]
    assert TOKEN not in response.headers["set-cookie"]  # the cookie holds no token
    page = _page(anonymous, "/")
    assert page.by_testid("run-row")


def test_a_wrong_token_in_the_url_shows_the_login_form(anonymous: TestClient) -> None:
    response = anonymous.get("/?token=nope")
    assert response.status_code == 200
    assert "wrong token" in _Page(response.text).one("login-error").text
    assert "set-cookie" not in response.headers


def test_logout_forgets_the_session(client: TestClient) -> None:
    page = _page(client, "/")
    assert page.one("logout").tag == "button"
    assert page.one("viewer-name").text
    response = client.post("/logout", headers={"Origin": BASE})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert 'selfsup_session=""' in response.headers["set-cookie"]
    assert client.get("/").status_code == 303


def test_an_oversized_login_body_is_413(anonymous: TestClient) -> None:
    response = anonymous.post(
        "/login",
        content=b"token=" + b"x" * (2 * 1024**2),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert "1048576" in response.json()["error"]


def test_a_logged_out_cookie_replayed_is_refused(app: FastAPI) -> None:
    with TestClient(app, base_url=BASE, follow_redirects=False) as browser:
        assert browser.post("/login", data={"token": TOKEN}).status_code == 303
        stolen = browser.cookies["selfsup_session"]
        with TestClient(app, base_url=BASE, follow_redirects=False) as other:
            assert other.post("/login", data={"token": TOKEN}).status_code == 303
            assert browser.post("/logout", headers={"Origin": BASE}).status_code == 303
            replay = TestClient(app, base_url=BASE, follow_redirects=False)
            replay.cookies.set("selfsup_session", stolen)
            assert replay.get("/ui-api/runs").status_code == 401
            assert replay.get("/").status_code == 303
            assert other.get("/ui-api/runs").status_code == 200  # its own session lives on


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://testserver.evil"])
def test_cross_site_posts_are_refused(client: TestClient, origin: str) -> None:
    response = client.post("/logout", headers={"Origin": origin})
    assert response.status_code == 403
    assert "set-cookie" not in response.headers
    assert client.get("/").status_code == 200  # still logged in
    samples = client.post(
        f"/ui-api/runs/{RUN}/samples", json={"indices": [0]}, headers={"Origin": origin}
    )
    assert samples.status_code == 403
    assert samples.json()["code"] == "FORBIDDEN"
    login = client.post("/login", data={"token": TOKEN}, headers={"Origin": origin})
    assert login.status_code == 403
    fetched = client.post("/logout", headers={"Sec-Fetch-Site": "cross-site"})
    assert fetched.status_code == 403


# --------------------------------------------------------------------------- runs


def test_runs_list_shows_both_runs_with_their_states(client: TestClient) -> None:
    page = _page(client, "/")
    [dataset] = page.by_testid("dataset-row")
    assert dataset.attrs["data-dataset-id"] == "local"
    rows = {r.attrs["data-run-id"]: r for r in page.by_testid("run-row")}
    assert set(rows) == {RUN, RUNNING}
    assert rows[RUN].attrs["data-final"] == "true"
    assert rows[RUNNING].attrs["data-final"] == "false"
    states = [e.text for e in page.by_testid("run-state")]
    assert sorted(states) == ["COMPLETED", "RUNNING"]
    links = {e.attrs["href"] for e in page.by_testid("run-link")}
    assert links == {f"/runs/{RUN}", f"/runs/{RUNNING}"}


def test_ui_api_runs_gives_states_for_polling(client: TestClient) -> None:
    response = client.get("/ui-api/runs")
    assert response.headers["cache-control"] == "no-store"
    runs = {r["id"]: r for r in response.json()["runs"]}
    assert runs[RUN]["state"] == "COMPLETED"
    assert runs[RUN]["is_final"] is True
    assert runs[RUN]["tone"] == "ok"
    assert runs[RUNNING]["is_final"] is False
    assert runs[RUNNING]["tone"] == "live"
    one = client.get(f"/ui-api/runs/{RUNNING}").json()
    assert one == runs[RUNNING]
    log = client.get(f"/ui-api/runs/{RUNNING}/log?offset=0").json()
    assert log["text"] == ""
    assert log["run"]["state"] == "RUNNING"
    assert client.get(f"/ui-api/runs/{RUN}/log?offset=-1").status_code == 422


def test_run_page_shows_the_report_numbers(client: TestClient, run_folder: Path) -> None:
    report = json.loads((run_folder / "report.json").read_text())
    page = _page(client, f"/runs/{RUN}")
    assert page.one("run-state").text == "COMPLETED"
    page.one("run-log")
    ints = {k: v for k, v in report["counts"].items() if type(v) is int}
    assert len(ints) >= 10
    for key, value in ints.items():
        element = page.one(f"count-{key}")
        assert _number(element.text) == value, key
    # The corrupt_reasons dict is not a count tile.
    assert not page.by_testid("count-corrupt_reasons")
    assert page.one("savings").text
    assert page.one("selection-summary").text
    assert f"{report['savings']['samples_saved']:,}" in page.one("savings").text

    plots = [e.attrs["src"] for e in page.by_testid("plot")]
    assert plots == [f"/runs/{RUN}/files/{p}" for p in report["plots"]["files"]]
    for src in plots:
        image = client.get(src)
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/png"

    downloads = [e.attrs["href"] for e in page.by_testid("download")]
    assert downloads[0] == f"/runs/{RUN}/files/report.pdf"
    assert f"/runs/{RUN}/files/data/manifest.jsonl" in downloads
    assert not any(".selfsup" in d for d in downloads)
    assert page.one("images-link").attrs["href"] == f"/runs/{RUN}/images"
    assert page.one("map-link").attrs["href"] == f"/runs/{RUN}/map"


def test_run_page_shows_the_collapse_figures(client: TestClient, run_folder: Path) -> None:
    health = json.loads((run_folder / "report.json").read_text())["statistics"]["embedding_health"]
    page = _page(client, f"/runs/{RUN}")
    text = page.one("embedding-health").text
    assert f"{health['effective_rank']:,.3f}" in text
    assert f"{health['std_of_l2_normalized_times_sqrt_dim']:,.3f}" in text
    # The small run's clustered embeddings are healthy: no warning.
    assert health["collapsed"] is False
    assert not page.by_testid("collapse-warning")


def test_a_run_without_outputs_shows_state_and_log_and_409s_the_rest(
    client: TestClient,
) -> None:
    page = _page(client, f"/runs/{RUNNING}")
    assert page.one("run-state").text == "RUNNING"
    page.one("run-log")
    assert "appear when the run completes" in page.one("outputs-unavailable").text
    assert not page.by_testid("count-n_selected")
    assert not page.by_testid("downloads")  # listed only beside a report
    body = next(e for e in page.elements if e.tag == "body")
    assert body.attrs["data-final"] == "false"
    assert body.attrs["data-has-report"] == "false"

    for path in (f"/runs/{RUNNING}/images", f"/runs/{RUNNING}/map", f"/runs/{RUNNING}/images/0"):
        refused = _page(client, path, status=409)
        assert "report.json not written yet" in refused.one("error-message").text
    api = client.get(f"/ui-api/runs/{RUNNING}/projection")
    assert api.status_code == 409
    assert api.json()["code"] == "OUTPUTS_UNAVAILABLE"
    assert "report.json" in api.json()["error"]
    for path in (f"/runs/{RUNNING}/thumbs/0", f"/runs/{RUNNING}/files/data/manifest.jsonl"):
        assert client.get(path).status_code == 409


def test_unknown_runs_are_404_in_the_form_of_each_route(client: TestClient) -> None:
    page = _page(client, "/runs/nope", status=404)
    assert page.one("error-title").text == "Not found"
    _page(client, "/runs/nope/images", status=404)
    _page(client, "/runs/nope/map", status=404)
    api = client.get("/ui-api/runs/nope")
    assert api.status_code == 404
    assert set(api.json()) == {"code", "error"}
    assert client.get("/ui-api/runs/nope/projection").json()["code"] == "NOT_FOUND"
    for path in ("/runs/nope/thumbs/0", "/runs/nope/files/report.json"):
        response = client.get(path)
        assert (response.status_code, response.headers["content-type"]) == (
            404,
            "text/plain; charset=utf-8",
        )
    assert client.get(f"/runs/{RUN}/artifacts/1").status_code == 404  # folder runs have none


# --------------------------------------------------------------------------- grid


def test_grid_filters_match_the_run(client: TestClient, outputs: RunOutputs) -> None:
    counts = outputs.counts()
    for status in (None, *STATUSES):
        key = status or "all"
        query = f"?status={status}" if status else ""
        page = _page(client, f"/runs/{RUN}/images{query}")
        tabs = {k: _number(page.one(f"filter-{k}").text) for k in ("all", *STATUSES)}
        assert tabs == counts
        assert page.one(f"filter-{key}").attrs.get("aria-current") == "page"
        assert _number(page.one("grid-total").text) == counts[key]
        tiles = page.by_testid("tile")
        assert len(tiles) == min(counts[key], PER_PAGE)
        expected = outputs.page(status, 0, PER_PAGE)[0]
        assert [int(t.attrs["data-index"]) for t in tiles] == [s.index for s in expected]
        assert {t.attrs["data-status"] for t in tiles} <= ({status} if status else set(STATUSES))
    assert counts["corrupt"] == 3
    assert counts["duplicate"] == 1


def test_grid_tiles_are_lazy_sized_images_linking_to_the_sample(
    client: TestClient, outputs: RunOutputs
) -> None:
    page = _page(client, f"/runs/{RUN}/images?status=selected")
    tiles = page.by_testid("tile")
    imgs = [e for e in page.elements if e.tag == "img" and "/thumbs/" in e.attrs.get("src", "")]
    assert len(imgs) == len(tiles) == outputs.counts()["selected"]
    for pos, (tile, img) in enumerate(zip(tiles, imgs, strict=True)):
        index = tile.attrs["data-index"]
        assert img.attrs["src"] == f"/runs/{RUN}/thumbs/{index}"
        assert img.attrs["loading"] == "lazy"
        assert img.attrs["decoding"] == "async"
        assert img.attrs["width"] == img.attrs["height"] == "192"
        href = tile.attrs["href"]
        assert urlsplit(href).path == f"/runs/{RUN}/images/{index}"
        assert _query(href) == {"status": "selected", "pos": str(pos)}


def test_grid_pages_cover_every_sample_once(client: TestClient, outputs: RunOutputs) -> None:
    per_page = 7
    n = outputs.counts()["removed"]
    n_pages = -(-n // per_page)
    seen: list[int] = []
    path: str | None = f"/runs/{RUN}/images?status=removed&per_page={per_page}"
    number = 0
    while path is not None:
        number += 1
        page = _page(client, path)
        assert page.one("page-info").text == f"Page {number} of {n_pages}"
        seen += [int(t.attrs["data-index"]) for t in page.by_testid("tile")]
        assert bool(page.by_testid("prev-page")) == (number > 1)
        nxt = page.by_testid("next-page")
        path = nxt[0].attrs["href"] if nxt else None
        if path is not None:
            assert _query(path)["per_page"] == str(per_page)
    assert number == n_pages
    assert seen == [s.index for s in outputs.page("removed", 0, n)[0]]
    # A page past the end (a stale link) shows the last page.
    last = _page(client, f"/runs/{RUN}/images?status=removed&per_page={per_page}&page=999")
    assert last.one("page-info").text == f"Page {n_pages} of {n_pages}"


@pytest.mark.parametrize(
    ("query", "name", "accepted"),
    [
        ("page=abc", "page", "1 to 1000000000"),
        ("page=0", "page", "1 to 1000000000"),
        ("page=1e30", "page", "1 to 1000000000"),
        ("page=--5", "page", "1 to 1000000000"),
        ("per_page=-5", "per_page", "1 to 500"),
        ("per_page=" + "9" * 40, "per_page", "1 to 500"),
    ],
)
def test_grid_numbers_out_of_range_are_400_naming_the_parameter(
    client: TestClient, query: str, name: str, accepted: str
) -> None:
    response = client.get(f"/runs/{RUN}/images?{query}")
    assert response.status_code == 400, response.text
    message = _Page(response.text).one("error-message").text
    assert repr(name) in message
    assert accepted in message


@pytest.mark.parametrize("pos", ["abc", "-1", "1e30", "9" * 40])
def test_a_bad_position_on_the_sample_page_is_400(client: TestClient, pos: str) -> None:
    response = client.get(f"/runs/{RUN}/images/0?pos={pos}")
    assert response.status_code == 400, response.text
    assert "'pos'" in _Page(response.text).one("error-message").text


@pytest.mark.parametrize("offset", ["1e30", "9" * 31, str(2**63), "-1", "x"])
def test_log_offsets_out_of_range_are_422_naming_the_parameter(
    client: TestClient, offset: str
) -> None:
    response = client.get(f"/ui-api/runs/{RUNNING}/log?offset={offset}")
    assert response.status_code == 422, response.text
    assert "offset" in response.json()["error"]


def test_grid_search_filters_by_file_name(client: TestClient, outputs: RunOutputs) -> None:
    page = _page(client, f"/runs/{RUN}/images?q=RED_DISC&status=removed")
    expected, total = outputs.page("removed", 0, PER_PAGE, "red_disc")
    assert _number(page.one("grid-total").text) == total > 0
    assert [int(t.attrs["data-index"]) for t in page.by_testid("tile")] == [
        s.index for s in expected
    ]
    # Tab counts are the matches per status, and keep the query.
    selected = outputs.page("selected", 0, 1, "red_disc")[1]
    assert _number(page.one("filter-selected").text) == selected
    assert _query(page.one("filter-selected").attrs["href"]) == {
        "status": "selected",
        "q": "RED_DISC",
    }
    assert page.one("search-input").attrs["value"] == "RED_DISC"
    nothing = _page(client, f"/runs/{RUN}/images?q=no-such-name")
    assert not nothing.by_testid("tile")
    assert nothing.one("grid-empty").text


def test_an_unknown_filter_is_a_400_naming_the_choices(client: TestClient) -> None:
    page = _page(client, f"/runs/{RUN}/images?status=kept", status=400)
    assert "selected, removed, corrupt, duplicate" in page.one("error-message").text


# --------------------------------------------------------------------------- one sample


def test_sample_page_explains_and_lists_neighbours(client: TestClient, outputs: RunOutputs) -> None:
    removed = outputs.page("removed", 0, 1)[0][0]
    page = _page(client, f"/runs/{RUN}/images/{removed.index}")
    assert page.one("preview").attrs["src"] == f"/runs/{RUN}/preview/{removed.index}"
    assert page.one("sample-filename").text == removed.filename
    assert page.one("sample-status").text == "removed"
    explanation = outputs.explain(removed.index)
    assert page.one("explanation-headline").text == explanation.headline
    for line in explanation.details:
        assert " ".join(line.split()) in page.one("explanation").text
    related = [int(e.attrs["data-index"]) for e in page.by_testid("related-link")]
    assert related == [i for _, i in explanation.related]
    neighbours = outputs.neighbours(removed.index, k=12)
    tiles = page.by_testid("neighbour")
    assert [int(t.attrs["data-index"]) for t in tiles] == [nb.sample.index for nb in neighbours]
    for tile, nb in zip(tiles, neighbours, strict=True):
        assert float(tile.attrs["data-distance"]) == pytest.approx(nb.distance)
        assert f"{nb.distance:.3f}" in tile.text
    assert f"{removed.width} × {removed.height} px" in page.one("sample-size").text


def test_corrupt_sample_page_says_why_and_has_no_neighbours(
    client: TestClient, outputs: RunOutputs
) -> None:
    corrupt = outputs.page("corrupt", 0, 1)[0][0]
    page = _page(client, f"/runs/{RUN}/images/{corrupt.index}")
    assert page.one("explanation-headline").text.startswith("Corrupt")
    assert not page.by_testid("neighbour")
    assert "no embedding" in page.one("no-neighbours").text


def test_previous_and_next_walk_the_filtered_list(client: TestClient, outputs: RunOutputs) -> None:
    selected, total = outputs.page("selected", 0, 3)
    middle = selected[1]
    page = _page(client, f"/runs/{RUN}/images/{middle.index}?status=selected&pos=1")
    prev_href = page.one("prev-sample").attrs["href"]
    next_href = page.one("next-sample").attrs["href"]
    assert urlsplit(prev_href).path.endswith(f"/images/{selected[0].index}")
    assert urlsplit(next_href).path.endswith(f"/images/{selected[2].index}")
    assert _query(prev_href) == {"status": "selected", "pos": "0"}
    assert _query(next_href) == {"status": "selected", "pos": "2"}
    assert "2 of " in page.one("metadata").text
    assert f"of {total}" in page.one("metadata").text
    first = _page(client, f"/runs/{RUN}/images/{selected[0].index}?status=selected&pos=0")
    assert not first.by_testid("prev-sample")
    assert _query(first.one("back-to-grid").attrs["href"]) == {"status": "selected"}
    # A stale position (the list changed) falls back to plain index order.
    stale = _page(client, f"/runs/{RUN}/images/{middle.index}?status=selected&pos=0")
    assert urlsplit(stale.one("next-sample").attrs["href"]).path.endswith(
        f"/images/{middle.index + 1}"
    )


@pytest.mark.parametrize("index", ["9999", "-1", "abc", "1e3", "0x1"])
def test_unknown_samples_are_404(client: TestClient, index: str) -> None:
    _page(client, f"/runs/{RUN}/images/{index}", status=404)
    assert client.get(f"/runs/{RUN}/thumbs/{index}").status_code == 404
    assert client.get(f"/runs/{RUN}/preview/{index}").status_code == 404


# --------------------------------------------------------------------------- thumbnails


def test_thumbnails_are_cached_jpegs_with_an_etag(client: TestClient, outputs: RunOutputs) -> None:
    sample = outputs.page("selected", 0, 1)[0][0]
    response = client.get(f"/runs/{RUN}/thumbs/{sample.index}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"] == "private, max-age=86400"
    assert response.content[:3] == b"\xff\xd8\xff"
    etag = response.headers["etag"]
    again = client.get(f"/runs/{RUN}/thumbs/{sample.index}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    preview = client.get(f"/runs/{RUN}/preview/{sample.index}")
    assert preview.status_code == 200
    assert preview.headers["content-type"] == "image/jpeg"
    assert preview.headers["etag"] != etag


def test_an_unreadable_image_gets_a_placeholder_logged_once(
    client: TestClient, outputs: RunOutputs, caplog: pytest.LogCaptureFixture
) -> None:
    corrupt = outputs.page("corrupt", 0, 1)[0][0]
    caplog.set_level(logging.DEBUG, logger="selfsup.web.routes")
    for _ in range(3):
        response = client.get(f"/runs/{RUN}/thumbs/{corrupt.index}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/svg+xml"
        assert response.content.startswith(b"<svg")
        message = response.headers["x-selfsup-thumbnail-error"]
        assert corrupt.source.split("/")[-1] in message
    logged = [r for r in caplog.records if f"sample {corrupt.index} " in r.getMessage()]
    assert len(logged) == 1


# --------------------------------------------------------------------------- output files


def test_output_files_are_served_inline_only_when_images(client: TestClient) -> None:
    plot = client.get(f"/runs/{RUN}/files/plots/scatter_pca.png")
    assert plot.status_code == 200
    assert plot.headers["content-type"] == "image/png"
    assert "content-disposition" not in plot.headers
    for path, kind in [("report.pdf", "application/pdf"), ("report.json", "application/json")]:
        response = client.get(f"/runs/{RUN}/files/{path}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(kind)
        assert response.headers["content-disposition"].startswith("attachment")
        assert response.headers["x-content-type-options"] == "nosniff"
    etag = plot.headers["etag"]
    cached = client.get(f"/runs/{RUN}/files/plots/scatter_pca.png", headers={"If-None-Match": etag})
    assert cached.status_code == 304


TRAVERSALS = [
    "%2e%2e/secret.txt",
    "%2E%2E/%2E%2E/etc/passwd",
    "plots/%2e%2e/%2e%2e/secret.txt",
    "..%2fsecret.txt",
    "plots%2f..%2f..%2fsecret.txt",
    "%2fetc%2fpasswd",
    "/etc/passwd",
    "..%5csecret.txt",
    "plots%5c..%5c..%5csecret.txt",
    "%00report.json",
    "report.json%00.png",
    ".selfsup/hidden.txt",
    "%2eselfsup/hidden.txt",
    "plots/escape.png",
    "plots//scatter_pca.png",
    "",
    "plots",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_file_paths_never_leave_the_run_folder(client: TestClient, path: str) -> None:
    response = client.get(f"/runs/{RUN}/files/{path}")
    assert response.status_code == 404, (path, response.status_code)
    assert SECRET not in response.text
    assert "root:" not in response.text


def _raw_get(app: FastAPI, raw_path: bytes, cookie: str) -> tuple[int, bytes]:
    """One GET with ``raw_path`` exactly as sent (dot segments kept: HTTP clients would
    normalise ``..`` away before the request leaves, a hostile one does not)."""
    sent: dict[str, Any] = {"status": 0, "body": b""}
    received = {"request": False}
    done = anyio.Event()

    async def receive() -> dict[str, Any]:
        if not received["request"]:
            received["request"] = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # the client hangs up only once the response is complete
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
        elif message["type"] == "http.response.body":
            sent["body"] += message.get("body", b"")
            if not message.get("more_body", False):
                done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(raw_path.decode("ascii")),
        "raw_path": raw_path,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"cookie", cookie.encode())],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
        "state": {},
    }

    async def call() -> None:
        await app(scope, receive, send)

    anyio.run(call)
    return int(sent["status"]), bytes(sent["body"])


@pytest.mark.parametrize(
    "raw",
    [
        b"../secret.txt",
        b"../../../../../../etc/passwd",
        b"plots/../../secret.txt",
        b"data/../../secret.txt",
        b"./report.json",
    ],
)
def test_literal_dot_segments_are_refused(app: FastAPI, client: TestClient, raw: bytes) -> None:
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    status, body = _raw_get(app, b"/runs/" + RUN.encode() + b"/files/" + raw, cookie)
    assert status == 404
    assert SECRET.encode() not in body
    assert b"root:" not in body
    assert _raw_get(app, f"/runs/{RUN}/files/report.json".encode(), cookie)[0] == 200


def test_output_pages_ask_the_backend_for_the_run_once(
    client: TestClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Grid, sample and map pages take the run from the opened view: one backend call,
    not a run() then a view() querying twice (the server backend opens a session each)."""
    backend = app.state.web
    calls: list[str] = []
    for name in ("run", "view"):
        method = getattr(backend, name)

        def counted(*args: Any, _name: str = name, _method: Any = method) -> Any:
            calls.append(_name)
            return _method(*args)

        monkeypatch.setattr(backend, name, counted)
    for path in (f"/runs/{RUN}/images", f"/runs/{RUN}/images/0", f"/runs/{RUN}/map"):
        calls.clear()
        page = _page(client, path)
        assert calls == ["view"], (path, calls)
        assert RUN in " ".join(e.attrs.get("href", "") for e in page.elements)


# --------------------------------------------------------------------------- map and JSON


def test_map_page_has_the_canvas_tools_and_data_urls(client: TestClient) -> None:
    page = _page(client, f"/runs/{RUN}/map")
    assert page.one("map-canvas").tag == "canvas"
    for testid in ("tool-box", "tool-lasso", "map-selection", "map-selection-count", "map-tooltip"):
        page.one(testid)
    frame = page.one("map")
    assert frame.attrs["data-projection-url"] == f"/ui-api/runs/{RUN}/projection?method=pca"
    assert frame.attrs["data-samples-url"] == f"/ui-api/runs/{RUN}/samples"
    assert frame.attrs["data-statuses"] == ",".join(STATUSES)
    legend = [page.one(f"legend-{s}") for s in STATUSES]
    assert [e.attrs["data-status"] for e in legend] == list(STATUSES)
    # umap=false: PCA only, so there is no method switch.
    assert not page.by_testid("method-switch")
    scripts = [e.attrs.get("src", "") for e in page.elements if e.tag == "script"]
    assert any("/static/map.js" in s for s in scripts)
    # ?v= is the file's content hash: a new map.js after an upgrade is a new URL.
    digest = hashlib.sha256((STATIC_DIR / "map.js").read_bytes()).hexdigest()[:10]
    assert f"/static/map.js?v={digest}" in scripts
    _page(client, f"/runs/{RUN}/map?method=umap", status=404)


def test_projection_json_matches_the_outputs(client: TestClient, outputs: RunOutputs) -> None:
    response = client.get(f"/ui-api/runs/{RUN}/projection?method=pca")
    assert response.status_code == 200
    data = response.json()
    projection = outputs.projection("pca")
    assert data["method"] == "pca"
    assert data["description"] == projection.description
    assert data["statuses"] == list(STATUSES)
    assert data["index"] == projection.indices.tolist()
    assert len(data["x"]) == len(data["y"]) == len(data["status"]) == len(data["index"])
    span = float(np.ptp(projection.xy))
    np.testing.assert_allclose(data["x"], projection.xy[:, 0], atol=span * 1e-4)
    np.testing.assert_allclose(data["y"], projection.xy[:, 1], atol=span * 1e-4)
    assert [STATUSES[c] for c in data["status"]] == [
        outputs.sample(i).status for i in data["index"]
    ]
    default = client.get(f"/ui-api/runs/{RUN}/projection")
    assert default.content == response.content
    etag = response.headers["etag"]
    revalidated = client.get(f"/ui-api/runs/{RUN}/projection", headers={"If-None-Match": etag})
    assert revalidated.status_code == 304
    unknown = client.get(f"/ui-api/runs/{RUN}/projection?method=tsne")
    assert unknown.status_code == 404
    assert "available: pca" in unknown.json()["error"]


def test_samples_endpoint_names_the_selected_points(
    client: TestClient, outputs: RunOutputs
) -> None:
    asked = [5, 0, 3, 5]
    response = client.post(
        f"/ui-api/runs/{RUN}/samples", json={"indices": asked}, headers={"Origin": BASE}
    )
    assert response.status_code == 200
    assert response.json() == [
        {"index": i, "filename": outputs.sample(i).filename, "status": outputs.sample(i).status}
        for i in asked
    ]
    no_origin = client.post(f"/ui-api/runs/{RUN}/samples", json={"indices": [1]})
    assert no_origin.status_code == 200
    out_of_range = client.post(f"/ui-api/runs/{RUN}/samples", json={"indices": [0, 10**6]})
    assert out_of_range.status_code == 400
    assert out_of_range.json()["code"] == "BAD_REQUEST"
    assert str(10**6) in out_of_range.json()["error"]
    too_many = client.post(
        f"/ui-api/runs/{RUN}/samples", json={"indices": [0] * (MAX_SAMPLES_PER_REQUEST + 1)}
    )
    assert too_many.status_code == 422
    extra = client.post(f"/ui-api/runs/{RUN}/samples", json={"indices": [0], "all": True})
    assert extra.status_code == 422


# --------------------------------------------------------------------------- markup safety


def test_file_names_are_escaped_everywhere(client: TestClient, outputs: RunOutputs) -> None:
    index = _index_of(outputs, NASTY)
    paths = [
        f"/runs/{RUN}/images?q={quote('<script>')}",
        f"/runs/{RUN}/images/{index}",
        f"/runs/{RUN}/images?q={quote('<script>alert')}&status={outputs.sample(index).status}",
    ]
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200
        assert "<script>alert" not in response.text
        assert "&lt;script&gt;alert(1)&lt;i&gt;&amp;.png" in response.text
        page = _Page(response.text)
        assert any(NASTY in e.text for e in page.elements), path
        assert all(e.attrs.get("src") for e in page.elements if e.tag == "script")
    grid = _Page(client.get(paths[0]).text)
    [tile] = grid.by_testid("tile")
    assert tile.attrs["title"] == NASTY  # attribute escaped, parsed back intact
    samples = client.post(f"/ui-api/runs/{RUN}/samples", json={"indices": [index]})
    assert samples.json()[0]["filename"] == NASTY


@pytest.mark.parametrize("path", [*PAGES, "/login", "/runs/nope"])
def test_pages_are_csp_friendly_and_well_formed(
    client: TestClient, anonymous: TestClient, path: str
) -> None:
    response = (anonymous if path == "/login" else client).get(path)
    assert response.status_code in (200, 404)
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    page = _Page(response.text)  # balanced tags, unique ids
    assert page.doctype
    for element in page.elements:
        assert "style" not in element.attrs, (path, element.tag)
        assert not [a for a in element.attrs if a.startswith("on")], (path, element.attrs)
        if element.tag == "script":
            assert element.attrs["src"].startswith("/static/")
            assert not element.text
        for attr in ("src", "href"):
            url = element.attrs.get(attr, "")
            assert not url.startswith(("http:", "https:", "//")), url  # no CDN, no externals
    langs = [e.attrs.get("lang") for e in page.elements if e.tag == "html"]
    assert langs == ["en"]


# --------------------------------------------------------------------------- server mode


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    from selfsup.cli.apps import create_server_app
    from selfsup.server.testing import ServerHarness

    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    (root / "out").mkdir()
    harness = ServerHarness(
        f"sqlite:///{tmp_path / 'server.db'}",
        tmp_path / "data",
        local_roots=(root,),
        app_factory=create_server_app,
    )
    yield harness
    harness.close()


def _browser(app: FastAPI, token: str) -> TestClient:
    client = TestClient(app, base_url=BASE, follow_redirects=False)
    assert client.post("/login", data={"token": token}).status_code == 303
    return client


def test_server_runs_of_other_users_are_404_and_a_running_job_shows_its_log(
    server: Any,
) -> None:
    alice = server.token("alice")
    api = server.client(alice)
    api.create_dataset("streets")
    root = server.settings.local_roots[0]
    api.set_local_config(resource_path=str(root / "images"), purpose="INPUT")
    api.set_local_config(resource_path=str(root / "out"), purpose="LIGHTLY")
    job = api.schedule_compute_worker_run(worker_config={"stopping_condition": {"n_samples": 2}})
    workers = server.worker_client(alice)
    worker_id = workers.register("w1").id
    claim = workers.claim(worker_id)
    assert claim is not None
    workers.set_state(worker_id, claim.run.id, "TRAINING", "epoch 1 of 5")
    workers.append_log(worker_id, claim.run.id, "loading <images>\nstep 1 — ok\n")

    as_alice = _browser(server.app, alice)
    index = _page(as_alice, "/")
    assert index.one("dataset-name").text == "streets"
    assert [r.attrs["data-run-id"] for r in index.by_testid("run-row")] == [job]
    page = _page(as_alice, f"/runs/{job}")
    assert page.one("run-state").text == "TRAINING"
    assert page.one("run-message").text == "epoch 1 of 5"
    assert page.one("run-log").text == "loading <images> step 1 — ok"
    body = next(e for e in page.elements if e.tag == "body")
    offset = int(body.attrs["data-log-offset"])
    assert offset == len("loading <images>\nstep 1 — ok\n".encode())
    assert page.one("outputs-unavailable")
    _page(as_alice, f"/runs/{job}/images", status=409)
    assert as_alice.get(f"/runs/{job}/thumbs/0").status_code == 409
    workers.append_log(worker_id, claim.run.id, "step 2\n")
    log = as_alice.get(f"/ui-api/runs/{job}/log?offset={offset}").json()
    assert log["text"] == "step 2\n"
    assert log["run"]["state"] == "TRAINING"

    as_bob = _browser(server.app, server.token("bob"))
    assert not _page(as_bob, "/").by_testid("run-row")
    _page(as_bob, f"/runs/{job}", status=404)
    _page(as_bob, f"/runs/{job}/images", status=404)
    assert as_bob.get(f"/ui-api/runs/{job}").status_code == 404
    assert as_bob.get(f"/ui-api/runs/{job}/log?offset=0").status_code == 404
    assert as_bob.get("/ui-api/runs").json() == {"runs": []}
    for path in ("thumbs/0", "preview/0", "files/report.json", "artifacts/1"):
        assert as_bob.get(f"/runs/{job}/{path}").status_code == 404, path
    refused = as_bob.post(f"/ui-api/runs/{job}/samples", json={"indices": [0]})
    assert refused.status_code == 404


def test_server_logout_ends_the_session_for_a_replayed_cookie(server: Any) -> None:
    browser = _browser(server.app, server.token("alice"))
    stolen = browser.cookies["selfsup_session"]
    assert browser.get("/ui-api/runs").status_code == 200
    assert browser.post("/logout", headers={"Origin": BASE}).status_code == 303
    replay = TestClient(server.app, base_url=BASE, follow_redirects=False)
    replay.cookies.set("selfsup_session", stolen)
    assert replay.get("/ui-api/runs").status_code == 401


def test_server_ignores_a_token_in_the_url(server: Any) -> None:
    # A link carrying someone else's token must not log the browser into their account.
    anonymous = TestClient(server.app, base_url=BASE, follow_redirects=False)
    response = anonymous.get(f"/?token={server.token('mallory')}")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
    assert "set-cookie" not in response.headers


def test_an_unwritable_thumbnail_cache_gives_placeholders_not_errors(
    run_folder: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    app = create_view_app([run_folder], token=TOKEN, cache_dir=blocker)
    with TestClient(app, base_url=BASE, follow_redirects=False) as c:
        assert c.post("/login", data={"token": TOKEN}).status_code == 303
        run_id = c.get("/ui-api/runs").json()["runs"][0]["id"]
        response = c.get(f"/runs/{run_id}/thumbs/0")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("image/svg+xml")
        assert response.headers["x-selfsup-thumbnail-error"]


# --------------------------------------------------------------------------- scale


@pytest.mark.slow
def test_a_grid_page_of_a_large_run_renders_one_page_only(tmp_path: Path) -> None:
    """A 5,000-sample synthetic run: a grid page holds 200 tiles and answers fast once the
    folder is open (the 100,000-sample figure is measured by benchmarks/web_grid.py)."""
    from _web import build_synthetic_run

    out = build_synthetic_run(tmp_path, n=5_000, dim=16)
    app = create_view_app([out], token=TOKEN, cache_dir=tmp_path / "cache")
    with TestClient(app, base_url=BASE, follow_redirects=False) as c:
        assert c.post("/login", data={"token": TOKEN}).status_code == 303
        run_id = c.get("/ui-api/runs").json()["runs"][0]["id"]
        c.get(f"/runs/{run_id}/images")  # opens the folder (builds its caches)
        start = time.perf_counter()
        response = c.get(f"/runs/{run_id}/images?status=removed&page=20")
        elapsed = time.perf_counter() - start
    page = _Page(response.text)
    assert len(page.by_testid("tile")) == PER_PAGE
    assert page.one("page-info").text.startswith("Page 20 of ")
    assert len(response.content) < 200_000
    assert elapsed < 2.0, f"grid page took {elapsed:.2f} s"


def test_run_page_gives_the_run_s_own_times_and_figures(run_folder: Path, tmp_path: Path) -> None:
    # Issue 12: the app showed the folder's modification time as the start, "0.000 kg" where
    # the PDF said "0.5 g", and no step times. Now: report.json's times, the PDF's units.
    from selfsup.utils.report_units import format_mass

    folder = tmp_path / RUN
    shutil.copytree(run_folder, folder, symlinks=True)
    report = json.loads((folder / "report.json").read_text())
    report["job"]["started_at"] = "2021-03-04T05:06:07+0000"
    report["job"]["finished_at"] = "2021-03-04T05:16:39+0100"
    report["job"]["step_durations_s"] = {"check": 1.5, "train": 300.0, "embed": 2.25}
    report["savings"]["kg_co2e_saved"] = 0.0005
    (folder / "report.json").write_text(json.dumps(report))
    app = create_view_app([folder], token=TOKEN, cache_dir=tmp_path / "cache")
    with TestClient(app, base_url=BASE, follow_redirects=False) as c:
        assert c.post("/login", data={"token": TOKEN, "next": "/"}).status_code == 303
        page = _page(c, f"/runs/{RUN}")
        listed = _page(c, "/")
    assert page.one("run-started").text.strip() == "2021-03-04 05:06 UTC"
    assert page.one("run-ended").text.strip() == "2021-03-04 04:16 UTC"
    assert listed.one("run-started").text.strip() == "2021-03-04 05:06 UTC"
    assert "check 1.5 s · train 5 min 00 s · embed 2.2 s" in page.one("run-job").text
    savings = page.one("savings").text
    assert format_mass(0.0005) == "500 mg CO2e"
    assert "500 mg CO2e" in savings
