"""Tags and exports of the web app: the folder backend's tags.json, the tag and export
routes over a real ``selfsup run`` folder, and what the exports hold.

The server backend's tags (the database) are tested in tests/server/test_web_backend.py;
tagging in the browser in tests/e2e/test_view_app.py.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from selfsup.apphelpers.web_backend import InvalidTag, WebNotFound, check_tag
from selfsup.runfolder import RunFolder
from selfsup.web.folder_backend import FolderBackend
from selfsup.web.tags import TagStorageError

TOKEN = "test-token-0123456789"


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
