"""selfsup.data.files: what the scan takes, skips (with its kind) and leaves out."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from selfsup.data.files import RUN_MARKER, SKIP_KINDS, list_sample_files, scan_sample_files


@pytest.mark.timeout(30)
def test_special_entries_are_skipped_with_their_kind(tmp_path: Path) -> None:
    root = tmp_path / "in"
    elsewhere = tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / "a.png").write_bytes(b"x")
    (elsewhere / "b.png").write_bytes(b"x")
    (root / "notes.txt").write_bytes(b"x")  # not named like a sample: ignored, not reported
    os.mkfifo(root / "pipe.jpg")
    os.mkfifo(root / "pipe")  # no sample extension: ignored
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(os.fspath(root / "sock.png"))
    os.symlink("/dev/null", root / "null.png")
    os.symlink(root / "nothing.png", root / "dangling.png")
    os.symlink("loop.png", root / "loop.png")
    os.symlink(elsewhere / "b.png", root / "out.png")
    os.symlink(root / "a.png", root / "in.png")
    os.symlink(root, root / "cycle")
    (root / "new\nline.png").write_bytes(b"x")
    (root / ".hidden.png").write_bytes(b"x")

    scan = scan_sample_files(root, allowed_roots=[root])
    assert scan.files == ["a.png", "in.png"]
    kinds = {s.path: s.kind for s in scan.skipped}
    assert kinds == {
        "dangling.png": "dangling_symlink",
        "loop.png": "symlink_loop",
        "new\nline.png": "unsupported_name",
        "null.png": "not_a_regular_file:char_device",
        "out.png": "symlink_outside_roots",
        "pipe.jpg": "not_a_regular_file:fifo",
        "sock.png": "not_a_regular_file:socket",
    }
    assert set(kinds.values()) <= set(SKIP_KINDS)
    assert scan.folder_links == ["cycle"]
    # Without allowed roots a link may point anywhere.
    assert scan_sample_files(root).files == ["a.png", "in.png", "out.png"]
    assert list_sample_files(root) == ["a.png", "in.png", "out.png"]


def test_run_folders_and_excluded_folders_are_left_out(tmp_path: Path) -> None:
    root = tmp_path / "in"
    (root / "class_a").mkdir(parents=True)
    (root / "class_a" / "x.png").write_bytes(b"x")
    run = root / "my_run"
    (run / "plots").mkdir(parents=True)
    (run / "plots" / "plot.png").write_bytes(b"x")
    (run / RUN_MARKER).parent.mkdir()
    (run / RUN_MARKER).write_text("{}")
    (root / "out" / "plots").mkdir(parents=True)
    (root / "out" / "plots" / "p.png").write_bytes(b"x")

    scan = scan_sample_files(root, exclude=[root / "out"])
    assert scan.files == ["class_a/x.png"]
    assert scan.excluded == ["my_run", "out"]


def test_a_subfolder_that_cannot_be_listed_is_reported_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "b.png").write_bytes(b"x")
    real_scandir = os.scandir

    def scandir(path: str | os.PathLike[str]) -> object:
        if Path(path).name == "locked":  # as for a folder without read permission
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    scan = scan_sample_files(tmp_path)
    assert scan.files == ["a.png"]
    assert scan.unlisted == [("locked", "Permission denied")]
