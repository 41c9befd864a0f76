"""Artifacts: multipart uploads stored under the data folder, safe names only, log appends,
downloads by the owner."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfsup.apphelpers.http_errors import ApiError
from selfsup.apphelpers.paths import safe_artifact_name
from selfsup.server.testing import ServerHarness


def _running(server: ServerHarness, make_actor: Callable[..., Any]) -> tuple[Any, str, str]:
    alice = make_actor("alice", on=server)
    alice.schedule(alice.ready_dataset())
    worker_id = alice.worker()
    claim = alice.claim(worker_id)
    assert claim is not None
    return alice, worker_id, claim["run"]["id"]


def test_upload_download_replace_and_log(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice, worker_id, run_id = _running(server, make_actor)
    base = alice.run_path(worker_id, run_id)
    payload = bytes(range(256)) * 4096  # 1 MiB, more than one read chunk
    r = server.http.post(
        f"{base}/artifacts",
        files={"file": ("ckpt.ckpt", payload)},
        data={"type": "CHECKPOINT", "file_name": "checkpoints/last.ckpt"},
        headers=alice.h,
    )
    assert r.status_code == 201, r.text
    ckpt = r.json()
    assert ckpt["size"] == len(payload)
    assert ckpt["sha256"] == hashlib.sha256(payload).hexdigest()
    stored = server.settings.data_dir / "runs" / run_id / "checkpoints" / "last.ckpt"
    assert stored.read_bytes() == payload

    for text in ("line 1\n", "line 2\n"):
        r = server.http.post(f"{base}/log", json={"text": text}, headers=alice.h)
        assert r.status_code == 204
    # Uploading the same name again replaces the file and keeps one record.
    for content in (b"first", b"second"):
        r = server.http.post(
            f"{base}/artifacts",
            files={"file": ("selected.txt", content)},
            data={"type": "SELECTED_FILENAMES"},
            headers=alice.h,
        )
        assert r.status_code == 201
    run = server.http.get(f"/v1/runs/{run_id}", headers=alice.h).json()
    by_name = {a["file_name"]: a for a in run["artifacts"]}
    assert set(by_name) == {"checkpoints/last.ckpt", "log.txt", "selected.txt"}
    assert by_name["log.txt"]["type"] == "LOG"

    def download(name: str) -> bytes:
        r = server.http.get(f"/v1/runs/{run_id}/artifacts/{by_name[name]['id']}", headers=alice.h)
        assert r.status_code == 200
        return r.content

    assert download("checkpoints/last.ckpt") == payload
    assert download("log.txt") == b"line 1\nline 2\n"
    assert download("selected.txt") == b"second"
    r = server.http.get(f"/v1/runs/{run_id}/artifacts/000000000000000000000000", headers=alice.h)
    assert r.status_code == 404


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_artifacts_are_created_0640_not_chmod_ed_afterwards(
    server: ServerHarness, make_actor: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Between a write and a chmod the file would be readable by others under a loose umask.
    def no_chmod(*args: object, **kwargs: object) -> None:
        raise AssertionError("artifacts must be created with their mode, not chmod-ed")

    alice, worker_id, run_id = _running(server, make_actor)
    monkeypatch.setattr(os, "chmod", no_chmod)
    old = os.umask(0o002)
    try:
        r = server.http.post(
            f"{alice.run_path(worker_id, run_id)}/artifacts",
            files={"file": ("report.json", b"{}")},
            data={"type": "REPORT_JSON"},
            headers=alice.h,
        )
    finally:
        os.umask(old)
    assert r.status_code == 201, r.text
    stored = server.settings.data_dir / "runs" / run_id / "report.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o640


def test_unsafe_names_oversized_and_bad_types_are_refused(
    make_server: Callable[..., ServerHarness], make_actor: Callable[..., Any]
) -> None:
    server = make_server(max_upload_bytes=1000)
    alice, worker_id, run_id = _running(server, make_actor)
    url = f"{alice.run_path(worker_id, run_id)}/artifacts"
    names = ("../escape.txt", "/etc/passwd", "a/../../b", ".hidden", "a\\b", "a//b", "")
    for name in (*names, "report.pdf\n", "a\n/b.txt", "log.txt\r"):
        r = server.http.post(
            url,
            files={"file": ("x", b"data")},
            data={"type": "OTHER", "file_name": name},
            headers=alice.h,
        )
        if name == "":  # an empty name falls back to the upload's own name "x"
            assert r.status_code == 201
            continue
        assert r.status_code == 400, (name, r.text)
        assert r.json()["code"] == "INVALID_FILE_NAME"
    r = server.http.post(
        url, files={"file": ("big.bin", b"x" * 1001)}, data={"type": "OTHER"}, headers=alice.h
    )
    assert r.status_code == 413
    assert not (server.settings.data_dir / "runs" / run_id / "big.bin").exists()
    r = server.http.post(
        url, files={"file": ("a.bin", b"x")}, data={"type": "PICTURE"}, headers=alice.h
    )
    assert r.status_code == 422
    r = server.http.post(url, data={"type": "OTHER"}, headers=alice.h)
    assert r.status_code == 422
    assert "file: field required" in r.json()["error"]
    leftovers = [p.name for p in (server.settings.data_dir / "runs" / run_id).iterdir()]
    assert leftovers == ["x"]


def _accepted(name: str) -> str | None:
    """The stored name, or None when the name is refused (always with a 400)."""
    try:
        return safe_artifact_name(name)
    except ApiError as exc:
        if exc.status != 400:
            raise
        return None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("ab./\\_-~:\x00 ")), min_size=0, max_size=12))
def test_accepted_artifact_names_always_stay_inside_the_run_folder(name: str) -> None:
    root = Path("/srv/data/runs/r1")
    safe = _accepted(name)
    if safe is None:
        return
    resolved = (root / safe).resolve()
    assert resolved.is_relative_to(root)
    assert resolved != root
    assert not any(part in ("", ".", "..") for part in safe.split("/"))


@pytest.mark.parametrize("name", ["report.pdf\n", "a\n/b", "x\n", "ok.txt\n\n"])
def test_a_trailing_newline_is_no_safe_artifact_name(name: str) -> None:
    # re.match with '$' matches before a trailing newline; the check must see the whole name.
    with pytest.raises(ApiError) as info:
        safe_artifact_name(name)
    assert info.value.status == 400
    assert repr(name) in info.value.message
