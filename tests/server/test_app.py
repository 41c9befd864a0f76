"""The app as a whole: OpenAPI schema, JSON errors, the background sweeper, and no torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from selfsup.server.testing import ServerHarness

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@SQLITE_ONLY
def test_openapi_schema_is_published_with_the_api_types(server: ServerHarness) -> None:
    r = server.http.get("/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    assert schema["info"]["title"] == "selfsup server"
    for path in (
        "/v1/datasets",
        "/v1/datasets/{dataset_id}/datasources",
        "/v1/datasets/{dataset_id}/scheduled-runs",
        "/v1/workers/{worker_id}/claim",
        "/v1/workers/{worker_id}/runs/{run_id}/artifacts",
        "/v1/runs/{run_id}/artifacts/{artifact_id}",
    ):
        assert path in schema["paths"], path
    components = schema["components"]["schemas"]
    for name in (
        "DatasetData",
        "DockerRunData",
        "DockerRunScheduledCreateRequest",
        "ApiErrorResponse",
    ):
        assert name in components, name
    assert any(
        s.get("scheme") == "bearer" for s in schema["components"]["securitySchemes"].values()
    )
    # The user-facing datasource body never carries credentials.
    assert "s3_secret_access_key" not in json.dumps(components["DatasourceData"])


@SQLITE_ONLY
def test_errors_are_json_with_a_code_and_a_message(server: ServerHarness) -> None:
    h = server.headers(server.token("alice"))
    cases = [
        (server.http.get("/v1/nowhere", headers=h), 404, "NOT_FOUND"),
        (server.http.put("/v1/datasets", headers=h), 405, "METHOD_NOT_ALLOWED"),
        (server.http.get("/v1/datasets/abc", headers=h), 404, "NOT_FOUND"),
        (server.http.post("/v1/datasets", json={"name": ""}, headers=h), 422, "MALFORMED_REQUEST"),
        (server.http.post("/v1/datasets", json={"nmae": "x"}, headers=h), 422, "MALFORMED_REQUEST"),
    ]
    for response, status, code in cases:
        assert response.status_code == status
        body = response.json()
        assert set(body) == {"code", "error"}
        assert body["code"] == code
        assert body["error"]
    assert "did you mean 'name'" in cases[-1][0].json()["error"]
    assert cases[2][0].json()["error"] == "dataset 'abc' not found"


@SQLITE_ONLY
def test_unexpected_errors_are_500_json_without_internals(
    server: ServerHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selfsup.server.routes import datasets

    def boom(*_args: Any) -> Any:
        raise RuntimeError("internal detail /secret/path")

    monkeypatch.setattr(datasets, "dataset_data", boom)
    client = TestClient(server.app, raise_server_exceptions=False)
    h = server.headers(server.token("alice"))
    r = client.post("/v1/datasets", json={"name": "x"}, headers=h)
    assert r.status_code == 500
    assert r.json() == {
        "code": "INTERNAL_ERROR",
        "error": "internal server error; see the server log",
    }


@SQLITE_ONLY
def test_the_app_sweeps_expired_leases_in_the_background(
    make_server: Callable[..., ServerHarness], make_actor: Callable[..., Any]
) -> None:
    server = make_server(sweep_interval_seconds=0.05, lease_seconds=30)
    alice = make_actor("alice", on=server)
    scheduled_id = alice.schedule(alice.ready_dataset())
    worker_id = alice.worker()
    claim = alice.claim(worker_id)
    assert claim is not None
    with server.live() as live:
        server.clock.advance(31)
        deadline = time.monotonic() + 10
        state = ""
        while time.monotonic() < deadline:
            r = httpx.get(f"{live.url}/v1/runs/{claim['run']['id']}", headers=alice.h)
            state = r.json()["state"]
            if state == "CRASHED":
                break
            time.sleep(0.05)
        assert state == "CRASHED"
        r = httpx.get(f"{live.url}/v1/scheduled-runs/{scheduled_id}", headers=alice.h)
        assert r.json()["state"] == "OPEN"


def test_the_server_and_client_never_import_torch(tmp_path: Path, local_root: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from selfsup.server.testing import ServerHarness
        import selfsup.api, selfsup.server.cli, selfsup.openapi_generated.swagger_client

        h = ServerHarness(
            "sqlite:///{tmp_path}/s.db", Path("{tmp_path}/data"), (Path("{local_root}"),)
        )
        token = h.token("alice")
        head = h.headers(token)
        ds = h.http.post("/v1/datasets", json={{"name": "d"}}, headers=head).json()["id"]
        h.http.post(f"/v1/datasets/{{ds}}/datasources",
                    json={{"type": "LOCAL", "full_path": "images"}}, headers=head)
        r = h.http.post(f"/v1/datasets/{{ds}}/scheduled-runs", headers=head, json={{
            "worker_config": {{"enable_training": True}},
            "lightly_config": {{"trainer": {{"max_epochs": 1}}}},
            "selection_config": {{"n_samples": 5, "strategies": [
                {{"input": {{"type": "EMBEDDINGS"}}, "strategy": {{"type": "DIVERSITY"}}}}]}},
        }})
        assert r.status_code == 201, r.text
        w = h.http.post("/v1/workers", json={{"name": "w"}}, headers=head).json()["id"]
        run = h.http.post(f"/v1/workers/{{w}}/claim", headers=head).json()["run"]["id"]
        assert h.http.get(f"/v1/workers/{{w}}/runs/{{run}}/job", headers=head).status_code == 200
        h.close()
        print(sorted(m for m in ("torch", "torchvision", "pytorch_lightning") if m in sys.modules))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
