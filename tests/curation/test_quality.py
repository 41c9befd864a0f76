"""Image-quality scores against reference formulas, thresholds, and a planted corpus."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageFilter

from selfsup import runfolder
from selfsup.config import RunConfig, resolve
from selfsup.config.worker_config import QualityConfig, QualityIssue
from selfsup.curation.checks import build_manifest
from selfsup.curation.manifest import read_filename_table
from selfsup.curation.quality import (
    ISSUES,
    QUALITY_CSV_COLUMNS,
    IssueRule,
    analysis_image,
    assess_quality,
    blur_score,
    channel_spread,
    clipped_fraction,
    compute_quality_scores,
    default_threshold,
    histogram_entropy,
    quality_report,
    read_quality_issues,
)
from selfsup.utils.io import save_embeddings

# --------------------------------------------------------------------------- reference formulas


def _ref_clipped(rgb: NDArray[np.uint8], level: int = 250) -> float:
    h, w, _ = rgb.shape
    clipped = 0
    for y in range(h):
        for x in range(w):
            if sum(1 for v in rgb[y, x] if int(v) >= level) >= 2:
                clipped += 1
    return clipped / int(h * w)


def _ref_blur(luma: NDArray[np.uint8]) -> float:
    h, w = luma.shape
    lap: list[float] = []
    centre: list[float] = []
    i = [[float(luma[yy, xx]) for xx in range(w)] for yy in range(h)]
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            lap.append(i[y - 1][x] + i[y + 1][x] + i[y][x - 1] + i[y][x + 1] - 4 * i[y][x])
            centre.append(i[y][x])

    def var(xs: list[float]) -> float:
        m = sum(xs) / len(xs)
        return sum((v - m) ** 2 for v in xs) / len(xs)

    return var(lap) / var(centre)


def _ref_entropy(luma: NDArray[np.uint8]) -> float:
    counts = Counter(int(v) for v in luma.ravel())
    n = luma.size
    return float(-sum(c / n * math.log2(c / n) for c in counts.values()))


def _ref_spread(rgb: NDArray[np.uint8]) -> float:
    h, w, _ = rgb.shape
    total = 0
    for y in range(h):
        for x in range(w):
            px = [int(v) for v in rgb[y, x]]
            total += max(px) - min(px)
    return float(total / (h * w))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_match_reference_formulas(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, size=(7, 9, 3), dtype=np.uint8)
    rgb[rng.random((7, 9)) < 0.3] = 255  # some blown-out pixels
    rgb[rng.random((7, 9, 3)) < 0.2] = 252  # and single clipped channels
    luma = rgb[..., 1]
    assert clipped_fraction(rgb) == pytest.approx(_ref_clipped(rgb))
    assert blur_score(luma) == pytest.approx(_ref_blur(luma), rel=1e-9)
    assert histogram_entropy(luma) == pytest.approx(_ref_entropy(luma), rel=1e-12)
    assert channel_spread(rgb) == pytest.approx(_ref_spread(rgb), rel=1e-12)


def test_score_edge_cases() -> None:
    flat = np.full((10, 10), 77, dtype=np.uint8)
    assert blur_score(flat) == 0.0
    assert histogram_entropy(flat) == 0.0
    assert blur_score(np.zeros((2, 50), dtype=np.uint8)) == 0.0
    assert histogram_entropy(np.arange(256, dtype=np.uint8)) == pytest.approx(8.0)
    assert clipped_fraction(np.zeros((0, 0, 3), dtype=np.uint8)) == 0.0
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        clipped_fraction(np.zeros((4, 4), dtype=np.uint8))
    gray = np.repeat(np.arange(30, dtype=np.uint8).reshape(5, 6, 1), 3, axis=2)
    assert channel_spread(gray) == 0.0
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        channel_spread(np.zeros((4, 4), dtype=np.uint8))


def test_blur_is_invariant_to_gain_and_offset_and_about_20_for_white_noise() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 100, size=(64, 64)).astype(np.uint8)
    # 2 * base + 20 stays within uint8 exactly, so the ratio is exactly the same.
    assert blur_score((base * 2 + 20).astype(np.uint8)) == pytest.approx(blur_score(base))
    noise = rng.integers(0, 256, size=(256, 256), dtype=np.uint8)
    assert blur_score(noise) == pytest.approx(20.0, rel=0.05)


def _textured(size: tuple[int, int], seed: int) -> Image.Image:
    """A colour image with detail at every scale (1/f noise, like natural images)."""
    w, h = size
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    channels = []
    for _ in range(3):
        spec = (rng.normal(size=(h, w)) + 1j * rng.normal(size=(h, w))) / f
        img = np.real(np.fft.ifft2(spec))
        img = (img - img.min()) / np.ptp(img) * 200 + 20
        channels.append(img)
    return Image.fromarray(np.stack(channels, axis=-1).astype(np.uint8))


def test_blur_score_is_comparable_across_resolutions() -> None:
    # One sharp scene at 1024 px and reduced to 128 px scores within a factor of 2; the
    # scene blurred by 1.5 px at the 256 px analysis scale scores far lower.
    large = _textured((1024, 1024), 0)
    small = large.resize((128, 128), Image.Resampling.BOX)
    s, big = compute_quality_scores(small).blur, compute_quality_scores(large).blur
    assert 0.5 < big / s < 2.0
    blurred = large.filter(ImageFilter.GaussianBlur(6))
    assert compute_quality_scores(blurred).blur < big / 10


def test_analysis_image_reduces_only_large_images() -> None:
    image = Image.new("RGB", (1000, 500))
    assert analysis_image(image).size == (512, 256)
    small = Image.new("RGB", (100, 40))
    assert analysis_image(small) is small


# --------------------------------------------------------------------------- thresholds


def test_issue_names_match_the_config() -> None:
    assert tuple(r.issue for r in ISSUES) == get_args(QualityIssue)
    assert set(QualityConfig.model_fields) == {"exclude"} | {f"{r.issue}_threshold" for r in ISSUES}


def _rule(issue: str) -> IssueRule:
    return next(r for r in ISSUES if r.issue == issue)


def test_default_threshold_is_median_minus_k_mad_within_bounds() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(120, 5, size=1001)
    rule = _rule("dark")
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    robust = median - 3 * max(1.4826 * mad, rule.min_spread)
    # The robust value (~105) lies above the lenient bound (60): the bound wins.
    assert robust > rule.lenient
    assert default_threshold(values, rule) == rule.lenient
    # A dark dataset: the robust value lies between the bounds and is used as is.
    dim = rng.normal(55, 2, size=1001)
    m = float(np.median(dim))
    expected = m - 3 * max(1.4826 * float(np.median(np.abs(dim - m))), rule.min_spread)
    assert rule.strict is not None
    assert rule.strict < expected < rule.lenient
    assert default_threshold(dim, rule) == pytest.approx(expected)


def test_a_uniform_dataset_does_not_flag_half_of_itself() -> None:
    for rule in ISSUES:
        base = {"min_side": 300.0, "aspect_ratio": 1.5}.get(rule.score, 0.5)
        values = np.full(100, base) + np.linspace(-1e-3, 1e-3, 100) * base
        threshold = default_threshold(values, rule)
        flagged = values < threshold if rule.low_is_bad else values > threshold
        assert not flagged.any(), rule.issue


def test_strict_bound_flags_extremes_unless_the_median_is_beyond_it() -> None:
    rule = _rule("dark")
    spread_out = np.concatenate([np.linspace(0, 255, 200), [5.0]])
    assert default_threshold(spread_out, rule) == rule.strict  # wide spread: 20 still applies
    night = np.full(50, 10.0)  # a night-time dataset: only its own outliers count
    assert default_threshold(night, rule) < 10.0
    gray = _rule("grayscale")
    assert default_threshold(np.zeros(20), gray) < 0.0  # a grayscale dataset flags nothing


def test_small_flags_under_32_px_however_spread_the_sizes() -> None:
    rule = _rule("small")
    # Short sides log-uniform over 3 octaves: the robust threshold alone would be ~17 px.
    wide = 2.0 ** np.linspace(np.log2(96), np.log2(768), 201)
    assert default_threshold(wide, rule) == 32.0
    assert default_threshold(np.full(50, 32.0), rule) <= 32.0  # CIFAR-sized: none flagged
    assert default_threshold(np.full(50, 28.0), rule) < 28.0  # MNIST-sized: outliers only


def test_log_rules_work_on_ratios() -> None:
    rule = _rule("small")
    sizes = np.full(40, 512.0)
    # log2(512) - 3 * 0.5 = 7.5 -> 181 px, under the lenient 224
    assert default_threshold(sizes, rule) == pytest.approx(2**7.5)


# --------------------------------------------------------------------------- planted corpus

PLANTED: dict[str, str] = {
    "planted_black.png": "dark",
    "planted_white.png": "overexposed",
    "planted_washed_out.png": "overexposed",
    "planted_blurred.png": "blurry",
    "planted_flat.png": "low_information",
    "planted_tiny.png": "small",
    "planted_wide.png": "odd_aspect_ratio",
    "planted_gray_l.png": "grayscale",
    "planted_gray_rgb.png": "grayscale",
}


def _washed_out(image: Image.Image, gain: float = 2.2) -> Image.Image:
    """``image`` overexposed: every channel times ``gain`` (about +2.5 stops), clipped."""
    pixels = np.asarray(image, dtype=np.float64) * gain
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def test_washed_out_images_score_high_without_being_white() -> None:
    # Overexposed by ~2.5 stops, most pixels clip in two channels, yet few are white: the
    # near-white luma fraction (the first definition of the score) stays far below 0.5.
    washed = _washed_out(_textured((128, 96), 5))
    luma = np.asarray(washed.convert("L"))
    assert np.mean(luma >= 250) < 0.5
    assert compute_quality_scores(washed).overexposure > 0.5
    assert compute_quality_scores(_textured((128, 96), 5)).overexposure == 0.0


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """24 normal colour photos-like images (4:3, 128-160 px) and one image per issue."""
    root = tmp_path / "corpus"
    root.mkdir()
    for i in range(24):
        size = (128, 96) if i % 3 else (160, 120)
        _textured(size, i).save(root / f"normal_{i:02d}.png")
    size = (128, 96)
    Image.new("RGB", size, (0, 0, 0)).save(root / "planted_black.png")
    Image.new("RGB", size, (255, 255, 255)).save(root / "planted_white.png")
    _washed_out(_textured(size, 105)).save(root / "planted_washed_out.png")
    # Bright but fine: a pale, well-exposed picture (luma ~205, nothing clipped) and a vivid
    # one whose red channel is saturated everywhere (a colour, not lost detail).
    pale = np.asarray(_textured(size, 106), dtype=np.float64) * 0.35 + 165.0
    Image.fromarray(pale.astype(np.uint8)).save(root / "normal_bright_pale.png")
    vivid = np.asarray(_textured(size, 107)).copy()
    vivid[..., 0] = 255
    Image.fromarray(vivid).save(root / "normal_bright_vivid_red.png")
    _textured(size, 100).filter(ImageFilter.GaussianBlur(6)).save(root / "planted_blurred.png")
    Image.new("RGB", size, (128, 100, 90)).save(root / "planted_flat.png")
    _textured((8, 6), 101).save(root / "planted_tiny.png")
    _textured((600, 60), 102).save(root / "planted_wide.png")
    _textured(size, 103).convert("L").save(root / "planted_gray_l.png")
    _textured(size, 104).convert("L").convert("RGB").save(root / "planted_gray_rgb.png")
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, size=(96, 128, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "noise.png")  # sharpest of all: flagged as nothing
    return root


def _flagged(root: Path, config: QualityConfig | None = None) -> dict[str, set[str]]:
    records = build_manifest(root, num_workers=0, progress=False).records
    assessment = assess_quality(records, config)
    out: dict[str, set[str]] = {}
    for i, name in enumerate(assessment.filenames):
        out[name] = {issue for issue, flags in assessment.flags.items() if flags[i]}
    return out


def test_planted_images_are_flagged_with_their_issue(planted: Path) -> None:
    flagged = _flagged(planted)
    for name, issue in PLANTED.items():
        assert issue in flagged[name], (name, flagged[name])
    normal = {n: f for n, f in flagged.items() if n.startswith("normal_") or n == "noise.png"}
    assert all(not issues for issues in normal.values()), {n: f for n, f in normal.items() if f}
    # Only what each planted image really is: no colour image is grayscale, etc.
    assert flagged["planted_wide.png"] == {"odd_aspect_ratio"}
    assert flagged["planted_white.png"] >= {"overexposed"}
    assert "dark" not in flagged["planted_white.png"]


def test_thresholds_can_be_set_per_issue(planted: Path) -> None:
    config = QualityConfig(dark_threshold=1000.0, small_threshold=1.0)
    records = build_manifest(planted, num_workers=0, progress=False).records
    assessment = assess_quality(records, config)
    assert assessment.flags["dark"].all()
    assert not assessment.flags["small"].any()
    assert assessment.sources["dark"] == "config"
    assert assessment.sources["blurry"] == "dataset"
    dark = quality_report(assessment, n_examples=2)["dark"]
    assert dark["count"] == len(assessment.filenames)
    assert dark["examples"] == ["planted_black.png", dark["examples"][1]]  # the darkest first


def test_scores_are_stored_in_the_manifest_records(planted: Path) -> None:
    records = {
        r.filename: r for r in build_manifest(planted, num_workers=0, progress=False).records
    }
    black = records["planted_black.png"]
    assert (black.overexposure, black.blur, black.entropy, black.channel_spread) == (
        0.0,
        0.0,
        0.0,
        0.0,
    )
    assert records["planted_white.png"].overexposure == 1.0
    assert (records["normal_bright_pale.png"].brightness or 0.0) > 190.0  # bright, not flagged
    assert (records["noise.png"].entropy or 0.0) > 7.0  # luma of RGB noise: not uniform


# --------------------------------------------------------------------------- the run


@pytest.mark.slow
def test_run_writes_quality_outputs_and_excludes_flagged_samples(
    planted: Path, tmp_path: Path
) -> None:
    from selfsup.curation.pipeline import run

    names = sorted(p.name for p in planted.iterdir())
    rng = np.random.default_rng(0)
    csv = tmp_path / "emb.csv"
    save_embeddings(
        csv, rng.normal(size=(len(names), 8)).astype(np.float32), [0] * len(names), names
    )
    out = tmp_path / "out"
    cfg = resolve(
        RunConfig,
        overrides=[
            f"input_dir={planted}",
            f"output_dir={out}",
            "umap=false",
            "num_workers=0",
            f"embeddings={csv}",
            "stopping_condition.n_samples=1.0",
            "quality.exclude=[dark, small]",
        ],
    )
    result = run(cfg)

    folder = runfolder.RunFolder(out)
    assert folder.quality_csv == out / runfolder.QUALITY_CSV
    rows = read_filename_table(folder.quality_csv)
    assert tuple(rows[0][0].split(",")) == QUALITY_CSV_COLUMNS
    assert len(rows) == 1 + len(names)
    issues = read_quality_issues(folder.quality_issues)
    by_issue = {(name, issue) for name, issue, _, _ in issues}
    for name, issue in PLANTED.items():
        assert (name, issue) in by_issue
    assert not list(out.rglob("*.tmp*"))  # written atomically: no leftovers

    # Every sample but the dark and small ones is picked (n_samples=1.0 picks all candidates).
    removed = {"planted_black.png", "planted_tiny.png"}
    assert set(result.selected) == set(names) - removed
    table = folder.read_selection()
    assert table is not None
    reasons = {
        table.filenames[i]: table.filters[int(r)]
        for i, r in enumerate(table.removed_by.tolist())
        if r >= 0
    }
    assert reasons == {"planted_black.png": "QUALITY dark", "planted_tiny.png": "QUALITY small"}

    section = result.report["quality"]
    assert section["dark"]["count"] >= 1
    assert section["dark"]["excluded"] is True
    assert "planted_black.png" in section["dark"]["examples"]
    assert section["grayscale"]["excluded"] is False
    # Example thumbnails per flagged issue, drawn as a plot and listed for the PDF.
    assert "plots/quality_examples.png" in result.report["plots"]["files"]
    assert (out / "plots" / "quality_examples.png").read_bytes().startswith(b"\x89PNG")


def test_unknown_issue_in_exclude_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="exclude"):
        resolve(RunConfig, overrides=["quality.exclude=[darkk]"])


def test_exclusion_selects_over_the_kept_rows_and_maps_back() -> None:
    from selfsup.curation.pipeline import _restore_quality_rows, _without_rows
    from selfsup.selection import ClassCounts, SelectionInputs, select
    from selfsup.selection.config import parse_selection_config

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(6, 3)).astype(np.float32)
    inputs = SelectionInputs(
        embeddings=emb,
        metadata={"brightness": np.arange(6, dtype=np.float64)},
        predictions={"t": ClassCounts(["a", "b"], np.eye(2, dtype=np.float32)[[0, 1] * 3])},
        queries={"q": np.array([1])},  # an excluded sample may still be a query
    )
    excluded_by = np.array([-1, 0, -1, 1, 1, -1], dtype=np.int64)
    rows, kept, pre = _without_rows(inputs, excluded_by, np.array([3], dtype=np.int64))
    assert rows.tolist() == [0, 2, 3, 5]  # 3 is preselected: exclusion does not apply to it
    assert pre.tolist() == [2]
    assert kept.n == 4
    np.testing.assert_array_equal(kept.metadata["brightness"], [0.0, 2.0, 3.0, 5.0])
    np.testing.assert_array_equal(kept.query_embeddings("q"), emb[[1]])
    np.testing.assert_array_equal(kept.prediction_counts("t").counts, np.eye(2)[[0, 0, 1, 1]])

    config = parse_selection_config({"n_samples": 10, "strategies": [
        {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}},
    ]})  # fmt: skip
    result = _restore_quality_rows(
        select(kept, config, preselected=pre), rows, excluded_by, ["QUALITY dark", "QUALITY small"]
    )
    assert sorted(result.indices.tolist()) == [0, 2, 5]
    assert result.removed_by.tolist() == [-1, 0, -1, -1, 1, -1]
    assert result.filters[:2] == ("QUALITY dark", "QUALITY small")
