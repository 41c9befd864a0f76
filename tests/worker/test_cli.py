"""``selfsup worker`` arguments, and a worker process killed with SIGKILL mid-run: its run is
marked CRASHED once the lease runs out, the job re-opens and another worker completes it; the
artifact uploaded before the kill stays downloadable; the token travels in the environment,
not in the process's arguments."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from selfsup.errors import ConfigError
from selfsup.server.testing import LiveServer, ServerHarness
from selfsup.worker import Worker, WorkerSettings
from selfsup.worker.cli import parse_worker_args, worker_main
from worker._tiny import local_dataset


def test_parse_worker_args_reads_lightly_style_keys_and_the_environment(tmp_path: Path) -> None:
    env = {"SELFSUP_TOKEN": "selfsup_abc_secret", "SELFSUP_SERVER_URL": "http://h:1"}
    settings = parse_worker_args(
        [
            "worker.worker_id=abc123",
            "worker.name=gpu-box",
            "worker.labels=[gpu, 'big']",
            "worker.poll_interval=0.5",
            f"worker.work_dir={tmp_path}",
            "worker.once=true",
            "worker.umap=false",
        ],
        env=env,
    )
    assert settings.token == "selfsup_abc_secret"
    assert settings.server_url == "http://h:1"
    assert settings.worker_id == "abc123"
    assert settings.labels == ("gpu", "big")
    assert settings.poll_interval == 0.5
    assert settings.max_runs == 1
    assert settings.umap is False
    assert settings.work_dir == tmp_path
    assert "secret" not in repr(settings)
    explicit = parse_worker_args(["token=t2", "server_url=http://x:2"], env=env)
    assert (explicit.token, explicit.server_url) == ("t2", "http://x:2")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["worker.nmae=x"], "did you mean 'worker.name'"),
        (["worker.poll_interval=soon"], "expected a number"),
        (["worker.once=maybe"], "expected true or false"),
        (["worker.name"], "is not key=value"),
        ([], "no token"),
        (["worker.max_runs=-1"], "worker.max_runs must be >= 0"),
        (["worker.give_up_after=-1"], "worker.give_up_after must be a finite number >= 0"),
        (["worker.retry_cap=nan"], "worker.retry_cap must be a finite number >= 0"),
        (["worker.retry_base=0"], "worker.retry_base must be > 0 seconds"),
        (["worker.retry_base=5", "worker.retry_cap=1"], "must not exceed worker.retry_cap"),
        (["worker.request_timeout=0"], "worker.request_timeout must be > 0 seconds"),
    ],
)
def test_bad_worker_args_name_the_key(args: list[str], message: str) -> None:
    env = {} if not args else {"SELFSUP_TOKEN": "t"}
    with pytest.raises(ConfigError, match=message):
        parse_worker_args(args, env=env)


def test_retry_settings_parse_and_default_to_never_giving_up() -> None:
    env = {"SELFSUP_TOKEN": "t"}
    default = parse_worker_args([], env=env)
    assert (default.give_up_after, default.retry_base, default.retry_cap) == (0.0, 0.5, 60.0)
    assert default.request_timeout == 30.0
    settings = parse_worker_args(
        [
            "worker.give_up_after=600",
            "worker.retry_base=1",
            "worker.retry_cap=30",
            "worker.request_timeout=5",
        ],
        env=env,
    )
    policy = settings.retry_policy
    assert (policy.base, policy.cap, policy.give_up_after) == (1.0, 30.0, 600.0)
    assert settings.request_timeout == 5.0


def test_help_lists_the_retry_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert worker_main(["--help"]) == 0
    text = capsys.readouterr().out
    for key in ("worker.give_up_after", "worker.retry_base", "worker.retry_cap"):
        assert key in text
    assert "0 = never give up" in text


def test_a_worker_that_gives_up_on_an_unreachable_server_exits_1_with_the_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from selfsup.server.testing import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    args = [
        "token=t",
        f"server_url={url}",
        "worker.give_up_after=0.5",
        "worker.retry_base=0.05",
        "worker.retry_cap=0.2",
        f"worker.work_dir={tmp_path}",
    ]
    started = time.monotonic()
    assert worker_main(args) == 1
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err
    assert "register: gave up after" in err
    assert f"cannot reach the selfsup server at {url}" in err


def test_a_refused_token_ends_the_worker_with_status_1_and_the_reason(
    capsys: pytest.CaptureFixture[str], harness: ServerHarness, tmp_path: Path
) -> None:
    with LiveServer(harness.app) as live:
        args = ["token=selfsup_000000000000_nope", f"server_url={live.url}"]
        assert worker_main([*args, f"worker.work_dir={tmp_path}"]) == 1
    assert "selfsup worker: 401" in capsys.readouterr().err


def test_worker_main_exits_2_with_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert worker_main(["worker.nmae=x", "token=t"]) == 2
    assert "unknown worker key 'worker.nmae'" in capsys.readouterr().err


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[ServerHarness]:
    roots = tmp_path / "roots"
    roots.mkdir()
    h = ServerHarness(
        f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "data", (roots,), lease_seconds=30
    )
    yield h
    h.close()


@pytest.mark.slow
def test_sigkilled_worker_crashes_its_run_and_another_worker_completes_the_retry(
    harness: ServerHarness, tmp_path: Path, make_image_folder: Callable[..., Path]
) -> None:

    roots = tmp_path / "roots"
    images = make_image_folder(n_classes=2, n_per_class=8, root=roots / "input")
    (roots / "lightly").mkdir()
    token = harness.token()
    lightly_config = {
        "model": {"name": "resnet-9", "width": 0.125},
        "collate": {"input_size": 32},
        "trainer": {"max_epochs": 2, "gpus": 0},
        "loader": {"num_workers": 0, "batch_size": 8},
    }
    with LiveServer(harness.app) as live:
        client = harness.client(token)
        local_dataset(client, "killed", images, roots / "lightly")
        scheduled = client.schedule_compute_worker_run(
            worker_config={"stopping_condition": {"n_samples": 4}},
            lightly_config=lightly_config,
        )
        env = {**os.environ, "SELFSUP_TOKEN": token, "SELFSUP_SERVER_URL": live.url}
        args = [
            sys.executable,
            "-m",
            "selfsup.worker",
            "worker.name=doomed",
            "worker.once=true",
            "worker.poll_interval=0.1",
            "worker.umap=false",
            "worker.num_workers=0",
            f"worker.work_dir={tmp_path / 'work_doomed'}",
        ]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
            assert token.encode() not in cmdline  # the token is not in the process list
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "the worker never started training"
                runs = client.get_compute_worker_runs()
                if runs and runs[0].state == "TRAINING":
                    break
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        crashed_id = runs[0].id
        # The config (uploaded first) and perhaps the log streamed so far; no results.
        names = {a.file_name for a in runs[0].artifacts}
        assert "config.json" in names
        assert names <= {"config.json", "log.txt"}

        harness.clock.advance(31)  # the lease (30 s) runs out without heartbeats
        assert crashed_id in harness.sweep()
        crashed = client.get_compute_worker_run(crashed_id)
        assert crashed.state == "CRASHED"
        assert client.get_scheduled_compute_worker_run(scheduled).state == "OPEN"
        downloaded = tmp_path / "kept"
        client.download_compute_worker_run_artifacts(crashed, downloaded)
        assert '"input_dir"' in (downloaded / "config.json").read_text()

        settings = WorkerSettings(
            token=token,
            server_url=live.url,
            name="rescuer",
            max_runs=1,
            poll_interval=0.1,
            work_dir=tmp_path / "work_rescuer",
            umap=False,
            num_workers=0,
        )
        rescuer = Worker(settings)
        assert rescuer.run_forever() == 1
        rescuer.api.close()
        retry = client.get_compute_worker_run_from_scheduled_run(scheduled)
        assert retry.id != crashed_id
        assert (retry.state, retry.attempt) == ("COMPLETED", 2)
        assert len(client.get_compute_worker_run_selected_filenames(retry)) == 4
        assert client.get_scheduled_compute_worker_run(scheduled).state == "DONE"
