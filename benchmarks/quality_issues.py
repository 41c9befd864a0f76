"""Recall and precision per image-quality issue on planted issues, selfsup against cleanvision.

    python benchmarks/quality_issues.py                     # 200 clean, 20 planted per category
    python benchmarks/quality_issues.py --source synthetic  # no Fashion-MNIST needed
    python benchmarks/quality_issues.py --clean 400 --per-category 40

Builds one flat folder (no download) of ``--clean`` clean images plus ``--per-category``
planted images per category, each with its ground truth:

* clean images: with ``--source fashion-mnist`` (the default when the Debian package
  ``dataset-fashion-mnist`` is installed, see ``fashion_mnist.py``) a Fashion-MNIST garment,
  upscaled (bicubic) and painted in a random colour over a random picture from
  ``near_duplicates.distinct_image`` (smooth colour field, shapes, grain); with ``--source
  synthetic`` the random picture alone. The short side is log-uniform in ``--short-sides``
  (default 96-768 px), the aspect ratio in 3/4-4/3;
* ``dark``: a fresh clean image with its brightness scaled by 0.1-0.3;
* ``overexposed``: brightness scaled by 2.5-4 (``ImageEnhance.Brightness``). This scales the
  gamma-encoded values, which is an exposure of ``f ** 2.2`` in linear light (+2.9 to +4.4
  stops) clipped per channel, as a sensor clips: a realistic badly overexposed shot, kept
  as it was. Most pixels clip in two channels, but only 18-81 % turn white (luma >= 250):
  a washed-out image need not be white;
* ``blurry``: a Gaussian blur of radius 1-2.5 % of the short side (at least 1.5 px) of a
  sharp clean image, the short sides cycling over 96, 192, 384 and 768 px (small and large);
* ``low_information``: one random colour with +-0-3 levels of noise;
* ``odd_size``: a clean image reduced to a short side of 8-20 px;
* ``odd_aspect_ratio``: a clean image of aspect ratio 3.5-8 (either orientation);
* ``grayscale``: a clean image converted to grey and saved as an RGB file;
* ``near_duplicates``: for ``--per-category`` clean originals per transformation, a copy
  re-encoded as JPEG at quality 40, resized by 2-5 % (Lanczos), shifted by 3,2 px, or 10 %
  brighter (``near_duplicates.TRANSFORMATIONS``, except the resize, which is smaller here);
* ``exact_duplicates``: a byte-for-byte copy of a clean original.

selfsup is run through the check step's own code (``build_manifest``: one decode per file,
quality scores and perceptual hash included), :func:`selfsup.curation.quality.assess_quality`
with the default (dataset-relative) thresholds, and
:func:`selfsup.curation.near_duplicates.find_groups` at the default ``hash_distance``; exact
duplicates are the records the check marks ``duplicate``. When ``cleanvision`` is importable
(an optional benchmark dependency: ``.venv/bin/pip install -c constraints.txt cleanvision``),
its ``Imagelab`` runs on the same folder with its defaults, one process like selfsup, and its
table is printed beside ours. Category names map as: overexposed = cleanvision ``light``,
odd_size = selfsup ``small``; the others have the same names.

Scoring, per category. Recall: the planted images flagged (for the duplicate categories: the
planted pairs whose two images share a group). Precision: of the flagged images, those that
are right (a planted image of the category; for the duplicate categories, an image grouped
with its planted partner). Flags on images planted with *another* category are left out of
the precision (a dark image is legitimately also low in information) and counted in the
column ``other``. Near duplicates also get a recall per transformation, and a line says
whether selfsup meets issue 12's goal of finding at least 90 % of each; a last line names
every category and measure where selfsup is behind cleanvision.
"""

from __future__ import annotations

import os

# See benchmarks/ssl_fashion_mnist.py: spinning OpenMP threads stall on busy shared cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import contextlib
import importlib.util
import io
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageEnhance, ImageFilter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fashion_mnist import FashionMNISTMissingError, load_fashion_mnist
from near_duplicates import SHIFT, TRANSFORMATIONS, distinct_image
from selfsup.config.worker_config import NearDuplicatesConfig
from selfsup.curation.checks import build_manifest
from selfsup.curation.near_duplicates import find_groups
from selfsup.curation.quality import assess_quality

Source = Literal["fashion-mnist", "synthetic"]

