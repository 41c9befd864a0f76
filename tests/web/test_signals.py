"""The pure parts of selfsup.web.signals: score discovery from tables, near-duplicate groups,
filtering and sorting. A whole run's signals are tested in tests/web/test_explore.py."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from selfsup.web.signals import (
    DuplicateGroup,
    RunSignals,
    SignalsError,
    discover_table_scores,
    read_near_duplicate_groups,
)

NAMES = {"a.png": 0, "b.png": 1, "c.png": 2}


def test_numeric_columns_are_scores_and_other_columns_are_not(tmp_path: Path) -> None:
    table = tmp_path / "al_scores.csv"
    table.write_text(
        "filename,uncertainty,label,empty,margin\n"
        "b.png,0.5,cat,,1e-3\n"
        "a.png,0.25,dog,,\n"
        "crop_of_z.png,9,cat,,2\n",  # no sample of the run: ignored
        encoding="utf-8",
    )
    found = discover_table_scores(table, NAMES, 3, prefix="al_scores.")
    assert list(found) == ["al_scores.uncertainty", "al_scores.margin"]
    np.testing.assert_array_equal(found["al_scores.uncertainty"], [0.25, 0.5, np.nan])
    np.testing.assert_array_equal(found["al_scores.margin"], [np.nan, 1e-3, np.nan])


def test_a_table_without_a_filename_column_or_with_a_short_row_is_refused(
    tmp_path: Path,
) -> None:
    table = tmp_path / "t.csv"
    table.write_text("name,score\na.png,1\n", encoding="utf-8")
    with pytest.raises(SignalsError, match="no 'filename' column"):
        discover_table_scores(table, NAMES, 3)
    table.write_text("filename,score\na.png\n", encoding="utf-8")
    with pytest.raises(SignalsError, match=r"t\.csv:2: 1 cells, but the header has 2"):
        discover_table_scores(table, NAMES, 3)


def test_near_duplicate_groups_map_names_to_samples_and_drop_lone_members(tmp_path: Path) -> None:
    path = tmp_path / "near_duplicate_filenames.txt"
    path.write_text(
        "0\ta.png\ta.png\t0\n0\tc.png\ta.png\t7\n0\tgone.png\ta.png\t3\n"
        "1\tb.png\tb.png\t0\n1\tgone2.png\tb.png\t0.125000\n",
        encoding="utf-8",
    )
    groups = read_near_duplicate_groups(path, NAMES)
    assert len(groups) == 1  # group 1 keeps one known member only
    group = groups[0]
    assert (group.id, group.kept) == (0, 0)
    np.testing.assert_array_equal(group.members, [0, 2])
    np.testing.assert_array_equal(group.distances, [0.0, 7.0])
    assert read_near_duplicate_groups(tmp_path / "missing.txt", NAMES) == []
    path.write_text("0\ta.png\ta.png\n", encoding="utf-8")
    with pytest.raises(SignalsError, match="expected group<TAB>filename"):
        read_near_duplicate_groups(path, NAMES)


def test_an_embedding_distance_is_recognised_by_its_decimal_point(tmp_path: Path) -> None:
    path = tmp_path / "nd.txt"
    path.write_text("4\ta.png\ta.png\t0\n4\tb.png\ta.png\t0.031250\n", encoding="utf-8")
    (group,) = read_near_duplicate_groups(path, NAMES)
    np.testing.assert_array_equal(group.by_embedding, [False, True])


def _signals() -> RunSignals:
    return RunSignals(
        scores={"brightness": np.array([10.0, math.nan, 200.0, 50.0, 50.0])},
        score_sources={"brightness": "data/quality.csv"},
        issues={
            "dark": np.array([True, False, False, False, False]),
            "blurry": np.array([False, False, False, True, True]),
        },
        groups=[
            DuplicateGroup(
                0, np.array([3, 4]), np.array([0.0, 2.0]), np.array([False, False]), kept=3
            )
        ],
        group_of=np.array([-1, -1, -1, 0, 0]),
        folders=[],
        folder_code=np.full(5, -1),
    )


def test_sort_puts_missing_values_last_both_ways_and_keeps_ties_in_order() -> None:
    signals = _signals()
    pool = np.arange(5, dtype=np.int64)
    assert signals.sort(pool, "brightness", descending=False).tolist() == [0, 3, 4, 2, 1]
    assert signals.sort(pool, "brightness", descending=True).tolist() == [2, 3, 4, 0, 1]
    with pytest.raises(KeyError, match="it has: brightness"):
        signals.sort(pool, "sharpness", descending=False)


def test_flagged_by_issue_and_by_any_issue() -> None:
    signals = _signals()
    assert signals.flagged("dark").tolist() == [0]
    assert signals.flagged("any").tolist() == [0, 3, 4]
    assert signals.issues_of(4) == ["blurry"]
    with pytest.raises(KeyError, match="it has: dark, blurry"):
        signals.flagged("overexposed")


def test_a_lazy_score_is_computed_on_first_use_only() -> None:
    calls: list[int] = []

    def compute() -> np.ndarray[tuple[int], np.dtype[np.float64]]:
        calls.append(1)
        return np.array([3.0, 1.0, 2.0, math.nan, 0.0])

    signals = _signals()
    signals.lazy["distance"] = compute
    signals.score_sources["distance"] = "the embeddings"
    assert signals.score_names == ["brightness", "distance"]
    assert calls == []  # listing the scores computes nothing
    pool = np.arange(5, dtype=np.int64)
    assert signals.sort(pool, "distance", descending=False).tolist() == [4, 1, 2, 0, 3]
    signals.values("distance")
    assert calls == [1]
