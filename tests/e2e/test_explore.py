"""Exploring a run in a real browser (issue 12): filter the grid by a quality issue, choose
the member to keep in a near-duplicate group, find similar images, colour the map by a score.

The run has a planted dark image and a planted brighter copy of one image (a near
duplicate). Expectations come from the run's files (quality_issues.txt,
near_duplicate_filenames.txt, tags.json, the embeddings CSV), never from the app.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from _web import EXPLORE_COPY as COPY
from _web import EXPLORE_DARK as DARK
from _web import EXPLORE_ORIGINAL as ORIGINAL
from _web import OpenPage, build_explore_run
from selfsup.curation.manifest import read_filename_table, read_manifest
from selfsup.runfolder import RunFolder
from selfsup.server.testing import LiveServer

pytestmark = pytest.mark.slow  # runs the pipeline and starts a browser

TOKEN = "e2e-explore-token-9a4f"
RUN = "out"


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_explore_run(tmp_path_factory.mktemp("explore"))


@pytest.fixture(scope="module")
def app_url(run_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from selfsup.web.app import create_view_app

    cache = tmp_path_factory.mktemp("explore-cache")
    with LiveServer(create_view_app([run_folder], token=TOKEN, cache_dir=cache)) as live:
        yield live.url


def _index(run_folder: Path, name: str) -> int:
    names = [r.filename for r in read_manifest(RunFolder(run_folder).manifest).records]
    return names.index(name)


def test_filter_the_grid_by_a_quality_issue(
    open_page: OpenPage, app_url: str, run_folder: Path
) -> None:
    flagged = [r[0] for r in read_filename_table(RunFolder(run_folder).quality_issues)]
    dark = sorted(
        _index(run_folder, r[0])
        for r in read_filename_table(RunFolder(run_folder).quality_issues)
        if r[1] == "dark"
    )
    assert DARK in flagged
    tab = open_page(app_url)
    tab.login(TOKEN)
    tab.goto(f"/runs/{RUN}/images")
    page = tab.page
    page.get_by_test_id("issue-filter").select_option("dark")
    with page.expect_navigation():
        page.get_by_test_id("signal-apply").click()
    shown = page.eval_on_selector_all(
        "[data-testid=tile]", "els => els.map(e => Number(e.dataset.index))"
    )
    assert shown == dark
    assert "dark" in page.get_by_test_id("tile-note").first.inner_text()
    tab.shot("issue-dark")


def test_keep_one_member_of_a_near_duplicate_group(
    open_page: OpenPage, app_url: str, run_folder: Path
) -> None:
    rows = read_filename_table(RunFolder(run_folder).near_duplicate_filenames)
    group = next(r[0] for r in rows if r[1] == COPY)
    members = [r[1] for r in rows if r[0] == group]
    assert ORIGINAL in members
    tab = open_page(app_url)
    tab.login(TOKEN)
    tab.goto(f"/runs/{RUN}/near-duplicates")
    page = tab.page
    section = page.locator(f'[data-testid="dup-group"][data-group="{group}"]')
    assert section.locator("[data-testid=dup-member]").count() == len(members)
    copy = _index(run_folder, COPY)
    with page.expect_navigation():
        section.locator(f'[data-testid=dup-member][data-index="{copy}"]').get_by_test_id(
            "keep-this"
        ).click()
    tags = RunFolder(run_folder).read_tags()
    assert tags["keep"] == [COPY]
    assert tags["drop"] == sorted(m for m in members if m != COPY)
    chosen = page.locator(f'[data-testid=dup-member][data-index="{copy}"]')
    assert chosen.get_attribute("data-choice") == "keep"
    assert page.get_by_test_id("export-drop").is_visible()
    tab.shot("kept-copy")


def test_find_similar_from_the_image_page(
    open_page: OpenPage, app_url: str, run_folder: Path
) -> None:
    emb, _, names = RunFolder.read_embeddings(RunFolder(run_folder).normalized_embeddings)
    row = names.index(COPY)
    distances = np.linalg.norm(emb - emb[row], axis=1)
    order = [int(r) for r in np.lexsort((np.arange(len(names)), distances)) if r != row]
    tab = open_page(app_url)
    tab.login(TOKEN)
    copy = _index(run_folder, COPY)
    tab.goto(f"/runs/{RUN}/images/{copy}")
    page = tab.page
    with page.expect_navigation():
        page.get_by_test_id("find-similar").click()
    shown = page.eval_on_selector_all(
        "[data-testid=similar-result]", "els => els.map(e => Number(e.dataset.index))"
    )
    expected = [_index(run_folder, names[r]) for r in order[: len(shown)]]
    assert shown == expected
    # The run's embeddings are one cluster per class folder: the nearest share the folder.
    assert names[order[0]].split("/")[0] == "green_square"
    tab.shot("similar")


def test_colour_the_map_by_a_score_and_by_label(open_page: OpenPage, app_url: str) -> None:
    tab = open_page(app_url)
    tab.login(TOKEN)
    tab.goto(f"/runs/{RUN}/map")
    page = tab.page
    page.wait_for_function("() => window.selfsupMap.ready")
    page.get_by_test_id("colour-by").select_option("score:brightness")
    page.wait_for_function("() => window.selfsupMap.colouredBy() === 'score:brightness'")
    ramp = page.get_by_test_id("colour-ramp")
    assert float(ramp.get_attribute("data-min") or "nan") < float(
        ramp.get_attribute("data-max") or "nan"
    )
    tab.shot("map-brightness")
    page.get_by_test_id("colour-by").select_option("folder")
    page.wait_for_function("() => window.selfsupMap.colouredBy() === 'folder'")
    items = page.get_by_test_id("colour-legend-item").all_inner_texts()
    assert any(text.startswith("green_square (") for text in items)
