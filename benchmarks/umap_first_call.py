"""Seconds a process spends on its first UMAP of the run report: selfsup's ``umap_2d`` vs
``umap.UMAP().fit_transform``.

Arms, each in a fresh Python process (numba's compiled kernels live in the process, so only a
fresh one shows what every ``selfsup run`` pays), on the same L2-normalised Fashion-MNIST
test images (raw pixels, the first ``--points``), n_neighbors 15, seed 0:

* ``selfsup``: ``selfsup.curation.plots.umap_2d`` (exact neighbours from
  ``selfsup.utils.vectors.knn``, the fuzzy graph in numpy, umap-learn's layout);
* ``umap-learn``: ``umap.UMAP(n_neighbors=15, random_state=0, n_jobs=1).fit_transform``, what
  ``umap_2d`` called before.

Each process times importing umap plus the first call, then a second call on the same
points (compiled code warm). Layout quality is printed too, so that speed is not bought
with a worse map: trustworthiness (scikit-learn, 15 neighbours) and the 5-fold accuracy of
a 10-NN classifier of the labels on the 2-D coordinates. A B A B interleaved, ``--rounds``
times; prints ``os.getloadavg()`` before each process.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/umap_first_call.py --points 2000 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
sys.path.insert(0, {here!r})
from fashion_mnist import load_fashion_mnist
images, labels = load_fashion_mnist("test")
x = images[:{points}].reshape({points}, -1).astype(np.float32)
x /= np.linalg.norm(x, axis=1, keepdims=True)
y = labels[:{points}]
def run():
    if {arm!r} == "selfsup":
        from selfsup.curation.plots import umap_2d
        return umap_2d(x, 15, 0)
    import umap
    return umap.UMAP(n_neighbors=15, random_state=0, n_jobs=1).fit_transform(x)
t1 = time.perf_counter()
coords = run()
t2 = time.perf_counter()
run()
t3 = time.perf_counter()
from sklearn.manifold import trustworthiness
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier
trust = trustworthiness(x, coords, n_neighbors=15)
acc = cross_val_score(KNeighborsClassifier(10), coords, y, cv=5).mean()
print(json.dumps({{"first": t2 - t1, "second": t3 - t2, "trust": trust, "acc": acc}}))
"""


def run_arm(arm: str, points: int) -> dict[str, float]:
    """One fresh process of ``arm``; its timings and layout quality."""
    code = _CHILD.format(here=str(HERE), points=points, arm=arm)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{arm} failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=2000, help="test images (%(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds (%(default)s)")
    args = parser.parse_args(argv)
    if not 16 < args.points <= 10000:
        parser.error(f"--points must be in (16, 10000], got {args.points}")
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    print(f"{args.points} Fashion-MNIST test images, n_neighbors 15, a fresh process per run")
    firsts: dict[str, list[float]] = {"selfsup": [], "umap-learn": []}
    for r in range(args.rounds):
        for arm in ("selfsup", "umap-learn"):
            load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
            start = time.perf_counter()
            res = run_arm(arm, args.points)
            firsts[arm].append(res["first"])
            print(
                f"round {r + 1} {arm:10s} first call {res['first']:6.1f} s  second "
                f"{res['second']:5.2f} s  trustworthiness {res['trust']:.4f}  2-D 10-NN "
                f"accuracy {res['acc']:.4f}  process {time.perf_counter() - start:5.1f} s  "
                f"load {load}"
            )
        ratio = firsts["umap-learn"][-1] / firsts["selfsup"][-1]
        print(f"round {r + 1} first-call ratio umap-learn / selfsup: {ratio:.2f}x")


if __name__ == "__main__":
    main()
