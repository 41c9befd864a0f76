"""Opening input files without ever blocking on something that is not a regular file.

``open()`` on a FIFO blocks until a writer appears; on a character device it may return
endless data. The scan skips such entries (:func:`selfsup.data.files.scan_sample_files`),
but a file can be replaced between the scan and a later read. :func:`open_regular` opens
with ``O_NONBLOCK`` (which makes opening a FIFO return at once), checks with ``fstat`` that
the opened object is a regular file, and only then hands out a normal blocking file object.
"""

from __future__ import annotations

import os
import stat
from typing import IO


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
