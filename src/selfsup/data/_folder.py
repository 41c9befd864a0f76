"""A folder of images and videos seen as one flat, indexable list of samples.

Every image file is one sample; every video file is one sample per frame. The order is
the sorted relative path of the file (``selfsup.data.files.list_sample_files``), and a
video's frames follow each other in frame order at the video's position. With a single
video in the folder, sample ``i`` is therefore frame ``i``.

Targets follow torchvision's ``ImageFolder`` on the *first-level* subfolder: class names
are the sorted names of the first-level subfolders holding sample files, and a file's
target is the index of the subfolder it lies under (at any depth). Files directly in the
root form a class named ``"."`` with index 0, placed before the subfolder classes; a flat
folder hence has the single class ``["."]``. Classes come from the full listing, before
files are restricted or skipped, so a target does not change when the selection does.
"""

from __future__ import annotations

import copy
import functools
import os
import posixpath
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from tqdm import tqdm

from selfsup.data._image import check_image, load_rgb
from selfsup.data._video import (
    FrameTable,
    VideoFrameReader,
    VideoProbeError,
    frame_filename,
    parse_frame_filename,
    probe_video,
)
from selfsup.data.files import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    class_of,
    find_classes,
    is_video_file,
    scan_sample_files,
)
from selfsup.errors import DataError

# How many names an error message lists before summarising the rest.
_MAX_LISTED = 20


@dataclass(frozen=True)
class SampleFile:
    """One usable file of the folder.

    Attributes:
        relpath: POSIX path relative to the root.
        target: Class index (see the module docstring).
        n_frames: Frames of a video; 0 for an image.
        table: A video's frame table if the probe built one (saves a demux per worker).
    """

    relpath: str
    target: int
    n_frames: int = 0
    table: FrameTable | None = None

    @property
    def is_video(self) -> bool:
        return self.n_frames > 0


def accepted_extensions() -> str:
    """The accepted file extensions, for error messages."""
    return ", ".join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))


def list_names(names: Sequence[str], limit: int = _MAX_LISTED) -> str:
    """``'a', 'b' and 3 more`` style listing for error messages."""
    shown = ", ".join(repr(n) for n in names[:limit])
    rest = len(names) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown


def normalize_relpath(name: str) -> str:
    """A user-given relative file name in the form the dataset uses (POSIX, no ``./``)."""
    return posixpath.normpath(name.replace(os.sep, "/")) if name else name


@dataclass
class _Selection:
    """Which parts of which files a ``filenames=`` list asks for."""

    whole: set[str]
    frames: dict[str, list[tuple[int, str]]]  # video relpath -> [(frame index, name given)]


def _select(requested: Sequence[str], available: set[str]) -> tuple[_Selection, list[str]]:
    whole: set[str] = set()
    frames: dict[str, list[tuple[int, str]]] = {}
    missing: list[str] = []
    for raw in requested:
        name = normalize_relpath(raw)
        if name in available:
            whole.add(name)
            continue
        parsed = parse_frame_filename(name)
        if parsed is not None and parsed[0] in available and is_video_file(parsed[0]):
            frames.setdefault(parsed[0], []).append((parsed[2], raw))
            continue
        missing.append(raw)
    return _Selection(whole=whole, frames=frames), missing


def _probe(root: Path, relpath: str) -> tuple[str, int, FrameTable | None, str | None]:
    """(relpath, n_frames, table, reason-if-unusable) of one file."""
    path = root / relpath
    if is_video_file(relpath):
        try:
            probe = probe_video(path)
        except VideoProbeError as exc:
            return relpath, 0, None, str(exc)
        return relpath, probe.n_frames, probe.table, None
    problem = check_image(path)
    return relpath, 0, None, None if problem is None else str(problem)


