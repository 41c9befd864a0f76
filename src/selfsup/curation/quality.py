"""Image-quality issues: per-sample scores, dataset-relative thresholds, flags and outputs.

Scores are computed in the check step's single decode (:mod:`selfsup.curation._decode`
calls :func:`compute_quality_scores` on the decoded RGB image) and stored in the manifest
records; thresholds and flags are computed afterwards over the usable samples of the run.

Scores (one per issue; ``width``, ``height`` and ``brightness`` are the record's metadata)
============== ================ ==================================================================
issue          score            definition
============== ================ ==================================================================
dark           brightness       mean luma, 0-255 (:mod:`selfsup.curation.metadata`); low is bad
overexposed    overexposure     fraction of pixels with at least two of their three channels
                                >= 250 (clipped highlights); high is bad
blurry         blur             variance of the 4-neighbour Laplacian divided by the variance of
                                the luma, on the analysis image; low is bad (0 for a flat image)
low_information entropy         Shannon entropy in bits of the 256-bin luma histogram (0 to 8);
                                low is bad
small          min_side         ``min(width, height)`` in pixels; low is bad
odd_aspect_ratio aspect_ratio   ``max(width, height) / min(width, height)`` (>= 1); high is bad
grayscale      channel_spread   mean over pixels of ``max(R, G, B) - min(R, G, B)``, 0-255 (0 for
                                an image without colour); low is bad
============== ================ ==================================================================

The analysis image
    ``overexposure``, ``blur``, ``entropy`` and ``channel_spread`` are measured on the image
    reduced with a box filter so that its short side is at most :data:`ANALYSIS_SHORT_SIDE`
    (256) pixels; smaller images are measured as they are. This bounds the cost of a 12 MP
    photo to that of a 256 px image, and it is what makes ``blur`` comparable across sizes.

Why this blur measure
    The variance of the Laplacian (Pech-Pacheco et al. 2000, "Diatom autofocusing in
    brightfield microscopy", the ``sharpness`` metadata) fails at both ends of the size range
    because it is a per-pixel second derivative: an edge spread over ``s`` pixels gives a
    response that falls like ``1/s^2``, so a sharp 4000 px photo (whose edges span several
    pixels) scores like a blurred thumbnail, and it scales with the square of the contrast,
    so a sharp low-contrast image scores like a blurred high-contrast one (Pertuz, Puig &
    Garcia 2013, "Analysis of focus measure operators for shape-from-focus", Pattern
    Recognition 46(5), report the sensitivity of Laplacian operators to contrast and image
    content). Two normalisations remove these: the image is first brought to a common scale
    (the analysis image, short side <= 256, roughly what a model sees), and the Laplacian
    variance is divided by the luma variance, as the *normalised variance* focus measure
    divides by intensity (Groen, Young & Ligthart 1985, "A comparison of different focus
    functions for use in autofocus algorithms", Cytometry 6(2)). The ratio is invariant to
    gain and offset ``I -> aI + b`` and, by Parseval's theorem, is the power-spectrum-weighted
    mean of the Laplacian's squared frequency response: near 20 for white noise (a pixel's
    Laplacian has variance ``(4 + 16) sigma^2``), near 0 for an image without fine detail.
    Images are never enlarged: interpolation would add blur to every small image.

Why this overexposure measure
    An overexposed photo is one whose exposure pushed much of the scene past the sensor's
    range: there the channels *clip* at the top of the scale and the detail is gone. An
    overexposure of two or three stops rarely makes pure white: a pixel of colour
    ``(200, 120, 60)`` clips in red and green to ``(255, 255, 150)``, and the luma of such
    pixels stays well under 250. So counting near-white luma only (the first definition of
    this score) missed most washed-out images (55 % of those ``benchmarks/quality_issues.py``
    plants). The score therefore counts the pixels whose channels clip, which is what a
    camera's or editor's highlight-clipping warning shows, with one safeguard: a single
    clipped channel is a saturated colour (a red flower's red), not lost detail, so a pixel
    counts only when at least two of its channels are at or above :data:`CLIP_LEVEL` (white,
    yellow, cyan and magenta highlights). A bright image whose pixels stay below the clip
    (a pale, well-exposed beach or sky) and a vivid single-colour one score 0.

Thresholds (:func:`default_threshold`)
    By default each threshold comes from the run's own usable samples: with ``m`` the median
    and ``s = max(1.4826 * MAD, min_spread)`` (the MAD scaled to a standard deviation for
    normal data, never below a small per-issue spread), the *robust* threshold is
    ``m - k s`` for an issue where low is bad and ``m + k s`` where high is bad (``k = 3``).
    For ``small`` and ``odd_aspect_ratio`` this is computed on ``log2`` of the score (sizes
    and ratios are multiplicative). Two absolute bounds per issue then apply:

    * the *lenient* bound: the threshold never flags values on the normal side of it (dark
      is never flagged at a brightness >= 60). It keeps a uniform dataset, whose MAD is 0,
      from flagging half of itself;
    * the *strict* bound: values beyond it are always flagged (brightness < 20 is dark),
      however wide the dataset's spread, *unless the median itself is beyond it*: then the
      data is like that (a night-time or grayscale dataset) and only its own outliers are
      flagged.

    A sample is flagged when its score is strictly below (low is bad) or above (high is bad)
    the threshold. ``quality.<issue>_threshold`` in the run config replaces a threshold.

Outputs
    ``data/quality.csv``: ``filename`` and every score of every usable sample.
    ``filenames/quality_issues.txt``: ``filename<TAB>issue<TAB>score<TAB>threshold``, one line
    per flagged (sample, issue), in manifest order (the escaping of
    :mod:`selfsup.curation.manifest`). Both are written atomically.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from selfsup.curation.manifest import SampleRecord, _write_table, read_filename_table
from selfsup.errors import DataError
from selfsup.utils.atomic import atomic_open_text
from selfsup.utils.names import NAME_ERRORS

if TYPE_CHECKING:
    # Only for types: worker processes of the check import this module (through _decode)
    # and must not import pydantic and the config tree.
    from selfsup.config.worker_config import QualityConfig

__all__ = [
    "ANALYSIS_SHORT_SIDE",
    "CLIP_LEVEL",
    "ISSUES",
    "QUALITY_CSV_COLUMNS",
    "SCORE_KEYS",
    "IssueRule",
    "QualityAssessment",
    "QualityScores",
    "analysis_image",
    "assess_quality",
    "blur_score",
    "channel_spread",
    "clipped_fraction",
    "compute_quality_scores",
    "default_threshold",
    "histogram_entropy",
    "quality_report",
    "read_quality_issues",
    "write_quality_csv",
    "write_quality_issues",
]

#: Short side (pixels) of the image the pixel scores are measured on; larger images are reduced.
ANALYSIS_SHORT_SIDE: Final = 256
#: Channel value (0-255) at or above which a channel counts as clipped.
CLIP_LEVEL: Final = 250


# --------------------------------------------------------------------------- pure scores


def clipped_fraction(rgb: NDArray[np.uint8], level: int = CLIP_LEVEL) -> float:
    """Fraction of the pixels of a (H, W, 3) uint8 array with >= 2 channels at >= ``level``.

    The ``overexposure`` score (module docstring, "Why this overexposure measure"); 0.0 for
    an empty image.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB array of shape (H, W, 3), got shape {rgb.shape}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        return 0.0
    clipped = np.count_nonzero(rgb >= level, axis=2) >= 2
    return float(np.count_nonzero(clipped)) / int(clipped.size)


