"""Label efficiency of the selection strategies on Fashion-MNIST, against random selection.

    python benchmarks/label_efficiency.py                              # ~300 s SimCLR + selection
    python benchmarks/label_efficiency.py --save-embeddings /tmp/fm.npz
    python benchmarks/label_efficiency.py --embeddings /tmp/fm.npz     # reuse: selection only

The question (from the selection issue): if a user labels only the ``n`` images a strategy
selects, how good is a classifier trained on them? For each budget ``n`` in 50, 100, 500 and
1000, each strategy and each of 5 seeds, the script

1. draws a *pool* of ``--pool`` training images (seeded, without replacement) from the
   60 000 of the train split;
2. lets the strategy choose ``n`` of them, from their SimCLR embeddings only (no labels);
3. fits a logistic regression on the L2-normalised embeddings of the chosen images and their
   labels, and measures its accuracy on the 10 000 test images.

It prints mean ± standard deviation (over seeds, ``ddof=1``) of the test accuracy per
(strategy, budget), the paired difference to RANDOM (same seed = same pool), how many seeds
beat random, and whether the *default* strategy (what ``selfsup run`` selects with when a
config gives only ``stopping_condition.n_samples``; read from
:class:`selfsup.config.worker_config.WorkerConfig`, so this follows any change of default)
beats random at every budget.

**What a seed changes.** The pool (for every strategy) and the random draw (for RANDOM). The
SimCLR model is trained once (``--ssl-seed``): the spread shown is that of the pool and the
draw, not of the representation.

**Nested budgets.** Every strategy here picks greedily, one sample at a time, and the greedy
order does not depend on the number requested, so one selection of ``max(budgets)`` samples
gives every budget as a prefix (the first 50 picks of a 1000-sample selection are the
50-sample selection). Each strategy therefore runs once per seed.

**The classifier** is the same for every strategy: scikit-learn's multinomial
``LogisticRegression`` (lbfgs, ``C=--C``) on L2-normalised embeddings; with a single class
in the selection it predicts that class. A linear probe on frozen self-supervised features
is the standard evaluation of labelling budgets (TypiClust, Hacohen et al., 2022).

**Data.** The issue's data set is Fashion-MNIST exported to image files; this benchmark reads
the same images as arrays (:func:`fashion_mnist.load_fashion_mnist`): identical pixels, no
PNG round trip, and the embeddings come from the SimCLR recipe of ``ssl_fashion_mnist.py``
(whose training and embedding functions it imports).

**TYPICLUST** (add it to ``--methods``) is a reference, not a selfsup strategy: TypiClust's recipe
(k-means of the pool into ``n`` clusters, then the most typical sample of each cluster by
the k-nearest-neighbour typicality inside it) run with scikit-learn's ``MiniBatchKMeans``;
it is not nested, so it clusters once per budget and seed (15-150 s per seed on 2 shared
cores, hence not in the default list).

See benchmarks/README.md for measured tables.
"""

from __future__ import annotations

import os

# As in ssl_fashion_mnist.py: passive OpenMP waiting avoids a 10x slowdown of torch on a
# shared CPU; it must be set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from sklearn.cluster import MiniBatchKMeans
from sklearn.linear_model import LogisticRegression

# threadpoolctl (a scikit-learn dependency) ships no type information
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fashion_mnist import load_fashion_mnist
from selfsup.config.worker_config import WorkerConfig
from selfsup.selection import (
    DiversityStrategy,
    RandomStrategy,
    SelectionConfig,
    SelectionInputs,
    Strategy,
    TypicalityStrategy,
    select,
)
from selfsup.selection.objectives import l2_normalize, typicality
from selfsup.selection.registry import DEFAULT_STRENGTH
from selfsup.selection.strategies import DEFAULT_TYPICALITY_K
from selfsup.utils.atomic import atomic_open_bytes, atomic_write_text
from ssl_fashion_mnist import Config as SSLConfig
from ssl_fashion_mnist import embed, train

BUDGETS: tuple[int, ...] = (50, 100, 500, 1000)
RANDOM = "RANDOM"
TYPICLUST = "TYPICLUST"

FloatArray = NDArray[np.float32]
IntArray = NDArray[np.int64]


# --------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Embeddings:
    """SimCLR backbone features of both splits and what producing them cost.

    Attributes:
        train: ``(60000, D)`` float32 features of the train split (the pools come from here).
        test: ``(10000, D)`` float32 features of the test split.
        info: How they were made (training seconds, epochs, seed...), saved with them.
    """

    train: FloatArray
    test: FloatArray
    info: dict[str, float]


