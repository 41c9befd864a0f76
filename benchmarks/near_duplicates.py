"""Recall and precision of the near-duplicate groups on planted near duplicates.

    python benchmarks/near_duplicates.py                      # 300 distinct, 75 copies each
    python benchmarks/near_duplicates.py --distinct 1000 --copies 200 --distances 6 8 10 12
    python benchmarks/near_duplicates.py --shift 4 3          # a larger shift
    python benchmarks/near_duplicates.py --scale 100000 1000000  # pair search time only

Builds a folder of ``--distinct`` distinct images (smooth random colour fields with random
shapes and a little grain, PNG; no download) and, for ``--copies`` of them per
transformation, a near duplicate made by one of:

* ``jpeg``: re-encoded as JPEG at quality 40 (the original is a PNG);
* ``resize_90``: resized to 90 % of its width and height (Lanczos);
* ``shift``: moved by 3 pixels right and 2 down (``--shift``), the uncovered border
  repeating the edge (images are 200 x 160: a shift of 1.5 % of the width);
* ``brightness``: 10 % brighter (``PIL.ImageEnhance.Brightness(1.1)``).

Then it runs the check step's own code over the folder (``build_manifest``: one decode per
file, the perceptual hash included) and groups with
:func:`selfsup.curation.near_duplicates.find_groups` at each ``--distances`` value. Per
transformation it prints the recall (copies grouped with their original) and the precision
(of the grouped (member, kept) pairs involving such a copy, those of one original); then the
number of groups mixing two distinct originals, and the Hamming distances: the largest
between a copy and its original per transformation, the smallest between distinct originals,
for the DCT hash (``phash``) and the block hash (``bhash``) that confirms pairs up to
``SHIFT_MARGIN`` bits past the threshold.

``--scale N ...`` measures instead the pair search alone
(:func:`selfsup.curation.near_duplicates.hash_pairs`) on ``N`` random 64-bit hashes in which
every 50th is a copy of another with 0-14 bits flipped, within ``--scale-distance`` bits
(default 10, the default ``hash_distance``; ``find_groups`` runs one such search over the DCT
hashes and one over the block hashes): numpy multi-index hashing up to
``--multi-index-max`` hashes, and faiss (``IndexBinaryFlat`` range search) where installed;
when both run it checks they give the same pairs. Past ``--faiss-full-max`` hashes faiss
searches only the first ``--queries`` hashes against all of them (that share of the work,
exactly: its first block of queries, whose share of the distances computed is known) and
the full time is projected from it, marked as such. It prints the load average
before and after: on shared cores the times scale with it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

from selfsup.curation.checks import build_manifest
from selfsup.curation.manifest import SampleRecord
from selfsup.curation.near_duplicates import (
    NearDuplicateGroup,
    find_groups,
    hamming,
    hash_pairs,
)
from selfsup.utils.vectors import faiss_available


def distinct_image(rng: np.random.Generator, size: tuple[int, int] = (200, 160)) -> Image.Image:
    """A random picture: a smooth colour field, a few shapes, a little grain (RGB)."""
    width, height = size
    field = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    image = Image.fromarray(field).resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 7))):
        x0, x1 = sorted(rng.integers(0, width, 2).tolist())
        y0, y1 = sorted(rng.integers(0, height, 2).tolist())
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        box = (x0, y0, x1 + 8, y1 + 8)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    pixels = np.asarray(image, dtype=np.int16) + rng.integers(-6, 7, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


SHIFT: list[int] = [3, 2]
"""Pixels right and down of the ``shift`` copies (``--shift``)."""


def _shift(image: Image.Image) -> Image.Image:
    dx, dy = SHIFT
    pixels = np.asarray(image)
    padded = np.pad(pixels, ((dy, 0), (dx, 0), (0, 0)), mode="edge")
    return Image.fromarray(padded[: pixels.shape[0], : pixels.shape[1]])


def _resize(image: Image.Image) -> Image.Image:
    return image.resize(
        (round(image.width * 0.9), round(image.height * 0.9)), Image.Resampling.LANCZOS
    )


#: Transformation name -> (function, file suffix): what makes a near duplicate.
TRANSFORMATIONS: dict[str, tuple[Callable[[Image.Image], Image.Image], str]] = {
    "jpeg": (lambda im: im, ".jpg"),  # the change is the re-encoding itself
    "resize_90": (_resize, ".png"),
    "shift": (_shift, ".png"),
    "brightness": (lambda im: ImageEnhance.Brightness(im).enhance(1.1), ".png"),
}


def write_corpus(root: Path, n_distinct: int, n_copies: int, seed: int = 0) -> dict[str, str]:
    """Write the images; returns copy filename -> transformation (originals are absent)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    originals = [distinct_image(rng) for _ in range(n_distinct)]
    for i, image in enumerate(originals):
        image.save(root / f"img_{i:05d}.png")
    planted: dict[str, str] = {}
    for name, (transform, suffix) in TRANSFORMATIONS.items():
        for i in rng.choice(n_distinct, size=min(n_copies, n_distinct), replace=False).tolist():
            filename = f"img_{i:05d}_{name}{suffix}"
            copy = transform(originals[i])
            if suffix == ".jpg":
                copy.save(root / filename, quality=40)
            else:
                copy.save(root / filename)
            planted[filename] = name
    return planted