class FolderSource:
    """The samples of a folder: ``source[i] -> (RGB PIL image, target)``, untransformed.

    Args:
        root: Folder with images and videos, possibly nested.
        filenames: Restrict to these relative names: image paths, video paths (all their
            frames) or frame names (``clip-0042-mp4.png``). Unknown names raise.
        num_workers: Threads that check files and count video frames in parallel (file
            checks are I/O bound); 0 or 1 checks in the calling thread.
        tqdm_args: Keyword arguments for the progress bar shown while checking; shown by
            default for 1000+ files or when any video has to be probed.

    Raises:
        DataError: ``root`` is missing or not a folder, holds no usable sample, a name in
            ``filenames`` does not exist, or an image's name clashes with a frame name.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        filenames: Sequence[str] | None = None,
        num_workers: int = 0,
        tqdm_args: dict[str, Any] | None = None,
    ) -> None:
        self.root = os.fspath(root)
        self._path = Path(self.root)
        try:
            scan = scan_sample_files(self._path)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise DataError(
                f"input_dir {self.root!r} is not an existing folder; pass a folder "
                f"holding images or videos ({accepted_extensions()})"
            ) from exc
        listing = scan.files
        # Entries named like samples that cannot be read safely (FIFOs, devices, broken
        # links): never opened, reported in ``skipped`` like unreadable files.
        special = {s.path: f"{s.kind}: {s.detail}" for s in scan.skipped}
        if not listing:
            raise DataError(
                f"no images or videos found in {self.root!r} (hidden files and folders are "
                f"ignored); accepted extensions: {accepted_extensions()} (any case)"
            )
        self.classes: list[str] = find_classes(listing)
        self.class_to_idx: dict[str, int] = {c: i for i, c in enumerate(self.classes)}

        selection: _Selection | None = None
        missing: list[str] = []
        if filenames is not None:
            if isinstance(filenames, str):
                raise DataError("filenames must be a list of relative file names, got a str")
            selection, missing = _select(filenames, set(listing))
            special = {m: special[m] for m in missing if m in special}
            missing = [m for m in missing if m not in special]
            wanted = selection.whole | set(selection.frames)
            listing = [p for p in listing if p in wanted]
            if not listing and not missing:
                raise DataError(f"filenames is empty: it selects no file of {self.root!r}")

        self.skipped: list[tuple[str, str]] = sorted(special.items())
        files: list[SampleFile] = []
        frame_lists: list[NDArray[np.int64] | None] = []
        for relpath, n_frames, table, reason in self._probe_all(listing, num_workers, tqdm_args):
            if reason is not None:
                self.skipped.append((relpath, reason))
                continue
            target = self.class_to_idx[class_of(relpath)]
            files.append(SampleFile(relpath, target, n_frames, table))
            chosen: NDArray[np.int64] | None = None
            if n_frames and selection is not None and relpath not in selection.whole:
                ok: set[int] = set()
                for i, raw in selection.frames[relpath]:
                    # A name refers to a frame only if it matches exactly, padding included.
                    if i < n_frames and frame_filename(relpath, i, n_frames) == (
                        normalize_relpath(raw)
                    ):
                        ok.add(i)
                    else:
                        missing.append(raw)
                chosen = np.asarray(sorted(ok), dtype=np.int64)
            frame_lists.append(chosen)
        if missing:
            raise DataError(
                f"{len(missing)} of the requested filenames are not in {self.root!r}: "
                f"{list_names(sorted(set(missing)))}. Use paths relative to the folder "
                "(for video frames the names from get_filenames(), e.g. 'clip-0042-mp4.png')"
            )
        self._files = files
        self._check_name_clashes()

        file_ids: list[NDArray[np.int64]] = []
        frame_ids: list[NDArray[np.int64]] = []
        for k, (f, chosen) in enumerate(zip(files, frame_lists, strict=True)):
            if f.is_video:
                idx = chosen if chosen is not None else np.arange(f.n_frames, dtype=np.int64)
            else:
                idx = np.full(1, -1, dtype=np.int64)
            frame_ids.append(idx)
            file_ids.append(np.full(idx.shape[0], k, dtype=np.int64))
        # Flat per-sample lookup: sample i is frame _frame_of[i] (-1: image) of file
        # _file_of[i]. 16 bytes per sample, O(1) access and cheap to send to workers.
        self._file_of: NDArray[np.int64] = (
            np.concatenate(file_ids) if file_ids else np.zeros(0, dtype=np.int64)
        )
        self._frame_of: NDArray[np.int64] = (
            np.concatenate(frame_ids) if frame_ids else np.zeros(0, dtype=np.int64)
        )
        if len(self) == 0:
            detail = (
                f"; all {len(self.skipped)} candidate files are unreadable: "
                f"{list_names([s[0] for s in self.skipped])}"
                if self.skipped
                else ""
            )
            raise DataError(
                f"no usable images or videos in {self.root!r}{detail}; accepted extensions: "
                f"{accepted_extensions()}"
            )
        self._reader = VideoFrameReader()

    def _probe_all(
        self, listing: list[str], num_workers: int, tqdm_args: dict[str, Any] | None
    ) -> list[tuple[str, int, FrameTable | None, str | None]]:
        n_videos = sum(1 for p in listing if is_video_file(p))
        bar_args: dict[str, Any] = {
            "desc": f"Checking files in {self.root}",
            "unit": " file",
            "total": len(listing),
            "disable": len(listing) < 1000 and n_videos < 10,
        }
        bar_args.update(tqdm_args or {})
        probe = functools.partial(_probe, self._path)
        with tqdm(**bar_args) as bar:
            results: list[tuple[str, int, FrameTable | None, str | None]] = []
            if num_workers > 1 and len(listing) > 1:
                with ThreadPoolExecutor(max_workers=num_workers) as pool:
                    for result in pool.map(probe, listing):
                        results.append(result)
                        bar.update(1)
            else:
                for relpath in listing:
                    results.append(probe(relpath))
                    bar.update(1)
        return results

    def _check_name_clashes(self) -> None:
        """An image may not carry the name a video frame of this folder gets."""
        videos = {f.relpath: f.n_frames for f in self._files if f.is_video}
        if not videos:
            return
        clashes: list[str] = []
        for f in self._files:
            if f.is_video:
                continue
            parsed = parse_frame_filename(f.relpath)
            if parsed is None or parsed[0] not in videos:
                continue
            n = videos[parsed[0]]
            if parsed[2] < n and frame_filename(parsed[0], parsed[2], n) == f.relpath:
                clashes.append(f.relpath)
        if clashes:
            raise DataError(
                f"images in {self.root!r} have the names of video frames of the same folder: "
                f"{list_names(clashes)}; rename or move them so every sample name is unique"
            )

    def fresh_copy(self) -> FolderSource:
        """A copy sharing this folder's checked listing (read-only) with a video reader of
        its own, so that the copy's reads do not share open containers with this one's."""
        other = copy.copy(self)
        other._reader = VideoFrameReader()
        return other

    def __len__(self) -> int:
        return int(self._file_of.shape[0])

    def _locate(self, index: int) -> tuple[SampleFile, int]:
        return self._files[int(self._file_of[index])], int(self._frame_of[index])

    def get_filename(self, index: int) -> str:
        """Relative name of sample ``index``: the image path or the frame name."""
        f, frame = self._locate(index)
        return frame_filename(f.relpath, frame, f.n_frames) if f.is_video else f.relpath

    def get_filenames(self) -> list[str]:
        """Names of all samples in index order."""
        names: list[str] = []
        file_of = self._file_of.tolist()
        frame_of = self._frame_of.tolist()
        for k, frame in zip(file_of, frame_of, strict=True):
            f = self._files[k]
            names.append(frame_filename(f.relpath, frame, f.n_frames) if f.is_video else f.relpath)
        return names

    @property
    def targets(self) -> list[int]:
        """Target of every sample, without loading any."""
        file_targets = np.asarray([f.target for f in self._files], dtype=np.int64)
        return [int(t) for t in file_targets[self._file_of]]

    def source_path(self, index: int) -> Path | None:
        """The file of an image sample (for byte copies); None for a video frame."""
        f, _ = self._locate(index)
        return None if f.is_video else self._path / f.relpath

    def load(self, index: int) -> Image.Image:
        """Sample ``index`` as an RGB PIL image.

        Raises:
            DataError: The file (or frame) cannot be decoded; the message names it.
        """
        f, frame = self._locate(index)
        path = self._path / f.relpath
        if f.is_video:
            return self._reader.read(os.fspath(path), frame, table=f.table, name=f.relpath)
        return load_rgb(path, name=f.relpath)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        f, _ = self._locate(index)
        return self.load(index), f.target
