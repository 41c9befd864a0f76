"""The Ray engine gives the local engine's embeddings, writes Parquet shards the selection step
reads, survives a crashed earlier call and reports unreadable samples like the local path.

One local Ray instance with 2 CPUs serves the module (starting Ray costs seconds).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from selfsup.cli.main import main
from selfsup.config import ModelConfig, RunConfig, resolve
from selfsup.core import build_model, embed_images
from selfsup.curation.pipeline import run
from selfsup.data import ManifestDataset
from selfsup.embedding.ray_engine import (
    EMBEDDING_COLUMN,
    ID_COLUMN,
    LABEL_COLUMN,
    RayOptions,
    embed_with_ray,
    import_ray,
    shard_ranges,
    write_shard,
)
from selfsup.errors import ConfigError, DataError
from selfsup.runfolder import RunFolder
from selfsup.selection.matrix import load_embedding_matrix
from selfsup.utils.io import load_embeddings

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")

MODEL = {"name": "resnet-9", "width": 0.125, "num_ftrs": 16, "out_dim": 8}
TINY: dict[str, Any] = {
    "model": MODEL,
    "collate": {"input_size": 32},
    "loader": {"num_workers": 0, "batch_size": 4},
}


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """A checkpoint of an untrained tiny model (training is not what is tested here)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(**MODEL))
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": model.state_dict(), "selfsup": {"model": MODEL}}, path)
    return path


def test_without_ray_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an import of a missing module sees
    with pytest.raises(ConfigError, match=r"selfsup\[distributed\]"):
        import_ray()


def test_a_shard_reads_back_through_the_selection_reader(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(5, 3)).astype(np.float32)
    names = [f"a/{i}.png" for i in range(5)]
    write_shard(tmp_path / "part-000000.parquet", names[:2], np.zeros(2, np.int64), emb[:2])
    write_shard(tmp_path / "part-000001.parquet", names[2:], np.ones(3, np.int64), emb[2:])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "part-000000.parquet",
        "part-000001.parquet",
    ]
    read_names, matrix = load_embedding_matrix(tmp_path)
    assert read_names == names
    np.testing.assert_array_equal(matrix, emb)
    labels = pq.read_table(tmp_path / "part-000001.parquet").column(LABEL_COLUMN).to_pylist()
    assert labels == [1, 1, 1]