def train_embeddings(train_seconds: float, ssl_seed: int, threads: int, device: str) -> Embeddings:
    """Train SimCLR on the 60 000 train images (labels unused) and embed both splits.

    Uses ``ssl_fashion_mnist``'s recipe (its :class:`Config` defaults) with a time budget of
    ``train_seconds``.
    """
    cfg = SSLConfig(time_budget=train_seconds, seed=ssl_seed, threads=threads, device=device)
    torch.manual_seed(cfg.seed)
    dev = torch.device(cfg.device)
    train_np, _ = load_fashion_mnist("train")
    test_np, _ = load_fashion_mnist("test")
    train_u8 = torch.from_numpy(train_np).unsqueeze(1).to(dev)
    test_u8 = torch.from_numpy(test_np).unsqueeze(1).to(dev)
    result = train(cfg, train_u8)
    t0 = time.perf_counter()
    train_emb = embed(result.backbone, train_u8).cpu().numpy().astype(np.float32)
    test_emb = embed(result.backbone, test_u8).cpu().numpy().astype(np.float32)
    info = {
        "train_seconds": result.train_time_s,
        "epochs": result.images_seen / train_u8.shape[0],
        "final_loss": result.final_loss,
        "ssl_seed": float(ssl_seed),
        "embed_seconds": time.perf_counter() - t0,
    }
    return Embeddings(train_emb, test_emb, info)


def save_embeddings(path: Path, emb: Embeddings) -> None:
    """Write ``emb`` as an ``.npz`` (arrays ``train``, ``test``, ``info`` as JSON), atomically."""
    with atomic_open_bytes(path) as f:
        np.savez(f, train=emb.train, test=emb.test, info=np.array(json.dumps(emb.info)))


def load_embeddings(path: Path, n_train: int, n_test: int) -> Embeddings:
    """Read embeddings written by :func:`save_embeddings`; check they match the data set."""
    try:
        with np.load(path) as data:
            train_emb = np.asarray(data["train"], dtype=np.float32)
            test_emb = np.asarray(data["test"], dtype=np.float32)
            info = json.loads(str(data["info"])) if "info" in data else {}
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(
            f"--embeddings {path}: cannot read an .npz with arrays 'train' and 'test' "
            f"(as written by --save-embeddings): {exc}"
        ) from exc
    for name, arr, n in (("train", train_emb, n_train), ("test", test_emb, n_test)):
        if arr.ndim != 2 or arr.shape[0] != n:
            raise SystemExit(
                f"--embeddings {path}: array {name!r} has shape {arr.shape}, expected ({n}, D) "
                f"for the Fashion-MNIST {name} split"
            )
    return Embeddings(train_emb, test_emb, {str(k): float(v) for k, v in info.items()})


