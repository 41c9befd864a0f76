"""Embedding on Ray Data: the same embeddings as :meth:`SelfSupervisedEmbedding.embed`, computed
by a pool of actors (one model replica each, on a GPU or a CPU slot) and written as Parquet
shards.

``selfsup embed embedding.engine=ray`` and ``selfsup run lightly.embedding.engine=ray`` come
here through :func:`selfsup.core.embed`. The samples (a curation run's manifest, or a folder) are
cut into shards of ``embedding.shard_size`` consecutive samples; ``ray.data.from_items`` makes
one row per shard and ``map_batches`` hands each shard to an actor of :class:`_ShardEmbedder`,
which decodes its samples with the dataset's own transform, embeds them with the backbone and
writes ``part-<shard>.parquet`` itself, so embeddings never pass through Ray's object store
(the driver reads the finished shards back from disk once, for the rows it returns and
``embeddings.csv``). A shard holds one row per sample (:data:`ID_COLUMN` the sample name,
:data:`LABEL_COLUMN`, :data:`EMBEDDING_COLUMN` a list of ``D`` float32), the format
:func:`selfsup.selection.matrix.load_embedding_matrix` reads in shard (name) order.

The shards go to a temporary sibling folder that replaces the output folder only once every
shard is written: a run that crashed leaves the previous output (or none), never a mix, and
the next run removes the leftover. On a cluster (``embedding.ray_address``) the images, the
output folder and this package must be reachable from every node (shared storage); the model
travels with the actors.

Ray is an optional dependency (``pip install 'selfsup[distributed]'``), imported only here and
only when the engine runs.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from torch.utils.data import DataLoader, Subset

from selfsup.embedding.embedding import (
    Normalization,
    autocast_dtype,
    embed_batch,
    split_batch,
)
from selfsup.errors import ConfigError, DataError
from selfsup.selection.matrix import (
    PARQUET_EMBEDDING_COLUMN,
    PARQUET_ID_COLUMN,
    load_embedding_matrix,
)

logger = logging.getLogger(__name__)

#: Column of the sample name (what ``embeddings.csv`` calls ``filenames``); the reader's name.
ID_COLUMN: Final = PARQUET_ID_COLUMN
#: Column of the sample's label (the index of its first-level folder).
LABEL_COLUMN: Final = "label"
#: Column of the embedding: a list of ``D`` float32 values; the reader's name.
EMBEDDING_COLUMN: Final = PARQUET_EMBEDDING_COLUMN
#: File name of shard ``k``; zero-padded so that name order is shard order.
SHARD_NAME: Final = "part-{:06d}.parquet"


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide the Ray engine runs (the ``embedding.*`` config keys).

    Attributes:
        address: Ray cluster to join (``ray://head:10001``, ``auto``); ``""`` starts a local
            instance for the call and stops it afterwards.
        num_actors: Actors in the pool, each holding one copy of the model.
        shard_size: Samples per shard (one task, one Parquet file).
        batch_size: Samples per forward pass inside an actor.
        use_gpu: Give each actor one GPU (else one CPU slot).
        precision: ``embedding.precision`` of the forward pass (auto, 32, bf16, 16).
        normalize: ``(mean, std)`` for datasets of uint8 images (default ImageNet's).
    """

    address: str = ""
    num_actors: int = 1
    shard_size: int = 1000
    batch_size: int = 16
    use_gpu: bool = False
    precision: str = "auto"
    normalize: Normalization | None = None


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "embedding.engine=ray needs Ray: pip install 'selfsup[distributed]' "
            "(or use embedding.engine=local)"
        ) from exc
    return ray


