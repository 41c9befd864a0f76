"""``selfsup view`` in a real browser: the web app over the output folder of a real run.

The run (tests/_web.py ``build_small_run``) has 48 usable images in four visually distinct
classes, each one tight embedding cluster, plus three corrupt files and one exact duplicate;
10 are selected. Every expectation is computed here from the run's own files (report.json,
the manifest, the filename lists, normalized_embeddings.csv), never from the app.
"""

from __future__ import annotations

import http.client
import itertools
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest

from _web import (
    SMALL_CLASSES,
    SMALL_CORRUPT,
    SMALL_CORRUPT_FOLDER,
    SMALL_DUPLICATE,
    SMALL_DUPLICATE_OF,
    OpenPage,
    WebPage,
    build_small_run,
    number,
    report_counts,
)
from selfsup.curation.manifest import read_filename_list, read_manifest
from selfsup.server.testing import LiveServer
from selfsup.utils.io import load_embeddings
from selfsup.web.routes import NEIGHBOURS

# Any test of this module alone takes > 5 s: the module's fixture runs the pipeline and
# starts a browser.
pytestmark = pytest.mark.slow

TOKEN = "e2e-view-token-7f3a9c"
RUN = "out"  # the run id of a folder is its name made URL-safe
STATUSES = ("selected", "removed", "corrupt", "duplicate")


@dataclass(frozen=True)
class SmallRun:
    """The run folder and what its files say (indices are manifest ids)."""

    folder: Path
    report: dict[str, Any]
    filenames: list[str]
    status: list[str]
    by_name: dict[str, int]

    def indices(self, status: str) -> set[int]:
        return {i for i, s in enumerate(self.status) if s == status}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> SmallRun:
    folder = build_small_run(tmp_path_factory.mktemp("view"))
    # Never served: a link inside the run folder pointing outside it, internal state and a
    # hidden file.
    os.symlink("/etc/passwd", folder / "escape_link.txt")
    (folder / ".selfsup").mkdir(exist_ok=True)
    (folder / ".selfsup" / "internal.txt").write_text("internal\n")
    (folder / ".hidden.txt").write_text("hidden\n")
    records = read_manifest(folder / "data" / "manifest.jsonl").records
    selected = set(
        read_filename_list(folder / "filenames" / "sampled_filenames_excluding_datapool.txt")
    )
    status = [
        r.status if r.status != "ok" else ("selected" if r.filename in selected else "removed")
        for r in records
    ]
    filenames = [r.filename for r in records]
    report = json.loads((folder / "report.json").read_text())
    return SmallRun(folder, report, filenames, status, {n: i for i, n in enumerate(filenames)})