def blur_score(luma: NDArray[np.uint8]) -> float:
    """Variance of the 4-neighbour Laplacian over the variance of a (H, W) luma array.

    Both variances are population variances; the Laplacian is taken over interior pixels
    (``L = I[y-1,x] + I[y+1,x] + I[y,x-1] + I[y,x+1] - 4 I[y,x]``) and the luma variance over
    the same interior pixels, so the ratio is exactly invariant to ``I -> aI + b``. Returns
    0.0 for a flat image (no edges: nothing is sharp) and for images under 3x3 pixels. See
    the module docstring for why this measure.
    """
    if luma.ndim != 2:
        raise ValueError(f"expected a 2-D luma array of shape (H, W), got shape {luma.shape}")
    if luma.shape[0] < 3 or luma.shape[1] < 3:
        return 0.0
    a = luma.astype(np.float64)
    lap = a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:] - 4.0 * a[1:-1, 1:-1]
    interior_var = float(a[1:-1, 1:-1].var())
    if interior_var < 1e-9:
        return 0.0
    return float(lap.var()) / interior_var


def histogram_entropy(luma: NDArray[np.uint8]) -> float:
    """Shannon entropy in bits, ``-sum p log2 p``, of the 256-bin histogram of a uint8 array.

    0.0 for a constant (or empty) image, 8.0 at most (every level equally often).
    """
    if luma.size == 0:
        return 0.0
    counts = np.bincount(luma.ravel(), minlength=256)
    p = counts[counts > 0].astype(np.float64) / luma.size
    return float(max(0.0, -(p * np.log2(p)).sum()))