#: The quality categories planted, in table order.
QUALITY_CATEGORIES: tuple[str, ...] = (
    "dark",
    "overexposed",
    "blurry",
    "low_information",
    "odd_size",
    "odd_aspect_ratio",
    "grayscale",
)
#: Categories scored as groups of files.
DUPLICATE_CATEGORIES: tuple[str, ...] = ("near_duplicates", "exact_duplicates")
CATEGORIES: tuple[str, ...] = QUALITY_CATEGORIES + DUPLICATE_CATEGORIES

#: Benchmark category -> selfsup issue (quality.ISSUES names).
SELFSUP_ISSUE: dict[str, str] = {c: c for c in QUALITY_CATEGORIES} | {"odd_size": "small"}
#: Benchmark category -> cleanvision issue type.
CLEANVISION_ISSUE: dict[str, str] = {c: c for c in CATEGORIES} | {"overexposed": "light"}

#: Short sides the blurry images cycle over: small and large images.
BLUR_SHORT_SIDES: tuple[int, ...] = (96, 192, 384, 768)

#: Issue 12's goal: the share of near duplicates found per transformation.
NEAR_GOAL = 0.9

#: zlib level of the PNGs written: fast (the pixels are the same at any level).
PNG_COMPRESSION = 1

NEAR_TRANSFORMATIONS: tuple[str, ...] = ("jpeg", "resize_2_5", "shift", "brightness")

CLEANVISION_MISSING = (
    "cleanvision is not installed, so only selfsup is measured. Install it (an optional "
    "benchmark dependency, not in the dev extra; it pulls no torch) with:\n"
    "    .venv/bin/pip install -c constraints.txt cleanvision"
)


# --------------------------------------------------------------------------- the corpus


@dataclass
class Corpus:
    """What was planted in a corpus folder.

    Attributes:
        category: filename -> planted category, for every planted file (clean files absent;
            the originals of duplicates are clean).
        pairs: duplicate category -> (copy, original) filename pairs.
        transformation: near-duplicate copy filename -> transformation name.
        source: Where the clean images came from.
    """

    category: dict[str, str] = field(default_factory=dict)
    pairs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    transformation: dict[str, str] = field(default_factory=dict)
    source: Source = "synthetic"


class _Painter:
    """Makes clean images of a given size from the chosen source."""

    def __init__(self, source: Source, rng: np.random.Generator) -> None:
        self.rng = rng
        self.garments: npt.NDArray[np.uint8] | None = None
        if source == "fashion-mnist":
            self.garments, _ = load_fashion_mnist("test")

    def __call__(self, size: tuple[int, int]) -> Image.Image:
        """A clean RGB image of ``size`` (width, height)."""
        background = distinct_image(self.rng, size)
        if self.garments is None:
            return background
        garment = self.garments[int(self.rng.integers(len(self.garments)))]
        alpha = Image.fromarray(garment).resize(size, Image.Resampling.BICUBIC)
        weight = np.asarray(alpha, dtype=np.float32)[..., None] / 255.0  # (H, W, 1)
        colour = self.rng.integers(0, 256, 3).astype(np.float32)
        # The garment's own texture: grain like the background's, so it is not flat.
        grain = self.rng.integers(-6, 7, (size[1], size[0], 3)).astype(np.float32)
        pixels = np.asarray(background, dtype=np.float32) * (1 - weight) + (colour + grain) * weight
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))

    def clean_size(self, short_sides: tuple[int, int]) -> tuple[int, int]:
        """A random (width, height): log-uniform short side, aspect ratio 3/4-4/3."""
        lo, hi = np.log(short_sides[0]), np.log(short_sides[1])
        short = round(float(np.exp(self.rng.uniform(lo, hi))))
        return self.sized(short, float(self.rng.uniform(1.0, 4 / 3)))

    def sized(self, short: int, ratio: float) -> tuple[int, int]:
        """(width, height) with the given short side and ratio, in a random orientation."""
        long = max(short, round(short * ratio))
        return (long, short) if self.rng.random() < 0.5 else (short, long)


def resolve_source(source: str) -> Source:
    """``auto`` -> ``fashion-mnist`` when its files load, else ``synthetic``."""
    if source == "fashion-mnist":
        return "fashion-mnist"
    if source == "synthetic":
        return "synthetic"
    if source != "auto":
        raise ValueError(f"--source must be auto, fashion-mnist or synthetic, got {source!r}")
    try:
        load_fashion_mnist("test")
    except FashionMNISTMissingError:
        return "synthetic"
    return "fashion-mnist"