@pytest.fixture(scope="module")
def app_url(small_run: SmallRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from selfsup.web.app import create_view_app

    cache = tmp_path_factory.mktemp("view-cache")
    with LiveServer(create_view_app([small_run.folder], token=TOKEN, cache_dir=cache)) as live:
        yield live.url


@pytest.fixture
def page(open_page: OpenPage, app_url: str) -> WebPage:
    """A logged-in tab."""
    tab = open_page(app_url)
    tab.login(TOKEN)
    return tab


def _tiles(tab: WebPage, testid: str = "tile") -> list[tuple[int, str]]:
    """``(data-index, data-status)`` of every tile on the page, in page order."""
    found: list[list[str]] = tab.page.eval_on_selector_all(
        f"[data-testid={testid}]", "els => els.map(e => [e.dataset.index, e.dataset.status])"
    )
    return [(int(i), s) for i, s in found]


# --------------------------------------------------------------------------- login and access


def test_login_form_refuses_a_wrong_token_then_lists_the_run(
    open_page: OpenPage, app_url: str
) -> None:
    tab = open_page(app_url)
    tab.goto("/login")
    tab.shot("login")
    tab.allow_console_error(r"status of 401")  # the refused login answers 401, on purpose
    assert "wrong token" in tab.refused_token("not-the-token")
    assert urlsplit(tab.page.url).path == "/login"

    tab.submit_token(TOKEN)
    assert urlsplit(tab.page.url).path == "/"
    rows = tab.page.get_by_test_id("run-row")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-run-id") == RUN
    assert rows.first.get_by_test_id("run-state").get_attribute("data-state") == "COMPLETED"
    tab.shot("runs")

    with tab.page.expect_navigation():
        tab.page.get_by_test_id("logout").click()
    assert urlsplit(tab.page.url).path == "/login"
    tab.goto(f"/runs/{RUN}")  # the cookie is gone: back to the login
    assert urlsplit(tab.page.url).path == "/login"


def test_the_url_selfsup_view_prints_logs_in(open_page: OpenPage, app_url: str) -> None:
    tab = open_page(app_url)
    tab.goto(f"/?token={TOKEN}")
    assert urlsplit(tab.page.url).path == "/"
    assert "token" not in tab.page.url  # not left in the address bar or history
    assert tab.page.get_by_test_id("run-row").count() == 1


def test_pages_without_a_session_go_to_the_login_and_come_back(
    open_page: OpenPage, app_url: str
) -> None:
    tab = open_page(app_url)
    tab.goto(f"/runs/{RUN}/images?status=removed")
    parts = urlsplit(tab.page.url)
    assert parts.path == "/login"
    assert "next=%2Fruns%2Fout%2Fimages%3Fstatus%3Dremoved" in parts.query
    tab.submit_token(TOKEN)
    assert tab.page.url == tab.url(f"/runs/{RUN}/images?status=removed")


@pytest.mark.parametrize(
    "path",
    [
        f"/runs/{RUN}/thumbs/0",
        f"/runs/{RUN}/preview/0",
        f"/runs/{RUN}/files/report.pdf",
        f"/runs/{RUN}/files/report.json",
        "/ui-api/runs",
        f"/ui-api/runs/{RUN}/projection?method=pca",
    ],
)
def test_files_and_data_without_a_session_are_401(
    open_page: OpenPage, app_url: str, path: str
) -> None:
    request = open_page(app_url).page.context.request  # a fresh context: no cookie
    response = request.get(app_url + path)
    assert response.status == 401, path
    forged = request.get(app_url + path, headers={"Cookie": "selfsup_session=local.9999999999.x"})
    assert forged.status == 401, path


# --------------------------------------------------------------------------- run page


def test_run_page_shows_the_report_counts_plots_and_downloads(
    page: WebPage, small_run: SmallRun
) -> None:
    page.goto(f"/runs/{RUN}")
    assert page.shown_counts() == report_counts(small_run.report)

    plots = page.page.get_by_test_id("plot")
    files = small_run.report["plots"]["files"]
    assert plots.count() == len(files)
    sources = [str(p.get_attribute("src")) for p in plots.all()]
    assert [s.removeprefix(f"/runs/{RUN}/files/") for s in sources] == files
    page.wait_images_loaded("[data-testid=plot]")

    links = page.download_report_pdf()

    # Every listed file downloads, byte for byte; nothing internal or outside is listed.
    relative_paths = [p.relative_to(small_run.folder) for p in small_run.folder.rglob("*")]
    on_disk = {
        r.as_posix()
        for r in relative_paths
        if (small_run.folder / r).is_file()
        and not (small_run.folder / r).is_symlink()
        and not any(part.startswith(".") for part in r.parts)
    }
    listed: set[str] = set()
    for link in links.all():
        href = str(link.get_attribute("href"))
        relative = href.removeprefix(f"/runs/{RUN}/files/")
        response = page.page.request.get(page.url(href))
        assert response.status == 200, href
        assert response.body() == (small_run.folder / relative).read_bytes(), href
        listed.add(relative)
    assert listed == on_disk
    page.shot()


# --------------------------------------------------------------------------- grid


def test_grid_filters_by_status(page: WebPage, small_run: SmallRun) -> None:
    counts = small_run.report["counts"]
    expected_totals = {
        "all": counts["n_samples_found"],
        "selected": counts["n_selected"],
        "removed": counts["n_removed"],
        "corrupt": counts["n_corrupt"],
        "duplicate": counts["n_duplicates"],
    }
    assert sum(expected_totals[s] for s in STATUSES) == expected_totals["all"]

    page.goto(f"/runs/{RUN}/images")
    for key, total in expected_totals.items():
        assert number(str(page.page.get_by_test_id(f"filter-{key}").inner_text())) == total
    assert number(page.page.get_by_test_id("grid-total").inner_text()) == expected_totals["all"]
    tiles = _tiles(page)
    assert [i for i, _ in tiles] == list(range(len(small_run.filenames)))
    assert [s for _, s in tiles] == small_run.status
    page.wait_images_loaded("[data-testid=tile] img")
    page.shot("all")

    for status in STATUSES:
        with page.page.expect_navigation():
            page.page.get_by_test_id(f"filter-{status}").click()
        assert f"status={status}" in page.page.url
        assert (
            number(page.page.get_by_test_id("grid-total").inner_text()) == expected_totals[status]
        )
        tiles = _tiles(page)
        assert {s for _, s in tiles} == {status}
        assert {i for i, _ in tiles} == small_run.indices(status)
        if status == "selected":
            page.wait_images_loaded("[data-testid=tile] img")
            page.shot("selected")


def test_grid_pages_and_search(page: WebPage, small_run: SmallRun) -> None:
    n = len(small_run.filenames)
    page.goto(f"/runs/{RUN}/images?per_page=20")
    seen: list[int] = []
    for page_number in range(1, math.ceil(n / 20) + 1):
        assert number(page.page.get_by_test_id("page-info").inner_text().split("of")[0]) == (
            page_number
        )
        indices = [i for i, _ in _tiles(page)]
        assert len(indices) == min(20, n - len(seen))
        seen += indices
        if page_number * 20 < n:
            with page.page.expect_navigation():
                page.page.get_by_test_id("next-page").click()
    assert seen == list(range(n))
    assert page.page.get_by_test_id("next-page").count() == 0
    with page.page.expect_navigation():
        page.page.get_by_test_id("prev-page").click()
    assert [i for i, _ in _tiles(page)] == list(range(20, 40))

    page.goto(f"/runs/{RUN}/images?status=removed")
    page.page.get_by_test_id("search-input").fill("STRIPES")  # case-insensitive substring
    with page.page.expect_navigation():
        page.page.get_by_test_id("search-submit").click()
    expected = {
        i for i in small_run.indices("removed") if "stripes" in small_run.filenames[i].lower()
    }
    assert {i for i, _ in _tiles(page)} == expected
    assert number(page.page.get_by_test_id("grid-total").inner_text()) == len(expected)


def test_thumbnails_are_cached_jpegs(page: WebPage, small_run: SmallRun) -> None:
    index = small_run.by_name[f"{SMALL_CLASSES[1]}/img_03.png"]
    url = page.url(f"/runs/{RUN}/thumbs/{index}")
    first = page.page.request.get(url)
    assert first.status == 200
    assert first.headers["content-type"] == "image/jpeg"
    assert first.body()[:3] == b"\xff\xd8\xff"
    assert "max-age" in first.headers["cache-control"]
    etag = first.headers["etag"]
    again = page.page.request.get(url, headers={"If-None-Match": etag})
    assert again.status == 304


# --------------------------------------------------------------------------- detail page


def _expected_neighbours(small_run: SmallRun, index: int, k: int) -> list[int]:
    """The ``k`` nearest embedded samples of ``index`` by L2 distance of the normalised
    embeddings, computed here from normalized_embeddings.csv."""
    emb, _, names = load_embeddings(small_run.folder / "data" / "normalized_embeddings.csv")
    row = names.index(small_run.filenames[index])
    d = np.linalg.norm(emb - emb[row], axis=1)
    d[row] = np.inf
    return [small_run.by_name[names[j]] for j in np.argsort(d, kind="stable")[:k]]


def test_detail_page_explains_and_shows_neighbours(page: WebPage, small_run: SmallRun) -> None:
    page.goto(f"/runs/{RUN}/images?status=selected")
    first = page.page.get_by_test_id("tile").first
    index = int(str(first.get_attribute("data-index")))
    with page.page.expect_navigation():
        first.click()
    assert urlsplit(page.page.url).path == f"/runs/{RUN}/images/{index}"
    assert page.page.get_by_test_id("sample-filename").inner_text() == small_run.filenames[index]
    page.wait_images_loaded("[data-testid=preview]")
    headline = page.page.get_by_test_id("explanation-headline").inner_text()
    assert headline.startswith("Selected")
    assert page.page.get_by_test_id("explanation-details").locator("li").count() >= 1

    neighbours = _tiles(page, "neighbour")
    n_embedded = len(small_run.indices("selected") | small_run.indices("removed"))
    assert len(neighbours) == min(NEIGHBOURS, n_embedded - 1)
    assert [i for i, _ in neighbours] == _expected_neighbours(small_run, index, len(neighbours))
    assert [s for _, s in neighbours] == [small_run.status[i] for i, _ in neighbours]
    distances = [
        float(str(d))
        for d in page.page.eval_on_selector_all(
            "[data-testid=neighbour]", "els => els.map(e => e.dataset.distance)"
        )
    ]
    assert distances == sorted(distances)
    # One tight cluster per class: the nearest neighbours are the same shape.
    cls = small_run.filenames[index].split("/")[0]
    assert small_run.filenames[neighbours[0][0]].split("/")[0] == cls
    page.wait_images_loaded("[data-testid=neighbour] img")
    page.shot()


def test_detail_pages_of_removed_duplicate_and_corrupt_samples(
    page: WebPage, small_run: SmallRun
) -> None:
    removed = min(small_run.indices("removed"))
    page.goto(f"/runs/{RUN}/images/{removed}")
    assert page.page.get_by_test_id("explanation-headline").inner_text().startswith("Removed")

    duplicate = small_run.by_name[SMALL_DUPLICATE]
    page.goto(f"/runs/{RUN}/images/{duplicate}")
    assert "duplicate" in page.page.get_by_test_id("explanation-headline").inner_text().lower()
    related = page.page.get_by_test_id("related-link")
    assert small_run.by_name[SMALL_DUPLICATE_OF] in [
        int(str(r.get_attribute("data-index"))) for r in related.all()
    ]
    assert page.page.get_by_test_id("no-neighbours").count() == 1
    page.shot("duplicate")

    corrupt = small_run.by_name[f"{SMALL_CORRUPT_FOLDER}/{SMALL_CORRUPT[0]}"]
    page.goto(f"/runs/{RUN}/images/{corrupt}")
    assert page.page.get_by_test_id("explanation-headline").inner_text().startswith("Corrupt")
    assert "truncated" in page.page.get_by_test_id("explanation").inner_text().lower()


# --------------------------------------------------------------------------- file paths


def _raw_get(app_url: str, path: str, cookie: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (no client-side normalisation of ``..`` or ``%2e``)."""
    parts = urlsplit(app_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.putheader("Cookie", cookie)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


ESCAPES = [
    "/files/..%2f..%2fetc%2fpasswd",
    "/files/..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/files/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/files/plots/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/files/../../../../etc/passwd",
    "/files//etc/passwd",
    "/files/%2fetc%2fpasswd",
    "/files/..%5c..%5c..%5cetc%5cpasswd",
    "/files/escape_link.txt",
    "/files/.selfsup/internal.txt",
    "/files/.hidden.txt",
    "/files/data/../.hidden.txt",
    "/files/report.json%00.png",
    "/files/data",
    "/thumbs/-1",
    "/thumbs/100000",
    "/thumbs/..%2f..%2fetc%2fpasswd",
    "/preview/1e3",
]


def test_paths_from_the_url_never_leave_the_run_folder(
    page: WebPage, app_url: str, small_run: SmallRun
) -> None:
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.page.context.cookies())
    status, body = _raw_get(app_url, f"/runs/{RUN}/files/report.json", cookie)
    assert status == 200
    assert json.loads(body) == small_run.report
    for escape in ESCAPES:
        status, body = _raw_get(app_url, f"/runs/{RUN}{escape}", cookie)
        assert status == 404, (escape, status, body[:200])
        assert b"root:" not in body
    for run_escape in ("/runs/..%2f..%2fetc/files/passwd", "/runs/%2e%2e/files/report.json"):
        status, body = _raw_get(app_url, run_escape, cookie)
        assert status == 404, (run_escape, status, body[:200])


# --------------------------------------------------------------------------- embedding map


def _inside_polygon(x: float, y: float, polygon: list[tuple[float, float]]) -> bool:
    """Even-odd rule: does a ray from (x, y) to the right cross the polygon's edges an odd
    number of times."""
    inside = False
    for (ax, ay), (bx, by) in zip(polygon, polygon[-1:] + polygon[:-1], strict=True):
        if (ay > y) != (by > y) and x < (bx - ax) * (y - ay) / (by - ay) + ax:
            inside = not inside
    return inside


def _distance_to_segment(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    t = float(np.clip(np.dot(p - a, b - a) / max(float(np.dot(b - a, b - a)), 1e-12), 0, 1))
    return float(np.linalg.norm(p - (a + t * (b - a))))


def _drag(tab: WebPage, origin: tuple[float, float], path: list[tuple[float, float]]) -> None:
    """Press at ``path[0]``, move along ``path`` in small steps, release at its end
    (coordinates relative to the canvas at ``origin``)."""
    mouse = tab.page.mouse
    ox, oy = origin
    mouse.move(ox + path[0][0], oy + path[0][1])
    mouse.down()
    for (ax, ay), (bx, by) in itertools.pairwise(path):
        steps = max(1, int(math.hypot(bx - ax, by - ay) / 10))
        mouse.move(ox + bx, oy + by, steps=steps)
    mouse.up()


def _selection(tab: WebPage, expected: set[int], small_run: SmallRun) -> None:
    """The side panel lists exactly ``expected`` (count, indices, file names)."""
    count = tab.page.get_by_test_id("map-selection-count")
    tab.page.wait_for_function(
        "n => document.querySelector('[data-testid=map-selection-count]').textContent.trim()"
        " === String(n) && document.querySelectorAll('[data-testid=map-selected-file]').length"
        " === n",
        arg=len(expected),
    )
    assert number(count.inner_text()) == len(expected)
    files = tab.page.get_by_test_id("map-selected-file")
    listed = {int(str(f.get_attribute("data-index"))): f.inner_text() for f in files.all()}
    assert set(listed) == expected
    assert all(listed[i] == small_run.filenames[i] for i in expected)
    assert tab.page.evaluate("() => window.selfsupMap.selected()") == sorted(expected)


def test_map_hover_box_and_lasso(page: WebPage, small_run: SmallRun) -> None:
    page.goto(f"/runs/{RUN}/map")
    page.page.wait_for_function("() => window.selfsupMap && window.selfsupMap.ready === true")
    data = page.page.request.get(page.url(f"/ui-api/runs/{RUN}/projection?method=pca")).json()
    indices: list[int] = data["index"]
    embedded = small_run.indices("selected") | small_run.indices("removed")
    assert set(indices) == embedded  # 48 points: all drawn, no corrupt or duplicate
    assert [data["statuses"][c] for c in data["status"]] == [small_run.status[i] for i in indices]
    legend = page.page.get_by_test_id("legend-selected")
    assert number(legend.inner_text()) == len(small_run.indices("selected"))

    canvas = page.page.get_by_test_id("map-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    assert box["y"] >= 0, box  # wholly in the viewport: every point can be pointed at
    assert box["y"] + box["height"] <= 900, box
    origin = (box["x"], box["y"])
    shown = page.page.evaluate("ix => ix.map(i => window.selfsupMap.toCanvas(i))", indices)
    xy = np.array([[p["x"], p["y"]] for p in shown], dtype=np.float64)
    # The map draws the projection: canvas = s * (x, -y) + offset, one scale for both axes.
    data_xy = np.stack([np.array(data["x"]), -np.array(data["y"])], axis=1)
    design = np.column_stack([data_xy.reshape(-1), np.tile([1.0, 0.0], len(indices)),
                              np.tile([0.0, 1.0], len(indices))])  # fmt: skip
    coef, *_ = np.linalg.lstsq(design, xy.reshape(-1), rcond=None)
    assert coef[0] > 0
    np.testing.assert_allclose(design @ coef, xy.reshape(-1), atol=0.5)
    assert (xy >= 0).all()
    assert (xy <= [box["width"], box["height"]]).all()

    # Hover the most isolated point: the tooltip names it and shows its thumbnail.
    gaps = np.linalg.norm(xy[:, None] - xy[None], axis=2) + np.eye(len(xy)) * 1e9
    lonely = int(np.argmax(gaps.min(axis=1)))
    assert gaps[lonely].min() > 12, "no point is isolated enough to hover unambiguously"
    target = indices[lonely]
    page.page.mouse.move(origin[0] + xy[lonely, 0] + 1, origin[1] + xy[lonely, 1] - 1)
    tooltip = page.page.get_by_test_id("map-tooltip")
    tooltip.wait_for(state="visible")
    assert tooltip.get_attribute("data-index") == str(target)
    tooltip.filter(has_text=small_run.filenames[target]).wait_for()
    page.wait_images_loaded("[data-testid=map-tooltip] img")
    page.shot("hover")

    # Box around the points of one class, corners clear of every point by > 3 px.
    page.page.get_by_test_id("tool-box").click()
    cls = [k for k, i in enumerate(indices) if small_run.filenames[i].startswith("stripes/")]
    lo, hi = xy[cls].min(axis=0) - 5, xy[cls].max(axis=0) + 5
    for _ in range(20):
        near_edge = [
            p for p in xy
            if (lo[0] - 3 < p[0] < hi[0] + 3 and lo[1] - 3 < p[1] < hi[1] + 3)
            and not (lo[0] + 3 < p[0] < hi[0] - 3 and lo[1] + 3 < p[1] < hi[1] - 3)
        ]  # fmt: skip
        if not near_edge:
            break
        lo, hi = lo - 4, hi + 4
    assert not near_edge
    expected = {
        indices[k] for k, (x, y) in enumerate(xy) if lo[0] <= x <= hi[0] and lo[1] <= y <= hi[1]
    }
    assert {indices[k] for k in cls} <= expected
    _drag(page, origin, [(lo[0], lo[1]), (hi[0], hi[1])])
    _selection(page, expected, small_run)
    page.shot("box")

    # Lasso: a triangle over the upper-left half of the cloud (its hypotenuse moved until no
    # point is within 3 px of an edge); the expected set is computed with our own test.
    page.page.get_by_test_id("tool-lasso").click()
    x0, y0 = xy.min(axis=0) - 10
    x1, y1 = xy.max(axis=0) + 10
    shift = 0.0
    for _ in range(40):
        triangle = [(x0, y0), (x1 + shift, y0), (x0, y1 + shift)]
        corners = np.array(triangle)
        clearance = min(
            _distance_to_segment(p, corners[a], corners[(a + 1) % 3]) for p in xy for a in range(3)
        )
        if clearance > 3:
            break
        shift -= 2.5
    assert clearance > 3
    expected = {indices[k] for k, (x, y) in enumerate(xy) if _inside_polygon(x, y, triangle)}
    bbox = {
        indices[k] for k, (x, y) in enumerate(xy)
        if x0 <= x <= x1 + shift and y0 <= y <= y1 + shift
    }  # fmt: skip
    assert 0 < len(expected) < len(bbox)  # the lasso's shape matters, not only its extent
    _drag(page, origin, [*triangle, triangle[0]])
    _selection(page, expected, small_run)
    page.shot("lasso")

    # In pan mode a click on a point opens its page.
    page.page.get_by_test_id("tool-pan").click()
    with page.page.expect_navigation():
        page.page.mouse.click(origin[0] + xy[lonely, 0], origin[1] + xy[lonely, 1])
    assert urlsplit(page.page.url).path == f"/runs/{RUN}/images/{target}"
