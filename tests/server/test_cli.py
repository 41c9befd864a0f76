"""``selfsup token`` and ``selfsup serve`` (through their entry functions)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from selfsup.server.cli import serve_main, token_main
from selfsup.server.testing import free_port


def test_token_create_list_revoke(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SELFSUP_HOME", str(tmp_path / "home"))
    assert token_main(["create", "--user", "alice", "--name", "laptop"]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("selfsup_")
    assert "shown only once" in out.err
    db = tmp_path / "home" / "server.db"
    assert db.exists()
    assert oct(db.stat().st_mode & 0o777) == oct(0o600)

    assert token_main(["create", "--user", "bob", "--scope", "worker"]) == 0
    capsys.readouterr()
    assert token_main(["list"]) == 0
    listing = capsys.readouterr().out
    token_id = token.split("_")[1]
    assert token_id in listing
    assert "laptop" in listing
    assert "user,worker" in listing
    assert token.split("_", 2)[2] not in listing  # the secret is never shown again
    assert token_main(["list", "--user", "bob"]) == 0
    assert "alice" not in capsys.readouterr().out

    assert token_main(["revoke", token_id]) == 0
    capsys.readouterr()
    assert token_main(["list", "--user", "alice"]) == 0
    assert "revoked" in capsys.readouterr().out
    assert token_main(["revoke", "ffffffffffff"]) == 2
    assert "no token with id" in capsys.readouterr().err


def test_bad_database_urls_exit_2_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert token_main(["--db", "mysql://x/y", "list"]) == 2
    assert "supported: sqlite" in capsys.readouterr().err
    assert serve_main(["--db", "sqlite://"]) == 2
    assert "in-memory" in capsys.readouterr().err
    assert serve_main(["--db", "not a url"]) == 2
    assert "not valid" in capsys.readouterr().err


def test_selfsup_serve_answers_over_http(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SELFSUP_HOME": str(tmp_path / "home")}
    root = tmp_path / "root"
    root.mkdir()
    code = (
        "import sys; from selfsup.cli.main import main; "
        f"sys.exit(main(['serve', '--port', '{port}', '--local-root', r'{root}', "
        "'--log-level', 'info']))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[1].decode()
                assert time.monotonic() < deadline, "selfsup serve did not start"
                time.sleep(0.1)
        assert r.json()["status"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/v1/datasets").status_code == 401
        login = httpx.get(f"http://127.0.0.1:{port}/login")  # the web app on the same origin
        assert login.status_code == 200
        assert login.headers["content-type"].startswith("text/html")
        leaked = f"http://127.0.0.1:{port}/v1/datasets?access_token=SeCrEt-in-URL"
        assert httpx.get(leaked).status_code == 401
        assert (tmp_path / "home" / "server.db").exists()
        key_file = tmp_path / "home" / "server" / "secret.key"
        assert oct(key_file.stat().st_mode & 0o777) == oct(0o600)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    log = out.decode() + err.decode()
    assert f"local roots: {root} (shared by ALL users" in log
    assert "GET /v1/datasets?access_token=<hidden> HTTP/1.1" in log  # access log on, scrubbed
    assert "SeCrEt-in-URL" not in log
    assert f"created the encryption key of datasource credentials: {key_file}" in log
