"""Speed and memory of DIVERSITY selection (k-center greedy) on synthetic embeddings.

Target (from the selection issue): choose 10,000 of 1,000,000 x 128 float32 embeddings in
under 5 minutes on a 2-core machine, with peak memory under 3 GB and never an N x N matrix.

Usage::

    .venv/bin/python benchmarks/selection_speed.py                   # 10k of 1M x 128, 2 threads
    .venv/bin/python benchmarks/selection_speed.py --n 200000 --k 2000 --data uniform
    .venv/bin/python benchmarks/selection_speed.py --baseline-n 100000 --baseline-k 1000

What it prints, for the large run (``select`` with the lazy engine) and, on a smaller problem
(``--baseline-n`` x ``--dim``, ``--baseline-k`` picks), for the lazy engine and the naive dense
engine (one full pass over all embeddings per pick):

* wall time of the selection alone (data generation excluded);
* ``tracemalloc`` peak: numpy allocations made during the selection (torch's own allocator
  is invisible to tracemalloc, hence the next figure);
* peak RSS during the selection, sampled every 20 ms from ``/proc/self/statm``, and the
  process-lifetime ``resource.getrusage`` max RSS; both include the embeddings themselves
  (512 MB for 1M x 128), which the caller holds anyway;
* whether the lazy and the dense engine chose the same indices (they must: both are exact).

Data: ``clustered`` (default) draws 1,000 Gaussian clusters, the shape of real embeddings;
``uniform`` draws isotropic Gaussians, the hard case for pruning (all distances alike). Rows
are L2-normalised, as the selection does anyway.

Measured (10,000 of 1,000,000 x 128; "dense" is the naive loop on 1,000 of 100,000 x 128,
extrapolated by N * k; every lazy/dense pair chose identical indices):

=====================================  ==========  =========  ============  ==============
machine                                data        lazy       RSS peak      dense (extrap.)
=====================================  ==========  =========  ============  ==============
Xeon, pinned to 2 idle cores, 2 thr.   clustered   19.8 s     1.17 GB       5.9 s (~590 s)
Xeon, pinned to 2 idle cores, 2 thr.   uniform     13.3 s     1.17 GB       4.5 s (~450 s)
Xeon, pinned to 2 idle cores, 1 thr.   clustered   27.6 s     1.16 GB
Xeon, pinned to 2 idle cores, 1 thr.   uniform     25.5 s     1.21 GB
AMD EPYC, 2 shared cores, 1 thr.       clustered   29.9 s     1.24 GB       11.6 s (~1160 s)
AMD EPYC, 2 shared cores, 2 thr.       clustered   282 s      1.22 GB       66 s (~6600 s)
=====================================  ==========  =========  ============  ==============

RSS includes the 512 MB of embeddings and ~550 MB of torch/numpy libraries; the selection
itself adds 110-220 MB. Note the last row: when other processes hold the cores, torch's
two threads wait on each other at every small operation and the run is ~10x slower than
with one thread, so on a shared machine call ``torch.set_num_threads(1)`` first.
"""

from __future__ import annotations

import argparse
import os
import resource
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray

from selfsup.selection import DiversityStrategy, SelectionConfig, SelectionInputs, select

DataKind = Literal["clustered", "uniform"]


def make_embeddings(n: int, dim: int, kind: DataKind, seed: int) -> NDArray[np.float32]:
    """``(n, dim)`` unit-norm float32 rows, generated in blocks to keep peak memory low."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    centers = rng.standard_normal((1000, dim)).astype(np.float32)
    block = 65536
    for start in range(0, n, block):
        stop = min(n, start + block)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32)
        if kind == "clustered":
            labels = rng.integers(0, centers.shape[0], stop - start)
            rows = centers[labels] + 0.3 * noise
        else:
            rows = noise
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        out[start:stop] = rows
    return out


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Measurement:
    seconds: float
    tracemalloc_peak: int
    rss_peak: int
    rss_before: int
    indices: NDArray[np.int64]


def measure(run: Callable[[], NDArray[np.int64]]) -> Measurement:
    """Time ``run`` and record its memory peaks."""
    peak = [_rss_bytes()]
    before = peak[0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], _rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tracemalloc.start()
    start = time.perf_counter()
    indices = run()
    seconds = time.perf_counter() - start
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stop.set()
    sampler.join()
    peak[0] = max(peak[0], _rss_bytes())
    return Measurement(seconds, traced, peak[0], before, indices)


def diversity(
    embeddings: NDArray[np.float32], k: int, engine: Literal["lazy", "dense"]
) -> NDArray[np.int64]:
    config = SelectionConfig((DiversityStrategy(),), n_samples=k)
    return select(SelectionInputs(embeddings=embeddings), config, engine=engine).indices


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:8.1f} MB"


def report(name: str, m: Measurement) -> None:
    print(
        f"{name:<34} {m.seconds:8.1f} s  tracemalloc peak {_mb(m.tracemalloc_peak)}  "
        f"RSS peak {_mb(m.rss_peak)} (+{_mb(m.rss_peak - m.rss_before)} over before)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="samples in the large run")
    parser.add_argument("--dim", type=int, default=128, help="embedding dimension")
    parser.add_argument("--k", type=int, default=10_000, help="samples to choose in the large run")
    parser.add_argument("--data", choices=["clustered", "uniform"], default="clustered")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the target: 2)")
    parser.add_argument("--baseline-n", type=int, default=100_000, help="0 skips the baseline")
    parser.add_argument("--baseline-k", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-large", action="store_true", help="only run the baseline")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs visible, "
        f"data={args.data}, load average {os.getloadavg()[0]:.1f}"
    )
    if args.baseline_n > 0:
        small = make_embeddings(args.baseline_n, args.dim, args.data, args.seed)
        label = f"{args.baseline_k} of {args.baseline_n} x {args.dim}"
        lazy = measure(lambda: diversity(small, args.baseline_k, "lazy"))
        report(f"lazy  {label}", lazy)
        dense = measure(lambda: diversity(small, args.baseline_k, "dense"))
        report(f"dense {label}", dense)
        same = np.array_equal(lazy.indices, dense.indices)
        print(f"speed-up lazy vs dense: {dense.seconds / lazy.seconds:.1f}x; same picks: {same}")
        # the dense loop costs O(N D) per pick, so it scales with N * k
        scale = (args.n / args.baseline_n) * (args.k / args.baseline_k)
        print(
            f"dense extrapolated to {args.k} of {args.n} x {args.dim}: "
            f"~{dense.seconds * scale:.0f} s"
        )
        del small
    if not args.skip_large:
        data = make_embeddings(args.n, args.dim, args.data, args.seed)
        big = measure(lambda: diversity(data, args.k, "lazy"))
        report(f"lazy  {args.k} of {args.n} x {args.dim}", big)
        max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(f"process max RSS (getrusage, whole run): {_mb(max_rss)}")


if __name__ == "__main__":
    main()
