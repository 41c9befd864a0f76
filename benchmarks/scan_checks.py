"""Throughput of the first curation steps: scan, corruptness check + hashes + metadata, dedup.

Generates ``--count`` images of ``--size`` x ``--size`` pixels in a temporary folder (or
uses ``--input-dir``, e.g. Fashion-MNIST exported as PNGs), plants corrupt files and exact
duplicates, and prints files per second for:

* scan: listing and stat-ing the files (:func:`selfsup.curation.scan_files`);
* check: one decode pass per file with the corrupt reason, file and pixel hashes and the
  metadata (:func:`selfsup.curation.check_files`), in-process and with worker processes;
* rerun: the same check when a previous manifest lets unchanged files be reused;
* dedup: grouping exact duplicates (:func:`selfsup.curation.mark_exact_duplicates`);
* baseline: a naive sequential loop, ``PIL.Image.open(path).load()`` plus ``hashlib.md5`` of
  the file bytes, run in the same process on the same files, for the ratio.

Usage::

    python benchmarks/scan_checks.py --count 2000 --size 64 --workers 0,1,2
    python benchmarks/scan_checks.py --input-dir /data/fashion_mnist_png
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import multiprocessing
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from selfsup.curation import (
    CheckResult,
    FileEntry,
    check_files,
    count_by_reason,
    count_by_status,
    mark_exact_duplicates,
    scan_files,
)
from selfsup.curation._pool import START_METHOD

T = TypeVar("T")


def _timed(fn: Callable[[], T], repeats: int) -> tuple[T, float]:
    """Result of ``fn`` and its best wall-clock time over ``repeats`` runs (seconds)."""
    best = float("inf")
    result: T | None = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    assert result is not None
    return result, best


def make_dataset(root: Path, count: int, size: int, ext: str, seed: int = 0) -> None:
    """``count`` images in 10 class folders, 1% corrupt (3 kinds), 5% exact duplicates."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    n_corrupt = max(3, count // 100)
    n_dups = max(1, count // 20)
    n_good = count - n_corrupt - n_dups
    written: list[Path] = []
    for i in range(n_good):
        folder = root / f"class_{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        # Smooth gradient plus noise: compresses like a photo, not like pure noise.
        base = (xx * rng.uniform(0.5, 3) + yy * rng.uniform(0.5, 3)) % 256
        arr = np.stack([base, base[::-1], base.T], axis=2) + rng.normal(0, 12, (size, size, 3))
        path = folder / f"img_{i:06d}.{ext}"
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path)
        written.append(path)
    for j in range(n_dups):
        source = written[int(rng.integers(0, len(written)))]
        shutil.copyfile(source, source.parent / f"dup_{j:06d}.{ext}")
    corrupt = root / "corrupt"
    corrupt.mkdir(exist_ok=True)
    sample = written[0].read_bytes()
    for k in range(n_corrupt):
        kind = k % 3
        if kind == 0:
            (corrupt / f"truncated_{k}.{ext}").write_bytes(sample[: len(sample) // 3])
        elif kind == 1:
            (corrupt / f"empty_{k}.png").write_bytes(b"")
        else:
            (corrupt / f"text_{k}.png").write_text("not an image\n")


def naive_baseline(root: Path, entries: list[FileEntry]) -> int:
    """Sequential PIL open + load + md5 of the bytes; returns the number of loadable files."""
    ok = 0
    for entry in entries:
        path = root / entry.path
        data = path.read_bytes()
        hashlib.md5(data).hexdigest()
        try:
            with Image.open(path) as image:
                image.load()
            ok += 1
        except OSError:
            pass
    return ok


def _burn(n: int) -> int:
    """Pure-Python CPU work with no I/O, for the parallel-headroom control."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def parallel_headroom(workers: int, tasks: int = 16, size: int = 1_000_000) -> float:
    """Speed-up of ``workers`` processes over one on pure CPU work: what the machine allows.

    On a shared machine other jobs take cores; this control tells whether a weak speed-up of
    the check comes from the check or from the machine.
    """
    start = time.perf_counter()
    for _ in range(tasks):
        _burn(size)
    serial = time.perf_counter() - start
    context = multiprocessing.get_context(START_METHOD)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pool.submit(_burn, 1).result()  # start the workers outside the timing
        start = time.perf_counter()
        list(pool.map(_burn, [size] * tasks))
        parallel = time.perf_counter() - start
    return serial / parallel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="images to generate")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--ext", default="png", choices=["png", "jpg"], help="image format")
    parser.add_argument("--input-dir", type=Path, default=None, help="use this folder instead")
    parser.add_argument(
        "--workers", default="0,2", help="comma-separated num_workers values (0: in-process)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="best of N runs per figure")
    args = parser.parse_args()

    tmp: tempfile.TemporaryDirectory[str] | None = None
    if args.input_dir is not None:
        root = args.input_dir
    else:
        tmp = tempfile.TemporaryDirectory(prefix="selfsup_bench_")
        root = Path(tmp.name) / "data"
        start = time.perf_counter()
        make_dataset(root, args.count, args.size, args.ext)
        print(f"generated {args.count} files in {time.perf_counter() - start:.1f} s at {root}")
    try:
        # The first scan imports selfsup.data (and with it torch): a one-time cost per
        # process that is not part of scanning.
        scan_files(root)
        entries, t_scan = _timed(lambda: scan_files(root), args.repeats)
        n = len(entries)
        total_mb = sum(e.size for e in entries) / 1e6
        print(f"{n} files, {total_mb:.1f} MB")
        rows: list[tuple[str, float]] = [("scan (list + stat)", n / t_scan)]

        _, t_base = _timed(lambda: naive_baseline(root, entries), args.repeats)
        rows.append(("baseline: PIL open+load + md5, sequential", n / t_base))

        result: CheckResult | None = None
        for workers in [int(w) for w in args.workers.split(",")]:
            result, t_check = _timed(
                functools.partial(check_files, root, entries, num_workers=workers, progress=False),
                args.repeats,
            )
            label = "in-process" if workers == 0 else f"{workers} worker processes"
            rows.append((f"check + hashes + metadata, {label}", n / t_check))
        assert result is not None
        previous = result.records
        rerun, t_rerun = _timed(
            lambda: check_files(root, entries, previous=previous, progress=False), args.repeats
        )
        rows.append((f"rerun with manifest reuse ({rerun.n_reused} reused)", n / t_rerun))
        marked, t_dup = _timed(lambda: mark_exact_duplicates(result.records), args.repeats)
        rows.append(("exact-duplicate grouping", len(marked) / t_dup))

        width = max(len(name) for name, _ in rows)
        print(f"{'step'.ljust(width)}  files/s")
        for name, rate in rows:
            print(f"{name.ljust(width)}  {rate:10.0f}")
        check_rates = [rate for name, rate in rows if name.startswith("check")]
        print(
            "check / baseline throughput: "
            + ", ".join(f"{rate / (n / t_base):.2f}x" for rate in check_rates)
        )
        print("status:", count_by_status(marked), "corrupt reasons:", count_by_reason(marked))
        most = max(int(w) for w in args.workers.split(","))
        if most > 1:
            print(
                f"machine parallel headroom (pure-CPU control, {most} processes vs 1): "
                f"{parallel_headroom(most):.2f}x"
            )
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
