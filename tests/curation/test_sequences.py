"""selected_sequence_length: candidate windows, per-sequence inputs, expansion, selection."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfsup.curation.sequences import (
    expand_sequences,
    select_sequences,
    sequence_candidates,
    sequence_embeddings,
    sequence_inputs,
    sequence_preselected,
    sequence_selection_config,
    sequence_values,
)
from selfsup.errors import ConfigError, DataError
from selfsup.selection import (
    ClassCounts,
    DiversityStrategy,
    MetadataInput,
    SelectionConfig,
    SelectionInputs,
    ThresholdStrategy,
    select,
)


def frames_of(video: str, indices: Sequence[int]) -> tuple[list[str], list[int | None]]:
    return [video] * len(indices), list(indices)


# --------------------------------------------------------------------------- candidates


def test_windows_stay_inside_one_video() -> None:
    sources = ["a.mp4"] * 5 + ["b.mp4"] * 5
    frames: list[int | None] = [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
    starts, members = sequence_candidates(sources, frames, 2)
    assert members.tolist() == [[0, 1], [2, 3], [5, 6], [7, 8]]
    assert starts.tolist() == [0, 2, 0, 2]


def test_windows_never_cross_a_gap_in_frame_numbers() -> None:
    sources, frames = frames_of("a.mp4", [0, 1, 2, 4, 5, 6, 7])
    starts, members = sequence_candidates(sources, frames, 2)
    assert starts.tolist() == [0, 4, 6]
    assert members.tolist() == [[0, 1], [3, 4], [5, 6]]  # frame 2 ends a run of 3: left over


def test_windows_follow_frame_order_not_input_order() -> None:
    sources = ["b.mp4", "a.mp4", "a.mp4", "b.mp4", "a.mp4"]
    frames: list[int | None] = [1, 2, 0, 0, 1]
    starts, members = sequence_candidates(sources, frames, 2)
    # a.mp4: frames 0,1 are samples 2,4; b.mp4: frames 0,1 are samples 3,0
    assert sorted(map(tuple, members.tolist())) == [(2, 4), (3, 0)]
    assert members[:, 0].tolist() == sorted(members[:, 0].tolist())
    assert starts.tolist() == [0, 0]


@settings(max_examples=60, deadline=None)
@given(
    videos=st.lists(
        st.sets(st.integers(min_value=0, max_value=30), max_size=25), min_size=1, max_size=4
    ),
    length=st.integers(min_value=1, max_value=5),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_candidates_are_disjoint_consecutive_and_maximal(
    videos: list[set[int]], length: int, seed: int
) -> None:
    sources: list[str] = []
    frames: list[int | None] = []
    for v, indices in enumerate(videos):
        for f in sorted(indices):
            sources.append(f"v{v}.mp4")
            frames.append(f)
    order = np.random.default_rng(seed).permutation(len(sources))
    sources = [sources[i] for i in order]
    frames = [frames[i] for i in order]
    starts, members = sequence_candidates(sources, frames, length)
    assert members.shape[1] == length
    flat = members.reshape(-1).tolist()
    assert len(flat) == len(set(flat))  # non-overlapping
    for start, row in zip(starts.tolist(), members.tolist(), strict=True):
        assert len({sources[i] for i in row}) == 1  # one video
        assert [frames[i] for i in row] == list(range(start, start + length))  # consecutive
    # maximal: a run of r consecutive frames gives floor(r / L) windows
    expected = 0
    for indices in videos:
        run = 0
        for f in range(32):
            if f in indices:
                run += 1
            else:
                expected += run // length
                run = 0
    assert members.shape[0] == expected


def test_length_one_makes_every_sample_a_sequence_images_included() -> None:
    starts, members = sequence_candidates(["x.png", "a.mp4", "a.mp4"], [None, 3, 4], 1)
    assert members.tolist() == [[0], [1], [2]]
    assert starts.tolist() == [-1, 3, 4]


def test_images_are_refused_by_name_or_excluded() -> None:
    sources = ["cat.png", "a.mp4", "a.mp4", "dog.jpg"]
    frames: list[int | None] = [None, 0, 1, None]
    with pytest.raises(DataError, match=r"2 sample\(s\) are images: 'cat\.png', 'dog\.jpg'"):
        sequence_candidates(sources, frames, 2)
    _, members = sequence_candidates(sources, frames, 2, images="exclude")
    assert members.tolist() == [[1, 2]]


def test_candidate_input_errors() -> None:
    with pytest.raises(ConfigError, match="got 0"):
        sequence_candidates(["a.mp4"], [0], 0)
    with pytest.raises(DataError, match="frame_indices 2"):
        sequence_candidates(["a.mp4"], [0, 1], 2)
    with pytest.raises(DataError, match=r"frame 1 of video 'a\.mp4' is listed twice"):
        sequence_candidates(["a.mp4"] * 3, [0, 1, 1], 2)


# --------------------------------------------------------------------------- per-sequence values


def test_sequence_embeddings_are_member_means() -> None:
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(7, 3)).astype(np.float32)
    members = np.array([[0, 1, 2], [4, 5, 6]])
    expected = np.stack([emb[[0, 1, 2]].mean(axis=0), emb[[4, 5, 6]].mean(axis=0)])
    out = sequence_embeddings(emb, members)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    before = emb.copy()
    sequence_embeddings(emb, members)
    np.testing.assert_array_equal(emb, before)


def test_sequence_values_average_numbers_and_keep_first_category() -> None:
    members = np.array([[0, 1], [2, 3]])
    np.testing.assert_array_equal(
        sequence_values(np.array([1.0, 3.0, np.nan, 4.0]), members), [2.0, np.nan]
    )
    assert sequence_values(np.array(["x", "y", "z", "w"]), members).tolist() == ["x", "z"]
    mixed = np.array([1, None, 2, 4], dtype=object)
    np.testing.assert_array_equal(sequence_values(mixed, members), [np.nan, 3.0])


def test_sequence_inputs_aggregate_every_input() -> None:
    emb = np.eye(4, dtype=np.float32)
    inputs = SelectionInputs(
        embeddings=emb,
        scores={"t": {"s": np.array([0.0, 1.0, 2.0, 4.0])}},
        metadata={"brightness": np.array([10.0, 20.0, 30.0, 50.0])},
        predictions={"det": ClassCounts(("car", "bus"), [[1, 0], [2, 1], [0, 0], [0, 3]])},
        queries={"q": np.array([3])},
    )
    members = np.array([[0, 1], [2, 3]])
    seq = sequence_inputs(inputs, members)
    assert seq.n == 2
    np.testing.assert_allclose(seq.scores["t"]["s"], [0.5, 3.0])
    np.testing.assert_allclose(seq.metadata["brightness"], [15.0, 40.0])
    np.testing.assert_array_equal(seq.predictions["det"].counts, [[3, 1], [0, 3]])
    np.testing.assert_array_equal(seq.queries["q"], emb[[3]])


def test_sequence_preselected_marks_sequences_touching_a_picked_frame() -> None:
    members = np.array([[0, 1], [2, 3], [4, 5]])
    assert sequence_preselected(members, [3, 6], 7).tolist() == [1]
    assert sequence_preselected(members, [], 7).tolist() == []


def test_expand_sequences_keeps_pick_order_and_frame_order() -> None:
    members = np.array([[0, 1, 2], [5, 6, 7], [9, 10, 11]])
    assert expand_sequences(members, [2, 0]).tolist() == [9, 10, 11, 0, 1, 2]
    assert expand_sequences(members, []).tolist() == []
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        expand_sequences(members, [3])


def test_integer_n_samples_counts_frames_rounded_down() -> None:
    config = SelectionConfig((DiversityStrategy(),), n_samples=25)
    assert sequence_selection_config(config, 10).n_samples == 2
    fraction = SelectionConfig((DiversityStrategy(),), n_samples=0.5)
    assert sequence_selection_config(fraction, 10) == fraction
    with pytest.raises(ConfigError, match="n_samples=5 is fewer frames than one sequence"):
        sequence_selection_config(SelectionConfig((DiversityStrategy(),), n_samples=5), 10)


# --------------------------------------------------------------------------- selection


def two_videos() -> tuple[list[str], list[int | None], np.ndarray]:
    """Video a: frames 0-5 along e0 drifting to e1; video b: frames 0-5 along e2."""
    sources = ["a.mp4"] * 6 + ["b.mp4"] * 6
    frames: list[int | None] = [*range(6), *range(6)]
    emb = np.zeros((12, 3), dtype=np.float32)
    emb[:6, 0] = 1.0
    emb[:6, 1] = np.linspace(0, 1, 6)
    emb[6:, 2] = 1.0
    emb[6:, 0] = np.linspace(0, 0.1, 6)
    return sources, frames, emb


def test_select_sequences_picks_whole_runs_of_frames() -> None:
    sources, frames, emb = two_videos()
    config = SelectionConfig((DiversityStrategy(),), n_samples=5)  # -> 2 sequences of 2
    out = select_sequences(SelectionInputs(embeddings=emb), config, sources, frames, 2)
    picked = out.frames.indices.tolist()
    assert len(picked) == 4
    pairs = [picked[:2], picked[2:]]
    for pair in pairs:
        assert sources[pair[0]] == sources[pair[1]]
        first, second = frames[pair[0]], frames[pair[1]]
        assert first is not None
        assert second == first + 1
    assert {sources[p[0]] for p in pairs} == {"a.mp4", "b.mp4"}  # diverse: one per video
    assert out.frames.distances.shape == (4,)
    assert out.frames.distances[0] == out.frames.distances[1]
    assert out.frames.n_requested == 4
    assert out.sequences.indices.shape == (2,)


def test_select_sequences_never_repicks_preselected_frames() -> None:
    sources, frames, emb = two_videos()
    config = SelectionConfig((DiversityStrategy(),), n_samples=4)
    out = select_sequences(
        SelectionInputs(embeddings=emb), config, sources, frames, 2, preselected=[1, 7]
    )
    picked = set(out.frames.indices.tolist())
    # sequences (0,1) and (6,7) hold preselected frames: neither is picked again
    assert not picked & {0, 1, 6, 7}
    assert len(picked) == 4


def test_length_one_equals_plain_select() -> None:
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(9, 4))
    sources = ["img.png", *(["a.mp4"] * 8)]
    frames: list[int | None] = [None, *range(8)]
    config = SelectionConfig((DiversityStrategy(),), n_samples=4)
    inputs = SelectionInputs(embeddings=emb)
    out = select_sequences(inputs, config, sources, frames, 1, preselected=[2])
    plain = select(inputs, config, preselected=[2])
    np.testing.assert_array_equal(out.frames.indices, plain.indices)
    np.testing.assert_array_equal(out.frames.distances, plain.distances)


def test_filters_apply_per_sequence_and_show_per_frame() -> None:
    sources, frames, emb = two_videos()
    brightness = np.array([0, 0, 9, 9, 0, 0, 9, 9, 9, 9, 0, 0], dtype=np.float64)
    inputs = SelectionInputs(embeddings=emb, metadata={"b": brightness})
    keep_bright = ThresholdStrategy(MetadataInput("b"), "BIGGER", 5.0)
    config = SelectionConfig((keep_bright, DiversityStrategy()), n_samples=100)
    out = select_sequences(inputs, config, sources, frames, 2)
    assert sorted(out.frames.indices.tolist()) == [2, 3, 6, 7, 8, 9]
    assert out.frames.removed_by.tolist() == [0, 0, -1, -1, 0, 0, -1, -1, -1, -1, 0, 0]


def test_no_candidate_sequence_is_an_error() -> None:
    sources, frames = frames_of("a.mp4", [0, 2, 4])
    config = SelectionConfig((DiversityStrategy(),), n_samples=2)
    with pytest.raises(DataError, match="no sequence of selected_sequence_length=2"):
        select_sequences(SelectionInputs(embeddings=np.eye(3)), config, sources, frames, 2)
    with pytest.raises(DataError, match="sources has 3 entries but the selection inputs have 4"):
        select_sequences(SelectionInputs(embeddings=np.eye(4)), config, sources, frames, 2)
