"""open_regular never blocks on a FIFO or reads a device."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from selfsup.errors import DataError
from selfsup.utils import safe_open
from selfsup.utils.safe_open import NotRegularFileError, ReadTimeoutError, open_regular


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


@pytest.mark.timeout(30)
def test_a_read_that_hangs_ends_with_the_file_named_after_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real_read = safe_open._read_file
    name = tmp_path / "caf\udce9 'x'.png"
    (tmp_path / "ok.png").write_bytes(b"fine")

    def hang(path: Path) -> bytes:
        if path == name:
            release.wait(30)  # a read stuck on a hung network mount
        return real_read(path)

    monkeypatch.setattr(safe_open, "_read_file", hang)
    try:
        with safe_open.read_timeout(0.2):
            started = time.monotonic()
            with pytest.raises(ReadTimeoutError, match=r"took longer than 0.2 s") as caught:
                safe_open.read_bytes(name)
            assert time.monotonic() - started < 5
            # The stuck reader is left behind; the next read gets a new one.
            assert safe_open.read_bytes(tmp_path / "ok.png") == b"fine"
        assert ReadTimeoutError.path_of(caught.value) == str(name)
        # A DataLoader worker re-raises type(exc)(longer message): the path survives.
        wrapped = ReadTimeoutError(f"Caught ReadTimeoutError in worker.\nOriginal {caught.value}")
        assert ReadTimeoutError.path_of(wrapped) == str(name)
        assert isinstance(caught.value, DataError)
    finally:
        release.set()


def test_without_a_timeout_reads_in_the_callers_thread_and_errors_pass_through(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.png").write_bytes(b"data")
    assert safe_open.read_bytes(tmp_path / "a.png") == b"data"
    with safe_open.read_timeout(5):
        assert safe_open.read_bytes(tmp_path / "a.png") == b"data"
        with pytest.raises(FileNotFoundError):
            safe_open.read_bytes(tmp_path / "missing.png")
        os.mkfifo(tmp_path / "pipe.png")
        with pytest.raises(NotRegularFileError):
            safe_open.read_bytes(tmp_path / "pipe.png")
    assert ReadTimeoutError.path_of(ValueError("no path here")) is None


def test_a_forked_process_reads_with_a_reader_of_its_own(tmp_path: Path) -> None:
    # DataLoader workers are forks: the parent's reader thread does not exist there.
    import multiprocessing

    (tmp_path / "a.png").write_bytes(b"data")
    with safe_open.read_timeout(5):
        assert safe_open.read_bytes(tmp_path / "a.png") == b"data"  # parent's reader
        context = multiprocessing.get_context("fork")
        with context.Pool(1) as pool:
            assert pool.apply(safe_open.read_bytes, (tmp_path / "a.png",)) == b"data"