@contextmanager
def ray_instance(address: str) -> Iterator[None]:
    """Use the running Ray instance, else join ``address`` (``""``: start a local one).

    An instance started here is shut down on exit; one that was running is left running (a
    test's fixture, or a driver script that called ``ray.init`` itself).
    """
    ray = import_ray()
    if ray.is_initialized():
        yield
        return
    try:
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False)
    except ConnectionError as exc:
        raise ConfigError(
            f"embedding.ray_address={address!r}: no Ray cluster answers there ({exc}); give "
            "the head's address (ray://host:10001, or auto on a cluster node) or '' for a "
            "local instance"
        ) from exc
    try:
        yield
    finally:
        ray.shutdown()


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n)`` in shards of at most ``shard_size``."""
    if shard_size < 1:
        raise ConfigError(f"embedding.shard_size must be >= 1, got {shard_size}")
    return [(start, min(start + shard_size, n)) for start in range(0, n, shard_size)]


def write_shard(
    path: Path, names: list[str], labels: NDArray[np.int64], embeddings: NDArray[np.float32]
) -> None:
    """Write one shard: ``names`` (N,), ``labels`` (N,) and ``embeddings`` (N, D) float32.

    Written to ``<path>.tmp`` and renamed, so a shard file is complete or absent.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    values = pa.array(np.ascontiguousarray(embeddings, dtype=np.float32).reshape(-1))
    dim = embeddings.shape[1]
    offsets = pa.array(np.arange(0, (len(names) + 1) * dim, dim, dtype=np.int32))
    table = pa.table(
        {
            ID_COLUMN: pa.array(names, type=pa.string()),
            LABEL_COLUMN: pa.array(labels, type=pa.int64()),
            # A variable-size list (all of length D) rather than a fixed-size one: the
            # selection step's reader (selection.matrix) reads list offsets.
            EMBEDDING_COLUMN: pa.ListArray.from_arrays(offsets, values),
        }
    )
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


