"""Embedding matrices: .npy (memory-mapped) with names, CSV, Parquet shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from selfsup.errors import DataError
from selfsup.selection.matrix import load_embedding_matrix, names_path, save_embedding_matrix
from selfsup.utils.io import save_embeddings


def test_npy_round_trip_is_memory_mapped(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
    path = tmp_path / "data" / "embeddings.npy"
    save_embedding_matrix(path, [f"s{i}" for i in range(10)], x)
    names, got = load_embedding_matrix(path)
    assert names == [f"s{i}" for i in range(10)]
    assert isinstance(got, np.memmap)
    np.testing.assert_array_equal(got, x)
    assert names_path(path).exists()


def test_npy_written_from_blocks(tmp_path: Path) -> None:
    x = np.arange(24, dtype=np.float32).reshape(8, 3)
    path = tmp_path / "e.npy"
    save_embedding_matrix(path, list("abcdefgh"), (x[i : i + 3] for i in range(0, 8, 3)), dim=3)
    np.testing.assert_array_equal(load_embedding_matrix(path)[1], x)


def test_npy_errors_name_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "e.npy"
    with pytest.raises(DataError, match="2 embedding rows for 3 names"):
        save_embedding_matrix(path, ["a", "b", "c"], np.zeros((2, 2), np.float32))
    assert not path.exists()
    with pytest.raises(DataError, match="NaN or infinite"):
        save_embedding_matrix(path, ["a"], np.full((1, 2), np.nan, np.float32))
    with pytest.raises(DataError, match="line break"):
        save_embedding_matrix(path, ["a\nb"], np.zeros((1, 2), np.float32))
    np.save(path, np.zeros((2, 2), np.float32))
    with pytest.raises(DataError, match="no names file"):
        load_embedding_matrix(path)
    names_path(path).write_text("a\n", encoding="utf-8")
    with pytest.raises(DataError, match="1 names for 2 rows"):
        load_embedding_matrix(path)
    np.save(path, np.zeros((1, 2), np.float64))
    with pytest.raises(DataError, match="float32"):
        load_embedding_matrix(path)
    (tmp_path / "e.txt").write_text("x")
    with pytest.raises(DataError, match="unknown format"):
        load_embedding_matrix(tmp_path / "e.txt")


def test_csv_is_read_through_the_run_format(tmp_path: Path) -> None:
    x = np.random.default_rng(1).standard_normal((4, 2)).astype(np.float32)
    path = tmp_path / "embeddings.csv"
    save_embeddings(path, x, [0] * 4, ["a.png", "b.png", "c.png", "d.png"])
    names, got = load_embedding_matrix(path)
    assert names == ["a.png", "b.png", "c.png", "d.png"]
    np.testing.assert_allclose(got, x, rtol=1e-6)


def test_parquet_shards_in_name_order(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    x = np.random.default_rng(2).standard_normal((5, 3)).astype(np.float32)
    for shard, rows in (("part-1.parquet", range(3, 5)), ("part-0.parquet", range(0, 3))):
        table = pa.table(
            {
                "sample_id": [f"s{i}" for i in rows],
                "embedding": [x[i].tolist() for i in rows],
            }
        )
        pq.write_table(table, tmp_path / shard)
    names, got = load_embedding_matrix(tmp_path)
    assert names == [f"s{i}" for i in range(5)]
    np.testing.assert_array_equal(got, x)
