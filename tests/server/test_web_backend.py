"""The web app's view of the server database: login, per-user runs, live states, logs."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from _web import complete_local_run
from selfsup.apphelpers.web_backend import (
    InvalidTag,
    InvalidToken,
    OutputsUnavailable,
    Viewer,
    WebNotFound,
)
from selfsup.cli.apps import create_server_app
from selfsup.server.models import ApiToken
from selfsup.server.testing import ServerHarness
from selfsup.server.web_backend import ServerBackend
from selfsup.web.backend import RunView, RunViewOpener

WORKER_CONFIG = {"stopping_condition": {"n_samples": 0.5}}


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[ServerHarness]:
    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    (root / "out").mkdir()
    h = ServerHarness(
        f"sqlite:///{tmp_path / 'server.db'}",
        tmp_path / "data",
        local_roots=(root,),
        app_factory=create_server_app,
    )
    yield h
    h.close()


@pytest.fixture
def backend(harness: ServerHarness) -> ServerBackend[RunView]:
    return ServerBackend(harness.app.state.sessions, harness.settings, RunViewOpener())


def _schedule(
    harness: ServerHarness,
    token: str,
    name: str = "streets",
    images: Path | None = None,
    out: Path | None = None,
) -> tuple[str, str]:
    """A dataset with LOCAL datasources (by default the root's ``images`` and ``out``) and
    one scheduled run: (dataset id, scheduled id)."""
    client = harness.client(token)
    dataset_id = client.create_dataset(name)
    root = harness.settings.local_roots[0]
    client.set_local_config(resource_path=str(images or root / "images"), purpose="INPUT")
    client.set_local_config(resource_path=str(out or root / "out"), purpose="LIGHTLY")
    return dataset_id, client.schedule_compute_worker_run(worker_config=WORKER_CONFIG)


def _completed_run(
    harness: ServerHarness, token: str, name: str, images: Path, out: Path, outputs: Path
) -> str:
    """A job reading ``images`` and writing into ``out``, completed by a worker that left
    ``outputs`` as its run folder there: the scheduled id."""
    scheduled_id, _ = complete_local_run(
        harness, token, images, out, outputs, name=name, worker_config=WORKER_CONFIG
    )
    return scheduled_id


def test_login_with_a_user_token_gives_its_user(
    harness: ServerHarness, backend: ServerBackend[RunView]
) -> None:
    token = harness.token("alice")
    viewer = backend.login(f"  {token}\n")  # pasted with whitespace
    assert viewer.name == "alice"
    assert viewer.session_id not in token  # a random id, recorded on the server
    assert backend.viewer(viewer.session_id) == viewer
    assert backend.login(token).session_id != viewer.session_id  # one per login


def test_logging_out_ends_the_session_on_the_server(
    harness: ServerHarness, backend: ServerBackend[RunView]
) -> None:
    token = harness.token("alice")
    first, second = backend.login(token), backend.login(token)
    backend.logout(first.session_id)
    assert backend.viewer(first.session_id) is None  # a replayed cookie is refused
    assert backend.viewer(second.session_id) == second  # other browsers stay logged in
    backend.logout(first.session_id)  # twice is harmless
    backend.logout("never-issued")
    harness.clock.advance(8 * 24 * 3600)  # past the 7-day lifetime
    assert backend.viewer(second.session_id) is None


@pytest.mark.parametrize(
    ("token", "message"),
    [("nonsense", "malformed"), ("selfsup_0123456789ab_secret", "invalid API token")],
)
def test_login_with_a_bad_token_says_why(
    backend: ServerBackend[RunView], token: str, message: str
) -> None:
    with pytest.raises(InvalidToken, match=message):
        backend.login(token)


def test_worker_tokens_cannot_log_in(
    harness: ServerHarness, backend: ServerBackend[RunView]
) -> None:
    with pytest.raises(InvalidToken, match="worker token"):
        backend.login(harness.token("alice", scope="worker"))


def test_revoking_the_token_ends_its_sessions(
    harness: ServerHarness, backend: ServerBackend[RunView]
) -> None:
    token = harness.token("alice")
    viewer = backend.login(token)
    with harness.app.state.sessions() as session:
        row = session.get(ApiToken, token.split("_")[1])
        assert row is not None
        row.revoked_at = harness.clock()
        session.commit()
    assert backend.viewer(viewer.session_id) is None
    assert backend.viewer("unknown-id") is None


def test_runs_follow_the_job_from_open_to_completed(
    harness: ServerHarness, backend: ServerBackend[RunView]
) -> None:
    token = harness.token("alice")
    viewer = backend.login(token)
    dataset_id, scheduled_id = _schedule(harness, token)
    [dataset] = backend.datasets(viewer)
    assert (dataset.id, dataset.name) == (dataset_id, "streets")
    [row] = backend.runs(viewer)
    assert (row.id, row.state, row.is_final, row.has_outputs) == (
        scheduled_id,
        "OPEN",
        False,
        False,
    )

    workers = harness.worker_client(token)
    worker_id = workers.register("w1").id
    claim = workers.claim(worker_id)
    assert claim is not None
    run_id = claim.run.id
    workers.set_state(worker_id, run_id, "TRAINING")
    summary = backend.run(viewer, scheduled_id)
    assert (summary.state, summary.is_final) == ("TRAINING", False)
    # The API's run id opens the same job.
    assert backend.run(viewer, run_id).id == scheduled_id
    with pytest.raises(OutputsUnavailable, match="TRAINING"):
        backend.view(viewer, scheduled_id)

    workers.set_state(worker_id, run_id, "COMPLETED", "5 samples selected")
    [row] = backend.runs(viewer, dataset_id)
    assert (row.state, row.message, row.is_final, row.has_outputs) == (
        "COMPLETED",
        "5 samples selected",
        True,
        True,
    )
    # Completed, but the worker wrote no output folder: said plainly, not a crash.
    with pytest.raises(OutputsUnavailable, match="gone"):
        backend.view(viewer, scheduled_id)


def test_log_is_read_incrementally(harness: ServerHarness, backend: ServerBackend[RunView]) -> None:
    token = harness.token("alice")
    viewer = backend.login(token)
    _, scheduled_id = _schedule(harness, token)
    assert backend.log(viewer, scheduled_id, 0) == ("", 0)
    workers = harness.worker_client(token)
    worker_id = workers.register("w1").id
    claim = workers.claim(worker_id)
    assert claim is not None
    workers.append_log(worker_id, claim.run.id, "step 1 — début\n")
    text, offset = backend.log(viewer, scheduled_id, 0)
    assert text == "step 1 — début\n"
    workers.append_log(worker_id, claim.run.id, "step 2\n")
    assert backend.log(viewer, scheduled_id, offset) == ("step 2\n", offset + 7)


def test_other_users_runs_and_artifacts_are_not_found(
    harness: ServerHarness, backend: ServerBackend[RunView]
) -> None:
    alice = harness.token("alice")
    _, scheduled_id = _schedule(harness, alice)
    bob: Viewer = backend.login(harness.token("bob"))
    assert backend.runs(bob) == []
    assert backend.datasets(bob) == []
    for call in (
        lambda: backend.run(bob, scheduled_id),
        lambda: backend.log(bob, scheduled_id, 0),
        lambda: backend.view(bob, scheduled_id),
        lambda: backend.downloads(bob, scheduled_id),
        lambda: backend.artifact_path(bob, scheduled_id, "x"),
    ):
        with pytest.raises(WebNotFound):
            call()


def test_a_crashed_attempt_is_followed_by_its_retry(
    harness: ServerHarness, backend: ServerBackend[RunView]
) -> None:
    token = harness.token("alice")
    viewer = backend.login(token)
    _, scheduled_id = _schedule(harness, token)
    workers = harness.worker_client(token)
    worker_id = workers.register("w1").id
    assert workers.claim(worker_id) is not None
    harness.clock.advance(harness.settings.lease_seconds + 1)
    assert harness.sweep()
    crashed = backend.run(viewer, scheduled_id)
    assert (crashed.state, crashed.is_final) == ("CRASHED", False)
    assert crashed.message == "attempt 1 of 3 crashed; waiting for a retry"
    retry = workers.claim(worker_id)
    assert retry is not None
    workers.set_state(worker_id, retry.run.id, "TRAINING", "epoch 1")
    summary = backend.run(viewer, scheduled_id)
    assert (summary.state, summary.message) == ("TRAINING", "epoch 1; attempt 2 of 3")
    assert summary.name.endswith(scheduled_id[-6:])  # stable while the job is retried


@pytest.mark.slow
def test_outputs_in_s3_are_copied_once_and_images_read_from_s3(
    harness: ServerHarness,
    backend: ServerBackend[RunView],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from _s3 import local_s3
    from _web import build_small_run

    out = build_small_run(tmp_path / "small")
    (out / "selfsup_epoch_0.ckpt").write_bytes(b"a checkpoint the web app must not copy")
    with local_s3(monkeypatch) as s3:
        token = harness.token("alice")
        viewer = backend.login(token)
        client = harness.client(token)
        client.create_dataset("cloud")
        for prefix, purpose in (("input", "INPUT"), ("lightly", "LIGHTLY")):
            client.set_s3_config(
                f"s3://bucket/{prefix}/", "us-east-1", "testing", "testing", purpose=purpose
            )
        scheduled_id = client.schedule_compute_worker_run(worker_config=WORKER_CONFIG)
        workers = harness.worker_client(token)
        worker_id = workers.register("w1").id
        claim = workers.claim(worker_id)
        assert claim is not None
        run_id = claim.run.id
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            key = f"lightly/runs/{run_id}/{path.relative_to(out).as_posix()}"
            s3.upload_file(str(path), "bucket", key)
        images = tmp_path / "small" / "images"
        for path in sorted(p for p in images.rglob("*") if p.is_file()):
            s3.upload_file(str(path), "bucket", f"input/{path.relative_to(images).as_posix()}")
        workers.set_state(worker_id, run_id, "COMPLETED", "10 samples selected")

        view = backend.view(viewer, scheduled_id)
        report = json.loads((out / "report.json").read_text())
        counts = view.outputs.counts()
        assert counts["selected"] == report["counts"]["n_selected"]
        assert counts["corrupt"] == report["counts"]["n_corrupt"]
        copied = view.outputs.folder
        assert copied.is_relative_to(harness.settings.data_dir)
        assert not list(copied.glob("*.ckpt"))  # checkpoints are artifacts, not copied
        assert backend.view(viewer, scheduled_id) is view  # opened once
        selected = view.outputs.page("selected", 0, 1)[0][0]
        thumbnail = view.thumbnails.thumbnail(selected, view.reader)
        assert thumbnail.read_bytes()[:2] == b"\xff\xd8"  # a JPEG made from the S3 image
        labels = [d.label for d in backend.downloads(viewer, scheduled_id)]
        assert "output/report.json" in labels


def test_image_links_leaving_the_owners_roots_are_never_served(
    harness: ServerHarness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file of the input folder that links outside the owner's roots (another user's
    folder, /etc) gets a placeholder, logged, never its picture; inside the roots it works."""
    from fastapi.testclient import TestClient
    from PIL import Image

    from _web import build_small_run
    from selfsup.web.outputs import RunOutputs

    root = harness.settings.local_roots[0]
    out = build_small_run(root / "small")
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.new("RGB", (16, 16), "red").save(outside / "secret.png")
    token = harness.token("alice")
    scheduled_id = _completed_run(
        harness, token, "links", root / "small" / "images", root / "out", out
    )

    samples = [s for s in RunOutputs.open(out, tmp_path / "c").samples if s.status != "corrupt"]
    leaving, staying, plain = samples[0], samples[1], samples[2]
    images = root / "small" / "images"
    (images / leaving.source).unlink()
    (images / leaving.source).symlink_to(outside / "secret.png")
    inside_copy = root / "elsewhere-inside.png"
    shutil.copy(images / staying.source, inside_copy)
    (images / staying.source).unlink()
    (images / staying.source).symlink_to(inside_copy)

    browser = TestClient(harness.app, base_url="http://testserver", follow_redirects=False)
    assert browser.post("/login", data={"token": token}).status_code == 303
    caplog.set_level(logging.WARNING)
    for kind in ("thumbs", "preview"):
        refused = browser.get(f"/runs/{scheduled_id}/{kind}/{leaving.index}")
        assert refused.status_code == 200
        assert refused.headers["content-type"].startswith("image/svg+xml")
        assert "outside the allowed roots" in refused.headers["x-selfsup-thumbnail-error"]
        assert str(outside) not in refused.headers["x-selfsup-thumbnail-error"]
        for ok in (staying, plain):
            served = browser.get(f"/runs/{scheduled_id}/{kind}/{ok.index}")
            assert served.headers["content-type"] == "image/jpeg", ok.source
    assert "outside the allowed roots" in caplog.text
    # Without the root (a server without the shared one), the run's pages are closed.
    backend: ServerBackend[RunView] = harness.app.state.web
    viewer = backend.viewer(browser.cookies["selfsup_session"].rsplit(".", 2)[0])
    assert viewer is not None
    restricted = ServerBackend(
        harness.app.state.sessions,
        dataclasses.replace(harness.settings, local_roots=()),
        RunViewOpener(),
    )
    with pytest.raises(OutputsUnavailable, match="LOCAL folders"):
        restricted.view(viewer, scheduled_id)


def test_a_root_taken_away_closes_a_cached_run_view(
    harness: ServerHarness, backend: ServerBackend[RunView], tmp_path: Path
) -> None:
    """Per-user roots are read at every use: removing one closes pages already opened."""
    from _web import build_small_run
    from selfsup.server.roots import change_roots

    own = tmp_path / "alice-home"
    out = build_small_run(own / "small")
    token = harness.token("alice")
    with harness.app.state.sessions() as session:
        change_roots(session, "alice", [str(own)], [], 0)
        session.commit()
    scheduled_id = _completed_run(harness, token, "own", own / "small" / "images", own / "out", out)
    viewer = backend.login(token)
    view = backend.view(viewer, scheduled_id)
    source = view.outputs.samples[0].source
    served = view.reader.local_path(source)
    assert served is not None  # served while the root is the owner's
    assert served.is_file()
    with harness.app.state.sessions() as session:
        change_roots(session, "alice", [], [str(own)], 0)
        session.commit()
    with pytest.raises(FileNotFoundError, match="outside the allowed roots"):
        view.reader.local_path(source)
    with pytest.raises(OutputsUnavailable, match="outside the allowed roots"):
        backend.view(viewer, scheduled_id)


# --------------------------------------------------------------------------- tags


def test_tags_are_kept_per_job_in_the_database(
    harness: ServerHarness, backend: ServerBackend[RunView]
) -> None:
    alice = backend.login(harness.token("alice"))
    _, scheduled_id = _schedule(harness, harness.token("alice"))
    assert backend.list_tags(alice, scheduled_id) == {}
    odd = "caf\udce9.png"  # a name holding an undecodable byte
    assert backend.tag(alice, scheduled_id, ["b.png", "a.png", odd], "keep") == 3
    assert backend.tag(alice, scheduled_id, ["a.png", "c.png"], "keep") == 1  # a.png had it
    assert backend.tag(alice, scheduled_id, ["a.png"], "blurry") == 1
    assert backend.list_tags(alice, scheduled_id) == {"blurry": 1, "keep": 4}
    assert backend.names_with_tag(alice, scheduled_id, "keep") == sorted(
        ["a.png", "b.png", "c.png", odd]
    )
    assert backend.untag(alice, scheduled_id, ["a.png", "zzz.png"], "keep") == 1
    assert backend.untag(alice, scheduled_id, ["a.png"], "blurry") == 1
    assert backend.list_tags(alice, scheduled_id) == {"keep": 3}
    assert backend.names_with_tag(alice, scheduled_id, "nothing") == []

    # A fresh backend over the same database (a server restart) sees the same tags.
    again = ServerBackend(harness.app.state.sessions, harness.settings, RunViewOpener())
    assert again.names_with_tag(alice, scheduled_id, "keep") == sorted(["b.png", "c.png", odd])


def test_tagging_many_names_at_once_works_past_sqlites_parameter_limit(
    harness: ServerHarness, backend: ServerBackend[RunView]
) -> None:
    alice = backend.login(harness.token("alice"))
    _, scheduled_id = _schedule(harness, harness.token("alice"))
    names = [f"img/{i:05d}.png" for i in range(2500)]
    assert backend.tag(alice, scheduled_id, names, "many") == 2500
    assert backend.tag(alice, scheduled_id, names, "many") == 0
    assert backend.untag(alice, scheduled_id, names[:1200], "many") == 1200
    assert backend.list_tags(alice, scheduled_id) == {"many": 1300}


def test_other_users_cannot_see_or_change_tags(
    harness: ServerHarness, backend: ServerBackend[RunView]
) -> None:
    alice = backend.login(harness.token("alice"))
    _, scheduled_id = _schedule(harness, harness.token("alice"))
    backend.tag(alice, scheduled_id, ["a.png"], "keep")
    bob = backend.login(harness.token("bob"))
    for call in (
        lambda: backend.list_tags(bob, scheduled_id),
        lambda: backend.tag(bob, scheduled_id, ["a.png"], "keep"),
        lambda: backend.untag(bob, scheduled_id, ["a.png"], "keep"),
        lambda: backend.names_with_tag(bob, scheduled_id, "keep"),
    ):
        with pytest.raises(WebNotFound):
            call()
    assert backend.names_with_tag(alice, scheduled_id, "keep") == ["a.png"]


@pytest.mark.parametrize("bad", ["", "has space", "-dash-first", "x" * 65, "ünï", "a/b"])
def test_bad_tag_names_are_refused_saying_what_is_accepted(
    harness: ServerHarness, backend: ServerBackend[RunView], bad: str
) -> None:
    alice = backend.login(harness.token("alice"))
    _, scheduled_id = _schedule(harness, harness.token("alice"))
    with pytest.raises(InvalidTag, match="letters, digits"):
        backend.tag(alice, scheduled_id, ["a.png"], bad)
    assert backend.list_tags(alice, scheduled_id) == {}
