"""Atomic file output: a reader never sees a half-written file that looks complete.

Each writer writes to a temporary file in the destination folder and renames it over the
target with :func:`os.replace`, which is atomic on POSIX file systems. An interrupted run
leaves at most a stray ``.tmp`` file behind, never a truncated target.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_open_text(path: str | os.PathLike[str]) -> Iterator[IO[str]]:
    """Open ``path`` for UTF-8 text writing so that it appears only once fully written.

    Usage: ``with atomic_open_text(p) as f: f.write(...)``. On an exception inside the block
    the temporary file is removed and ``path`` is left untouched.
    """
    with _atomic_target(Path(path)) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_open_bytes(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Binary counterpart of :func:`atomic_open_text`."""
    with _atomic_target(Path(path)) as tmp, open(tmp, "wb") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` when the block succeeds.

    For writers that insist on a file name (``torch.save``, ``matplotlib.savefig``). The
    temporary name keeps the target's suffix so format detection by extension still works.
    """
    with _atomic_target(Path(path)) as tmp:
        yield tmp


@contextlib.contextmanager
def _atomic_target(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    try:
        yield Path(tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open_text(path) as handle:
        handle.write(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open_bytes(path) as handle:
        handle.write(data)
