"""kNN time of each back end of ``selfsup.utils.vectors.knn`` (numpy, faiss, torch on the CPU).

    python benchmarks/vectors.py                         # n = 10,000 and 50,000, d = 128
    python benchmarks/vectors.py --sizes 100000 --queries 5000 --rounds 3
    python benchmarks/vectors.py --sizes 20000 --queries 0 --k 15 --backends numpy \
        --baseline /tmp/old/src/selfsup/utils/vectors.py       # a change against its parent

For each support size ``n`` (Gaussian points, L2-normalised, 2 % exact duplicates so that the
tie handling is exercised) this times ``knn(support[queries], support, k, exclude_self=True)``
for ``--queries`` random query rows, once per back end per round, the back ends interleaved
(A B C A B C ...) so that a change in the machine's load hits all of them alike. Each line
gives the seconds, the queries per second and the load average; the back ends' results are
checked to be identical. faiss is measured only where it can be imported (it is optional);
torch runs on the CPU here (``choose_backend`` gives it CUDA devices).

``--baseline FILE`` times another version of ``vectors.py`` (e.g. from a ``git worktree`` of
the parent commit) as one more back end, ``baseline-numpy``, interleaved with the others, and
checks that it finds the same. ``--queries 0`` searches from every point (``knn(x, x, k)``,
as the report's UMAP, near-duplicate detection and typicality do).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from selfsup.utils.vectors import choose_backend, faiss_available, knn, l2_normalize


def _support(n: int, d: int, seed: int) -> NDArray[np.float32]:
    """``(n, d)`` unit rows with 2 % of them exact copies of others."""
    rng = np.random.default_rng(seed)
    x = l2_normalize(rng.standard_normal((n, d)).astype(np.float32))
    copies = n // 50
    x[rng.integers(0, n, copies)] = x[rng.integers(0, n, copies)]
    return x


def _load_baseline(path: str) -> Callable[..., Any]:
    """``knn`` of the ``vectors.py`` at ``path``, imported under another module name."""
    spec = importlib.util.spec_from_file_location("baseline_vectors", path)
    if not os.path.isfile(path) or spec is None or spec.loader is None:
        raise SystemExit(f"--baseline {path}: not a Python file; give another vectors.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    found: Callable[..., Any] = module.knn
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument(
        "--queries", type=int, default=2_000, help="query rows per search (0: every row)"
    )
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--backends", nargs="+", default=["numpy", "torch", "faiss"], help="back ends to time"
    )
    parser.add_argument("--baseline", help="another vectors.py, timed as baseline-numpy")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.backends:
        if name not in ("numpy", "torch", "faiss"):
            raise SystemExit(f"--backends: unknown back end {name!r}; use numpy, torch, faiss")
    backends: list[str] = [b for b in args.backends if b != "faiss" or faiss_available()]
    searches: dict[str, Callable[..., Any]] = {b: knn for b in backends}
    if args.baseline:
        baseline = _load_baseline(args.baseline)
        backends.append("baseline-numpy")
        searches["baseline-numpy"] = baseline
    print(
        f"back ends: {', '.join(backends)}"
        + ("" if faiss_available() else " (faiss not importable)")
        + f"; torch threads {torch.get_num_threads()}, CPUs {os.cpu_count()}"
    )
    for n in args.sizes:
        x = _support(n, args.dim, seed=n)
        rng = np.random.default_rng(1)
        n_queries = min(n, args.queries) if args.queries > 0 else n
        ids = np.sort(rng.choice(n, n_queries, replace=False))
        print(
            f"n = {n:,}, d = {args.dim}, {ids.size:,} queries, k = {args.k}; "
            f"auto picks {choose_backend(n, args.dim)}"
        )
        reference = None
        for round_ in range(args.rounds):
            for backend in backends:
                search, kind = searches[backend], backend.removeprefix("baseline-")
                start = time.perf_counter()
                found = search(x[ids], x, args.k, exclude_self=True, query_ids=ids, backend=kind)
                seconds = time.perf_counter() - start
                if reference is None:
                    reference = found
                same = np.array_equal(found.indices, reference.indices) and (
                    found.distances.tobytes() == reference.distances.tobytes()
                )
                print(
                    f"  round {round_} {backend:>14}: {seconds:7.3f} s, "
                    f"{ids.size / seconds:9,.0f} queries/s, same result {same}, "
                    f"load average {os.getloadavg()[0]:.2f}"
                )


if __name__ == "__main__":
    main()
