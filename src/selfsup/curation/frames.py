"""Extract selected video frames as image files, without extracting whole videos.

A curation run over videos selects frames by name (``clips/a-0042-mp4.png``);
:func:`extract_frames` writes exactly those frames as images, the way lightly's docs extract
them with ``LightlyDataset`` (``dataset[i]`` -> ``img.save(...)``), but in one efficient pass:
frames are decoded with :class:`selfsup.data.LightlyDataset` restricted to the requested names
(or, in a curation run, with the run's :class:`selfsup.data.ManifestDataset`, which neither
lists the folder nor probes the videos again), reading each video in frame order (one decode
per frame, no seek back).

Output names
    Each frame is written under its sample name relative to ``output_dir``, subfolders kept:
    ``clips/a-0042-mp4.png``. With another ``format`` the ``.png`` suffix is replaced by the
    format's (``clips/a-0042-mp4.jpg``). JPEG and WebP are written with quality 95.

Reruns
    Every file is written atomically (:mod:`selfsup.utils.atomic`). ``output_dir`` holds an
    index, ``.selfsup-frames.json``: ``{"format": "selfsup-frames", "version": 1, "frames":
    {<output file>: {"name", "source", "size", "mtime_ns", "frame", "format", "digest"}}}``,
    recording for each written file its frame name, the video it came from (relative path,
    size, modification time), the frame index, the Pillow format and the blake2b-128 digest
    of the written bytes. A rerun skips a frame, without decoding its video, when its file
    still has that digest and the video is unchanged; anything else is
    written again. An interrupted extraction records what it finished (the index is written
    in a ``finally``), so the rerun continues where it stopped. Two extractions into one
    ``output_dir`` at the same time are not supported.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from PIL import Image
from tqdm import tqdm

from selfsup.data import LightlyDataset
from selfsup.data._video import parse_frame_filename
from selfsup.errors import ConfigError, DataError
from selfsup.utils.atomic import atomic_open_bytes, atomic_write_text

if TYPE_CHECKING:
    from selfsup.data import ManifestDataset

__all__ = ["FRAME_FORMATS", "INDEX_FILE", "extract_frames", "frame_output_name"]

INDEX_FILE: Final = ".selfsup-frames.json"
_INDEX_FORMAT: Final = "selfsup-frames"
_INDEX_VERSION: Final = 1

#: Accepted ``format`` values -> (Pillow format, file suffix, save options).
FRAME_FORMATS: Final[dict[str, tuple[str, str, dict[str, Any]]]] = {
    "png": ("PNG", ".png", {}),
    "jpg": ("JPEG", ".jpg", {"quality": 95}),
    "jpeg": ("JPEG", ".jpg", {"quality": 95}),
    "webp": ("WEBP", ".webp", {"quality": 95}),
    "bmp": ("BMP", ".bmp", {}),
    "tif": ("TIFF", ".tif", {}),
    "tiff": ("TIFF", ".tif", {}),
}

_MAX_LISTED = 10


def _list_names(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_MAX_LISTED])
    rest = len(names) - _MAX_LISTED
    return f"{shown} and {rest} more" if rest > 0 else shown


def _format(format: str) -> tuple[str, str, dict[str, Any]]:
    spec = FRAME_FORMATS.get(format.lower().lstrip("."))
    if spec is None:
        raise ConfigError(
            f"frame image format {format!r} is not supported; use one of "
            f"{', '.join(sorted(FRAME_FORMATS))}"
        )
    return spec


def frame_output_name(frame_name: str, format: str = "png") -> str:
    """Relative output path of a frame: its sample name with the format's suffix."""
    _, suffix, _ = _format(format)
    stem = frame_name[: -len(".png")] if frame_name.endswith(".png") else frame_name
    return stem + suffix


