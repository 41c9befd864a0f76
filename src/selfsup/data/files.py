"""Which files in a folder are samples: image and video extensions, and a stable listing.

Shared by the datasets (SSL library) and the curation pipeline so both see the same
samples in the same order.

What the scan (:func:`scan_sample_files`) takes, skips and never touches
    A sample is an entry with an image (or video) extension that is a regular file or a
    symbolic link to one. The scan only calls ``lstat``/``stat`` (through
    :func:`os.scandir`), never ``open``: opening a FIFO for reading blocks until a writer
    appears, i.e. forever. Entries with a sample extension that cannot be samples are
    *skipped* and returned with a kind (:data:`SKIP_KINDS`) so that a run reports them:
    FIFOs, sockets, character and block devices, folders named like images
    (``not_a_regular_file:<kind>``), links whose target does not exist
    (``dangling_symlink``), link loops (``symlink_loop``), links whose resolved target lies
    outside every ``allowed_roots`` folder (``symlink_outside_roots``) and names holding a
    line break (``unsupported_name``: the line-oriented outputs, lightly's embeddings CSV
    and filename lists, cannot hold them); an entry that cannot be stat-ed, or a link whose
    target cannot be (permission), is ``unreadable``. Links to folders are never followed,
    so a folder link cycle cannot make the scan loop. Hidden files and folders (name
    starting with ``.``) are not samples.

Run folders are not input
    A folder holding a selfsup run (:func:`is_run_folder`: it has the marker
    :data:`RUN_MARKER` a run writes first, or the ``config/config.yaml`` plus
    ``report.json`` or ``data/manifest.jsonl`` of a run folder written before the marker
    existed) is left out with everything below it, as are the ``exclude`` folders: a run
    whose output folder lies inside its input folder must not select its own plots. They
    are returned in :attr:`FolderScan.excluded` for the log.

Names are the file names as ``str``; names that are not UTF-8 carry their bytes as
surrogate escapes (:mod:`selfsup.utils.names`).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
)


#: Class name of the files directly in the root folder (see :func:`find_classes`).
ROOT_CLASS: Final = "."


def class_of(relpath: str) -> str:
    """The class name of a sample file: its first-level folder, or ``"."`` at the root."""
    head, sep, _ = relpath.partition("/")
    return head if sep else ROOT_CLASS


def find_classes(relpaths: Iterable[str]) -> list[str]:
    """Class names in target order, as torchvision's ``ImageFolder`` on first-level folders.

    ``"."`` (files directly in the root) first if the root holds files, then the sorted
    names of the first-level subfolders holding sample files (at any depth).
    """
    names = {class_of(p) for p in relpaths}
    subfolders = sorted(names - {ROOT_CLASS})
    return [ROOT_CLASS, *subfolders] if ROOT_CLASS in names else subfolders


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True when the extension (case-insensitive) is a supported image format."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_video_file(path: str | os.PathLike[str]) -> bool:
    """True when the extension (case-insensitive) is a supported video container."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


#: A file every run folder holds (written before anything else): the scan leaves the folder out.
RUN_MARKER: Final = ".selfsup/run-folder"

#: Why an entry with a sample extension is not a sample (the reasons a run reports).
SKIP_KINDS: Final = (
    "not_a_regular_file:fifo",
    "not_a_regular_file:socket",
    "not_a_regular_file:char_device",
    "not_a_regular_file:block_device",
    "not_a_regular_file:directory",
    "not_a_regular_file:other",
    "dangling_symlink",
    "symlink_loop",
    "symlink_outside_roots",
    "unsupported_name",
    "unreadable",
)


@dataclass(frozen=True, slots=True)
class SkippedEntry:
    """An entry named like a sample that is not one.

    Attributes:
        path: POSIX path relative to the scanned folder.
        kind: One of :data:`SKIP_KINDS`.
        detail: What was found, for the report (the link target, the file type).
    """

    path: str
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class FolderScan:
    """What :func:`scan_sample_files` found.

    Attributes:
        files: Sample files (sorted POSIX relative paths).
        skipped: Entries named like samples that cannot be samples (sorted by path).
        excluded: Folders left out because they hold a selfsup run or were excluded
            (relative POSIX paths).
        folder_links: Links to folders that were not followed (relative POSIX paths).
        unlisted: Subfolders that could not be listed, with the reason (permission, removed
            during the scan).
    """

    files: list[str]
    skipped: list[SkippedEntry] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    folder_links: list[str] = field(default_factory=list)
    unlisted: list[tuple[str, str]] = field(default_factory=list)