def _brightness(image: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(factor)


def write_corpus(
    root: Path,
    n_clean: int,
    per_category: int,
    *,
    seed: int = 0,
    source: Source = "synthetic",
    short_sides: tuple[int, int] = (96, 768),
    blur_short_sides: Sequence[int] = BLUR_SHORT_SIDES,
) -> Corpus:
    """Write the clean and planted images into ``root`` (flat) and return the ground truth.

    ``n_clean`` must leave an original for every duplicate copy: at least
    ``5 * per_category`` (4 near-duplicate transformations and the exact copies).
    """
    if n_clean < 5 * per_category:
        raise ValueError(
            f"n_clean={n_clean} is too small: the duplicates need 5 * per_category = "
            f"{5 * per_category} distinct clean originals"
        )
    rng = np.random.default_rng(seed)
    paint = _Painter(source, rng)
    root.mkdir(parents=True, exist_ok=True)
    corpus = Corpus(source=source)

    clean: list[tuple[str, Image.Image]] = []
    for i in range(n_clean):
        name = f"clean_{i:05d}.png"
        image = paint(paint.clean_size(short_sides))
        image.save(root / name, compress_level=PNG_COMPRESSION)
        clean.append((name, image))

    def plant(category: str, i: int, image: Image.Image) -> None:
        name = f"{category}_{i:05d}.png"
        image.save(root / name, compress_level=PNG_COMPRESSION)
        corpus.category[name] = category

    for i in range(per_category):
        plant("dark", i, _brightness(paint(paint.clean_size(short_sides)), rng.uniform(0.1, 0.3)))
        plant(
            "overexposed", i, _brightness(paint(paint.clean_size(short_sides)), rng.uniform(2.5, 4))
        )
        short = int(blur_short_sides[i % len(blur_short_sides)])
        sharp = paint(paint.sized(short, float(rng.uniform(1.0, 4 / 3))))
        radius = max(1.5, short * float(rng.uniform(0.01, 0.025)))
        plant("blurry", i, sharp.filter(ImageFilter.GaussianBlur(radius)))
        w, h = paint.clean_size(short_sides)
        colour = rng.integers(0, 256, 3)
        amplitude = int(rng.integers(0, 4))  # 0: perfectly flat
        flat = colour + rng.integers(-amplitude, amplitude + 1, (h, w, 3))
        plant("low_information", i, Image.fromarray(np.clip(flat, 0, 255).astype(np.uint8)))
        big = paint(paint.clean_size(short_sides))
        tiny_short = int(rng.integers(8, 21))
        scale = tiny_short / min(big.size)
        tiny = (max(1, round(big.width * scale)), max(1, round(big.height * scale)))
        plant("odd_size", i, big.resize(tiny, Image.Resampling.LANCZOS))
        long_short = int(rng.integers(short_sides[0], min(short_sides[1], 200) + 1))
        plant("odd_aspect_ratio", i, paint(paint.sized(long_short, float(rng.uniform(3.5, 8)))))
        grey = paint(paint.clean_size(short_sides)).convert("L").convert("RGB")
        plant("grayscale", i, grey)

    # Duplicates of distinct clean originals: none is the original of two copies.
    originals = iter(rng.permutation(n_clean).tolist())
    near: list[tuple[str, str]] = []
    for transformation in NEAR_TRANSFORMATIONS:
        for _ in range(per_category):
            original_name, original = clean[next(originals)]
            stem = original_name.removesuffix(".png")
            if transformation == "resize_2_5":
                factor = 1 - float(rng.uniform(0.02, 0.05))
                size = (round(original.width * factor), round(original.height * factor))
                copy, suffix = original.resize(size, Image.Resampling.LANCZOS), ".png"
            else:
                transform, suffix = TRANSFORMATIONS[transformation]
                copy = transform(original)
            name = f"near_{transformation}_{stem}{suffix}"
            if suffix == ".jpg":
                copy.save(root / name, quality=40)  # as near_duplicates.write_corpus
            else:
                copy.save(root / name, compress_level=PNG_COMPRESSION)
            corpus.category[name] = "near_duplicates"
            corpus.transformation[name] = transformation
            near.append((name, original_name))
    exact: list[tuple[str, str]] = []
    for _ in range(per_category):
        original_name, _image = clean[next(originals)]
        name = f"exact_{original_name}"
        shutil.copyfile(root / original_name, root / name)
        corpus.category[name] = "exact_duplicates"
        exact.append((name, original_name))
    corpus.pairs = {"near_duplicates": near, "exact_duplicates": exact}
    return corpus


# --------------------------------------------------------------------------- detections


@dataclass
class Detections:
    """What one tool reported: flagged files per quality category, groups per duplicate one."""

    flagged: dict[str, set[str]]
    groups: dict[str, list[set[str]]]
    seconds: float


def run_selfsup(root: Path) -> Detections:
    """selfsup's check step, quality assessment and hash groups on ``root``."""
    start = time.perf_counter()
    result = build_manifest(root, num_workers=0, progress=False)
    ok = [r for r in result.records if r.is_ok]
    assessment = assess_quality(ok)
    names = assessment.filenames
    flagged = {
        category: {names[i] for i in np.flatnonzero(assessment.flags[SELFSUP_ISSUE[category]])}
        for category in QUALITY_CATEGORIES
    }
    near = find_groups(ok, NearDuplicatesConfig().hash_distance)
    exact: dict[str, set[str]] = {}
    for record in result.records:
        if record.status == "duplicate" and record.duplicate_of is not None:
            exact.setdefault(record.duplicate_of, {record.duplicate_of}).add(record.filename)
    groups = {
        "near_duplicates": [set(g.members) for g in near.groups],
        "exact_duplicates": list(exact.values()),
    }
    return Detections(flagged, groups, time.perf_counter() - start)


def cleanvision_available() -> bool:
    """True when ``cleanvision`` can be imported."""
    return importlib.util.find_spec("cleanvision") is not None


def run_cleanvision(root: Path) -> Detections:
    """cleanvision's ``Imagelab`` with its default issue types on ``root``, one process."""
    # Optional (CLEANVISION_MISSING), so imported by name: mypy must pass without it too.
    cleanvision: Any = importlib.import_module("cleanvision")
    start = time.perf_counter()
    lab: Any = cleanvision.Imagelab(data_path=str(root), verbose=False)
    # cleanvision draws tqdm bars on stderr even with verbose=False; the table is what matters.
    with contextlib.redirect_stderr(io.StringIO()):
        lab.find_issues(n_jobs=1, verbose=False)
    issues = lab.issues

    def name(path: object) -> str:
        return Path(str(path)).name

    flagged = {
        category: {
            name(p)
            for p in issues.index[issues[f"is_{CLEANVISION_ISSUE[category]}_issue"].to_numpy()]
        }
        for category in QUALITY_CATEGORIES
    }
    groups = {
        category: [
            {name(p) for p in members} for members in lab.info[CLEANVISION_ISSUE[category]]["sets"]
        ]
        for category in DUPLICATE_CATEGORIES
    }
    return Detections(flagged, groups, time.perf_counter() - start)


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Score:
    """Counts behind one category's recall and precision (module docstring).

    Attributes:
        found: Planted images (pairs, for duplicates) found.
        planted: Planted images (pairs) of the category.
        right: Flagged images that are right.
        flagged: Flagged images, those planted with another category left out.
        other: Flagged images planted with another category.
    """

    found: int
    planted: int
    right: int
    flagged: int
    other: int

    @property
    def recall(self) -> float:
        """``found / planted``; NaN when nothing was planted."""
        return self.found / self.planted if self.planted else math.nan

    @property
    def precision(self) -> float:
        """``right / flagged``; NaN when nothing was flagged."""
        return self.right / self.flagged if self.flagged else math.nan


def score_flags(flagged: set[str], category: str, corpus: Corpus) -> Score:
    """Score a quality category's flagged files against the planted ones."""
    planted = {f for f, c in corpus.category.items() if c == category}
    other = {f for f in flagged if corpus.category.get(f, category) != category}
    counted = flagged - other
    found = len(counted & planted)
    return Score(found, len(planted), found, len(counted), len(other))


def _group_of(groups: Iterable[set[str]]) -> dict[str, int]:
    return {name: g for g, members in enumerate(groups) for name in members}


def score_groups(
    groups: Sequence[set[str]], category: str, corpus: Corpus, pairs: Sequence[tuple[str, str]]
) -> Score:
    """Score duplicate groups against ``pairs`` (a subset of the category's planted pairs)."""
    group_of = _group_of(groups)
    all_pairs = corpus.pairs[category]
    found = sum(a in group_of and group_of[a] == group_of.get(b, -1) for a, b in pairs)
    partner = {a: b for a, b in all_pairs} | {b: a for a, b in all_pairs}
    other = {f for f in group_of if corpus.category.get(f, category) != category}
    counted = [f for f in group_of if f not in other]
    right = sum(f in partner and group_of[f] == group_of.get(partner[f], -1) for f in counted)
    return Score(found, len(pairs), right, len(counted), len(other))


def score_all(detections: Detections, corpus: Corpus) -> dict[str, Score]:
    """Category (and ``near_duplicates/<transformation>``) -> score."""
    scores = {c: score_flags(detections.flagged[c], c, corpus) for c in QUALITY_CATEGORIES}
    for category in DUPLICATE_CATEGORIES:
        groups = detections.groups[category]
        scores[category] = score_groups(groups, category, corpus, corpus.pairs[category])
    for transformation in NEAR_TRANSFORMATIONS:
        pairs = [
            (a, b)
            for a, b in corpus.pairs["near_duplicates"]
            if corpus.transformation[a] == transformation
        ]
        key = f"near_duplicates/{transformation}"
        scores[key] = score_groups(
            detections.groups["near_duplicates"], "near_duplicates", corpus, pairs
        )
    return scores


def _pct(x: float) -> str:
    return "   -  " if math.isnan(x) else f"{x:6.1%}"


def format_table(tables: Mapping[str, Mapping[str, Score]]) -> str:
    """One row per category, recall / precision / other-category flags per tool."""
    tools = list(tables)
    header = f"{'category':<28}" + "".join(
        f" | {tool + ' recall':>17} {'precision':>9} {'other':>5}" for tool in tools
    )
    lines = [header, "-" * len(header)]
    for key in next(iter(tables.values())):
        row = f"{key:<28}"
        for tool in tools:
            s = tables[tool][key]
            recall = f"{_pct(s.recall)} ({s.found}/{s.planted})"
            other = "" if "/" in key else str(s.other)
            row += f" | {recall:>17} {_pct(s.precision):>9} {other:>5}"
        lines.append(row)
    return "\n".join(lines)


def _losses(tables: Mapping[str, Mapping[str, Score]]) -> list[str]:
    ours, theirs = tables["selfsup"], tables["cleanvision"]
    out = []
    for key in CATEGORIES:
        for what in ("recall", "precision"):
            a, b = getattr(ours[key], what), getattr(theirs[key], what)
            if not math.isnan(b) and (math.isnan(a) or a < b):
                out.append(
                    f"{key} {what}: selfsup {_pct(a).strip()} < cleanvision {_pct(b).strip()}"
                )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--clean", type=int, default=200, help="clean images")
    parser.add_argument("--per-category", type=int, default=20, help="planted images per category")
    parser.add_argument("--source", default="auto", choices=["auto", "fashion-mnist", "synthetic"])
    parser.add_argument(
        "--short-sides", type=int, nargs=2, default=[96, 768], metavar=("MIN", "MAX")
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-cleanvision", action="store_true", help="measure selfsup only")
    args = parser.parse_args()
    print("command:", " ".join([os.path.relpath(sys.executable), *sys.argv]))
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    source = resolve_source(args.source)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        start = time.perf_counter()
        corpus = write_corpus(
            root,
            args.clean,
            args.per_category,
            seed=args.seed,
            source=source,
            short_sides=(args.short_sides[0], args.short_sides[1]),
        )
        print(
            f"corpus: {args.clean} clean images ({source}), {len(corpus.category)} planted "
            f"({args.per_category} per category, near duplicates {args.per_category} per "
            f"transformation, shift {SHIFT[0]},{SHIFT[1]} px); written in "
            f"{time.perf_counter() - start:.1f} s"
        )
        runs: dict[str, Callable[[Path], Detections]] = {"selfsup": run_selfsup}
        if args.no_cleanvision:
            pass
        elif cleanvision_available():
            runs["cleanvision"] = run_cleanvision
        else:
            print(CLEANVISION_MISSING)
        tables: dict[str, dict[str, Score]] = {}
        for tool, run in runs.items():
            detections = run(root)
            print(f"{tool}: {detections.seconds:.1f} s")
            tables[tool] = score_all(detections, corpus)
    print(format_table(tables))
    near = {t: tables["selfsup"][f"near_duplicates/{t}"].recall for t in NEAR_TRANSFORMATIONS}
    missed = [f"{t} {_pct(r).strip()}" for t, r in near.items() if not r >= NEAR_GOAL]
    print(
        f"goal, selfsup finds >= {NEAR_GOAL:.0%} of the near duplicates of each transformation: "
        + ("met" if not missed else "NOT met (" + ", ".join(missed) + ")")
    )
    if "cleanvision" in tables:
        losses = _losses(tables)
        print("selfsup behind cleanvision: " + ("; ".join(losses) if losses else "nowhere"))
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