# --------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """A named way of choosing samples: engine strategies, or the TYPICLUST reference.

    Attributes:
        name: Column label in the tables.
        strategies: What :func:`selfsup.selection.select` combines; ``None`` for TYPICLUST.
            RANDOM's ``RandomStrategy`` seed is replaced by the run's seed.
    """

    name: str
    strategies: tuple[Strategy, ...] | None


def describe(strategies: Sequence[Strategy]) -> str:
    """Short label of a combination, e.g. ``DIVERSITY+TYPICALITY(k=20,s=2)``."""
    parts: list[str] = []
    for s in strategies:
        if isinstance(s, DiversityStrategy):
            parts.append("DIVERSITY" if s.strength == 1 else f"DIVERSITY(s={s.strength:g})")
        elif isinstance(s, TypicalityStrategy):
            extra = "" if s.strength == 1 else f",s={s.strength:g}"
            parts.append(f"TYPICALITY(k={s.k}{extra})")
        elif isinstance(s, RandomStrategy):
            parts.append(RANDOM)
        else:
            parts.append(type(s).__name__)
    return "+".join(parts)


def default_strategies() -> tuple[Strategy, ...]:
    """The strategies ``selfsup run`` uses when the config gives only ``n_samples``."""
    selection = WorkerConfig.model_validate({"stopping_condition": {"n_samples": 1}}).selection()
    if not isinstance(selection, SelectionConfig):
        raise TypeError(f"WorkerConfig.selection() returned {type(selection).__name__}")
    return selection.strategies


def parse_method(text: str) -> Method:
    """``--methods`` item -> :class:`Method`.

    Grammar: ``RANDOM``, ``TYPICLUST``, or ``+``-joined terms ``DIVERSITY[:strength]`` and
    ``TYPICALITY[:k[:strength]]``, e.g. ``DIVERSITY+TYPICALITY:20:2``.
    """
    word = text.strip().upper()
    if word == RANDOM:
        return Method(RANDOM, (RandomStrategy(),))
    if word == TYPICLUST:
        return Method(TYPICLUST, None)
    strategies: list[Strategy] = []
    for term in word.split("+"):
        head, *args = term.split(":")
        try:
            numbers = [float(a) for a in args]
        except ValueError as exc:
            raise ValueError(f"--methods {text!r}: {term!r} has a non-numeric argument") from exc
        if head == "DIVERSITY" and len(numbers) <= 1:
            strategies.append(DiversityStrategy(*numbers))
        elif head == "TYPICALITY" and len(numbers) <= 2:
            # by keyword: the strategy's third field is the kNN search mode, not a number
            k = int(numbers[0]) if numbers else DEFAULT_TYPICALITY_K
            strength = numbers[1] if len(numbers) == 2 else DEFAULT_STRENGTH
            strategies.append(TypicalityStrategy(k=k, strength=strength))
        else:
            raise ValueError(
                f"--methods {text!r}: cannot read {term!r}; accepted: RANDOM, TYPICLUST, "
                "DIVERSITY[:strength], TYPICALITY[:k[:strength]], joined with '+'"
            )
    return Method(describe(strategies), tuple(strategies))


DEFAULT_METHODS = (
    "RANDOM",
    "DIVERSITY",
    "TYPICALITY",
    "DIVERSITY+TYPICALITY",
    "DIVERSITY+TYPICALITY:20:0.75",
    "DIVERSITY+TYPICALITY:20:2",
)


def engine_ranking(pool_emb: FloatArray, method: Method, n: int, seed: int) -> IntArray:
    """The first ``n`` picks of ``method``'s strategies on ``pool_emb``, in pick order."""
    assert method.strategies is not None
    strategies = tuple(
        RandomStrategy(seed=seed, strength=s.strength) if isinstance(s, RandomStrategy) else s
        for s in method.strategies
    )
    result = select(SelectionInputs(embeddings=pool_emb), SelectionConfig(strategies, n_samples=n))
    return result.indices


def typiclust(pool_emb: FloatArray, n: int, seed: int, k: int = 20) -> IntArray:
    """TypiClust's choice of ``n`` samples: the most typical sample of each of ``n`` clusters.

    Hacohen et al. (2022): "we cluster the data into |L| + B clusters ... and select the most
    typical example from each"; typicality is the inverse mean distance to the ``k`` nearest
    neighbours *within the cluster* (the same formula as the TYPICALITY strategy). Clusters
    come from ``MiniBatchKMeans`` on the L2-normalised embeddings; a cluster of one sample
    contributes that sample.
    """
    x = l2_normalize(pool_emb)
    km = MiniBatchKMeans(n_clusters=n, random_state=seed, n_init=3, batch_size=4096)
    labels = km.fit_predict(x)
    picks: list[int] = []
    for c in range(n):
        members = np.flatnonzero(labels == c)
        if members.size == 0:
            continue
        if members.size == 1:
            picks.append(int(members[0]))
            continue
        typ = typicality(x[members], min(k, members.size - 1))
        picks.append(int(members[int(np.argmax(typ))]))
    return np.asarray(picks, dtype=np.int64)


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------


def probe_accuracy(
    x: FloatArray, y: IntArray, test_x: FloatArray, test_y: IntArray, c: float
) -> float:
    """Test accuracy of a logistic regression fit on ``(x, y)``; inputs L2-normalised here.

    ``x``: ``(n, D)`` selected embeddings, ``y``: ``(n,)`` their labels, ``test_x``:
    ``(M, D)``, ``test_y``: ``(M,)``. A single-class selection predicts its class.
    """
    classes = np.unique(y)
    if classes.size == 1:
        return float(np.mean(test_y == classes[0]))
    clf = LogisticRegression(C=c, max_iter=2000)
    clf.fit(l2_normalize(x), y)
    return float(np.mean(clf.predict(l2_normalize(test_x)) == test_y))


@dataclass
class Results:
    """Accuracies and selection times of every (method, budget, seed)."""

    budgets: tuple[int, ...]
    seeds: tuple[int, ...]
    accuracy: dict[str, dict[int, list[float]]]
    classes_covered: dict[str, dict[int, list[int]]]
    select_seconds: dict[str, list[float]]


