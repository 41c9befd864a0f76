"""kNN time of each back end of ``selfsup.utils.vectors.knn`` (numpy, faiss, torch on the CPU).

    python benchmarks/vectors.py                         # n = 10,000 and 50,000, d = 128
    python benchmarks/vectors.py --sizes 100000 --queries 5000 --rounds 3

For each support size ``n`` (Gaussian points, L2-normalised, 2 % exact duplicates so that the
tie handling is exercised) this times ``knn(support[queries], support, k, exclude_self=True)``
for ``--queries`` random query rows, once per back end per round, the back ends interleaved
(A B C A B C ...) so that a change in the machine's load hits all of them alike. Each line
gives the seconds, the queries per second and the load average; the back ends' results are
checked to be identical. faiss is measured only where it can be imported (it is optional);
torch runs on the CPU here (``choose_backend`` gives it CUDA devices).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from numpy.typing import NDArray

from selfsup.utils.vectors import Backend, choose_backend, faiss_available, knn, l2_normalize


def _support(n: int, d: int, seed: int) -> NDArray[np.float32]:
    """``(n, d)`` unit rows with 2 % of them exact copies of others."""
    rng = np.random.default_rng(seed)
    x = l2_normalize(rng.standard_normal((n, d)).astype(np.float32))
    copies = n // 50
    x[rng.integers(0, n, copies)] = x[rng.integers(0, n, copies)]
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=2_000, help="query rows per search")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    backends: list[Backend] = ["numpy", "torch"]
    if faiss_available():
        backends.append("faiss")
    print(
        f"back ends: {', '.join(backends)}"
        + ("" if faiss_available() else " (faiss not importable)")
        + f"; torch threads {torch.get_num_threads()}, CPUs {os.cpu_count()}"
    )
    for n in args.sizes:
        x = _support(n, args.dim, seed=n)
        rng = np.random.default_rng(1)
        ids = np.sort(rng.choice(n, min(n, args.queries), replace=False))
        print(
            f"n = {n:,}, d = {args.dim}, {ids.size:,} queries, k = {args.k}; "
            f"auto picks {choose_backend(n, args.dim)}"
        )
        reference = None
        for round_ in range(args.rounds):
            for backend in backends:
                start = time.perf_counter()
                found = knn(x[ids], x, args.k, exclude_self=True, query_ids=ids, backend=backend)
                seconds = time.perf_counter() - start
                if reference is None:
                    reference = found
                same = np.array_equal(found.indices, reference.indices) and (
                    found.distances.tobytes() == reference.distances.tobytes()
                )
                print(
                    f"  round {round_} {backend:>5}: {seconds:7.3f} s, "
                    f"{ids.size / seconds:9,.0f} queries/s, same result {same}, "
                    f"load average {os.getloadavg()[0]:.2f}"
                )


if __name__ == "__main__":
    main()
