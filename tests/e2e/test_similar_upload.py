"""Find similar from an uploaded image in a real browser (issue 12): ``selfsup view``'s app
(:func:`selfsup.cli.apps.create_view_app`, with the run-model embedder) over a run that
embedded with a tiny checkpoint. The expected nearest sample is the uploaded file's own name
in the run's manifest, never taken from the app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from _web import OpenPage, build_model_run
from selfsup.curation.manifest import read_manifest
from selfsup.runfolder import RunFolder
from selfsup.server.testing import LiveServer

pytestmark = pytest.mark.slow  # runs the pipeline and starts a browser

TOKEN = "e2e-similar-upload-token-5c1d"
RUN = "out"
QUERY = "c1/img_5.png"


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model_run(tmp_path_factory.mktemp("similar-upload"))


@pytest.fixture(scope="module")
def app_url(run_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from selfsup.cli.apps import create_view_app

    cache = tmp_path_factory.mktemp("similar-upload-cache")
    with LiveServer(create_view_app([run_folder], token=TOKEN, cache_dir=cache)) as live:
        yield live.url


def test_upload_a_copy_of_a_run_image_and_find_it_first(
    open_page: OpenPage, app_url: str, run_folder: Path
) -> None:
    names = [r.filename for r in read_manifest(RunFolder(run_folder).manifest).records]
    tab = open_page(app_url)
    tab.login(TOKEN)
    tab.goto(f"/runs/{RUN}/similar")
    page = tab.page
    page.get_by_test_id("similar-upload-input").set_input_files(
        str(run_folder.parent / "images" / QUERY)
    )
    page.get_by_test_id("similar-upload-k").fill("4")
    with page.expect_navigation():
        page.get_by_test_id("similar-upload-submit").click()
    shown = page.eval_on_selector_all(
        "[data-testid=similar-result]",
        "els => els.map(e => [Number(e.dataset.index), Number(e.dataset.distance)])",
    )
    assert len(shown) == 4
    assert shown[0][0] == names.index(QUERY)
    assert shown[0][1] < 1e-4
    assert "img_5.png" in page.get_by_test_id("similar-query").inner_text()
    tab.shot("uploaded")