def run_benchmark(
    emb: Embeddings,
    train_labels: IntArray,
    test_labels: IntArray,
    methods: Sequence[Method],
    budgets: tuple[int, ...],
    seeds: tuple[int, ...],
    pool_size: int,
    c: float,
) -> Results:
    """Select, fit and score every (method, budget, seed); see the module docstring."""
    names = [m.name for m in methods]
    res = Results(
        budgets,
        seeds,
        {m: {b: [] for b in budgets} for m in names},
        {m: {b: [] for b in budgets} for m in names},
        {m: [] for m in names},
    )
    n_max = max(budgets)
    for seed in seeds:
        pool = np.random.default_rng(seed).choice(emb.train.shape[0], pool_size, replace=False)
        pool_emb = np.ascontiguousarray(emb.train[pool])
        pool_y = train_labels[pool]
        for method in methods:
            t0 = time.perf_counter()
            rankings: dict[int, IntArray] = {}
            if method.strategies is None:
                for b in budgets:
                    rankings[b] = typiclust(pool_emb, b, seed)
            else:
                order = engine_ranking(pool_emb, method, n_max, seed)
                rankings = {b: order[:b] for b in budgets}
            res.select_seconds[method.name].append(time.perf_counter() - t0)
            line = []
            for b in budgets:
                chosen = rankings[b]
                acc = probe_accuracy(pool_emb[chosen], pool_y[chosen], emb.test, test_labels, c)
                res.accuracy[method.name][b].append(acc)
                res.classes_covered[method.name][b].append(int(np.unique(pool_y[chosen]).size))
                line.append(f"{b}: {100 * acc:5.2f}")
            print(
                f"  seed {seed}  {method.name:<34} {'  '.join(line)}"
                f"  ({res.select_seconds[method.name][-1]:.1f} s)",
                flush=True,
            )
    return res


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if arr.size > 1 else math.nan
    return float(arr.mean()), std


def beats_random(res: Results, name: str) -> dict[int, bool]:
    """Per budget: is the mean accuracy of ``name`` above RANDOM's?"""
    return {
        b: _mean_std(res.accuracy[name][b])[0] > _mean_std(res.accuracy[RANDOM][b])[0]
        for b in res.budgets
    }


def print_tables(res: Results, default_name: str) -> None:
    """Accuracy table, paired-difference table and the verdict on the default strategy."""
    names = list(res.accuracy)
    width = max(len(n) for n in names) + 2
    head = "".join(f"{f'n={b}':>16}" for b in res.budgets)
    print(f"\nTest accuracy (%), mean ± std over {len(res.seeds)} seeds")
    print(f"{'strategy':<{width}}{head}{'select s':>10}")
    for name in names:
        cells = []
        for b in res.budgets:
            m, s = _mean_std(res.accuracy[name][b])
            cells.append(f"{100 * m:8.2f} ± {100 * s:4.2f}")
        sel = float(np.mean(res.select_seconds[name]))
        print(f"{name:<{width}}{''.join(f'{c:>16}' for c in cells)}{sel:>10.1f}")
    if RANDOM not in res.accuracy:
        return
    print("\nDifference to RANDOM (points), paired by seed: mean ± std  [seeds above random]")
    print(f"{'strategy':<{width}}{head}  every budget?")
    for name in names:
        if name == RANDOM:
            continue
        cells = []
        for b in res.budgets:
            d = np.asarray(res.accuracy[name][b]) - np.asarray(res.accuracy[RANDOM][b])
            m, s = _mean_std(list(d))
            cells.append(f"{100 * m:+6.2f}±{100 * s:4.2f} [{int((d > 0).sum())}]")
        wins = all(beats_random(res, name).values())
        print(f"{name:<{width}}{''.join(f'{c:>16}' for c in cells)}  {'yes' if wins else 'no'}")
    print(f"\nClasses covered (of 10), mean over seeds, n={res.budgets[0]}:")
    for name in names:
        covered = res.classes_covered[name][res.budgets[0]]
        print(f"  {name:<{width}}{np.mean(covered):5.2f}")
    if default_name in res.accuracy:
        lost = [b for b, w in beats_random(res, default_name).items() if not w]
        verdict = "yes" if not lost else f"NO (loses at n={', '.join(map(str, lost))})"
        print(f"\nDefault strategy ({default_name}) beats RANDOM at every budget: {verdict}")


