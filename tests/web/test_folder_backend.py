"""`selfsup view` without a database: finding run folders, the token, run states."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfsup.apphelpers.web_backend import InvalidToken, OutputsUnavailable, WebNotFound
from selfsup.web.folder_backend import FolderBackend, find_run_folders


def _run_folder(path: Path, finished: bool = True) -> Path:
    (path / "data").mkdir(parents=True)
    (path / "data" / "manifest.jsonl").write_text("")
    if finished:
        counts = {"n_selected": 1200, "n_input_to_selection": 48000}
        (path / "report.json").write_text(json.dumps({"counts": counts}))
    return path


def test_a_run_folder_is_taken_as_is(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "out")
    assert find_run_folders([run]) == [run.resolve()]


def test_a_folder_of_runs_is_expanded_one_level(tmp_path: Path) -> None:
    a = _run_folder(tmp_path / "runs" / "a")
    b = _run_folder(tmp_path / "runs" / "b", finished=False)
    (tmp_path / "runs" / "not-a-run").mkdir()
    assert find_run_folders([tmp_path / "runs"]) == [a.resolve(), b.resolve()]


def test_missing_and_non_run_folders_are_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere: no such folder"):
        find_run_folders([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty: not a run output folder"):
        find_run_folders([tmp_path / "empty"])


def test_runs_get_unique_ids_from_their_folder_names(tmp_path: Path) -> None:
    a = _run_folder(tmp_path / "x" / "my run")
    b = _run_folder(tmp_path / "y" / "my run")
    backend = FolderBackend([a, b])
    viewer = backend.login(backend.token)
    assert [r.id for r in backend.runs(viewer)] == ["my-run", "my-run-2"]
    assert backend.run(viewer, "my-run-2").message == f"1,200 of 48,000 selected · {b}"


def test_only_the_token_logs_in(tmp_path: Path) -> None:
    backend = FolderBackend([_run_folder(tmp_path / "out")], token="s3cret-token")
    with pytest.raises(InvalidToken, match="wrong token"):
        backend.login("s3cret-tokeN")
    viewer = backend.login("s3cret-token\n")
    assert backend.viewer(viewer.session_id) == viewer
    assert backend.viewer("someone-else") is None


def test_random_tokens_differ(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "out")
    assert FolderBackend([run]).token != FolderBackend([run]).token


def test_a_run_without_report_is_running_and_has_no_outputs_yet(tmp_path: Path) -> None:
    backend = FolderBackend([_run_folder(tmp_path / "out", finished=False)])
    viewer = backend.login(backend.token)
    [run] = backend.runs(viewer)
    assert (run.state, run.is_final, run.has_outputs) == ("RUNNING", False, False)
    with pytest.raises(OutputsUnavailable, match=r"report\.json not written yet"):
        backend.view(viewer, run.id)
    assert backend.log(viewer, run.id, 0) == ("", 0)


def test_unknown_runs_and_artifacts_are_not_found(tmp_path: Path) -> None:
    backend = FolderBackend([_run_folder(tmp_path / "out")])
    viewer = backend.login(backend.token)
    with pytest.raises(WebNotFound):
        backend.run(viewer, "other")
    with pytest.raises(WebNotFound):
        backend.artifact_path(viewer, "out", "a1")


def test_a_damaged_report_still_lists_the_run(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "out")
    (run / "report.json").write_text("{not json")
    backend = FolderBackend([run])
    [summary] = backend.runs(backend.login(backend.token))
    assert summary.message.startswith("report.json unreadable (JSONDecodeError)")
