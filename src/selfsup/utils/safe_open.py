"""Opening and reading input files without ever blocking a run.

``open()`` on a FIFO blocks until a writer appears; on a character device it may return
endless data. The scan skips such entries (:func:`selfsup.data.files.scan_sample_files`),
but a file can be replaced between the scan and a later read. :func:`open_regular` opens
with ``O_NONBLOCK`` (which makes opening a FIFO return at once), checks with ``fstat`` that
the opened object is a regular file, and only then hands out a normal blocking file object.

A regular file can still block: a read from a hung network mount waits in the kernel, for
ever on a hard mount. :func:`read_bytes` bounds the time of a whole read by the process's
read timeout (:func:`read_timeout`, set by a curation run from ``check_timeout_s``): the
read runs in a daemon reader thread that is abandoned when it overruns, and
:class:`ReadTimeoutError` names the file so the run can go on without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import stat
import threading
from collections.abc import Iterator
from typing import IO, Final

from selfsup.errors import DataError


class NotRegularFileError(OSError):
    """The path names something other than a regular file (FIFO, socket, device, folder)."""


def _regular_file_opener(path: str, flags: int) -> int:
    """``opener`` for :func:`open`: the descriptor of ``path`` if it is a regular file."""
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(
                f"{os.fsdecode(path)!r} is not a regular file (mode {stat.filemode(mode)})"
            )
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open ``path`` for binary reading if, and only if, it is a regular file.

    The file object's ``name`` is ``path``, so decoders' error messages name the file.

    Raises:
        NotRegularFileError: it is a FIFO, socket, device or folder (message names it).
        OSError: it cannot be opened (missing, permission).
    """
    return open(os.fspath(path), "rb", opener=_regular_file_opener)


#: Where :class:`ReadTimeoutError` puts the path in its message, JSON-encoded. The message is
#: all that survives a DataLoader worker (it re-raises ``type(exc)(message)``), so the path
#: is read back from it.
_PATH_MARK: Final = "[read-timeout-path: "
_PATH_IN_MESSAGE: Final = re.compile(re.escape(_PATH_MARK) + r'("(?:[^"\\]|\\.)*")\]')

_timeout_s: float | None = None


class ReadTimeoutError(DataError):
    """Reading a file took longer than the read timeout; the message names the file."""

    @classmethod
    def for_path(cls, path: str | os.PathLike[str], seconds: float) -> ReadTimeoutError:
        """The error for ``path``, its path recoverable with :meth:`path_of`."""
        name = os.fsdecode(path)
        return cls(
            f"reading {name!r} took longer than {seconds:g} s (the per-file time limit, "
            f"check_timeout_s); a hung network mount or a stalled disk? "
            f"{_PATH_MARK}{json.dumps(name)}]"
        )

    @staticmethod
    def path_of(exc: BaseException) -> str | None:
        """The path a read timed out on, from any exception whose message holds one (also
        after a DataLoader worker re-raised it with a longer message), else None."""
        match = _PATH_IN_MESSAGE.search(str(exc))
        return None if match is None else str(json.loads(match.group(1)))


@contextlib.contextmanager
def read_timeout(seconds: float | None) -> Iterator[None]:
    """Bound every :func:`read_bytes` of this process by ``seconds`` (None or 0: no bound)
    within the block. DataLoader worker processes started inside it inherit the bound."""
    global _timeout_s
    previous = _timeout_s
    _timeout_s = seconds or None
    try:
        yield
    finally:
        _timeout_s = previous


def _read_file(path: str | os.PathLike[str]) -> bytes:
    """The whole content of the regular file ``path`` (the read :func:`read_bytes` bounds)."""
    with open_regular(path) as handle:
        return handle.read()


class _Request:
    """One read handed to the reader thread, and its outcome."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.done = threading.Event()
        self.data = b""
        self.error: Exception | None = None


class _Reader:
    """A daemon thread that reads files for :func:`read_bytes`, one at a time.

    One long-lived thread instead of one per read: starting a thread costs about as much as
    decoding a small image. A reader whose read overran is abandoned (it may stay blocked in
    the kernel) and the next read starts a new one. Daemon, so a blocked reader never keeps
    the process from exiting.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.requests: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="selfsup-read", daemon=True).start()

    def _serve(self) -> None:
        while True:
            request = self.requests.get()
            try:
                request.data = _read_file(request.path)
            except Exception as exc:  # noqa: BLE001  -- re-raised in the caller's thread
                request.error = exc
            request.done.set()


_reader: _Reader | None = None
_reader_lock = threading.Lock()


def _submit(path: str | os.PathLike[str]) -> _Request:
    """Hand ``path`` to this process's reader thread (a fork gets a reader of its own)."""
    global _reader
    with _reader_lock:
        if _reader is None or _reader.pid != os.getpid():
            _reader = _Reader()
        request = _Request(path)
        _reader.requests.put(request)
        return request


def _abandon_reader() -> None:
    """Forget the reader thread stuck on a read; the next read starts a new one."""
    global _reader
    with _reader_lock:
        _reader = None


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The content of the regular file ``path``, read within the process's read timeout.

    Raises:
        ReadTimeoutError: the read took longer than the timeout (the reading thread is left
            behind: a read blocked in the kernel cannot be interrupted).
        NotRegularFileError, OSError: as :func:`open_regular`.
    """
    limit = _timeout_s
    if limit is None:
        return _read_file(path)
    request = _submit(path)
    if not request.done.wait(limit):
        _abandon_reader()
        raise ReadTimeoutError.for_path(path, limit)
    if request.error is not None:
        raise request.error
    return request.data