def results_json(res: Results, info: dict[str, Any]) -> str:
    """Every measurement as JSON, for the record."""
    return json.dumps(
        {
            "info": info,
            "budgets": list(res.budgets),
            "seeds": list(res.seeds),
            "accuracy": {m: {str(b): v for b, v in d.items()} for m, d in res.accuracy.items()},
            "classes_covered": {
                m: {str(b): v for b, v in d.items()} for m, d in res.classes_covered.items()
            },
            "select_seconds": res.select_seconds,
        },
        indent=1,
    )


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Test accuracy of a linear probe fit on the labels of the images each "
        "selection strategy chooses from Fashion-MNIST, against random selection.",
    )
    add = parser.add_argument
    add("--train-seconds", type=float, default=300.0, help="SimCLR training budget (%(default)s)")
    add("--embeddings", type=Path, help="reuse embeddings saved by --save-embeddings")
    add("--save-embeddings", type=Path, help="write the trained embeddings here (.npz)")
    add("--pool", type=int, default=20000, help="train images per pool (%(default)s)")
    add("--budgets", default=",".join(map(str, BUDGETS)), help="labels per fit (%(default)s)")
    add("--seeds", type=int, default=5, help="seeds 0..N-1 (pool and random draw)")
    add(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help="comma-separated: RANDOM, TYPICLUST, DIVERSITY[:strength], "
        "TYPICALITY[:k[:strength]], combined with '+' (%(default)s); RANDOM and the "
        "default strategy are always added",
    )
    add("--C", type=float, default=100.0, help="inverse L2 penalty of the probe (%(default)s)")
    add("--ssl-seed", type=int, default=0, help="seed of SimCLR training")
    add("--threads", type=int, default=2, help="torch and BLAS threads (%(default)s)")
    add("--device", default="auto", help="SimCLR device: cpu, cuda or auto")
    add("--out", type=Path, help="write every measurement here as JSON")
    args = parser.parse_args(argv)
    try:
        args.budgets = tuple(sorted({int(b) for b in args.budgets.split(",") if b.strip()}))
    except ValueError:
        parser.error(f"--budgets must be comma-separated integers, got {args.budgets!r}")
    if not args.budgets or args.budgets[0] < 1:
        parser.error(f"--budgets must be integers >= 1, got {args.budgets!r}")
    if args.budgets[-1] > args.pool:
        parser.error(f"--pool {args.pool} is smaller than the largest budget {args.budgets[-1]}")
    if not 1 <= args.pool <= 60000:
        parser.error(f"--pool must be in [1, 60000] (the train split), got {args.pool}")
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    if args.embeddings is None and args.train_seconds <= 0:
        parser.error("--train-seconds must be > 0 (or give --embeddings)")
    if args.C <= 0:
        parser.error(f"--C must be > 0, got {args.C}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    wall_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    default = default_strategies()
    default_name = describe(default)
    try:
        methods = [parse_method(t) for t in args.methods.split(",") if t.strip()]
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    for extra in (Method(default_name, default), Method(RANDOM, (RandomStrategy(),))):
        if extra.name not in [m.name for m in methods]:
            methods.insert(0, extra)
    methods.sort(key=lambda m: m.name != RANDOM)  # RANDOM first: the reference

    _, train_labels = load_fashion_mnist("train")
    _, test_labels = load_fashion_mnist("test")
    if args.embeddings is not None:
        emb = load_embeddings(args.embeddings, train_labels.size, test_labels.size)
        print(f"embeddings: {args.embeddings} {emb.info}", flush=True)
    else:
        print(f"training SimCLR for {args.train_seconds:.0f} s on {args.device}", flush=True)
        emb = train_embeddings(args.train_seconds, args.ssl_seed, args.threads, args.device)
        print(f"embeddings: {emb.info}", flush=True)
        if args.save_embeddings is not None:
            save_embeddings(args.save_embeddings, emb)
            print(f"saved to {args.save_embeddings}", flush=True)
    t0 = time.perf_counter()
    print(
        f"selection: pool {args.pool} of 60000 train images, budgets {args.budgets}, "
        f"seeds 0..{args.seeds - 1}; probe: LogisticRegression(C={args.C:g}) on "
        f"L2-normalised embeddings (D={emb.train.shape[1]}), 10000 test images",
        flush=True,
    )
    with threadpool_limits(args.threads):
        res = run_benchmark(
            emb,
            train_labels,
            test_labels,
            methods,
            args.budgets,
            tuple(range(args.seeds)),
            args.pool,
            args.C,
        )
    select_time = time.perf_counter() - t0
    print(
        f"\ndefault strategy (selfsup run with only stopping_condition.n_samples): {default_name}"
    )
    print_tables(res, default_name)
    wall = time.perf_counter() - wall_start
    print(f"\nselection + probes: {select_time:.1f} s; total wall time: {wall:.1f} s")
    if args.out is not None:
        info: dict[str, Any] = {
            "embeddings": emb.info,
            "pool": args.pool,
            "C": args.C,
            "default": default_name,
            "wall_seconds": wall,
        }
        atomic_write_text(args.out, results_json(res, info))


if __name__ == "__main__":
    main()