class _ShardEmbedder:
    """A Ray actor: one model replica that embeds whole shards and writes their Parquet files.

    Args:
        backbone: maps (B, C, H, W) images to (B, D) features (the model's ``backbone``).
        dataset: yields ``(image (C, H, W), label, name)`` or a Uint8Dataset's ``(image
            (3, S, S) uint8, orig_hw, label, name)``; the same one the local path reads.
        folder: where shard files go (reachable from every node).
        batch_size: samples per forward pass.
        use_gpu: run on the actor's GPU.
    """

    def __init__(
        self,
        backbone: nn.Module,
        dataset: Any,
        folder: str,
        batch_size: int,
        use_gpu: bool,
        precision: str = "auto",
        normalize: Normalization | None = None,
    ) -> None:
        self.device = torch.device("cuda" if use_gpu else "cpu")
        # Channels-last as on the local engine (same kernels, so the same rows).
        self.backbone = backbone.to(self.device).to(memory_format=torch.channels_last).eval()
        self.dataset = dataset
        self.folder = Path(folder)
        self.batch_size = batch_size
        self.dtype = autocast_dtype(precision, self.device)
        self.normalize = normalize

    def __call__(self, batch: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        """Embed and write the shards of ``batch`` (columns ``shard``, ``start``, ``stop``);
        return per shard the rows written and the error that stopped it (``""``: none)."""
        rows: list[int] = []
        errors: list[str] = []
        for shard, start, stop in zip(batch["shard"], batch["start"], batch["stop"], strict=True):
            try:
                rows.append(self._embed_shard(int(shard), int(start), int(stop)))
                errors.append("")
            except DataError as exc:
                # Returned as data, not raised: Ray would wrap the exception in its own types
                # and the driver must raise a DataError naming the file, as the local path does.
                rows.append(-1)
                errors.append(str(exc))
        return {
            "shard": np.asarray(batch["shard"]),
            "rows": np.asarray(rows, dtype=np.int64),
            "error": np.asarray(errors, dtype=object),
        }

    def _embed_shard(self, shard: int, start: int, stop: int) -> int:
        # Decoding runs in the actor's process: the actors are the parallelism.
        loader = DataLoader(
            Subset(self.dataset, range(start, stop)), batch_size=self.batch_size, shuffle=False
        )
        chunks: list[NDArray[np.float32]] = []
        labels: list[NDArray[np.int64]] = []
        names: list[str] = []
        with torch.inference_mode():
            for batch in loader:
                images, targets, batch_names = split_batch(batch)
                features, batch_labels, batch_str_names = embed_batch(
                    self.backbone,
                    images,
                    targets,
                    batch_names,
                    self.device,
                    normalize=self.normalize,
                    dtype=self.dtype,
                    channels_last=True,
                )
                chunks.append(features)
                labels.append(batch_labels)
                names.extend(batch_str_names)
        write_shard(
            self.folder / SHARD_NAME.format(shard),
            names,
            np.concatenate(labels),
            np.concatenate(chunks),
        )
        return len(names)


def _check_slots(ray: Any, options: RayOptions) -> None:
    """Refuse a pool larger than the instance: its actors would wait for slots forever.

    Checked where the instance is this machine (``embedding.ray_address=''``); a cluster may
    add nodes on demand (autoscaling), so there a short pool only logs a warning.
    """
    kind = "GPU" if options.use_gpu else "CPU"
    slots = int(ray.cluster_resources().get(kind, 0))
    if options.num_actors <= slots:
        return
    message = (
        f"embedding.num_actors={options.num_actors} actors need one {kind} each but the Ray "
        f"instance has {slots}"
    )
    if not options.address:
        raise ConfigError(f"{message}: use embedding.num_actors={max(slots, 1)} or fewer")
    logger.warning("%s; the pool waits until the cluster has them", message)


def _remove_leftovers(output: Path) -> None:
    """Remove temporary folders that an interrupted earlier call left beside ``output``."""
    for stale in output.parent.glob(f"{output.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _replace_folder(tmp: Path, output: Path) -> None:
    """Make ``tmp`` the new ``output``: the old folder is moved aside first, then removed."""
    old = output.with_name(f"{output.name}.tmp-old-{uuid.uuid4().hex}")
    if output.exists():
        os.replace(output, old)
    os.replace(tmp, output)
    shutil.rmtree(old, ignore_errors=True)


def embed_with_ray(
    backbone: nn.Module,
    dataset: Any,
    output: str | os.PathLike[str],
    options: RayOptions,
) -> tuple[NDArray[np.float32], NDArray[np.int64], list[str]]:
    """Embed every sample of ``dataset`` on Ray and write the shards to the folder ``output``.

    Args:
        backbone: maps (B, C, H, W) images to (B, D) features.
        dataset: yields ``(image (C, H, W), label, name)`` and names its samples
            (``get_filenames()``, ``targets``): a :class:`~selfsup.data.ManifestDataset` or
            :class:`~selfsup.data.LightlyDataset` with the embedding transform.
        output: folder of the Parquet shards; replaced as a whole once every shard is written.
        options: the pool and where it runs.

    Returns:
        ``(embeddings (N, D) float32, labels (N,) int64, names)`` in dataset order: the rows
        :meth:`SelfSupervisedEmbedding.embed` returns for the same dataset.

    Raises:
        DataError: a sample could not be read (the message names it; a curation run then
            marks it lost and embeds again without it, as on the local engine), or the
            shards do not hold the dataset's samples.
    """
    ray = import_ray()
    names = list(dataset.get_filenames())
    if not names:
        raise DataError("the dataset to embed is empty")
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out)
    tmp = out.with_name(f"{out.name}.tmp-{uuid.uuid4().hex}")
    tmp.mkdir()
    ranges = shard_ranges(len(names), options.shard_size)
    try:
        with ray_instance(options.address):
            _check_slots(ray, options)
            items = [{"shard": k, "start": a, "stop": b} for k, (a, b) in enumerate(ranges)]
            resources: dict[str, Any] = {"num_gpus": 1} if options.use_gpu else {"num_cpus": 1}
            written = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
                _ShardEmbedder,
                fn_constructor_kwargs={
                    "backbone": backbone.cpu(),
                    "dataset": dataset,
                    "folder": str(tmp),
                    "batch_size": options.batch_size,
                    "use_gpu": options.use_gpu,
                    "precision": options.precision,
                    "normalize": options.normalize,
                },
                batch_size=1,
                concurrency=options.num_actors,
                **resources,
            )
            results = list(written.iter_rows())
        errors = sorted(str(r["error"]) for r in results if r["error"])
        if errors:
            more = f" (and {len(errors) - 1} more shard(s) failed)" if len(errors) > 1 else ""
            raise DataError(errors[0] + more)
        counts = {int(r["shard"]): int(r["rows"]) for r in results}
        missing = [k for k, (a, b) in enumerate(ranges) if counts.get(k) != b - a]
        if missing:
            raise DataError(
                f"Ray embedding wrote {len(counts)} of {len(ranges)} shards to {tmp}; "
                f"shards {missing[:5]} are missing or short"
            )
        shard_names, embeddings = load_embedding_matrix(tmp)
        if shard_names != names:
            raise DataError(f"the Parquet shards in {tmp} do not list the samples in order")
        _replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    labels = np.asarray(dataset.targets, dtype=np.int64)
    return np.ascontiguousarray(embeddings, dtype=np.float32), labels, names