def channel_spread(rgb: NDArray[np.uint8]) -> float:
    """Mean over pixels of ``max(R, G, B) - min(R, G, B)`` of a (H, W, 3) uint8 array, 0-255.

    0.0 for an image without colour (R = G = B everywhere) and for an empty image.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB array of shape (H, W, 3), got shape {rgb.shape}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        return 0.0
    spread = rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2).astype(np.int16)
    return float(spread.mean(dtype=np.float64))


def analysis_image(image: Image.Image, short_side: int = ANALYSIS_SHORT_SIDE) -> Image.Image:
    """``image`` reduced with a box filter so its short side is at most ``short_side`` pixels.

    Images already that small are returned unchanged (never enlarged). The long side keeps
    the aspect ratio (rounded, at least 1 pixel).
    """
    w, h = image.size
    short = min(w, h)
    if short <= short_side:
        return image
    scale = short_side / short
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return image.resize(size, Image.Resampling.BOX)


@dataclass(frozen=True, slots=True)
class QualityScores:
    """The pixel scores of one image stored in its manifest record (module docstring)."""

    overexposure: float
    blur: float
    entropy: float
    channel_spread: float


def compute_quality_scores(rgb: Image.Image, *, grayscale: bool = False) -> QualityScores:
    """Quality scores of one RGB image (mode ``"RGB"``), measured on its analysis image.

    ``grayscale=True`` says the image was converted from a grey mode, so its channel spread
    is 0 without computing it.
    """
    if rgb.mode != "RGB":
        raise ValueError(f"compute_quality_scores expects an RGB image, got mode {rgb.mode!r}")
    small = analysis_image(rgb)
    pixels = np.asarray(small, dtype=np.uint8)
    luma = np.asarray(small.convert("L"), dtype=np.uint8)
    return QualityScores(
        overexposure=clipped_fraction(pixels),
        blur=blur_score(luma),
        entropy=histogram_entropy(luma),
        channel_spread=0.0 if grayscale else channel_spread(pixels),
    )


# --------------------------------------------------------------------------- issues and thresholds


@dataclass(frozen=True, slots=True)
class IssueRule:
    """How one issue is scored and where its default threshold lies (module docstring).

    Attributes:
        issue: The issue's name (``quality.exclude`` entries, ``<issue>_threshold`` keys).
        score: Column of :data:`SCORE_KEYS` the issue reads.
        low_is_bad: Flag scores below the threshold (else above it).
        log2: Compute the robust statistics on ``log2`` of the score.
        min_spread: Smallest spread ``s`` (in the units the statistics are computed in).
        lenient: The threshold never flags values on the normal side of this.
        strict: Values beyond this are flagged unless the median is beyond it; ``None``: none.
        meaning: One line for the report.
    """

    issue: str
    score: str
    low_is_bad: bool
    log2: bool
    min_spread: float
    lenient: float
    strict: float | None
    meaning: str


#: Multiple of the robust spread between the median and a default threshold.
K_SPREAD: Final = 3.0
#: Scales the median absolute deviation to the standard deviation of normal data.
MAD_TO_STD: Final = 1.4826

ISSUES: Final[tuple[IssueRule, ...]] = (
    IssueRule("dark", "brightness", True, False, 10.0, 60.0, 20.0, "mean luma too low"),
    IssueRule(
        "overexposed", "overexposure", False, False, 0.05, 0.3, 0.9, "many clipped highlights"
    ),
    IssueRule("blurry", "blur", True, True, 0.5, 0.25, 0.01, "little fine detail for its contrast"),
    IssueRule("low_information", "entropy", True, False, 0.25, 4.0, 1.0, "few grey levels"),
    # Strict 32 px: on a dataset whose sizes spread over 3 octaves (96-768 px) the robust
    # threshold falls to ~17 px, and a 20 px image among them is small all the same.
    IssueRule("small", "min_side", True, True, 0.5, 224.0, 32.0, "short side small"),
    IssueRule("odd_aspect_ratio", "aspect_ratio", False, True, 0.25, 2.0, 5.0, "elongated"),
    IssueRule("grayscale", "channel_spread", True, False, 1.0, 2.0, 1.0, "no colour"),
)

#: Columns of ``data/quality.csv`` after ``filename``.
SCORE_KEYS: Final[tuple[str, ...]] = (
    "brightness",
    "overexposure",
    "blur",
    "entropy",
    "min_side",
    "aspect_ratio",
    "channel_spread",
)
QUALITY_CSV_COLUMNS: Final[tuple[str, ...]] = ("filename", *SCORE_KEYS)


def _score_row(record: SampleRecord) -> tuple[float, ...]:
    w, h = record.width or 0, record.height or 0
    short, long = min(w, h), max(w, h)

    def value(x: float | None) -> float:
        return math.nan if x is None else float(x)

    return (
        value(record.brightness),
        value(record.overexposure),
        value(record.blur),
        value(record.entropy),
        float(short) if short > 0 else math.nan,
        long / short if short > 0 else math.nan,
        value(record.channel_spread),
    )


def default_threshold(values: NDArray[np.float64], rule: IssueRule) -> float:
    """The dataset-relative threshold of ``rule`` over ``values`` (module docstring, Thresholds).

    NaN values are ignored; with no value left the threshold is the lenient bound.
    """
    finite = values[np.isfinite(values)]
    if rule.log2:
        finite = np.log2(finite[finite > 0])
    if finite.size == 0:
        return rule.lenient
    median = float(np.median(finite))
    spread = max(MAD_TO_STD * float(np.median(np.abs(finite - median))), rule.min_spread)
    robust = median - K_SPREAD * spread if rule.low_is_bad else median + K_SPREAD * spread
    if rule.log2:
        robust = 2.0**robust
        median = 2.0**median
    if rule.low_is_bad:
        threshold = min(robust, rule.lenient)
        if rule.strict is not None and median >= rule.strict:
            threshold = max(threshold, rule.strict)
    else:
        threshold = max(robust, rule.lenient)
        if rule.strict is not None and median <= rule.strict:
            threshold = min(threshold, rule.strict)
    return threshold


@dataclass(frozen=True)
class QualityAssessment:
    """Scores, thresholds and flags of the usable samples of a run.

    Attributes:
        filenames: ``(N,)`` sample names in manifest order.
        scores: score key -> ``(N,)`` float64 values (NaN where a record has none).
        thresholds: issue -> threshold used.
        sources: issue -> ``"dataset"`` (default rule) or ``"config"`` (``<issue>_threshold``).
        flags: issue -> ``(N,)`` bool, True where the sample has the issue.
        exclude: Issues whose samples are removed before selection.
    """

    filenames: tuple[str, ...]
    scores: Mapping[str, NDArray[np.float64]]
    thresholds: Mapping[str, float]
    sources: Mapping[str, str]
    flags: Mapping[str, NDArray[np.bool_]]
    exclude: tuple[str, ...] = ()

    def excluded_by(self) -> NDArray[np.int64]:
        """``(N,)`` index into :attr:`exclude` of the first excluded issue of each sample, -1
        for samples no excluded issue flags."""
        out = np.full(len(self.filenames), -1, dtype=np.int64)
        for i, issue in enumerate(self.exclude):
            out[(out == -1) & self.flags[issue]] = i
        return out


def assess_quality(
    records: Iterable[SampleRecord], config: QualityConfig | None = None
) -> QualityAssessment:
    """Scores, thresholds and flags of the ``ok`` records (corrupt and duplicates left out)."""
    if config is None:
        from selfsup.config.worker_config import QualityConfig

        config = QualityConfig()
    usable = [r for r in records if r.is_ok]
    rows = np.array([_score_row(r) for r in usable], dtype=np.float64).reshape(
        len(usable), len(SCORE_KEYS)
    )
    scores = {key: rows[:, j] for j, key in enumerate(SCORE_KEYS)}
    thresholds: dict[str, float] = {}
    sources: dict[str, str] = {}
    flags: dict[str, NDArray[np.bool_]] = {}
    for rule in ISSUES:
        given = getattr(config, f"{rule.issue}_threshold")
        values = scores[rule.score]
        if given is None:
            threshold, source = default_threshold(values, rule), "dataset"
        else:
            threshold, source = float(given), "config"
        thresholds[rule.issue] = threshold
        sources[rule.issue] = source
        # A NaN score (a record without the score, e.g. from an older manifest) is never flagged.
        flags[rule.issue] = values < threshold if rule.low_is_bad else values > threshold
    return QualityAssessment(
        filenames=tuple(r.filename for r in usable),
        scores=scores,
        thresholds=thresholds,
        sources=sources,
        flags=flags,
        exclude=tuple(dict.fromkeys(config.exclude)),
    )


# --------------------------------------------------------------------------- outputs


def _cell(value: float) -> str:
    return "" if math.isnan(value) else repr(round(value, 6))


def write_quality_csv(path: str | os.PathLike[str], assessment: QualityAssessment) -> None:
    """Write ``data/quality.csv`` atomically (:data:`QUALITY_CSV_COLUMNS`; empty: no score)."""
    with atomic_open_text(path, errors=NAME_ERRORS) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(QUALITY_CSV_COLUMNS)
        for i, name in enumerate(assessment.filenames):
            writer.writerow([name, *(_cell(float(assessment.scores[k][i])) for k in SCORE_KEYS)])


def _issue_rows(assessment: QualityAssessment) -> Iterable[tuple[str, str, str, str]]:
    for i, name in enumerate(assessment.filenames):
        for rule in ISSUES:
            if assessment.flags[rule.issue][i]:
                yield (
                    name,
                    rule.issue,
                    _cell(float(assessment.scores[rule.score][i])),
                    _cell(assessment.thresholds[rule.issue]),
                )


def write_quality_issues(path: str | os.PathLike[str], assessment: QualityAssessment) -> int:
    """Write ``filenames/quality_issues.txt`` (module docstring); returns the line count."""
    return _write_table(path, _issue_rows(assessment))


def read_quality_issues(path: str | os.PathLike[str]) -> list[tuple[str, str, float, float]]:
    """Rows ``(filename, issue, score, threshold)`` of a ``quality_issues.txt``.

    Raises:
        DataError: a line does not have four columns or its numbers do not parse.
    """
    out: list[tuple[str, str, float, float]] = []
    for number, row in enumerate(read_filename_table(path), start=1):
        if len(row) != 4:
            raise DataError(
                f"{os.fspath(path)}:{number}: expected filename<TAB>issue<TAB>score<TAB>"
                f"threshold, got {len(row)} column(s)"
            )
        try:
            out.append((row[0], row[1], float(row[2]), float(row[3])))
        except ValueError:
            raise DataError(
                f"{os.fspath(path)}:{number}: score {row[2]!r} or threshold {row[3]!r} is not "
                "a number"
            ) from None
    return out


def quality_report(assessment: QualityAssessment, n_examples: int = 5) -> dict[str, dict[str, Any]]:
    """The ``quality`` section of report.json: per issue its count, threshold and examples.

    Examples are the ``n_examples`` flagged samples with the most extreme scores (lowest for
    an issue where low is bad), ties in manifest order.
    """
    section: dict[str, dict[str, Any]] = {}
    for rule in ISSUES:
        flagged = np.flatnonzero(assessment.flags[rule.issue])
        values = assessment.scores[rule.score][flagged]
        order = np.argsort(values if rule.low_is_bad else -values, kind="stable")
        section[rule.issue] = {
            "count": int(flagged.size),
            "score": rule.score,
            "flagged_when": "below" if rule.low_is_bad else "above",
            "threshold": round(assessment.thresholds[rule.issue], 6),
            "threshold_source": assessment.sources[rule.issue],
            "excluded": rule.issue in assessment.exclude,
            "meaning": rule.meaning,
            "examples": [assessment.filenames[int(flagged[j])] for j in order[:n_examples]],
        }
    return section
