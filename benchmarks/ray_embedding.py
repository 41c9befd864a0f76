"""Ray embedding throughput: 1 vs 2 local actors, and the overhead over the single process.

Embeds the same generated images with the same model and batch size three ways, interleaved
(A B C A B C ...) so that a change in the machine's load hits all of them alike:

* ``local``: the single-process path of ``selfsup embed`` (``SelfSupervisedEmbedding.embed``
  over the embedding loader, in-process decoding, one torch thread);
* ``ray1`` / ``ray2``: :func:`selfsup.embedding.ray_engine.embed_with_ray` with 1 and 2 actors
  (each actor one CPU slot, one torch thread: Ray sets ``OMP_NUM_THREADS=1``) on one local Ray
  instance started once with ``--cpus`` CPUs, writing Parquet shards.

Each engine runs at two sizes (``--images N1 N2``): a call costs a fixed part (Ray: starting
the actors, which import torch and selfsup, and the dataset's set-up) plus a part per image,
and the two sizes separate them: per image = ``(t(N2) - t(N1)) / (N2 - N1)``, fixed =
``t(N1) - N1 * per image``. Printed per round: seconds and images/s of each; at the end the
medians, per engine the marginal images/s and the fixed seconds, the scaling ratio of the
marginal throughput ray2/ray1 (2.0 is perfect on 2 free cores), and Ray's overhead over the
single process per image (marginal) and per call (fixed). The load average before each
measurement is printed: on a shared machine it says how many other processes competed for
the cores.

    .venv/bin/python benchmarks/ray_embedding.py --images 128 512 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from selfsup.config import LoaderConfig, ModelConfig
from selfsup.core import build_embed_loader, build_model
from selfsup.embedding import SelfSupervisedEmbedding
from selfsup.embedding.ray_engine import RayOptions, embed_with_ray


def write_images(folder: Path, n: int, side: int) -> None:
    """``n`` seeded random RGB images of ``side`` x ``side`` pixels, in two class folders."""
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = folder / f"class_{i % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(sub / f"img_{i:05d}.png")


def marginal(per_image: float, fixed: float) -> str:
    """The marginal throughput and fixed cost, or why they cannot be told."""
    if per_image <= 0:
        return "marginal not measurable (noise)"
    return f"marginal {1 / per_image:8.1f} images/s, fixed {fixed:6.2f} s per call"


def ratio(median: dict[tuple[str, int], float], slow: str, fast: str, n: int) -> str:
    return f"{median[(slow, n)] / median[(fast, n)]:.2f}x"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--images", type=int, nargs=2, default=[128, 512], help="the two sizes (N1 < N2)"
    )
    parser.add_argument("--side", type=int, default=64, help="image side in pixels")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--shard-size", type=int, default=64, help="images per Ray shard")
    parser.add_argument("--model", default="resnet-9", help="backbone (model.name)")
    parser.add_argument("--width", type=float, default=0.25, help="backbone width")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    args = parser.parse_args()

    import ray

    torch.set_num_threads(1)  # as each Ray actor (OMP_NUM_THREADS=1): the same compute per worker
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=args.model, width=args.width, num_ftrs=32, out_dim=32))
    backbone: nn.Module = model.backbone.eval()
    loader_cfg = LoaderConfig(batch_size=args.batch_size, num_workers=0)
    n1, n2 = args.images
    if not 0 < n1 < n2:
        raise SystemExit(f"--images needs two sizes 0 < N1 < N2, got {n1} {n2}")
    print(
        f"images of {args.side}x{args.side}, {args.model} width {args.width}, batch "
        f"{args.batch_size}, Ray shards of {args.shard_size}, {os.cpu_count()} cores, "
        f"sizes {n1} and {n2}"
    )
    engines = ("local", "ray1", "ray2")
    times: dict[tuple[str, int], list[float]] = {(e, n): [] for n in (n1, n2) for e in engines}
    with tempfile.TemporaryDirectory(prefix="selfsup-ray-bench-") as tmp:
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        try:
            for n in (n1, n2):
                root = Path(tmp) / f"images_{n}"
                write_images(root, n, args.side)
            for round_ in range(args.rounds):
                for n in (n1, n2):
                    loader = build_embed_loader(
                        str(Path(tmp) / f"images_{n}"), loader_cfg, args.side
                    )
                    embedder = SelfSupervisedEmbedding(
                        model, nn.Identity(), torch.optim.SGD(model.parameters(), lr=0.0), loader
                    )
                    reference: np.ndarray | None = None
                    for name in engines:
                        print(
                            f"round {round_ + 1} N={n:5d} {name:5s} {load_average()}",
                            end=" ",
                            flush=True,
                        )
                        start = time.perf_counter()
                        if name == "local":
                            emb, _, _ = embedder.embed(loader, device="cpu", progress=False)
                        else:
                            options = RayOptions(
                                num_actors=1 if name == "ray1" else 2,
                                shard_size=args.shard_size,
                                batch_size=args.batch_size,
                            )
                            out = Path(tmp) / f"{name}.parquet"
                            emb, _, _ = embed_with_ray(backbone, loader.dataset, out, options)
                        seconds = time.perf_counter() - start
                        times[(name, n)].append(seconds)
                        print(f"{seconds:7.2f} s {n / seconds:8.1f} images/s")
                        if reference is None:
                            reference = emb
                        elif not np.allclose(emb, reference, rtol=1e-4, atol=1e-5):
                            raise SystemExit(f"{name} gave other embeddings than local")
        finally:
            ray.shutdown()
    median = {key: statistics.median(t) for key, t in times.items()}
    per_image: dict[str, float] = {}
    fixed: dict[str, float] = {}
    for name in engines:
        per_image[name] = (median[(name, n2)] - median[(name, n1)]) / (n2 - n1)
        fixed[name] = median[(name, n1)] - n1 * per_image[name]
        print(
            f"median {name:5s} N={n1}: {median[(name, n1)]:7.2f} s, N={n2}: "
            f"{median[(name, n2)]:7.2f} s; {marginal(per_image[name], fixed[name])}"
        )
    print(f"scaling ray2 / ray1, whole call at N={n2}: {ratio(median, 'ray1', 'ray2', n2)}")
    if min(per_image.values()) > 0:
        print(
            f"scaling ray2 / ray1, marginal throughput: "
            f"{per_image['ray1'] / per_image['ray2']:.2f}x; Ray (1 actor) over the single "
            f"process: {(per_image['ray1'] - per_image['local']) * 1e3:+.2f} ms per image, "
            f"{fixed['ray1'] - fixed['local']:+.2f} s per call"
        )
    else:
        # t(N2) <= t(N1) for some engine: the load changed more than the work did.
        print(
            "marginal figures not measurable: some engine took no longer for N2 than for N1 "
            "(the machine's load varied more than the work); use larger sizes or a quiet machine"
        )
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
