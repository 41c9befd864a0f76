"""Tags in a real browser (issue 12): select two images in the grid of ``selfsup view``, tag
them, filter the grid by the tag and download it as a file list.

Expectations come from the run's own manifest and the run folder's ``tags.json``, never from
the app.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from _web import OpenPage, build_small_run
from selfsup.curation.manifest import read_manifest
from selfsup.runfolder import RunFolder
from selfsup.server.testing import LiveServer

pytestmark = pytest.mark.slow  # runs the pipeline and starts a browser

TOKEN = "e2e-tags-token-5c1d"
RUN = "out"


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder: Path = build_small_run(tmp_path_factory.mktemp("tags"), n_per_class=3)
    return folder


@pytest.fixture(scope="module")
def app_url(run_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from selfsup.web.app import create_view_app

    cache = tmp_path_factory.mktemp("tags-cache")
    with LiveServer(create_view_app([run_folder], token=TOKEN, cache_dir=cache)) as live:
        yield live.url


def test_tag_two_images_in_the_grid_and_export_them(
    open_page: OpenPage, app_url: str, run_folder: Path, tmp_path: Path
) -> None:
    filenames = [r.filename for r in read_manifest(RunFolder(run_folder).manifest).records]
    chosen = [1, 4]
    tab = open_page(app_url)
    tab.login(TOKEN)
    tab.goto(f"/runs/{RUN}/images")
    page = tab.page

    page.get_by_test_id("select-mode").click()
    for index in chosen:
        page.locator(f'[data-testid="tile"][data-index="{index}"]').click()
    assert page.url.endswith(f"/runs/{RUN}/images")  # selecting did not open a sample
    assert page.get_by_test_id("grid-selection-count").inner_text() == "2"
    page.get_by_test_id("tag-input").fill("keepers")
    page.get_by_test_id("tag-selection").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=tag-filter-item][data-tag=keepers]')"
    )
    assert "Tagged 2 of 2" in page.get_by_test_id("tag-note").inner_text()
    assert RunFolder(run_folder).read_tags() == {"keepers": sorted(filenames[i] for i in chosen)}
    tab.shot("tagged")

    with page.expect_navigation():
        page.locator('[data-testid="tag-filter-item"][data-tag="keepers"]').click()
    shown = page.eval_on_selector_all(
        "[data-testid=tile]", "els => els.map(e => Number(e.dataset.index))"
    )
    assert shown == chosen

    with page.expect_download() as info:
        page.get_by_test_id("export-tag-txt").click()
    target = tmp_path / "keepers.txt"
    info.value.save_as(target)
    assert info.value.suggested_filename == f"{RUN}-keepers.txt"
    assert target.read_text(encoding="utf-8").splitlines() == [filenames[i] for i in chosen]

    # The selection itself exports too (a POST answered by a download).
    page.get_by_test_id("select-mode").click()
    page.locator(f'[data-testid="tile"][data-index="{chosen[0]}"]').click()
    page.get_by_test_id("export-format").select_option("coco")
    with page.expect_download() as info:
        page.get_by_test_id("export-selection").click()
    assert info.value.suggested_filename == f"{RUN}-selection.coco.json"
    tab.shot("exported")


def test_tag_a_box_selection_on_the_map_and_select_it_again(
    open_page: OpenPage, app_url: str, run_folder: Path
) -> None:
    table = RunFolder(run_folder).read_selection()
    assert table is not None
    on_map = sorted(table.filenames)  # PCA draws every candidate
    tab = open_page(app_url)
    tab.login(TOKEN)
    tab.goto(f"/runs/{RUN}/map")
    page = tab.page
    page.wait_for_function("() => window.selfsupMap.ready")
    page.get_by_test_id("tool-box").click()
    box = page.get_by_test_id("map-canvas").bounding_box()
    assert box is not None
    mouse = page.mouse
    mouse.move(box["x"] + 2, box["y"] + 2)
    mouse.down()
    mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] - 2, steps=10)
    mouse.up()
    n = len(on_map)
    page.wait_for_function("n => window.selfsupMap.selected().length === n", arg=n)
    page.get_by_test_id("tag-input").fill("on-map")
    page.get_by_test_id("tag-selection").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=tag-note]').textContent.startsWith('Tagged')"
    )
    assert RunFolder(run_folder).read_tags()["on-map"] == on_map

    page.get_by_test_id("clear-selection").click()
    page.wait_for_function("() => window.selfsupMap.selected().length === 0")
    page.get_by_test_id("select-tag").click()
    page.wait_for_function("n => window.selfsupMap.selected().length === n", arg=n)
    tab.shot("map-tagged")
