"""Embedding matrices for selection at scale: one reader for every embeddings format.

The selection engine takes one ``(N, D)`` float32 array. At millions of samples that array
should not be built from a Python list of rows, and at tens of millions it should not be in
memory at all: :func:`load_embedding_matrix` returns a memory map where it can, and the
greedy engine (:mod:`selfsup.selection.greedy`) reads a memory map block by block.

Formats (chosen by the path):

* ``*.npy``: a float32 ``(N, D)`` NumPy array, opened memory-mapped (``mmap_mode="r"``), with
  its names one per line in ``<path>.names.txt`` (UTF-8). :func:`save_embedding_matrix`
  writes both, the array in row blocks, so a matrix larger than memory can be written from
  an iterator of blocks.
* ``*.csv``: the run's embeddings CSV (:func:`selfsup.utils.io.load_embeddings` owns that
  format); loaded into memory.
* ``*.parquet`` or a folder of ``*.parquet`` shards (read in name order): the sharded output of
  distributed embedding, one row per sample with a string column ``sample_id`` and a
  list-of-float column ``embedding`` (every list of the same length ``D``). Shards are copied
  one at a time into one preallocated float32 array, so the peak beyond the result is one
  shard. Needs ``pyarrow`` (installed with the ``distributed`` extra).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from selfsup.errors import DataError

__all__ = [
    "NAMES_SUFFIX",
    "PARQUET_EMBEDDING_COLUMN",
    "PARQUET_ID_COLUMN",
    "load_embedding_matrix",
    "save_embedding_matrix",
]

NAMES_SUFFIX: Final = ".names.txt"
"""Appended to a ``.npy`` path to name the file of its sample names (one per line)."""
PARQUET_ID_COLUMN: Final = "sample_id"
PARQUET_EMBEDDING_COLUMN: Final = "embedding"


def names_path(path: Path) -> Path:
    """The names file of the ``.npy`` matrix at ``path``."""
    return path.with_name(path.name + NAMES_SUFFIX)


def save_embedding_matrix(
    path: str | Path,
    names: Sequence[str],
    blocks: NDArray[Any] | Iterable[NDArray[Any]],
    dim: int | None = None,
) -> None:
    """Write ``(N, D)`` float32 embeddings to ``path`` (``.npy``) and their names beside it.

    Args:
        path: Destination ``.npy`` file; ``<path>.names.txt`` gets the names.
        names: ``N`` sample names (no newline characters).
        blocks: The whole ``(N, D)`` array, or an iterable of ``(n_i, D)`` row blocks whose
            ``n_i`` sum to ``N`` (written as they come: memory is one block).
        dim: ``D``; needed only when ``blocks`` is an iterable.

    Raises:
        DataError: a name holds a newline, the blocks do not add up to ``N`` rows of ``D``
            values, or a value is not finite.
    """
    target = Path(path)
    if target.suffix != ".npy":
        raise DataError(f"embedding matrix path must end in .npy, got {target}")
    bad = next((i for i, n in enumerate(names) if "\n" in n or "\r" in n), None)
    if bad is not None:
        raise DataError(f"sample name {bad} ({names[bad]!r}) holds a line break")
    if isinstance(blocks, np.ndarray):
        dim = blocks.shape[1] if blocks.ndim == 2 else -1
        blocks = [blocks]
    if dim is None or dim < 1:
        raise DataError(f"embedding matrix for {target} needs (N, D) rows with D >= 1")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(names), dim))
    row = 0
    try:
        for block in blocks:
            arr = np.asarray(block, dtype=np.float32)
            if arr.ndim != 2 or arr.shape[1] != dim or row + arr.shape[0] > len(names):
                raise DataError(
                    f"embedding block of shape {arr.shape} at row {row} does not fit "
                    f"({len(names)}, {dim}) for {target}"
                )
            finite = np.isfinite(arr).all(axis=1)
            if not finite.all():
                raise DataError(
                    f"embedding row {row + int(np.flatnonzero(~finite)[0])} for {target} has "
                    "a NaN or infinite value"
                )
            out[row : row + arr.shape[0]] = arr
            row += arr.shape[0]
        if row != len(names):
            raise DataError(f"{row} embedding rows for {len(names)} names in {target}")
        out.flush()
    except BaseException:
        del out
        tmp.unlink(missing_ok=True)
        raise
    del out
    names_tmp = names_path(tmp)
    with names_tmp.open("w", encoding="utf-8") as f:
        # line by line: 10M names joined would be one more copy of them all
        for name in names:
            f.write(f"{name}\n")
    names_tmp.replace(names_path(target))
    tmp.replace(target)


def load_embedding_matrix(path: str | Path) -> tuple[list[str], NDArray[np.float32]]:
    """Sample names and ``(N, D)`` float32 embeddings from any supported format.

    Args:
        path: A ``.npy`` matrix (returned as a read-only ``np.memmap``), an embeddings
            ``.csv``, a ``.parquet`` file or a folder of ``.parquet`` shards (module docstring).

    Returns:
        ``(names, embeddings)``; ``names[i]`` names row ``i``.

    Raises:
        DataError: the path does not exist or has no supported format, or its content is
            malformed (the message names the file).
    """
    source = Path(path)
    if not source.exists():
        raise DataError(f"embeddings not found: {source}")
    if source.is_dir() or source.suffix == ".parquet":
        return _load_parquet(source)
    if source.suffix == ".npy":
        return _load_npy(source)
    if source.suffix == ".csv":
        from selfsup.utils.io import load_embeddings

        embeddings, _, names = load_embeddings(source)
        return names, embeddings
    raise DataError(
        f"embeddings {source}: unknown format {source.suffix!r}; accepted: .npy (with "
        f"{NAMES_SUFFIX}), .csv, .parquet or a folder of .parquet shards"
    )


def _load_npy(source: Path) -> tuple[list[str], NDArray[np.float32]]:
    try:
        matrix = np.load(source, mmap_mode="r")
    except ValueError as exc:
        raise DataError(f"embeddings {source} is not a NumPy .npy array: {exc}") from exc
    if matrix.ndim != 2 or matrix.dtype != np.float32:
        raise DataError(
            f"embeddings {source} must hold a float32 (N, D) array, got {matrix.dtype} "
            f"{matrix.shape}"
        )
    names_file = names_path(source)
    if not names_file.exists():
        raise DataError(f"embeddings {source} has no names file {names_file}")
    names = names_file.read_text(encoding="utf-8").splitlines()
    if len(names) != matrix.shape[0]:
        raise DataError(f"{names_file} has {len(names)} names for {matrix.shape[0]} rows")
    return names, matrix


def _load_parquet(source: Path) -> tuple[list[str], NDArray[np.float32]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DataError(
            f"reading Parquet embeddings ({source}) needs pyarrow: pip install "
            "'selfsup[distributed]'"
        ) from exc
    shards = sorted(source.glob("*.parquet")) if source.is_dir() else [source]
    if not shards:
        raise DataError(f"no .parquet shards in {source}")
    columns = [PARQUET_ID_COLUMN, PARQUET_EMBEDDING_COLUMN]
    counts: list[int] = []
    for shard in shards:
        meta = pq.ParquetFile(shard)
        missing = [c for c in columns if c not in meta.schema_arrow.names]
        if missing:
            raise DataError(
                f"{shard} has no column {missing[0]!r}; embedding shards need columns {columns}"
            )
        counts.append(meta.metadata.num_rows)
    names: list[str] = []
    matrix: NDArray[np.float32] | None = None
    row = 0
    for shard, count in zip(shards, counts, strict=True):
        table = pq.read_table(shard, columns=columns)
        ids = [str(v) for v in table.column(PARQUET_ID_COLUMN).to_pylist()]
        flat = table.column(PARQUET_EMBEDDING_COLUMN).combine_chunks()
        values = np.asarray(flat.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
        if count == 0:
            continue
        lengths = np.diff(np.asarray(flat.offsets.to_numpy(zero_copy_only=False)))
        if lengths.size and (lengths != lengths[0]).any():
            bad = int(np.flatnonzero(lengths != lengths[0])[0])
            raise DataError(
                f"{shard}: row {bad} has {lengths[bad]} embedding values, row 0 {lengths[0]}"
            )
        block = values.reshape(count, -1)
        if matrix is None:
            matrix = np.empty((sum(counts), block.shape[1]), dtype=np.float32)
        if block.shape[1] != matrix.shape[1]:
            raise DataError(
                f"{shard}: embeddings have {block.shape[1]} values, earlier shards "
                f"{matrix.shape[1]}"
            )
        matrix[row : row + count] = block
        names.extend(ids)
        row += count
    if matrix is None:
        raise DataError(f"no embedding rows in {source}")
    return names, matrix
