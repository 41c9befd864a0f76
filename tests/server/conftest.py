"""Server fixtures: every backend test runs on SQLite and on a throwaway PostgreSQL.

PostgreSQL comes from the binaries of the Debian package (``initdb``/``pg_ctl``), started once
per session in a temporary folder. Without them the PostgreSQL cases are skipped, except in
CI (``$CI`` set), where a missing PostgreSQL is a failure.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from selfsup.cli.apps import create_server_app
from selfsup.server.db import make_engine, upgrade_database
from selfsup.server.testing import ServerHarness, TemporaryPostgres, find_postgres_bin

BACKENDS = ["sqlite", "postgresql"]


class Postgres:
    """The session's PostgreSQL server and a migrated template database to copy per test."""

    def __init__(self, server: TemporaryPostgres) -> None:
        self.server = server
        template_url = server.create_database()
        engine = make_engine(template_url)
        upgrade_database(engine)
        engine.dispose()  # a template must have no open connections to be copied
        self.template = template_url.rsplit("/", 1)[1]

    def new_database(self) -> str:
        return self.server.create_database(template=self.template)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        message = "PostgreSQL is not installed (no initdb/pg_ctl on PATH or /usr/lib/postgresql)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must test PostgreSQL: apt-get install postgresql")
        pytest.skip(f"{message}; set CI=1 to make this a failure")
    server = TemporaryPostgres(bin_dir).start()
    try:
        yield Postgres(server)
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database: an SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'server.db'}"
    pg: Postgres = request.getfixturevalue("postgres")
    return pg.new_database()


@pytest.fixture
def local_root(tmp_path: Path) -> Path:
    """The allowed local root, with an ``images`` folder inside."""
    root = tmp_path / "roots" / "main"
    (root / "images").mkdir(parents=True)
    return root


@pytest.fixture
def make_server(
    db_url: str, tmp_path: Path, local_root: Path
) -> Iterator[Callable[..., ServerHarness]]:
    """Factory of apps on the test's database (several = restarts on the same database)."""
    made: list[ServerHarness] = []

    def factory(**settings: Any) -> ServerHarness:
        settings.setdefault("local_roots", (local_root,))
        # The whole app of ``selfsup serve``: the API and the web app's pages.
        settings.setdefault("app_factory", create_server_app)
        harness = ServerHarness(db_url, tmp_path / "data", **settings)
        made.append(harness)
        return harness

    yield factory
    for harness in made:
        harness.close()


@pytest.fixture
def server(make_server: Callable[..., ServerHarness]) -> ServerHarness:
    """One app on the test's database with a fake clock."""
    return make_server()


SEED_WORKER_CONFIG: dict[str, Any] = {
    "enable_corruptness_check": True,
    "remove_exact_duplicates": True,
    "enable_training": False,
    "pretagging": False,
    "pretagging_debug": False,
    "method": "coreset",
    "stopping_condition": {"n_samples": 0.1, "min_distance": -1},
    "scorer": "object-frequency",
    "scorer_config": {"frequency_penalty": 0.25, "min_score": 0.9},
    "active_learning": {"task_name": "", "score_name": "uncertainty_margin"},
    "object_level": {"task_name": ""},
}


class Actor:
    """One user talking raw HTTP to the server (status codes are checked by the tests)."""

    def __init__(self, server: ServerHarness, user: str, scope: str, local_root: Path) -> None:
        self.server = server
        self.http = server.http
        self.token = server.token(user, scope)
        self.h = server.headers(self.token)
        self.local_root = local_root

    def moved_to(self, server: ServerHarness) -> Actor:
        """The same user and token talking to another app (e.g. after a restart)."""
        moved = copy.copy(self)
        moved.server, moved.http = server, server.http
        return moved

    def dataset(self, name: str = "ds") -> str:
        r = self.http.post("/v1/datasets", json={"name": name}, headers=self.h)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def local_source(self, dataset_id: str, purpose: str = "INPUT_OUTPUT") -> None:
        body = {"type": "LOCAL", "full_path": str(self.local_root / "images"), "purpose": purpose}
        r = self.http.post(f"/v1/datasets/{dataset_id}/datasources", json=body, headers=self.h)
        assert r.status_code == 200, r.text

    def schedule(self, dataset_id: str, **body: Any) -> str:
        body.setdefault("worker_config", SEED_WORKER_CONFIG)
        r = self.http.post(f"/v1/datasets/{dataset_id}/scheduled-runs", json=body, headers=self.h)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def ready_dataset(self, name: str = "ds") -> str:
        dataset_id = self.dataset(name)
        self.local_source(dataset_id)
        return dataset_id

    def worker(self, name: str = "w", labels: list[str] | None = None) -> str:
        r = self.http.post(
            "/v1/workers", json={"name": name, "labels": labels or []}, headers=self.h
        )
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    def claim(self, worker_id: str) -> dict[str, Any] | None:
        r = self.http.post(f"/v1/workers/{worker_id}/claim", headers=self.h)
        if r.status_code == 204:
            return None
        assert r.status_code == 200, r.text
        claimed: dict[str, Any] = r.json()
        return claimed

    def run_path(self, worker_id: str, run_id: str) -> str:
        return f"/v1/workers/{worker_id}/runs/{run_id}"


@pytest.fixture
def make_actor(server: ServerHarness, local_root: Path) -> Callable[..., Actor]:
    """``make_actor("bob", scope="user")``: a user with a fresh token on ``server`` (or on
    the harness given as ``on=``)."""

    def factory(user: str = "alice", scope: str = "all", on: ServerHarness | None = None) -> Actor:
        return Actor(on or server, user, scope, local_root)

    return factory


@pytest.fixture
def alice(make_actor: Callable[..., Actor]) -> Actor:
    return make_actor("alice")
