"""selfsup.utils.atomic: complete files only, plain-open permissions, errors naming the target."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from selfsup.utils.atomic import (
    atomic_open_bytes,
    atomic_open_text,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    current_umask,
)


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.usefixtures("umask")
@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077, 0o000])
def test_files_get_the_mode_a_plain_open_gives(tmp_path: Path, mask: int) -> None:
    os.umask(mask)
    assert current_umask() == mask
    with open(tmp_path / "plain", "w") as handle:
        handle.write("x")
    atomic_write_text(tmp_path / "text", "x")
    atomic_write_bytes(tmp_path / "bytes", b"x")
    with atomic_path(tmp_path / "by_name.png") as tmp:
        tmp.write_bytes(b"x")
    expected = stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    assert expected == 0o666 & ~mask
    for name in ("text", "bytes", "by_name.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name


def test_a_failed_write_keeps_the_old_file_and_names_the_target(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")

    def write_until_full() -> None:
        with atomic_open_text(target) as handle:
            handle.write("new")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a failed write does

    with pytest.raises(OSError, match="No space") as info:
        write_until_full()
    assert info.value.filename == str(target)
    assert info.value.errno == errno.ENOSPC
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_other_errors_pass_unchanged(tmp_path: Path) -> None:
    def fail(path: Path, error: BaseException) -> None:
        with atomic_open_text(path) as handle:
            handle.write("x")
            raise error

    with pytest.raises(ValueError, match="bug"):
        fail(tmp_path / "x", ValueError("bug"))
    other = OSError(errno.EIO, "I/O error", "/somewhere/else")
    with pytest.raises(OSError, match="I/O error") as info:
        fail(tmp_path / "y", other)
    assert info.value is other
    assert list(tmp_path.iterdir()) == []


def test_names_that_are_not_utf8_need_the_name_error_handler(tmp_path: Path) -> None:
    name = "caf\udce9.png"
    atomic_write_text(tmp_path / "list.txt", name + "\n", errors="surrogateescape")
    assert (tmp_path / "list.txt").read_bytes() == b"caf\xe9.png\n"
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(tmp_path / "strict.txt", name)
    assert list(tmp_path.iterdir()) == [tmp_path / "list.txt"]


@pytest.mark.usefixtures("umask")
def test_an_explicit_mode_holds_from_creation_on(tmp_path: Path) -> None:
    """A secret is never readable by others, not even before a chmod after the rename."""
    seen: list[int] = []
    with atomic_open_bytes(tmp_path / "secret.key", mode=0o600) as handle:
        seen.append(stat.S_IMODE(os.fstat(handle.fileno()).st_mode))
        handle.write(b"k")
    with atomic_path(tmp_path / "artifact.bin", mode=0o640) as tmp:
        seen.append(stat.S_IMODE(tmp.stat().st_mode))
        tmp.write_bytes(b"a")
    atomic_write_text(tmp_path / "t.txt", "x", mode=0o600)
    assert seen == [0o600, 0o640]
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "artifact.bin").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "t.txt").stat().st_mode) == 0o600
