"""Atomic file output: a reader never sees a half-written file that looks complete.

Each writer writes to a temporary file in the destination folder and renames it over the
target with :func:`os.replace`, which is atomic on POSIX file systems. An interrupted run
leaves at most a stray ``.tmp`` file behind, never a truncated target. On an error inside
the block (e.g. a full disk, ``ENOSPC``) the temporary file is removed, and a storage error
(:data:`STORAGE_ERRNOS`) names the target file, so a message can say what was not written.

Files get the permissions a plain ``open(path, "w")`` would give them, ``0o666`` minus the
process umask, not the ``0o600`` of :func:`tempfile.mkstemp`: run folders are often read by
other users (a web server, a colleague).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Final


@contextlib.contextmanager
def atomic_open_text(
    path: str | os.PathLike[str], *, errors: str = "strict", mode: int | None = None
) -> Iterator[IO[str]]:
    """Open ``path`` for UTF-8 text writing so that it appears only once fully written.

    Usage: ``with atomic_open_text(p) as f: f.write(...)``. On an exception inside the block
    the temporary file is removed and ``path`` is left untouched. ``errors`` is the codec
    error handler: files that hold file names pass
    :data:`selfsup.utils.names.NAME_ERRORS` to keep names' exact bytes. ``mode``: the file's
    permission bits from its creation on (e.g. ``0o600`` for a secret, which must never be
    readable by others, not even between the rename and a later ``chmod``); default
    ``0o666 & ~umask``.
    """
    with (
        _atomic_target(Path(path), mode) as tmp,
        open(tmp, "w", encoding="utf-8", errors=errors, newline="") as f,
    ):
        yield f
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_open_bytes(
    path: str | os.PathLike[str], *, mode: int | None = None
) -> Iterator[IO[bytes]]:
    """Binary counterpart of :func:`atomic_open_text` (``mode`` as there)."""
    with _atomic_target(Path(path), mode) as tmp, open(tmp, "wb") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` when the block succeeds.

    For writers that insist on a file name (``torch.save``, ``matplotlib.savefig``). The
    temporary name keeps the target's suffix so format detection by extension still works.
    The temporary file exists already, with ``mode`` as in :func:`atomic_open_text`.
    """
    with _atomic_target(Path(path), mode) as tmp:
        yield tmp


#: Errors of the storage rather than of the program: a full disk or quota, a read-only file
#: system, missing permission. :func:`_atomic_target` makes them name the target file.
STORAGE_ERRNOS: Final = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
)


_STORAGE_HINTS: Final[dict[int, str]] = {
    errno.ENOSPC: "free space on that file system or choose another output_dir",
    errno.EDQUOT: "free space within your quota or choose another output_dir",
    errno.EROFS: "the file system is mounted read-only; choose another output_dir",
    errno.EACCES: "you may not write there; fix its permissions or choose another output_dir",
    errno.EPERM: "you may not write there; fix its permissions or choose another output_dir",
}


def describe_storage_error(exc: OSError) -> str | None:
    """``cannot write <file>: <problem> (<ENAME>); <what to do>`` for a storage error.

    ``None`` for any other error (a bug, an I/O error of the device), which callers should
    let through with its traceback. Used by ``selfsup run`` and the worker so that a full
    disk or a read-only folder reads the same everywhere.
    """
    if exc.errno not in STORAGE_ERRNOS:
        return None
    where = f" {exc.filename}" if exc.filename is not None else ""
    code = errno.errorcode.get(exc.errno, str(exc.errno))
    return f"cannot write{where}: {exc.strerror} ({code}); {_STORAGE_HINTS[exc.errno]}"


def _naming_target(exc: OSError, path: Path, tmp_name: str | None) -> OSError:
    """``exc`` as an error naming ``path`` when it is a storage error naming no file (a
    failed ``write`` names none) or only the temporary file; else ``exc`` itself."""
    names_tmp = exc.filename in (None, tmp_name) or (
        tmp_name is not None and exc.filename2 == tmp_name  # shutil.copyfile(src, tmp)
    )
    if exc.errno in STORAGE_ERRNOS and names_tmp:
        named = OSError(exc.errno, exc.strerror, os.fspath(path))
        named.__cause__ = exc
        return named
    return exc


@contextlib.contextmanager
def _atomic_target(path: Path, mode: int | None = None) -> Iterator[Path]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = _create_temporary(path, mode)
    except OSError as exc:
        raise _naming_target(exc, path, None) from exc
    try:
        if mode is not None:
            os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask
    finally:
        os.close(fd)
    try:
        yield Path(tmp_name)
        os.replace(tmp_name, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError):
            raise _naming_target(exc, path, tmp_name) from exc
        raise


def _create_temporary(path: Path, mode: int | None) -> tuple[int, str]:
    """A new, empty temporary file beside ``path``: ``(descriptor, name)``.

    Created like ``open()`` creates files, ``0o666`` less the umask (the kernel applies
    it), or private to ``mode``'s bits from the first moment when ``mode`` is given.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    for _ in range(100):
        name = os.path.join(path.parent, f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            return os.open(name, flags, 0o666 if mode is None else mode), name
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {str(path)!r} after 100 tries")


def current_umask() -> int:
    """The process umask, read without changing it where the system allows.

    ``os.umask`` can only be read by setting it, which races with other threads creating
    files; Linux reports it in ``/proc/self/status`` instead.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass  # not Linux (or no /proc): fall back to set-and-restore below
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(
    path: str | os.PathLike[str], text: str, *, errors: str = "strict", mode: int | None = None
) -> None:
    """Write ``text`` (UTF-8; ``errors``, ``mode`` as in :func:`atomic_open_text`) atomically."""
    with atomic_open_text(path, errors=errors, mode=mode) as handle:
        handle.write(text)


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, mode: int | None = None
) -> None:
    """Write ``data`` to ``path`` atomically (``mode`` as in :func:`atomic_open_text`)."""
    with atomic_open_bytes(path, mode=mode) as handle:
        handle.write(data)