def original_of(filename: str) -> str:
    """The original a file was made from (``img_00012_shift.png`` -> ``img_00012.png``)."""
    return filename[: len("img_00000")] + ".png"


@dataclass(frozen=True)
class Scores:
    """Recall and precision per transformation, and groups mixing distinct originals."""

    recall: dict[str, float]
    precision: dict[str, float]
    mixed_groups: int


def evaluate(groups: Sequence[NearDuplicateGroup], planted: dict[str, str]) -> Scores:
    """Score ``groups`` against the planted copies (see the module docstring)."""
    group_of = {name: g for g, group in enumerate(groups) for name in group.members}
    recall: dict[str, float] = {}
    precision: dict[str, float] = {}
    for transformation in TRANSFORMATIONS:
        copies = [f for f, t in planted.items() if t == transformation]
        found = [
            f for f in copies if f in group_of and group_of[f] == group_of.get(original_of(f), -1)
        ]
        recall[transformation] = len(found) / len(copies) if copies else float("nan")
        pairs = [
            (member, group.kept)
            for group in groups
            for member in group.members[1:]
            if planted.get(member) == transformation or planted.get(group.kept) == transformation
        ]
        right = sum(original_of(a) == original_of(b) for a, b in pairs)
        precision[transformation] = right / len(pairs) if pairs else float("nan")
    mixed = sum(len({original_of(m) for m in group.members}) > 1 for group in groups)
    return Scores(recall, precision, mixed)


def _hash_distances(
    records: Sequence[SampleRecord], planted: dict[str, str], field: str = "phash"
) -> None:
    by_name = {
        r.filename: int(getattr(r, field), 16) for r in records if getattr(r, field) is not None
    }
    print(f" {field}:")
    for transformation in TRANSFORMATIONS:
        d = [
            int(
                hamming(
                    np.asarray([by_name[f]], dtype=np.uint64),
                    np.asarray([by_name[original_of(f)]], dtype=np.uint64),
                )[0]
            )
            for f, t in planted.items()
            if t == transformation
        ]
        print(
            f"  {transformation:<11} copy-original Hamming distance: max {max(d)}, "
            f"mean {np.mean(d):.2f}"
        )
    originals = np.asarray(
        [h for name, h in by_name.items() if name not in planted], dtype=np.uint64
    )
    d_all = hamming(originals[:, None], originals[None, :])
    d_all[np.diag_indices(originals.size)] = 64
    print(
        f"  distinct originals: smallest Hamming distance {int(d_all.min())} "
        f"over {originals.size * (originals.size - 1) // 2:,} pairs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--distinct", type=int, default=300)
    parser.add_argument("--copies", type=int, default=75, help="copies per transformation")
    parser.add_argument("--distances", type=int, nargs="+", default=[6, 8, 10, 12])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shift", type=int, nargs=2, default=SHIFT, metavar=("DX", "DY"))
    parser.add_argument("--scale", type=int, nargs="+", metavar="N", help="time pairs only")
    parser.add_argument("--scale-distance", type=int, default=10)
    parser.add_argument("--multi-index-max", type=int, default=200_000)
    parser.add_argument("--faiss-full-max", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=65_536)
    args = parser.parse_args()
    if args.scale:
        run_scale(args)
        return
    SHIFT[:] = args.shift
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        planted = write_corpus(root, args.distinct, args.copies, args.seed)
        start = time.perf_counter()
        result = build_manifest(root, num_workers=0, progress=False)
        seconds = time.perf_counter() - start
    records = [r for r in result.records if r.is_ok]
    print(
        f"{args.distinct} distinct images, {len(planted)} planted copies "
        f"({args.copies} per transformation, shift {SHIFT[0]},{SHIFT[1]} px); "
        f"check step {seconds:.1f} s"
    )
    for distance in args.distances:
        start = time.perf_counter()
        found = find_groups(records, distance)
        seconds = time.perf_counter() - start
        scores = evaluate(found.groups, planted)
        print(
            f"hash_distance={distance}: {len(found.groups)} groups, "
            f"{scores.mixed_groups} mixing distinct originals, grouping {seconds * 1000:.0f} ms"
        )
        for transformation in TRANSFORMATIONS:
            print(
                f"  {transformation:<11} recall {scores.recall[transformation]:6.1%}  "
                f"precision {scores.precision[transformation]:6.1%}"
            )
    print("Hamming distances:")
    _hash_distances(records, planted, "phash")
    _hash_distances(records, planted, "bhash")


