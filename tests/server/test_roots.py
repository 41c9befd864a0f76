"""Each user has their own local roots (``selfsup token roots``); the ``--local-root``
folders are shared by every user. Roots are enforced when a datasource is set and when a
worker fetches the job, which carries their real paths for the worker's own checks."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from selfsup.server.cli import token_main
from selfsup.server.testing import ServerHarness


def _set_roots(server: ServerHarness, user: str, *add: Path, remove: tuple[Path, ...] = ()) -> None:
    from selfsup.server.roots import change_roots

    with server.app.state.sessions() as session:
        change_roots(session, user, [str(p) for p in add], [str(p) for p in remove], 0)
        session.commit()


def _local(server: ServerHarness, actor: Any, dataset_id: str, path: Path) -> Any:
    body = {"type": "LOCAL", "full_path": str(path), "purpose": "INPUT_OUTPUT"}
    return server.http.post(f"/v1/datasets/{dataset_id}/datasources", json=body, headers=actor.h)


@pytest.fixture
def homes(tmp_path: Path) -> dict[str, Path]:
    folders = {u: tmp_path / "homes" / u for u in ("alice", "bob")}
    for folder in folders.values():
        (folder / "images").mkdir(parents=True)
    return folders


def test_a_user_cannot_point_a_datasource_at_another_users_folder(
    make_server: Callable[..., ServerHarness],
    make_actor: Callable[..., Any],
    homes: dict[str, Path],
) -> None:
    server = make_server(local_roots=())  # nothing shared
    alice, bob = make_actor("alice", on=server), make_actor("bob", on=server)
    _set_roots(server, "alice", homes["alice"])
    _set_roots(server, "bob", homes["bob"])
    dataset = alice.dataset()
    refused = _local(server, alice, dataset, homes["bob"] / "images")
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "PATH_OUTSIDE_ROOTS"
    assert str(homes["alice"]) in refused.json()["error"]
    # A link from alice's root into bob's is resolved first, and refused the same way.
    os.symlink(homes["bob"], homes["alice"] / "to-bob")
    linked = _local(server, alice, dataset, homes["alice"] / "to-bob" / "images")
    assert linked.status_code == 403, linked.text
    assert _local(server, alice, dataset, homes["alice"] / "images").status_code == 200
    relative = _local(server, alice, dataset, Path("images"))  # relative to her first root
    assert relative.status_code == 200, relative.text
    assert relative.json()[0]["full_path"] == str((homes["alice"] / "images").resolve())
    bob_ds = bob.dataset()
    assert _local(server, bob, bob_ds, homes["alice"] / "images").status_code == 403
    # Without own or shared roots, LOCAL is off for that user, with what to do.
    carol = make_actor("carol", on=server)
    r = _local(server, carol, carol.dataset(), homes["alice"])
    assert r.status_code == 403
    assert "selfsup token roots --user NAME --add DIR" in r.json()["error"]


def test_shared_roots_are_open_to_every_user_besides_their_own(
    make_server: Callable[..., ServerHarness],
    make_actor: Callable[..., Any],
    homes: dict[str, Path],
    local_root: Path,
) -> None:
    server = make_server()  # local_root shared
    alice, bob = make_actor("alice", on=server), make_actor("bob", on=server)
    _set_roots(server, "alice", homes["alice"])
    assert _local(server, alice, alice.dataset(), homes["alice"] / "images").status_code == 200
    assert _local(server, bob, bob.dataset(), local_root / "images").status_code == 200
    assert _local(server, bob, bob.dataset("b2"), homes["alice"]).status_code == 403


def test_the_job_carries_the_owners_real_roots_and_is_refused_once_a_root_is_gone(
    make_server: Callable[..., ServerHarness],
    make_actor: Callable[..., Any],
    homes: dict[str, Path],
    local_root: Path,
    tmp_path: Path,
) -> None:
    server = make_server()
    alice = make_actor("alice", on=server)
    link = tmp_path / "alice-link"
    os.symlink(homes["alice"], link)
    _set_roots(server, "alice", link)  # stored as given, sent resolved
    dataset = alice.dataset()
    assert _local(server, alice, dataset, link / "images").status_code == 200
    alice.schedule(dataset)
    worker_id = alice.worker()
    claim = alice.claim(worker_id)
    assert claim is not None
    job_url = f"{alice.run_path(worker_id, claim['run']['id'])}/job"
    job = server.http.get(job_url, headers=alice.h)
    assert job.status_code == 200, job.text
    for source in job.json()["datasources"]:
        assert source["allowed_roots"] == [
            str(homes["alice"].resolve()),
            str(local_root.resolve()),
        ]
    # The admin takes the root away: the job no longer opens the folder.
    _set_roots(server, "alice", remove=(link,))
    refused = server.http.get(job_url, headers=alice.h)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "PATH_OUTSIDE_ROOTS"


def test_cloud_datasources_carry_no_roots(
    server: ServerHarness, make_actor: Callable[..., Any]
) -> None:
    alice = make_actor("alice")
    dataset = alice.dataset()
    body = {"type": "AZURE", "full_path": "c/in/", "account_name": "a", "account_key": "k"}
    r = server.http.post(f"/v1/datasets/{dataset}/datasources", json=body, headers=alice.h)
    assert r.status_code == 200, r.text
    alice.schedule(dataset)
    worker_id = alice.worker()
    claim = alice.claim(worker_id)
    assert claim is not None
    job = server.http.get(f"{alice.run_path(worker_id, claim['run']['id'])}/job", headers=alice.h)
    assert [s["allowed_roots"] for s in job.json()["datasources"]] == [[], []]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_token_roots_adds_lists_and_removes(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], homes: dict[str, Path]
) -> None:
    db = ["--db", db_url, "--data-dir", str(tmp_path / "data")]
    assert token_main([*db, "create", "--user", "alice"]) == 0
    capsys.readouterr()
    assert token_main([*db, "roots", "--user", "alice", "--add", str(homes["alice"])]) == 0
    out = capsys.readouterr()
    assert out.out.split() == [str(homes["alice"])]
    assert "shared by every user" in out.err
    assert token_main([*db, "roots", "--user", "alice"]) == 0
    assert capsys.readouterr().out.split() == [str(homes["alice"])]
    assert token_main([*db, "roots", "--user", "alice", "--add", "relative/dir"]) == 2
    assert "absolute path" in capsys.readouterr().err
    assert token_main([*db, "roots", "--user", "alice", "--remove", "/not/a/root"]) == 2
    assert str(homes["alice"]) in capsys.readouterr().err
    assert token_main([*db, "roots", "--user", "nobody"]) == 2
    assert "no user 'nobody'" in capsys.readouterr().err
    assert token_main([*db, "roots", "--user", "alice", "--remove", str(homes["alice"])]) == 0
    assert capsys.readouterr().out.split() == []
