"""Where the web app reads sample files from: the input folder of a run, local or remote.

A run's manifest names every sample's file by ``source``, a POSIX path relative to the input
folder (the video for a frame). Thumbnails need those bytes; a :class:`SourceReader` gets
them, from a local folder (:class:`LocalSourceReader`, ``selfsup view`` and LOCAL
datasources) or through an fsspec file system (:class:`FsspecSourceReader`, S3, GCS, Azure).

Path rules (:func:`check_relative_path`)
    A relative path is accepted only when it cannot name anything outside its root by its
    spelling: non-empty, no NUL byte, no backslash (a Windows separator would smuggle
    ``..\\``), not absolute, no empty, ``.`` or ``..`` part, and no hidden part (a name
    starting with ``.``: tool state such as ``.selfsup/`` is never a sample, and the scan
    skips hidden names too). :func:`selfsup.web.outputs.RunOutputs.resolve_file` applies the
    same rules to URL paths, and additionally refuses symbolic links leaving the folder.

Symbolic links under the input root
    The scan (:func:`selfsup.data.files.list_sample_files`) follows symbolic links to files
    but never descends into linked folders, so a sample may legitimately be a link to a file
    elsewhere (datasets assembled from links are common). :class:`LocalSourceReader`
    therefore requires the *folder* of a source to resolve inside the root and lets the file
    itself be such a link; pass ``allow_file_links=False`` to refuse links leaving the root.
    The server passes ``allowed_roots`` (the dataset owner's roots, asked for at every read):
    the real path of every file must then lie inside one of them, so a link to a file outside
    them (``/etc/shadow``, another user's folder) is refused and never served as a preview.
    Sources come from the run's manifest, never from a URL (URLs carry sample indices).

Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Protocol, runtime_checkable

from selfsup.apphelpers.paths import inside

__all__ = [
    "FsspecSourceReader",
    "LocalSourceReader",
    "SourceReader",
    "check_relative_path",
]


def check_relative_path(relative: str, what: str = "path") -> tuple[str, ...]:
    """The parts of ``relative`` after checking that its spelling stays below its root.

    Args:
        relative: A POSIX path relative to some root, e.g. ``"plots/scatter_pca.png"``.
        what: How the message names the value (``"path"``, ``"source"``).

    Returns:
        The non-empty parts, e.g. ``("plots", "scatter_pca.png")``.

    Raises:
        FileNotFoundError: The path is empty, holds a NUL byte or a backslash, is absolute,
            or has an empty, ``.``, ``..`` or hidden (``.name``) part. The message says which
            rule it broke; it never names anything outside the root.
    """
    if not isinstance(relative, str) or not relative:
        raise FileNotFoundError(f"empty {what}: expected a relative path like 'a/b.png'")
    shown = repr(relative[:200])
    if "\x00" in relative:
        raise FileNotFoundError(f"{what} {shown} holds a NUL byte")
    if "\\" in relative:
        raise FileNotFoundError(f"{what} {shown} holds a backslash; use '/' as separator")
    if PurePosixPath(relative).is_absolute():
        raise FileNotFoundError(f"{what} {shown} is absolute; expected a relative path")
    parts = tuple(relative.split("/"))
    for part in parts:
        if not part:
            raise FileNotFoundError(f"{what} {shown} has an empty part ('//' or a trailing '/')")
        if part in (".", ".."):
            raise FileNotFoundError(f"{what} {shown} has a {part!r} part")
        if part.startswith("."):
            raise FileNotFoundError(f"{what} {shown} has a hidden part {part[:100]!r}")
    return parts


@runtime_checkable
class SourceReader(Protocol):
    """Reads the sample files of a run (its input folder), by manifest ``source``."""

    def local_path(self, source: str) -> Path | None:
        """A local file holding ``source`` that may be opened directly, or ``None`` when
        the files are remote (then use :meth:`read_bytes`).

        Raises:
            FileNotFoundError: ``source`` breaks :func:`check_relative_path`, escapes the
                root, or is no file.
        """
        ...

    def read_bytes(self, source: str) -> bytes:
        """The bytes of ``source``.

        Raises:
            FileNotFoundError: missing, or not a path below the root.
            OSError: the file exists but cannot be read.
        """
        ...


class LocalSourceReader:
    """Sample files under a local folder (the run's ``input_dir``).

    The root need not exist when the reader is made (a moved input folder): every read then
    raises :class:`FileNotFoundError`, and the app shows placeholders.
    """

    def __init__(
        self,
        root: Path,
        *,
        allow_file_links: bool = True,
        allowed_roots: Callable[[], Sequence[Path]] | None = None,
    ) -> None:
        self.root = Path(root)
        self.allow_file_links = allow_file_links
        self.allowed_roots = allowed_roots

    def local_path(self, source: str) -> Path:
        """The checked local file of ``source`` (see the module docstring for the rules).

        Raises:
            FileNotFoundError: bad spelling, a folder outside the root, a link leaving the
                root with ``allow_file_links=False``, or no regular file there.
        """
        parts = check_relative_path(source, "source")
        try:
            root = self.root.resolve(strict=True)
            folder = root.joinpath(*parts[:-1]).resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
            raise FileNotFoundError(
                f"source {source!r} is not readable under input folder {str(self.root)!r}: {exc}"
            ) from None
        if not folder.is_relative_to(root):
            raise FileNotFoundError(
                f"source {source!r} lies in a folder outside input folder {str(self.root)!r}"
            )
        path = folder / parts[-1]
        if not self.allow_file_links:
            try:
                target = path.resolve(strict=True)
            except (OSError, RuntimeError):
                target = path
            if not target.is_relative_to(root):
                raise FileNotFoundError(
                    f"source {source!r} links to a file outside input folder {str(self.root)!r}"
                )
        if self.allowed_roots is not None:
            path = self._inside_allowed_roots(source, path)
        if not path.is_file():
            raise FileNotFoundError(f"source {source!r} is no file in input folder {str(root)!r}")
        return path

    def _inside_allowed_roots(self, source: str, path: Path) -> Path:
        """The real path of ``path`` if it lies inside one of the allowed roots (asked for
        now, so a root taken away takes effect at once).

        The real path is returned, and opened, so the link cannot be swapped for another
        between this check and the read.
        """
        assert self.allowed_roots is not None
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
            raise FileNotFoundError(f"source {source!r} is not readable: {exc}") from None
        if not any(inside(real, Path(r).expanduser()) for r in self.allowed_roots()):
            # The target is not named: it is outside what the viewer may see.
            raise FileNotFoundError(
                f"source {source!r} links to a file outside the allowed roots of the "
                "dataset's owner; refused"
            )
        return real

    def read_bytes(self, source: str) -> bytes:
        """The bytes of ``source`` (checked as in :meth:`local_path`)."""
        return self.local_path(source).read_bytes()


class FsspecSourceReader:
    """Sample files below ``root`` in an fsspec file system (``s3://bucket/prefix`` etc.).

    ``root`` is the path inside ``fs`` without protocol, as fsspec's ``url_to_fs`` gives it
    (``"bucket/prefix"``); sources are appended with ``/``. Files are never local here.
    """

    def __init__(self, fs: Any, root: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")

    def _path(self, source: str) -> str:
        parts = check_relative_path(source, "source")
        joined = "/".join(parts)
        return f"{self.root}/{joined}" if self.root else joined

    def local_path(self, source: str) -> Path | None:
        """Always ``None`` (after checking the spelling of ``source``): read the bytes."""
        self._path(source)
        return None

    def read_bytes(self, source: str) -> bytes:
        """The bytes of ``source`` from the file system.

        Raises:
            FileNotFoundError: bad spelling, or the file system has no such file.
        """
        path = self._path(source)
        try:
            data = self.fs.cat_file(path)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"source {source!r} does not exist under {self.root!r}"
            ) from None
        except IsADirectoryError:
            raise FileNotFoundError(f"source {source!r} under {self.root!r} is a folder") from None
        if not isinstance(data, bytes):
            raise OSError(
                f"reading source {source!r} under {self.root!r} returned "
                f"{type(data).__name__}, not bytes"
            )
        return data
