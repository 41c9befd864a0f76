"""open_regular never blocks on a FIFO or reads a device."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from selfsup.utils.safe_open import NotRegularFileError, open_regular


@pytest.mark.timeout(30)
def test_fifo_device_and_folder_are_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.png")  # a plain open() would wait for a writer forever
    with pytest.raises(NotRegularFileError, match=r"pipe\.png.*not a regular file"):
        open_regular(tmp_path / "pipe.png")
    with pytest.raises(NotRegularFileError):
        open_regular("/dev/zero")
    with pytest.raises(NotRegularFileError):
        open_regular(tmp_path)
    with pytest.raises(FileNotFoundError):
        open_regular(tmp_path / "missing.png")


def test_regular_files_and_links_to_them_open(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"data")
    os.symlink(tmp_path / "a.png", tmp_path / "link.png")
    for name in ("a.png", "link.png"):
        with open_regular(tmp_path / name) as handle:
            assert handle.read() == b"data"
