"""A full or read-only output file system: one clear line, nothing half-written, rerunnable.

The output folder is a small tmpfs mounted for the test (we run as root in CI). Without the
right to mount the tests skip, except under CI (``$CI`` set), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from faults._input_helpers import TINY_MODEL, draw_no_pdf, tiny_checkpoint, write_png
from selfsup.cli.main import EXIT_STORAGE, main
from selfsup.curation.manifest import read_manifest

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted at a fresh folder; unmounted afterwards."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", os.fspath(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs (needs root/CAP_SYS_ADMIN): {done.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", os.fspath(mountpoint)], check=False)


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(6):
        write_png(folder, f"img_{i}.png".encode(), i)
    return folder


def _args(folder: Path, out: Path, checkpoint: Path) -> list[str]:
    return [
        "run",
        f"input_dir={folder}",
        f"output_dir={out}",
        f"checkpoint={checkpoint}",
        "stopping_condition.n_samples=3",
        "umap=false",
        "num_workers=0",
        *TINY_MODEL,
    ]


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("selfsup run: error:")]


def _assert_nothing_half_written(out: Path) -> None:
    leftovers = [p for p in out.rglob("*") if ".tmp" in p.name]
    assert leftovers == [], "temporary files of failed writes must be removed"
    assert not (out / "report.json").exists()
    manifest = out / "data" / "manifest.jsonl"
    if manifest.exists():  # whatever was written is complete
        assert len(read_manifest(manifest).records) == 6


def test_full_disk_fails_with_the_path_and_a_rerun_succeeds(
    tmp_path: Path,
    small_disk: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    draw_no_pdf(monkeypatch)
    folder = _folder(tmp_path)
    checkpoint = tiny_checkpoint(tmp_path / "m.ckpt")
    out = small_disk / "run"
    # Leave room for the config and the manifest, not for the plots.
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(small_disk).free - 64 * 1024))

    assert main(_args(folder, out, checkpoint)) == EXIT_STORAGE
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    assert f"cannot write {out}/" in lines[0]
    assert "No space left on device (ENOSPC)" in lines[0]
    assert "run the same command again" in lines[0]
    _assert_nothing_half_written(out)

    filler.unlink()
    assert main(_args(folder, out, checkpoint)) == 0
    assert (out / "report.json").is_file()


def test_read_only_output_fails_with_the_path(
    tmp_path: Path,
    small_disk: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    draw_no_pdf(monkeypatch)
    folder = _folder(tmp_path)
    checkpoint = tiny_checkpoint(tmp_path / "m.ckpt")
    out = small_disk / "run"
    out.mkdir()
    subprocess.run(["mount", "-o", "remount,ro", os.fspath(small_disk)], check=True)

    assert main(_args(folder, out, checkpoint)) == EXIT_STORAGE
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    assert f"cannot write {out}" in lines[0]
    assert "Read-only file system (EROFS)" in lines[0]
    assert list(out.iterdir()) == []

    subprocess.run(["mount", "-o", "remount,rw", os.fspath(small_disk)], check=True)
    assert main(_args(folder, out, checkpoint)) == 0
