"""Entries of an input folder that are not regular files: skipped with their kind, never opened.

A FIFO named like an image would block any reader forever; a link to /dev/zero never ends;
link loops and folder link cycles could make a scan loop; links may lead outside the folders
a user may read (allowed_roots). The run must finish, report each with its kind, and select
only real files.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from faults._input_helpers import (
    corrupt_table,
    draw_no_pdf,
    manifest_names,
    report,
    run_config,
    tiny_checkpoint,
    write_png,
)
from selfsup.curation.checks import build_manifest
from selfsup.curation.pipeline import run

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]


def _hostile_folder(tmp_path: Path) -> tuple[Path, Path]:
    """An input folder with 4 good images and one entry of every special kind."""
    folder = tmp_path / "in"
    outside = tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    for i in range(4):
        write_png(folder, f"good_{i}.png".encode(), i)
    write_png(outside, b"secret.png", 10)
    os.mkfifo(folder / "fifo.png")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(os.fspath(folder / "socket.png"))
    os.symlink("/dev/zero", folder / "zero.png")
    os.symlink(folder / "missing.png", folder / "dangling.png")
    os.symlink(folder / "loop_b.png", folder / "loop_a.png")
    os.symlink(folder / "loop_a.png", folder / "loop_b.png")
    os.symlink(outside / "secret.png", folder / "outside.png")
    os.symlink(folder / "good_0.png", folder / "inside_link.png")  # a link inside: a sample
    (folder / "sub").mkdir()
    os.symlink(folder, folder / "sub" / "cycle")  # folder link cycle: never followed
    os.symlink(folder, folder / "cycle.png")  # a folder link named like an image
    return folder, outside


EXPECTED_KINDS = {
    "fifo.png": "not_a_regular_file:fifo",
    "socket.png": "not_a_regular_file:socket",
    "zero.png": "not_a_regular_file:char_device",
    "dangling.png": "dangling_symlink",
    "loop_a.png": "symlink_loop",
    "loop_b.png": "symlink_loop",
    "outside.png": "symlink_outside_roots",
    "cycle.png": "not_a_regular_file:directory",
}


def test_special_files_are_skipped_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    draw_no_pdf(monkeypatch)
    folder, _ = _hostile_folder(tmp_path)
    out = tmp_path / "out"
    cfg = run_config(
        folder,
        out,
        tiny_checkpoint(tmp_path / "m.ckpt"),
        "stopping_condition.n_samples=1.0",
        f"allowed_roots=[{folder}]",
    )
    started = time.monotonic()
    result = run(cfg, progress=False)
    assert time.monotonic() - started < 100

    # good_0 and its link inside the folder are exact duplicates: one is kept.
    assert sorted(result.selected) == ["good_0.png", "good_1.png", "good_2.png", "good_3.png"]
    table = corrupt_table(out)
    assert {name: reason for name, (reason, _) in table.items()} == EXPECTED_KINDS
    assert str(tmp_path / "outside" / "secret.png") in table["outside.png"][1]
    assert manifest_names(out)["inside_link.png"] == "duplicate"
    counts = report(out)["counts"]
    assert counts["n_corrupt"] == len(EXPECTED_KINDS)
    assert counts["corrupt_reasons"] == {
        "symlink_loop": 2,
        **{k: 1 for k in EXPECTED_KINDS.values() if k != "symlink_loop"},
    }


def test_links_may_point_anywhere_without_allowed_roots(tmp_path: Path) -> None:
    folder, outside = _hostile_folder(tmp_path)
    records = {r.filename: r for r in build_manifest(folder, progress=False).records}
    assert records["outside.png"].status == "ok"  # allowed_roots=[]: links are followed
    with_roots = build_manifest(folder, progress=False, allowed_roots=[folder, outside])
    assert {r.filename: r.status for r in with_roots.records}["outside.png"] == "ok"


def test_a_check_that_hangs_is_abandoned_after_the_time_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file whose read never returns (a hung network mount) ends as ``timeout``."""
    from selfsup.curation import checks

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        write_png(folder, f"img_{i}.png".encode(), i)
    real_check_file = checks.check_file

    def hanging_check_file(root: object, entry: checks.FileEntry, *args: object) -> object:
        if entry.path == "img_1.png":
            time.sleep(30)  # abandoned, daemon thread: does not hold up the test
        return real_check_file(root, entry, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(checks, "check_file", hanging_check_file)
    started = time.monotonic()
    result = build_manifest(folder, progress=False, num_workers=0, file_timeout=0.5)
    assert time.monotonic() - started < 10
    by_name = {r.filename: r for r in result.records}
    assert by_name["img_1.png"].status == "corrupt"
    assert by_name["img_1.png"].reason == "timeout"
    assert "longer than 0.5 s" in by_name["img_1.png"].detail
    assert by_name["img_0.png"].status == by_name["img_2.png"].status == "ok"