def is_run_folder(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` holds a selfsup run (see the module docstring)."""
    base = Path(path)
    if (base / RUN_MARKER).is_file():
        return True
    if not (base / "config" / "config.yaml").is_file():
        return False
    return (base / "report.json").is_file() or (base / "data" / "manifest.jsonl").is_file()


def _file_type(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "char_device"
    if stat.S_ISBLK(mode):
        return "block_device"
    if stat.S_ISDIR(mode):
        return "directory"
    return "other"


def _inside(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _classify(entry: os.DirEntry[str], roots: Sequence[str]) -> tuple[str, str] | None:
    """``None`` for a sample file, else ``(kind, detail)``; only stat calls, never open."""
    if "\n" in entry.name or "\r" in entry.name:
        return "unsupported_name", (
            "the name holds a line break, which lightly's embeddings CSV and the filename "
            "lists cannot store; rename the file"
        )
    try:
        # The directory entry's type answers without a system call on most file systems.
        if entry.is_file(follow_symlinks=False):
            return None
        if not entry.is_symlink():
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISREG(mode):
                return None
            kind = _file_type(mode)
            return f"not_a_regular_file:{kind}", f"a {kind.replace('_', ' ')}, not a regular file"
        target = os.readlink(entry.path)
    except OSError as exc:  # removed or made unreadable while we looked
        return "unreadable", f"cannot stat the entry: {exc.strerror or exc}"
    try:
        mode = os.stat(entry.path).st_mode
    except FileNotFoundError:
        return "dangling_symlink", f"symbolic link to {target!r}, which does not exist"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink_loop", f"symbolic link to {target!r} is part of a link loop"
        return "unreadable", f"symbolic link to {target!r} cannot be followed: {exc.strerror}"
    if not stat.S_ISREG(mode):
        kind = _file_type(mode)
        return f"not_a_regular_file:{kind}", f"symbolic link to a {kind.replace('_', ' ')}"
    if roots:
        resolved = os.path.realpath(entry.path)
        if not _inside(resolved, roots):
            return "symlink_outside_roots", (
                f"symbolic link to {resolved!r}, outside the allowed roots {list(roots)}"
            )
    return None


def scan_sample_files(
    root: str | os.PathLike[str],
    videos: bool = True,
    *,
    allowed_roots: Iterable[str | os.PathLike[str]] = (),
    exclude: Iterable[str | os.PathLike[str]] = (),
) -> FolderScan:
    """List the samples below ``root``; report what is named like one but is not one.

    Args:
        root: Folder to scan.
        videos: Whether video files are samples.
        allowed_roots: Folders that symbolic links may point into (resolved); empty: anywhere.
        exclude: Folders (anywhere) left out of the scan, e.g. the run's own output folder.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is a file.
    """
    base = Path(root)
    if not base.exists():
        raise FileNotFoundError(f"input folder {str(base)!r} does not exist")
    if not base.is_dir():
        raise NotADirectoryError(
            f"input {str(base)!r} is a file; expected a folder of images or videos"
        )
    roots = [os.path.realpath(r) for r in allowed_roots]
    excluded_real = {os.path.realpath(e) for e in exclude}
    scan = FolderScan(files=[])
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        folder = base / rel_dir if rel_dir else base
        if rel_dir and (os.path.realpath(folder) in excluded_real or is_run_folder(folder)):
            scan.excluded.append(rel_dir)
            continue
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            if not rel_dir:
                raise  # the input folder itself cannot be listed: nothing to do
            # A subfolder that is unreadable or was removed meanwhile: go on without it.
            scan.unlisted.append((rel_dir, exc.strerror or str(exc)))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.is_dir(follow_symlinks=False):
                pending.append(rel)
                continue
            named_like_sample = is_image_file(entry.name) or (videos and is_video_file(entry.name))
            if not named_like_sample:
                if entry.is_symlink() and entry.is_dir():
                    scan.folder_links.append(rel)
                continue
            problem = _classify(entry, roots)
            if problem is None:
                scan.files.append(rel)
            else:
                scan.skipped.append(SkippedEntry(rel, *problem))
    scan.files.sort()
    scan.skipped.sort(key=lambda s: s.path)
    scan.excluded.sort()
    scan.folder_links.sort()
    return scan


def list_sample_files(root: str | os.PathLike[str], videos: bool = True) -> list[str]:
    """All image (and, if ``videos``, video) files below ``root`` as sorted POSIX relative paths.

    The sample files of :func:`scan_sample_files` (regular files and links to them; hidden
    entries and run folders left out). Symbolic links to files are followed; the order is
    stable across runs and machines (plain string sort of the relative path).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is a file.
    """
    return scan_sample_files(root, videos=videos).files
