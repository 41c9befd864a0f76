"""`selfsup view` as a command: the printed URL logs in; bad folders exit 2 naming them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from selfsup.web.cli import view_main


def _run_folder(path: Path) -> Path:
    (path / "data").mkdir(parents=True)
    (path / "data" / "manifest.jsonl").write_text("")
    return path


def test_missing_folder_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert view_main([str(tmp_path / "nope")]) == 2
    assert "nope: no such folder" in capsys.readouterr().err


def test_folder_without_runs_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert view_main([str(tmp_path)]) == 2
    assert "not a run output folder" in capsys.readouterr().err


def test_printed_url_logs_in_and_serves_the_runs(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "my-run")
    (run / "report.json").write_text(json.dumps({"counts": {}}))
    env = {**os.environ, "SELFSUP_VIEW_TOKEN": "t0ken-from-env"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "selfsup.cli.main", "view", str(run), "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline and "open http" not in line:
            line = proc.stderr.readline()
        match = re.search(r"open (http://127\.0\.0\.1:\d+)/\?token=(.+)$", line)
        assert match, line
        base, shown = match.group(1), match.group(2).strip()
        # A token given by the user is not echoed to the terminal.
        assert shown == "<your token>"
        with httpx.Client(base_url=base) as client:
            assert client.get("/runs/my-run").status_code in (303, 307)
            assert client.get("/?token=wrong").status_code == 200  # the form, with its error
            assert "selfsup_session" not in client.cookies
            response = client.get("/?token=t0ken-from-env", follow_redirects=True)
            assert response.status_code == 200
            assert 'data-run-id="my-run"' in response.text
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_the_access_log_never_shows_the_login_token(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "my-run")
    (run / "report.json").write_text(json.dumps({"counts": {}}))
    env = {**os.environ, "SELFSUP_VIEW_TOKEN": "t0ken-IN-the-URL"}
    command = ["view", str(run), "--port", "0", "--log-level", "info"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "selfsup.cli.main", *command],
        stdout=subprocess.PIPE,  # uvicorn's access log goes to stdout
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline and "open http" not in line:
            line = proc.stderr.readline()
        match = re.search(r"open (http://127\.0\.0\.1:\d+)/", line)
        assert match, line
        with httpx.Client(base_url=match.group(1)) as client:
            assert client.get("/?token=t0ken-IN-the-URL").status_code == 303
            assert client.get("/?next=%2F&token=wrong-TOKEN-too&x=1").status_code == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    err += out
    assert "GET /?token=<hidden> HTTP/1.1" in err  # the access log is on, and scrubbed
    assert "t0ken-IN-the-URL" not in err
    assert "wrong-TOKEN-too" not in err
    assert "x=1" in err
