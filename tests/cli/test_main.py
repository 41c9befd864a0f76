"""The selfsup command line: help, bad configs rejected before any work."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from selfsup.cli.main import EXIT_STORAGE, main


def test_help_lists_every_documented_key(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for key in (
        "loader.batch_size",
        "model.num_ftrs",
        "trainer.max_epochs",
        "trainer.strategy",
        "trainer.num_nodes",
        "trainer.devices",
        "embedding.engine",
        "embedding.ray_address",
        "criterion.temperature",
        "optimizer.weight_decay",
        "collate.kernel_size",
        "collate.rr_prob",
        "input_dir",
        "checkpoint",
        "output_dir",
    ):
        assert key in out


@pytest.mark.parametrize(("command", "prefix"), [("train", ""), ("run", "lightly.")])
def test_help_lists_each_methods_criterion_arguments(
    command: str, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    lines = capsys.readouterr().out.splitlines()
    assert any(
        line.split()[:2] == ["barlowtwins", f"{prefix}criterion.lambda_param"] for line in lines
    )
    assert any(line.split()[:2] == ["dino", f"{prefix}criterion.teacher_temp"] for line in lines)


def test_unknown_key_exits_2_with_suggestion(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rc = main(
        ["train", f"input_dir={tmp_path}", f"output_dir={tmp_path / 'out'}", "trainer.max_epoch=1"]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "did you mean 'trainer.max_epochs'" in err
    assert not (tmp_path / "out").exists(), "nothing may be written before the config is valid"


def test_missing_checkpoint_for_embed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc = main(["embed", f"input_dir={tmp_path}", f"output_dir={tmp_path / 'o'}"])
    assert rc == 2
    assert "checkpoint is required" in capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "train" in capsys.readouterr().out


def test_console_script_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "selfsup.cli.main", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith("selfsup ")


def test_server_commands_dispatch_to_their_own_parsers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["token", "--help"])
    assert exc.value.code == 0
    assert "create" in capsys.readouterr().out
    db = f"sqlite:///{tmp_path / 'server.db'}"
    assert main(["token", "--db", db, "create", "--user", "alice"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("selfsup_")


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (errno.ENOSPC, "No space left on device (ENOSPC); free space"),
        (errno.EDQUOT, "(EDQUOT); free space within your quota"),
        (errno.EROFS, "(EROFS); the file system is mounted read-only"),
        (errno.EACCES, "(EACCES); you may not write there"),
    ],
)
def test_storage_errors_are_one_line_naming_the_file(
    code: int,
    text: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import selfsup.curation.pipeline as pipeline

    target = tmp_path / "out" / "data" / "manifest.jsonl"

    def failing_run(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code), str(target))

    monkeypatch.setattr(pipeline, "run", failing_run)
    assert main(["run", f"input_dir={tmp_path}", "stopping_condition.n_samples=1"]) == EXIT_STORAGE
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"selfsup run: error: cannot write {target}: ")
    assert text in err


def test_other_os_errors_keep_their_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import selfsup.curation.pipeline as pipeline

    def failing_run(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, "Input/output error", "/x")

    monkeypatch.setattr(pipeline, "run", failing_run)
    with pytest.raises(OSError, match="Input/output error"):
        main(["run", f"input_dir={tmp_path}", "stopping_condition.n_samples=1"])


@pytest.mark.slow
def test_train_with_ddp_on_two_cpu_processes(make_image_folder: Callable[..., Path]) -> None:
    """``selfsup train trainer.strategy=ddp trainer.devices=2``: Lightning starts the command
    again as a second process and both train over gloo on the CPU, one checkpoint written."""
    root = make_image_folder(n_classes=2, n_per_class=4)
    out = root.parent / "out"
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "selfsup.cli.main",
            "train",
            f"input_dir={root}",
            f"output_dir={out}",
            "trainer.strategy=ddp",
            "trainer.devices=2",
            "trainer.gpus=0",
            "trainer.max_epochs=1",
            "model.name=resnet-9",
            "model.width=0.125",
            "model.num_ftrs=16",
            "model.out_dim=8",
            "collate.input_size=32",
            "loader.num_workers=0",
            "loader.batch_size=2",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=root.parent,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    # Both ranks joined one gloo process group of two, and each printed the checkpoint.
    assert "distributed_backend=gloo" in output, output[-3000:]
    assert "Starting with 2 processes" in output, output[-3000:]
    assert output.count("Best model checkpoint:") == 2
    assert (out / "selfsup_epoch_0.ckpt").is_file()


@pytest.mark.parametrize("collapsed", [True, False])
def test_embed_and_run_warn_about_collapsed_embeddings(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    make_image_folder: Callable[..., Path],
    tmp_path: Path,
    collapsed: bool,
) -> None:
    import types

    import numpy as np

    import selfsup.core
    import selfsup.curation.pipeline
    from selfsup.utils.embedding_stats import collapse_verdict, embedding_stats

    root = make_image_folder(n_classes=1, n_per_class=4)
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"not read: embed is replaced")
    rng = np.random.default_rng(0)
    emb = np.ones((4, 8)) + 1e-6 * rng.normal(size=(4, 8)) if collapsed else rng.normal(size=(4, 8))
    emb = emb.astype(np.float32)
    names = [f"img_{i}.png" for i in range(4)]

    def fake_embed(cfg: object) -> tuple[object, object, list[str]]:
        return emb, np.zeros(4, dtype=np.int64), names

    monkeypatch.setattr(selfsup.core, "embed", fake_embed)
    rc = main(
        ["embed", f"input_dir={root}", f"checkpoint={checkpoint}", f"output_dir={tmp_path / 'e'}"]
    )
    assert rc == 0
    err = capsys.readouterr().err
    assert ("Warning: the embeddings are collapsed" in err) is collapsed

    health = embedding_stats(emb).to_json()
    assert (collapse_verdict(embedding_stats(emb)) is not None) is collapsed
    result = types.SimpleNamespace(
        report={"counts": {"n_input_to_selection": 4}, "statistics": {"embedding_health": health}},
        selected=names[:1],
        output_dir=tmp_path / "run",
    )
    monkeypatch.setattr(selfsup.curation.pipeline, "run", lambda cfg, overrides: result)
    assert main(["run", f"input_dir={root}", "stopping_condition.n_samples=1"]) == 0
    captured = capsys.readouterr()
    assert "Selected 1 of 4 samples" in captured.out
    assert ("lightly.optimizer.lr" in captured.err) is collapsed