def _digest_file(path: Path) -> str | None:
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def _read_index(path: Path) -> dict[str, dict[str, Any]]:
    """The index of an earlier extraction; an unusable one only means redoing the work."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        warnings.warn(f"ignoring unreadable frame index {path}: {exc}", stacklevel=3)
        return {}
    if (
        not isinstance(data, dict)
        or data.get("format") != _INDEX_FORMAT
        or not isinstance(data.get("version"), int)
        or data["version"] > _INDEX_VERSION
        or not isinstance(data.get("frames"), dict)
    ):
        warnings.warn(
            f"ignoring frame index {path}: not a version <= {_INDEX_VERSION} selfsup frame index",
            stacklevel=3,
        )
        return {}
    return {k: v for k, v in data["frames"].items() if isinstance(v, dict)}


def _write_index(path: Path, frames: dict[str, dict[str, Any]]) -> None:
    data = {"format": _INDEX_FORMAT, "version": _INDEX_VERSION, "frames": frames}
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def extract_frames(
    input_dir: str | os.PathLike[str],
    frame_names: Sequence[str],
    output_dir: str | os.PathLike[str],
    format: str = "png",
    *,
    progress: bool = False,
    samples: ManifestDataset | None = None,
) -> list[Path]:
    """Write the video frames named ``frame_names`` as image files under ``output_dir``.

    Args:
        input_dir: The folder the frames' videos lie in (the run's ``input_dir``).
        frame_names: Frame sample names, e.g. from ``sampled_filenames_excluding_datapool.txt``
            (only the frames: image samples are files already).
        output_dir: Destination; must not lie inside ``input_dir`` (the images would become
            samples of the next run, clashing with the frames' names).
        format: ``png`` (default, lossless), ``jpg``/``jpeg``, ``webp``, ``bmp``, ``tif``.
        progress: Show a progress bar.
        samples: The checked samples of ``input_dir`` (a curation run's manifest) to read
            the frames from; ``None`` reads the folder with a LightlyDataset.

    Returns:
        The path written (or kept) for each name, in the order of ``frame_names``.

    Raises:
        ConfigError: unknown ``format``, or ``output_dir`` inside ``input_dir``.
        DataError: a name is no frame name, names no frame of a video in ``input_dir``, or
            its video cannot be decoded; the message names them.
    """
    spec = _format(format)
    root = Path(input_dir)
    out = Path(output_dir)
    if _inside(out.resolve(), root.resolve()):
        raise ConfigError(
            f"frames output folder {os.fspath(out)!r} lies inside input_dir "
            f"{os.fspath(root)!r}; the images would become samples of later runs. Choose a "
            "folder outside it"
        )
    names = [posixpath.normpath(n.replace(os.sep, "/")) for n in frame_names]
    not_frames = [raw for raw, n in zip(frame_names, names, strict=True) if not _is_frame(n)]
    if not_frames:
        raise DataError(
            f"{len(not_frames)} name(s) are not video frame names "
            f"('<video path without extension>-<frame>-<ext>.png'): {_list_names(not_frames)}"
        )
    files = {n: frame_output_name(n, format) for n in names}
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / INDEX_FILE
    index = _read_index(index_path)
    done: dict[str, dict[str, Any]] = {}  # output relpath -> index entry
    todo: list[str] = []
    for name in dict.fromkeys(names):
        entry = index.get(files[name])
        if entry is not None and _still_valid(entry, name, root, out / files[name], spec[0]):
            done[files[name]] = entry
        else:
            todo.append(name)
    try:
        if todo:
            _decode_and_write(root, todo, out, files, spec, done, progress, samples)
    finally:
        # Keep entries of earlier extractions that this call did not ask for and whose files
        # still exist, so extracting in several batches never forgets a batch.
        asked = set(files.values())
        merged = {k: v for k, v in index.items() if k not in asked and (out / k).is_file()}
        merged.update(done)
        _write_index(index_path, merged)
    return [out / files[n] for n in names]


def _is_frame(name: str) -> bool:
    return (
        not posixpath.isabs(name)
        and name != ".."
        and not name.startswith("../")
        and parse_frame_filename(name) is not None
    )


def _source_stat(root: Path, name: str) -> tuple[str, int, int] | None:
    parsed = parse_frame_filename(name)
    if parsed is None:
        return None
    try:
        stat = (root / parsed[0]).stat()
    except OSError:
        return None
    return parsed[0], stat.st_size, stat.st_mtime_ns


def _still_valid(
    entry: dict[str, Any], name: str, root: Path, target: Path, pil_format: str
) -> bool:
    source = _source_stat(root, name)
    return (
        source is not None
        and entry.get("name") == name
        and entry.get("source") == source[0]
        and entry.get("size") == source[1]
        and entry.get("mtime_ns") == source[2]
        and entry.get("format") == pil_format
        and entry.get("digest") is not None
        and _digest_file(target) == entry.get("digest")
    )


def _decode_and_write(
    root: Path,
    todo: list[str],
    out: Path,
    files: dict[str, str],
    spec: tuple[str, str, dict[str, Any]],
    done: dict[str, dict[str, Any]],
    progress: bool,
    samples: ManifestDataset | None = None,
) -> None:
    """Decode the frames ``todo`` (videos in frame order) and write them; fills ``done``."""
    pil_format, _, options = spec
    sources = {name: _source_stat(root, name) for name in todo}
    wanted = set(todo)
    dataset: LightlyDataset | ManifestDataset
    if samples is None:
        dataset = LightlyDataset(root, filenames=todo)
        indices = list(range(len(dataset)))
    else:
        # The samples are in manifest order (a video's frames in frame order), so reading
        # the wanted ones in index order never seeks back; names not among them are missing.
        dataset = samples.with_transform(None)
        indices = [i for i, n in enumerate(samples.get_filenames()) if n in wanted]
    written: set[str] = set()
    for i in tqdm(indices, desc="Extracting frames", disable=not progress):
        image, _, name = dataset[i]
        if name not in wanted:
            continue
        if not isinstance(image, Image.Image):
            raise DataError(f"frame {name!r} did not decode to an image")
        target = out / files[name]
        with atomic_open_bytes(target) as handle:
            image.save(handle, format=pil_format, **options)
        written.add(name)
        source = sources[name]
        parsed = parse_frame_filename(name)
        if source is None or parsed is None:
            continue  # the video vanished while we read it: written, but not trusted on rerun
        done[files[name]] = {
            "name": name,
            "source": source[0],
            "size": source[1],
            "mtime_ns": source[2],
            "frame": parsed[2],
            "format": pil_format,
            "digest": _digest_file(target),
        }
    missing = sorted(wanted - written)
    if missing:
        raise DataError(
            f"{len(missing)} frame(s) could not be read from {os.fspath(root)!r} (their video "
            f"was skipped as unreadable): {_list_names(missing)}"
        )
