"""benchmarks/quality_issues.py: its corpus builder, selfsup's scoring on it, and the scores."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The script as a module; it imports its sibling benchmarks from their folder."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("quality_issues")


def test_corpus_and_selfsup_scores_at_a_tiny_size(bench: ModuleType, tmp_path: Path) -> None:
    """The corpus holds what its ground truth says, and selfsup finds the unambiguous plants."""
    root = tmp_path / "images"
    corpus = bench.write_corpus(
        root, 12, 2, seed=1, source="synthetic", short_sides=(64, 128), blur_short_sides=(64, 128)
    )
    files = sorted(p.name for p in root.iterdir())
    # clean, 7 quality categories, 4 near-duplicate transformations, exact copies: 2 each
    assert len(files) == 12 + 7 * 2 + 4 * 2 + 2
    for category in bench.QUALITY_CATEGORIES:
        assert sum(c == category for c in corpus.category.values()) == 2
    assert len(corpus.pairs["near_duplicates"]) == 8
    originals = [b for pairs in corpus.pairs.values() for _, b in pairs]
    assert len(set(originals)) == len(originals)  # one copy per original
    assert all(o.startswith("clean_") for o in originals)
    for copy, original in corpus.pairs["exact_duplicates"]:
        assert (root / copy).read_bytes() == (root / original).read_bytes()
    for name, category in corpus.category.items():
        with Image.open(root / name) as image:
            assert image.mode == "RGB", name  # grayscale plants are RGB files too
            if category == "odd_size":
                assert min(image.size) <= 20
            if category == "odd_aspect_ratio":
                assert max(image.size) / min(image.size) >= 3.4

    scores = bench.score_all(bench.run_selfsup(root), corpus)
    for category in ("dark", "odd_size", "odd_aspect_ratio", "grayscale", "exact_duplicates"):
        assert scores[category].recall == 1.0, (category, scores[category])
    assert scores["exact_duplicates"].precision == 1.0
    assert scores["near_duplicates/jpeg"].recall == 1.0
    assert scores["near_duplicates/brightness"].recall == 1.0
    table = bench.format_table({"selfsup": scores})
    for key in scores:
        assert key in table


def test_scores_count_right_wrong_and_other_category_flags(bench: ModuleType) -> None:
    """Recall, precision and the ``other`` column on hand-made detections."""
    corpus = bench.Corpus(
        category={
            "dark_0.png": "dark",
            "dark_1.png": "dark",
            "flat_0.png": "low_information",
            "copy_a.png": "near_duplicates",
            "copy_b.png": "near_duplicates",
        },
        pairs={
            "near_duplicates": [("copy_a.png", "a.png"), ("copy_b.png", "b.png")],
            "exact_duplicates": [],
        },
        transformation={"copy_a.png": "jpeg", "copy_b.png": "shift"},
    )
    # One dark plant found, one clean image wrongly flagged, a flat plant flagged (other).
    dark = bench.score_flags({"dark_0.png", "clean.png", "flat_0.png"}, "dark", corpus)
    assert (dark.recall, dark.precision, dark.other) == (0.5, 0.5, 1)
    nothing = bench.score_flags(set(), "dark", corpus)
    assert nothing.recall == 0.0
    assert math.isnan(nothing.precision)
    # copy_a with its original (right), copy_b with the wrong image b2 (both wrong).
    groups = [{"copy_a.png", "a.png"}, {"copy_b.png", "b2.png"}, {"flat_0.png", "x.png"}]
    near = bench.score_groups(groups, "near_duplicates", corpus, corpus.pairs["near_duplicates"])
    assert (near.found, near.planted) == (1, 2)
    assert near.flagged == 5  # a, copy_a, copy_b, b2, x; flat_0 is another category's plant
    assert near.precision == pytest.approx(2 / 5)
    assert near.other == 1


def test_too_few_clean_originals_is_an_error(bench: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_clean=4 is too small"):
        bench.write_corpus(tmp_path, 4, 1)


def test_auto_source_falls_back_to_synthetic_without_fashion_mnist(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path))  # no idx files there
    assert bench.resolve_source("auto") == "synthetic"
    assert bench.resolve_source("fashion-mnist") == "fashion-mnist"
    with pytest.raises(ValueError, match="--source must be"):
        bench.resolve_source("imagenet")


def test_main_says_how_to_install_cleanvision_when_it_is_missing(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without cleanvision the run still prints selfsup's table, the command and the load."""
    monkeypatch.setattr(bench, "cleanvision_available", lambda: False)
    argv = ["quality_issues.py", "--clean", "10", "--per-category", "2", "--source", "synthetic"]
    monkeypatch.setattr(sys, "argv", [*argv, "--short-sides", "64", "96"])
    bench.main()
    out = capsys.readouterr().out
    assert "pip install -c constraints.txt cleanvision" in out
    assert "command: " in out
    assert "--per-category 2" in out
    assert "load average" in out
    assert "selfsup recall" in out
    assert "cleanvision recall" not in out
    assert "near_duplicates/shift" in out
