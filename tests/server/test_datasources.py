"""Datasources: credentials are stored for workers only (never returned to users, never
logged), and LOCAL paths cannot escape the allowed roots."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from selfsup.server.testing import ServerHarness

SECRETS = {
    "s3_key": "AKIA-SECRET-KEY-ID-4242",
    "s3_secret": "s3-SECRET-access-key-9f9f9f",
    "gcs": json.dumps({"type": "service_account", "private_key": "GCS-PRIVATE-KEY-7777"}),
    "sas": "sv=2024&sig=AZURE-SAS-SIGNATURE-1234",
}


def _configs() -> list[dict[str, Any]]:
    return [
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
            "gcs_credentials": SECRETS["gcs"],
            "purpose": "LIGHTLY",
        },
        {
            "type": "AZURE",
            "full_path": "my-container/input/",
            "account_name": "acct",
            "account_key": SECRETS["sas"],
            "purpose": "INPUT_OUTPUT",
        },
    ]


def _leaks(text: str) -> list[str]:
    needles = [SECRETS["s3_key"], SECRETS["s3_secret"], "GCS-PRIVATE-KEY-7777", SECRETS["sas"]]
    return [n for n in needles if n in text]


def test_credentials_reach_the_worker_but_never_users_or_logs(
    server: ServerHarness, make_actor: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    # Everything any logger emits, with SQL logging switched on as an operator debugging
    # the database would (SQLAlchemy's own logger is at WARNING by default).
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    alice = make_actor("alice")
    dataset_id = alice.dataset()
    user_texts: list[str] = []
    for config in _configs()[:2]:
        r = server.http.post(f"/v1/datasets/{dataset_id}/datasources", json=config, headers=alice.h)
        assert r.status_code == 200, r.text
        user_texts.append(r.text)
    listed = server.http.get(f"/v1/datasets/{dataset_id}/datasources", headers=alice.h)
    user_texts.append(listed.text)
    assert {d["purpose"]: d["type"] for d in listed.json()} == {"INPUT": "S3", "LIGHTLY": "GCS"}
    assert all(d["has_credentials"] for d in listed.json())
    assert {d["purpose"]: d["options"] for d in listed.json()} == {
        "INPUT": {"s3_region": "eu-central-1"},
        "LIGHTLY": {"gcs_project_id": "proj"},
    }
    scheduled_id = alice.schedule(dataset_id)
    for path in (
        f"/v1/scheduled-runs/{scheduled_id}",
        "/v1/scheduled-runs",
        "/v1/datasets",
        f"/v1/datasets/{dataset_id}",
        "/openapi.json",
    ):
        user_texts.append(server.http.get(path, headers=alice.h).text)
    # A malformed body that contains a secret must not be echoed back either.
    bad = dict(_configs()[0], s3_region=12345)
    r = server.http.post(f"/v1/datasets/{dataset_id}/datasources", json=bad, headers=alice.h)
    assert r.status_code == 422
    user_texts.append(r.text)
    assert _leaks("\n".join(user_texts)) == []

    # The worker holding the run gets them, exactly as given.
    worker_id = alice.worker()
    claim = alice.claim(worker_id)
    assert claim is not None
    job = server.http.get(
        f"{alice.run_path(worker_id, claim['run']['id'])}/job", headers=alice.h
    ).json()
    creds = {d["purpose"]: d["credentials"] for d in job["datasources"]}
    assert creds["INPUT"] == {
        "s3_access_key_id": SECRETS["s3_key"],
        "s3_secret_access_key": SECRETS["s3_secret"],
    }
    assert creds["LIGHTLY"] == {"gcs_credentials": SECRETS["gcs"]}
    assert _leaks(caplog.text) == []
    # The capture did see the requests and the SQL (with parameters hidden).
    assert "datasource set" in caplog.text
    assert "INSERT INTO datasources" in caplog.text


def test_input_output_sets_both_purposes_and_replaces_earlier_ones(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice = make_actor("alice")
    dataset_id = alice.dataset()
    for config in _configs():
        r = server.http.post(f"/v1/datasets/{dataset_id}/datasources", json=config, headers=alice.h)
        assert r.status_code == 200
    sources = r.json()
    assert sorted(d["purpose"] for d in sources) == ["INPUT", "LIGHTLY"]
    assert {d["type"] for d in sources} == {"AZURE"}
    assert {d["full_path"] for d in sources} == {"my-container/input/"}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_local_paths_must_stay_inside_the_allowed_roots(
    server: ServerHarness, make_actor: Callable[..., Any], local_root: Path, tmp_path: Path
) -> None:
    alice = make_actor("alice")
    dataset_id = alice.dataset()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, local_root / "link-out")
    os.symlink(local_root / "images", local_root / "link-in")

    def post(path: str) -> Any:
        body = {"type": "LOCAL", "full_path": path, "purpose": "INPUT"}
        return server.http.post(
            f"/v1/datasets/{dataset_id}/datasources", json=body, headers=alice.h
        )

    refused = {
        str(local_root / "images" / ".." / ".." / ".."): (400, "PATH_ESCAPE"),
        "../main/images": (400, "PATH_ESCAPE"),
        "images/../../x": (400, "PATH_ESCAPE"),
        "/etc": (403, "PATH_OUTSIDE_ROOTS"),
        str(outside): (403, "PATH_OUTSIDE_ROOTS"),
        str(local_root / "link-out"): (403, "PATH_OUTSIDE_ROOTS"),
        "link-out/sub": (403, "PATH_OUTSIDE_ROOTS"),
        "images\x00": (400, "INVALID_PATH"),
    }
    for path, (status, code) in refused.items():
        r = post(path)
        assert (r.status_code, r.json()["code"]) == (status, code), (path, r.text)
        assert "allowed roots" in r.json()["error"] or code == "INVALID_PATH"

    accepted = {
        str(local_root / "images"): local_root / "images",
        "images": local_root / "images",  # relative to the first root
        str(local_root / "link-in"): local_root / "images",  # a link that stays inside
        str(local_root / "not-yet-created"): local_root / "not-yet-created",
    }
    for path, expected in accepted.items():
        r = post(path)
        assert r.status_code == 200, (path, r.text)
        stored = {d["purpose"]: d["full_path"] for d in r.json()}["INPUT"]
        assert stored == str(expected.resolve())


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_local_datasources_are_refused_without_roots(
    make_server: Callable[..., ServerHarness], make_actor: Callable[..., Any], tmp_path: Path
) -> None:
    rootless = make_server(local_roots=())
    token = rootless.token("alice")
    h = rootless.headers(token)
    dataset_id = rootless.http.post("/v1/datasets", json={"name": "d"}, headers=h).json()["id"]
    r = rootless.http.post(
        f"/v1/datasets/{dataset_id}/datasources",
        json={"type": "LOCAL", "full_path": str(tmp_path)},
        headers=h,
    )
    assert r.status_code == 403
    assert "--local-root" in r.json()["error"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_malformed_datasource_bodies_are_422_with_the_field(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice = make_actor("alice")
    dataset_id = alice.dataset()
    url = f"/v1/datasets/{dataset_id}/datasources"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"type": "S3", "full_path": "http://bucket/x", "s3_region": "r", "s3_access_key_id": "a",
          "s3_secret_access_key": "b"}, "full_path"),
        ({"type": "S3", "full_path": "s3://b/", "s3_regoin": "r", "s3_access_key_id": "a",
          "s3_secret_access_key": "b"}, "did you mean 's3_region'"),
        ({"type": "FTP", "full_path": "ftp://x"}, "type"),
        ({"type": "LOCAL", "full_path": "images", "purpose": "OUTPUT"}, "purpose"),
        ({"type": "LOCAL"}, "full_path: field required"),
        # Bucket and container names end at the first '/': no newline or space in them.
        ({"type": "S3", "full_path": "s3://b\n", "s3_region": "r", "s3_access_key_id": "a",
          "s3_secret_access_key": "b"}, "full_path"),
        ({"type": "GCS", "full_path": "gs://b c/x", "gcs_project_id": "p",
          "gcs_credentials": "{}"}, "full_path"),
        ({"type": "AZURE", "full_path": "container\n", "account_name": "a",
          "account_key": "k"}, "full_path"),
        ({"type": "AZURE", "full_path": "/container", "account_name": "a",
          "account_key": "k"}, "full_path"),
    ]  # fmt: skip
    for body, expected in cases:
        r = server.http.post(url, json=body, headers=alice.h)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["code"] == "MALFORMED_REQUEST"
        assert expected in r.json()["error"], (body, r.json())
