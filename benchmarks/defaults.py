"""The defaults a new user gets, on Fashion-MNIST: do they beat raw pixels? (issue 11)

    python benchmarks/defaults.py                    # 200 training images, as in the issue
    python benchmarks/defaults.py -n 1000 --test-n 1000
    python benchmarks/defaults.py --set trainer.max_time=2 --set optimizer.lr=0.1

Exports ``-n`` training and ``--test-n`` test images as PNG folders, then does what the
README's three-line Python API does, without a single tuning key:
``train_embedding_model(input_dir=...)`` (the recipe chooser picks model, input size, batch
size, learning rate, epochs and a time budget for this data and machine, and prints them
with an estimated time) and ``embed_images`` of both folders. It prints:

* the recipe chosen (printed by selfsup itself on stderr) and the training time;
* the collapse figures of the training embeddings (std of the L2-normalised embeddings
  times sqrt(D), effective rank; selfsup.utils.embedding_stats);
* the load average of the machine before and after (the time budget makes the epochs, and so
  the figures, depend on how busy the CPUs were);
* same-class nearest neighbour among the training images (leave-one-out 1-NN, the figure of
  issue 11: 25 % for the old defaults against 63 % for raw pixels on 200 images), and the
  weighted kNN accuracy of the test images against the training images (k=20, t=0.1),
  each for the embeddings and for raw pixels (flattened, L2-normalised).

``--set key=value`` passes lightly_config keys (an experiment with other settings; the
figures are then not those of the defaults). Needs the Debian package
``dataset-fashion-mnist`` (benchmarks/fashion_mnist.py says where it looks).
"""

from __future__ import annotations

import os

# See benchmarks/ssl_fashion_mnist.py: spinning OpenMP threads stall on busy shared cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fashion_mnist import export_images
from selfsup import embed_images, train_embedding_model
from selfsup.config import LightlyConfig, parse_overrides
from selfsup.utils.benchmarking import knn_accuracy
from selfsup.utils.embedding_stats import collapse_verdict, embedding_stats
from selfsup.utils.vectors import knn


def _pixels(root: Path, filenames: list[str]) -> npt.NDArray[np.float32]:
    """(N, 784) raw pixels of the exported PNGs, in ``filenames`` order."""
    return np.stack(
        [np.asarray(Image.open(root / f).convert("L"), dtype=np.float32).ravel() for f in filenames]
    )


def _load_average() -> str:
    """The 1, 5 and 15-minute load averages, e.g. ``"3.1 2.8 2.5"`` (``"n/a"`` off Unix)."""
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def leave_one_out_1nn(features: npt.NDArray[Any], labels: npt.NDArray[np.int64]) -> float:
    """Fraction of rows whose nearest other row (cosine similarity) has the same label."""
    nearest = knn(features, features, 1, metric="cosine", exclude_self=True).indices[:, 0]
    return float(np.mean(labels[nearest] == labels))


def run(n: int, test_n: int, seed: int, overrides: list[str], workdir: Path) -> dict[str, Any]:
    train_dir = export_images(workdir / "train", split="train", n=n, seed=seed)
    test_dir = export_images(workdir / "test", split="test", n=test_n, seed=seed)
    kwargs = parse_overrides(LightlyConfig, overrides)
    t0 = time.perf_counter()
    checkpoint = train_embedding_model(
        input_dir=str(train_dir), output_dir=str(workdir / "out"), **kwargs
    )
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    emb_train, y_train, names_train = embed_images(checkpoint, input_dir=str(train_dir), **kwargs)
    emb_test, y_test, names_test = embed_images(checkpoint, input_dir=str(test_dir), **kwargs)
    embed_s = time.perf_counter() - t0
    raw_train = _pixels(train_dir, names_train)
    raw_test = _pixels(test_dir, names_test)
    k = min(20, len(names_train))
    stats = embedding_stats(emb_train)
    return {
        "train_s": train_s,
        "embed_s": embed_s,
        "stats": stats,
        "verdict": collapse_verdict(stats),
        "raw_stats": embedding_stats(raw_train),
        "loo_emb": leave_one_out_1nn(emb_train, y_train),
        "loo_raw": leave_one_out_1nn(raw_train, y_train),
        "knn_emb": knn_accuracy(emb_train, y_train, emb_test, y_test, k=k, t=0.1),
        "knn_raw": knn_accuracy(raw_train, y_train, raw_test, y_test, k=k, t=0.1),
        "k": k,
        "checkpoint": checkpoint,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="training images (%(default)s)")
    parser.add_argument("--test-n", type=int, default=500, help="test images (%(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subsets (%(default)s)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a lightly_config key"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep the files here")
    a = parser.parse_args(argv)
    load_before = _load_average()
    with tempfile.TemporaryDirectory(prefix="selfsup-defaults-") as tmp:
        r = run(a.n, a.test_n, a.seed, a.set, a.workdir or Path(tmp))
    s, raw = r["stats"], r["raw_stats"]
    print()
    print(f"Fashion-MNIST, {a.n} training and {a.test_n} test images (seed {a.seed})")
    print("overrides:         " + (" ".join(a.set) if a.set else "none (the defaults)"))
    print(f"training time:     {r['train_s']:.1f} s   embedding: {r['embed_s']:.1f} s")
    print(f"load average:      {load_before} before, {_load_average()} after (1, 5, 15 min)")
    print(
        f"collapse figures:  std x sqrt(D) {s.scaled_std:.3f} (raw pixels {raw.scaled_std:.3f}), "
        f"effective rank {s.effective_rank:.2f} of {s.dim} (raw pixels "
        f"{raw.effective_rank:.2f} of {raw.dim}); {'COLLAPSED' if r['verdict'] else 'healthy'}"
    )
    print(
        f"same-class 1-NN (train, leave-one-out): embeddings {100 * r['loo_emb']:.1f} %, "
        f"raw pixels {100 * r['loo_raw']:.1f} %"
    )
    print(
        f"kNN test -> train (k={r['k']}, t=0.1):      embeddings {100 * r['knn_emb']:.1f} %, "
        f"raw pixels {100 * r['knn_raw']:.1f} %"
    )
    beat = r["knn_emb"] > r["knn_raw"]
    print(f"defaults beat raw pixels (kNN): {'yes' if beat else 'no'}")


if __name__ == "__main__":
    main()
