"""Tokens: required everywhere but /health, hashed at rest, scoped, revocable."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from selfsup.server.auth import hash_token, split_token
from selfsup.server.models import ApiToken
from selfsup.server.testing import ServerHarness

OPEN_PATHS = {"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def _every_endpoint(server: ServerHarness) -> list[tuple[str, str]]:
    """(method, path with dummy ids) of every API route, read from the OpenAPI schema."""
    schema = server.http.get("/openapi.json").json()
    endpoints = []
    for path, methods in schema["paths"].items():
        if path in OPEN_PATHS:
            continue
        concrete = re.sub(r"\{[^}]+\}", "0123456789abcdef01234567", path)
        endpoints.extend((method.upper(), concrete) for method in methods)
    return endpoints


def test_health_needs_no_token(server: ServerHarness) -> None:
    r = server.http.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_other_endpoint_answers_401_without_a_valid_token(server: ServerHarness) -> None:
    endpoints = _every_endpoint(server)
    assert len(endpoints) >= 15  # the schema lists the whole API
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Bearer selfsup_0123456789ab_" + "x" * 43},  # well-formed, unknown
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ]
    for method, path in endpoints:
        for headers in bad_headers:
            r = server.http.request(method, path, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.text)
            body = r.json()
            assert body["code"] == "UNAUTHORIZED", body
            assert body["error"]
            assert r.headers["www-authenticate"] == "Bearer"


def test_token_is_stored_only_as_its_hash(server: ServerHarness) -> None:
    token = server.token("alice")
    token_id, secret = split_token(token) or ("", "")
    assert len(token_id) == 12
    assert len(secret) >= 43
    with server.app.state.sessions() as session:
        rows = session.scalars(select(ApiToken)).all()
    assert [r.id for r in rows] == [token_id]
    assert rows[0].token_hash == hash_token(token)
    stored = " ".join(str(v) for r in rows for v in vars(r).values())
    assert secret not in stored


def test_tampered_and_revoked_tokens_are_refused(server: ServerHarness) -> None:
    token = server.token("alice")
    assert server.http.get("/v1/datasets", headers=server.headers(token)).status_code == 200
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert server.http.get("/v1/datasets", headers=server.headers(tampered)).status_code == 401
    token_id = token.split("_")[1]
    with server.app.state.sessions() as session:
        row = session.get(ApiToken, token_id)
        assert row is not None
        row.revoked_at = server.clock()
        session.commit()
    r = server.http.get("/v1/datasets", headers=server.headers(token))
    assert r.status_code == 401
    assert "revoked" in r.json()["error"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_scopes_separate_user_and_worker_endpoints(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    owner = make_actor("alice")
    dataset_id = owner.ready_dataset()
    owner.schedule(dataset_id)
    user_only = server.headers(server.token("alice", scope="user"))
    worker_only = server.headers(server.token("alice", scope="worker"))

    worker_id = owner.worker("w")
    r = server.http.post(f"/v1/workers/{worker_id}/claim", headers=user_only)
    assert r.status_code == 403
    assert "worker" in r.json()["error"]
    r = server.http.get("/v1/datasets", headers=worker_only)
    assert r.status_code == 403
    # The worker token does what a worker does.
    r = server.http.post(f"/v1/workers/{worker_id}/claim", headers=worker_only)
    assert r.status_code == 200