def test_shard_ranges_cover_every_sample_once() -> None:
    assert shard_ranges(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert shard_ranges(6, 3) == [(0, 3), (3, 6)]
    with pytest.raises(ConfigError, match="shard_size"):
        shard_ranges(3, 0)


@pytest.mark.slow
def test_selfsup_embed_on_ray_gives_the_local_embeddings_csv_and_shards(
    ray_local: None, make_image_folder: Callable[..., Path], checkpoint: Path, tmp_path: Path
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=4)
    local, local_labels, local_names = embed_images(
        checkpoint=checkpoint, input_dir=str(root), **TINY
    )
    out = tmp_path / "out"
    tiny = [
        f"{section}.{key}={value}" for section, keys in TINY.items() for key, value in keys.items()
    ]
    code = main(
        [
            "embed",
            f"input_dir={root}",
            f"checkpoint={checkpoint}",
            f"output_dir={out}",
            "embedding.engine=ray",
            "embedding.num_actors=2",
            "embedding.shard_size=3",
            *tiny,
        ]
    )
    assert code == 0
    with open(out / "embeddings.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    assert [r[0] for r in rows] == local_names
    np.testing.assert_allclose(
        np.asarray([[float(v) for v in r[1:17]] for r in rows]), local, rtol=1e-5, atol=1e-6
    )
    assert [int(r[17]) for r in rows] == local_labels.tolist()
    shards = sorted((out / "embeddings.parquet").iterdir())
    assert [s.name for s in shards] == [f"part-{k:06d}.parquet" for k in range(3)]
    assert pq.read_table(shards[0]).column(ID_COLUMN).to_pylist() == local_names[:3]
    assert pq.read_table(shards[0]).schema.field(EMBEDDING_COLUMN).type.value_type == "float"
    # The selection step's reader gives the same matrix.
    read_names, matrix = load_embedding_matrix(out / "embeddings.parquet")
    assert read_names == local_names
    np.testing.assert_allclose(matrix, local, rtol=1e-5, atol=1e-6)


def _backbone() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(**MODEL)).backbone


@dataclass(frozen=True)
class _Record:
    filename: str
    source: str
    frame_index: int | None = None


def _dataset(root: Path) -> ManifestDataset:
    import torchvision.transforms as T

    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    return ManifestDataset(root, [_Record(f, f) for f in files], transform=T.ToTensor())


@pytest.mark.slow
def test_a_rerun_after_a_crash_replaces_the_output_whole(
    ray_local: None, make_image_folder: Callable[..., Path], tmp_path: Path
) -> None:
    dataset = _dataset(make_image_folder(n_classes=1, n_per_class=3))
    out = tmp_path / "embeddings.parquet"
    # What a crash leaves: the previous output, and a half-written temporary folder.
    out.mkdir()
    (out / "part-000099.parquet").write_bytes(b"from an earlier run")
    stale = tmp_path / "embeddings.parquet.tmp-crashed"
    stale.mkdir()
    (stale / "part-000000.parquet").write_bytes(b"half")
    emb, _, names = embed_with_ray(_backbone(), dataset, out, RayOptions(shard_size=2))
    assert not stale.exists()
    assert sorted(p.name for p in out.iterdir()) == ["part-000000.parquet", "part-000001.parquet"]
    assert names == dataset.get_filenames()
    assert emb.shape == (3, 16)
    assert list(tmp_path.glob("*.tmp-*")) == []


@pytest.mark.slow
def test_an_unreadable_sample_is_a_data_error_naming_it(
    ray_local: None, make_image_folder: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_image_folder(n_classes=1, n_per_class=3)
    dataset = _dataset(root)
    # Rewritten after the check: the manifest lists it, decoding fails.
    (root / "class_0" / "img_0_1.png").write_bytes(b"not an image any more")
    out = tmp_path / "run" / "embeddings.parquet"
    with pytest.raises(DataError, match=r"img_0_1\.png"):
        embed_with_ray(_backbone(), dataset, out, RayOptions(shard_size=2))
    # Nothing half-written is left: no output, no temporary folder.
    assert list(out.parent.iterdir()) == []


@pytest.mark.slow
def test_selfsup_run_on_ray_writes_the_shards_into_the_run_folder(
    ray_local: None,
    make_image_folder: Callable[..., Path],
    corrupt_files: Callable[..., list[str]],
    checkpoint: Path,
    tmp_path: Path,
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=3)
    corrupt = corrupt_files(root / "class_1")
    out = tmp_path / "run"
    cfg = resolve(
        RunConfig,
        overrides=[
            f"input_dir={root}",
            f"output_dir={out}",
            f"checkpoint={checkpoint}",
            "stopping_condition.n_samples=2",
            "umap=false",
            "num_workers=0",
            "lightly.embedding.engine=ray",
            "lightly.embedding.shard_size=4",
            *(f"lightly.{s}.{k}={v}" for s, keys in TINY.items() for k, v in keys.items()),
        ],
    )
    run(cfg)
    folder = RunFolder(out)
    emb, _, names = load_embeddings(folder.embeddings)
    shard_names, matrix = load_embedding_matrix(folder.embeddings_parquet)
    assert shard_names == names
    np.testing.assert_array_equal(matrix, emb)
    # The check's corrupt files are reported and never reach the engine.
    assert len(names) == 6
    reported = folder.corrupt_filenames.read_text()
    assert all(Path(c).name in reported for c in corrupt)


@pytest.mark.slow
def test_a_pool_larger_than_the_local_instance_is_refused(
    ray_local: None, make_image_folder: Callable[..., Path], tmp_path: Path
) -> None:
    dataset = _dataset(make_image_folder(n_classes=1, n_per_class=2))
    with pytest.raises(ConfigError, match=r"embedding\.num_actors=3 .* has 2"):
        embed_with_ray(_backbone(), dataset, tmp_path / "e.parquet", RayOptions(num_actors=3))
    assert list(tmp_path.glob("e.parquet*")) == []
