"""Datasource credentials are encrypted at rest under a key kept outside the database:
a copy of the database reveals nothing, a wrong key is a clear error, keys rotate."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from cryptography.fernet import Fernet
from sqlalchemy import text

from selfsup.server.cli import rotate_key_main, serve_main
from selfsup.server.db import alembic_config, make_engine, upgrade_database
from selfsup.server.secret_keys import (
    KEY_ENV,
    KEY_FILE_NAME,
    SecretKeyError,
    SecretKeys,
    attach_keys,
    load_keys,
)
from selfsup.server.testing import ServerHarness

SECRETS = {"s3_key": "AKIA-AT-REST-0001", "s3_secret": "s3-AT-REST-secret-0002"}
GCS_KEY = "GCS-AT-REST-PRIVATE-0003"
CONFIGS: list[dict[str, Any]] = [
    {
        "type": "S3",
        "full_path": "s3://bucket/input/",
        "s3_region": "eu-central-1",
        "s3_access_key_id": SECRETS["s3_key"],
        "s3_secret_access_key": SECRETS["s3_secret"],
        "purpose": "INPUT",
    },
    {
        "type": "GCS",
        "full_path": "gs://bucket/output/",
        "gcs_project_id": "proj",
        "gcs_credentials": json.dumps({"private_key": GCS_KEY}),
        "purpose": "LIGHTLY",
    },
]


def _leaks(stored: str) -> list[str]:
    return [s for s in (SECRETS["s3_key"], SECRETS["s3_secret"], GCS_KEY) if s in stored]


def _store_secrets(server: ServerHarness, make_actor: Callable[..., Any]) -> tuple[Any, str]:
    alice = make_actor("alice", on=server)
    dataset_id = alice.dataset()
    for config in CONFIGS:
        r = server.http.post(f"/v1/datasets/{dataset_id}/datasources", json=config, headers=alice.h)
        assert r.status_code == 200, r.text
    return alice, dataset_id


def _raw_credentials(db_url: str) -> list[str]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return [
                str(c) for c in conn.execute(text("SELECT credentials FROM datasources")).scalars()
            ]
    finally:
        engine.dispose()


def _job_credentials(server: ServerHarness, alice: Any, dataset_id: str) -> dict[str, Any]:
    alice.schedule(dataset_id)
    worker_id = alice.worker()
    claim = alice.claim(worker_id)
    assert claim is not None
    r = server.http.get(f"{alice.run_path(worker_id, claim['run']['id'])}/job", headers=alice.h)
    assert r.status_code == 200, r.text
    return {d["purpose"]: d["credentials"] for d in r.json()["datasources"]}


def test_the_database_holds_no_secret_and_the_worker_still_gets_them(
    db_url: str, make_server: Callable[..., ServerHarness], make_actor: Callable[..., Any]
) -> None:
    server = make_server()
    alice, dataset_id = _store_secrets(server, make_actor)
    key_file = server.settings.data_dir / KEY_FILE_NAME
    assert oct(key_file.stat().st_mode & 0o777) == oct(0o600)
    raw = _raw_credentials(db_url)
    assert len(raw) == 2
    assert _leaks("\n".join(raw)) == []
    assert all(r.startswith("gAAAAA") for r in raw), raw  # Fernet tokens, not JSON
    if db_url.startswith("sqlite"):  # not in the file's bytes either (nor its journal)
        db_file = Path(db_url.removeprefix("sqlite:///"))
        blob = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
        assert _leaks(blob.decode("latin-1")) == []
    creds = _job_credentials(server, alice, dataset_id)
    assert creds["INPUT"]["s3_secret_access_key"] == SECRETS["s3_secret"]


def test_a_wrong_or_missing_key_is_a_clear_error_naming_the_key_file(
    db_url: str,
    tmp_path: Path,
    make_server: Callable[..., ServerHarness],
    make_actor: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = make_server()
    _store_secrets(server, make_actor)
    server.close()
    key_file = server.settings.data_dir / KEY_FILE_NAME
    key_file.write_bytes(Fernet.generate_key() + b"\n")  # someone else's key
    with pytest.raises(SecretKeyError, match=str(key_file)):
        make_server()
    monkeypatch.delenv(KEY_ENV, raising=False)
    args = ["--db", db_url, "--data-dir", str(server.settings.data_dir), "--port", "1"]
    assert serve_main(args) == 2
    err = capsys.readouterr().err
    assert str(key_file) in err
    assert "Traceback" not in err
    key_file.write_text("not a key\n")
    assert serve_main(args) == 2
    assert "is not a Fernet key" in capsys.readouterr().err


def test_rotation_re_encrypts_every_row_and_retires_the_old_key(
    db_url: str,
    make_server: Callable[..., ServerHarness],
    make_actor: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    server = make_server()
    alice, dataset_id = _store_secrets(server, make_actor)
    data_dir = server.settings.data_dir
    old_key = (data_dir / KEY_FILE_NAME).read_bytes().strip()
    before = _raw_credentials(db_url)
    assert rotate_key_main(["--db", db_url, "--data-dir", str(data_dir)]) == 0
    new_keys = (data_dir / KEY_FILE_NAME).read_bytes().split()
    assert len(new_keys) == 1
    assert new_keys[0] != old_key
    assert oct((data_dir / KEY_FILE_NAME).stat().st_mode & 0o777) == oct(0o600)
    after = _raw_credentials(db_url)
    assert set(after).isdisjoint(before)
    only_new = SecretKeys((new_keys[0],), "test")
    assert all(
        SECRETS["s3_key"] in only_new.decrypt(c) or "GCS" in only_new.decrypt(c) for c in after
    )
    with pytest.raises(SecretKeyError):
        SecretKeys((old_key,), "old").decrypt(after[0])
    restarted = make_server()  # reads the new key file
    creds = _job_credentials(restarted, alice.moved_to(restarted), dataset_id)
    assert creds["INPUT"]["s3_access_key_id"] == SECRETS["s3_key"]


def test_keys_from_the_environment_rotate_new_first(
    db_url: str,
    tmp_path: Path,
    make_server: Callable[..., ServerHarness],
    make_actor: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv(KEY_ENV, old)
    server = make_server()
    _store_secrets(server, make_actor)
    for stored in _raw_credentials(db_url):  # the variable wins over the key file
        SecretKeys((old.encode(),), "old").decrypt(stored)
    monkeypatch.setenv(KEY_ENV, f"{new},{old}")
    assert rotate_key_main(["--db", db_url]) == 0
    for stored in _raw_credentials(db_url):
        SecretKeys((new.encode(),), "new").decrypt(stored)
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(SecretKeyError, match=f"\\${KEY_ENV}"):
        load_keys(tmp_path)


def test_the_migration_encrypts_plain_rows_and_its_downgrade_decrypts_them(
    db_url: str, tmp_path: Path
) -> None:
    engine = make_engine(db_url)
    keys = load_keys(tmp_path / "data")
    assert keys is not None
    try:
        attach_keys(engine, keys)
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")  # PostgreSQL's copy is at head
            command.upgrade(alembic_config(conn), "0001")
            conn.execute(text("INSERT INTO users (id, name, created_at) VALUES ('u1', 'a', 0)"))
            conn.execute(
                text(
                    "INSERT INTO datasets (id, user_id, name, type, created_at, "
                    "last_modified_at) VALUES ('d1', 'u1', 'ds', 'Images', 0, 0)"
                )
            )
            plain = json.dumps({"s3_access_key_id": SECRETS["s3_key"]})
            conn.execute(
                text(
                    "INSERT INTO datasources (id, dataset_id, purpose, type, full_path, "
                    "options, credentials, created_at, last_modified_at) VALUES "
                    "('s1', 'd1', 'INPUT', 'S3', 's3://b/', '{}', :c, 0, 0)"
                ),
                {"c": plain},
            )
        upgrade_database(engine)
        [stored] = _raw_credentials(db_url)
        assert _leaks(stored) == []
        assert keys.decrypt(stored) == plain
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0001")
        assert _raw_credentials(db_url) == [plain]
        attach_keys(engine, None)
        with pytest.raises(SecretKeyError, match=KEY_FILE_NAME):
            upgrade_database(engine)
    finally:
        engine.dispose()


def test_two_first_starts_at_once_agree_on_one_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.delenv(KEY_ENV, raising=False)
    with ThreadPoolExecutor(8) as pool:
        loaded = list(pool.map(lambda _: load_keys(tmp_path / "data"), range(16)))
    assert len({k.keys for k in loaded if k is not None}) == 1
    assert [p.name for p in (tmp_path / "data").iterdir()] == [KEY_FILE_NAME]
    assert load_keys(tmp_path / "other", create=False) is None