def scale_hashes(n: int, seed: int = 0) -> np.ndarray:
    """``(n,)`` random uint64 hashes, every 50th a copy of a random one with 0-14 bits flipped."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    h |= rng.integers(0, 2, n).astype(np.uint64)
    copies = np.arange(1, n, 50)
    flips = np.zeros(copies.size, dtype=np.uint64)
    for j in range(copies.size):
        for bit in rng.choice(64, size=int(rng.integers(0, 15)), replace=False).tolist():
            flips[j] |= np.uint64(1 << bit)
    h[copies] = h[rng.integers(0, n, copies.size)] ^ flips
    return h


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _faiss_share(h: np.ndarray, distance: int, queries: int) -> tuple[float, float]:
    """Seconds of the first query block of ``hash_pairs(method="faiss")`` (``queries``
    hashes searched among all of ``h``) and the share of the whole search's distances it
    computes (later blocks search only the hashes from their own first one on)."""
    import faiss

    codes = np.ascontiguousarray(h).view(np.uint8).reshape(-1, 8)
    start = time.perf_counter()
    index = faiss.IndexBinaryFlat(64)
    index.add(codes)
    index.range_search(codes[:queries], distance + 1)
    seconds = time.perf_counter() - start
    n = h.size
    total = sum(min(queries, n - r0) * (n - r0) for r0 in range(0, n, queries))
    return seconds, queries * n / total


def run_scale(args: argparse.Namespace) -> None:
    """The ``--scale`` measurement (module docstring)."""
    distance = args.scale_distance
    print(f"load average (1, 5, 15 min) before: {_load()}")
    if faiss_available():
        import faiss

        print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} OpenMP threads")
    else:
        print("faiss is not installed: only numpy multi-index hashing is measured")
    for n in args.scale:
        h = scale_hashes(n, args.seed)
        print(f"{n:,} hashes, pairs within {distance} bits:")
        reference = None
        if n <= args.multi_index_max:
            start = time.perf_counter()
            reference = hash_pairs(h, distance, method="multi_index")
            print(
                f"  numpy multi-index  {time.perf_counter() - start:8.1f} s  "
                f"{reference.first.size:,} pairs"
            )
        else:
            print(f"  numpy multi-index  skipped (> --multi-index-max {args.multi_index_max:,})")
        if not faiss_available():
            continue
        if n <= args.faiss_full_max:
            start = time.perf_counter()
            pairs = hash_pairs(h, distance, method="faiss")
            seconds = time.perf_counter() - start
            same = ""
            if reference is not None:
                equal = np.array_equal(pairs.first, reference.first) and np.array_equal(
                    pairs.second, reference.second
                )
                same = ", the same pairs" if equal else ", PAIRS DIFFER from multi-index"
            print(f"  faiss flat range   {seconds:8.1f} s  {pairs.first.size:,} pairs{same}")
        else:
            queries = min(n, args.queries)
            seconds, share = _faiss_share(h, distance, queries)
            print(
                f"  faiss flat range   {seconds:8.1f} s for the first {queries:,} queries "
                f"({share:.1%} of the distances); all {n:,} projected {seconds / share:,.0f} s"
            )
        print(f"  load average now: {_load()}")


if __name__ == "__main__":
    main()
