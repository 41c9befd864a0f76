"""``select``, ``coreset`` and ``random_selection`` end to end on small arrays."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from selfsup.errors import DataError
from selfsup.selection import (
    BalanceStrategy,
    CategoryCountInput,
    ClassCounts,
    ClassDistributionInput,
    DiversityStrategy,
    MetadataInput,
    RandomInput,
    RandomStrategy,
    ScoresInput,
    SelectionConfig,
    SelectionInputs,
    SimilarityStrategy,
    ThresholdStrategy,
    TypicalityStrategy,
    WeightsStrategy,
    coreset,
    random_selection,
    select,
)


def unit_rows(n: int, d: int, seed: int) -> NDArray[np.float32]:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    out: NDArray[np.float32] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def pairwise(x: NDArray[np.float32]) -> NDArray[np.float64]:
    xd = x.astype(np.float64)
    out: NDArray[np.float64] = np.sqrt(((xd[:, None] - xd[None]) ** 2).sum(-1))
    return out


def test_n_samples_as_count_fraction_and_proportion() -> None:
    x = unit_rows(200, 4, seed=0)
    assert coreset(x, 17).size == 17
    assert coreset(x, 0.1).size == 20
    assert coreset(x, 0.0049).size == 1  # round(0.98) = 1
    assert coreset(x, 1.0).size == 200
    config = SelectionConfig((DiversityStrategy(),), n_samples=50, proportion_samples=0.1)
    result = select(SelectionInputs(embeddings=x), config)
    assert result.indices.size == 20  # the smaller of the two conditions wins
    assert result.n_requested == 20
    assert result.stop_reason == "n_samples"


def test_coreset_is_deterministic_and_does_not_touch_its_input() -> None:
    x = unit_rows(300, 8, seed=1) * 3.0  # not normalised: normalised inside, on a copy
    before = x.copy()
    a = coreset(x, 30)
    b = coreset(x, 30)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, before)
    assert len(set(a.tolist())) == 30


def test_min_distance_stop_in_coreset() -> None:
    x = unit_rows(400, 3, seed=2)
    picks = coreset(x, 1.0, min_distance=0.4)
    dist = pairwise(x)
    sub = dist[np.ix_(picks, picks)]
    np.fill_diagonal(sub, np.inf)
    assert sub.min() >= 0.4 - 1e-5
    assert dist[:, picks].min(axis=1).max() < 0.4 + 1e-5
    # lightly's -1 means "no minimum distance"
    assert coreset(x, 25, min_distance=-1).size == 25


def test_preselected_are_respected_and_never_returned() -> None:
    # two tight clusters; the datapool already holds cluster A, so diversity fills cluster B
    rng = np.random.default_rng(3)
    a = np.array([1.0, 0.0, 0.0]) + 0.05 * rng.standard_normal((50, 3))
    b = np.array([0.0, 1.0, 0.0]) + 0.05 * rng.standard_normal((50, 3))
    x = np.concatenate([a, b]).astype(np.float32)
    pre = list(range(0, 50, 5))
    picks = coreset(x, 5, preselected=pre)
    assert not set(picks.tolist()) & set(pre)
    assert picks[0] >= 50  # the first new pick lies in the empty cluster
    result = select(
        SelectionInputs(embeddings=x),
        SelectionConfig((DiversityStrategy(),), n_samples=5),
        preselected=pre,
    )
    assert np.isfinite(result.distances).all()
    assert result.n_candidates == 90


@pytest.mark.parametrize("bad", [[-1], [100], [3, 3], [[1, 2]], [0.5]])
def test_bad_preselected_raises(bad: list[object]) -> None:
    with pytest.raises(DataError, match="preselected"):
        coreset(unit_rows(100, 3, seed=4), 3, preselected=np.asarray(bad))


def test_typicality_ranks_dense_points_first() -> None:
    rng = np.random.default_rng(5)
    dense = np.array([1.0, 0.0, 0.0]) + 0.02 * rng.standard_normal((30, 3))
    sparse = rng.standard_normal((30, 3))
    x = np.concatenate([sparse, dense]).astype(np.float32)
    config = SelectionConfig((TypicalityStrategy(k=5),), n_samples=20)
    picks = select(SelectionInputs(embeddings=x), config).indices
    assert np.all(picks >= 30)


def test_similarity_picks_nearest_to_the_query() -> None:
    x = unit_rows(100, 5, seed=6)
    query = unit_rows(1, 5, seed=7)
    inputs = SelectionInputs(embeddings=x, queries={"q": query, "by_index": np.array([42])})
    picks = select(inputs, SelectionConfig((SimilarityStrategy("q"),), n_samples=10)).indices
    order = np.argsort(((x.astype(np.float64) - query) ** 2).sum(1), kind="stable")
    assert picks.tolist() == order[:10].tolist()
    by_index = select(inputs, SelectionConfig((SimilarityStrategy("by_index"),), n_samples=1))
    assert by_index.indices.tolist() == [42]


def test_threshold_filters_and_reports_why() -> None:
    x = unit_rows(10, 3, seed=8)
    sharp = np.array([5, 25, 30, np.nan, 21, 20, 40, 1, 50, 22], dtype=float)
    score = np.linspace(0.0, 0.9, 10)
    inputs = SelectionInputs(embeddings=x, metadata={"sharp": sharp}, scores={"t": {"s": score}})
    config = SelectionConfig(
        (
            ThresholdStrategy(MetadataInput("sharp"), "BIGGER", 20),
            ThresholdStrategy(ScoresInput("t", "s"), "SMALLER_EQUAL", 0.7),
            DiversityStrategy(),
        ),
        n_samples=100,
    )
    result = select(inputs, config)
    assert sorted(result.indices.tolist()) == [1, 2, 4, 6]
    assert result.removed_by.tolist() == [0, -1, -1, 0, -1, 0, -1, 0, 1, 1]
    assert "sharp" in result.filters[0]
    assert "> 20" in result.filters[0]
    assert "<= 0.7" in result.filters[1]
    assert result.n_candidates == 4
    assert result.stop_reason == "exhausted"


def test_weights_order_is_descending_weight_ties_to_lowest_index() -> None:
    w = np.array([0.2, 0.9, 0.5, 0.9, 0.0, 0.7])
    inputs = SelectionInputs(metadata={"w": w})
    result = select(inputs, SelectionConfig((WeightsStrategy(MetadataInput("w")),), n_samples=6))
    assert result.indices.tolist() == [1, 3, 5, 2, 0, 4]
    np.testing.assert_allclose(result.scores[:4], np.log([0.9, 0.9, 0.7, 0.5]))
    assert np.isnan(result.distances).all()
    inverse = SelectionConfig((WeightsStrategy(MetadataInput("w"), strength=-1.0),), n_samples=3)
    assert select(inputs, inverse).indices.tolist() == [4, 0, 2]


def test_weights_reject_negative_and_missing_values() -> None:
    config = SelectionConfig((WeightsStrategy(MetadataInput("w")),), n_samples=1)
    with pytest.raises(DataError, match=r"WEIGHTS on METADATA w: values must be >= 0"):
        select(SelectionInputs(metadata={"w": np.array([1.0, -2.0])}), config)
    with pytest.raises(DataError, match="no finite value"):
        select(SelectionInputs(metadata={"w": np.array([1.0, np.nan])}), config)
    with pytest.raises(DataError, match="did you mean 'w'"):
        select(
            SelectionInputs(metadata={"w": np.array([1.0])}),
            SelectionConfig((WeightsStrategy(MetadataInput("ww")),), n_samples=1),
        )


def test_balance_reaches_the_target_exactly_alone() -> None:
    rng = np.random.default_rng(9)
    labels = rng.choice(["car", "bus", "bike"], 1000, p=[0.8, 0.15, 0.05])
    inputs = SelectionInputs(metadata={"cls": labels})
    target = {"car": 0.5, "bus": 0.3, "bike": 0.2}
    config = SelectionConfig((BalanceStrategy(MetadataInput("cls"), target),), n_samples=100)
    picks = select(inputs, config).indices
    counts = {c: int((labels[picks] == c).sum()) for c in target}
    assert counts == {"car": 50, "bus": 30, "bike": 20}


def test_balance_with_diversity_lands_near_the_target() -> None:
    rng = np.random.default_rng(10)
    labels = rng.choice(3, 2000, p=[0.7, 0.2, 0.1])
    x = unit_rows(2000, 8, seed=10)
    inputs = SelectionInputs(
        embeddings=x, predictions={"det": ClassCounts.from_labels(labels, ["a", "b", "c"])}
    )
    config = SelectionConfig(
        (DiversityStrategy(), BalanceStrategy(ClassDistributionInput("det"), "uniform", 5.0)),
        n_samples=150,
    )
    result = select(inputs, config)
    shares = np.bincount(labels[result.indices], minlength=3) / 150
    np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.05)
    # without BALANCE, diversity alone follows the data (mostly class 0)
    plain = coreset(x, 150)
    assert np.bincount(labels[plain], minlength=3)[0] / 150 > 0.5


def test_balance_counts_objects_and_preselected() -> None:
    # detections: each image holds several objects; the dense engine handles this
    counts = np.array([[3, 0], [2, 0], [0, 1], [1, 1], [4, 0], [0, 2], [2, 0], [0, 1]])
    inputs = SelectionInputs(predictions={"det": ClassCounts(("car", "ped"), counts)})
    config = SelectionConfig(
        (BalanceStrategy(ClassDistributionInput("det"), {"car": 0.5, "ped": 0.5}),), n_samples=3
    )
    # preselected image 4 holds 4 cars, so quotients are car 0.5/5, ped 0.5/1: pedestrian-only
    # images (2, 5, 7) score 0.5, the mixed image 3 scores (0.1 + 0.5) / 2; ties -> lowest index
    result = select(inputs, config, preselected=[4])
    assert result.indices.tolist() == [2, 5, 7]
    # with nothing chosen every image ties (image 0 wins); its 3 cars then favour pedestrians
    assert select(inputs, config).indices.tolist() == [0, 2, 5]


def test_random_is_seeded_and_matches_random_selection() -> None:
    config = SelectionConfig((RandomStrategy(seed=3),), n_samples=25)
    inputs = SelectionInputs(n_samples=500)
    a = select(inputs, config).indices
    np.testing.assert_array_equal(a, select(inputs, config).indices)
    np.testing.assert_array_equal(a, random_selection(500, 25, seed=3))
    other = random_selection(500, 25, seed=4)
    assert a.tolist() != other.tolist()
    assert len(set(a.tolist())) == 25
    pre = a[:5].tolist()
    rest = random_selection(500, 20, seed=3, preselected=pre)
    assert rest.tolist() == a[5:].tolist()
    assert random_selection(10, 1.0, seed=0, preselected=[1, 2]).size == 8


def test_random_input_can_subsample_by_threshold() -> None:
    config = SelectionConfig(
        (
            ThresholdStrategy(RandomInput(7), "BIGGER", 0.5),
            WeightsStrategy(MetadataInput("w")),
        ),
        n_samples=1000,
    )
    inputs = SelectionInputs(metadata={"w": np.ones(1000)})
    result = select(inputs, config)
    assert 400 < result.indices.size < 600


def test_combined_diversity_and_weights_maximise_the_product() -> None:
    x = unit_rows(120, 4, seed=11)
    w = np.random.default_rng(11).uniform(0.1, 1.0, 120)
    inputs = SelectionInputs(embeddings=x, scores={"al": {"u": w}})
    config = SelectionConfig(
        (DiversityStrategy(), WeightsStrategy(ScoresInput("al", "u"), strength=2.0)),
        n_samples=15,
    )
    picks = select(inputs, config).indices.tolist()
    # reference: argmax of distance ** 1 * weight ** 2, the first pick by weight alone
    dist = pairwise(x)
    chosen: list[int] = []
    for _ in range(15):
        d = dist[:, chosen].min(axis=1) if chosen else np.ones(120)
        objective = d * w**2
        objective[chosen] = -1.0
        chosen.append(int(np.argmax(objective)))
    assert picks == chosen


def test_category_count_feeds_weights() -> None:
    counts = ClassCounts(("car", "ped"), np.array([[1, 0], [5, 1], [2, 2], [0, 3]]))
    inputs = SelectionInputs(predictions={"det": counts})
    config = SelectionConfig((WeightsStrategy(CategoryCountInput("det", "ped")),), n_samples=2)
    assert select(inputs, config).indices.tolist() == [3, 2]


def test_embedding_strategies_need_embeddings() -> None:
    with pytest.raises(DataError, match=r"strategy DIVERSITY needs SelectionInputs\.embeddings"):
        select(SelectionInputs(n_samples=3), SelectionConfig((DiversityStrategy(),), n_samples=1))
    two = SelectionConfig((DiversityStrategy(), TypicalityStrategy(k=2)), n_samples=1)
    with pytest.raises(DataError, match=r"strategies DIVERSITY, TYPICALITY need SelectionInputs"):
        select(SelectionInputs(n_samples=3), two)


def test_zero_row_embedding_is_handled() -> None:
    x = unit_rows(20, 3, seed=12)
    x[4] = 0.0
    picks = coreset(x, 20)
    assert sorted(picks.tolist()) == list(range(20))


def test_stop_reason_min_distance_reports_count() -> None:
    x = unit_rows(100, 2, seed=13)
    config = SelectionConfig((DiversityStrategy(),), n_samples=100, min_distance=0.3)
    result = select(SelectionInputs(embeddings=x), config)
    assert result.stop_reason == "min_distance"
    assert result.indices.size + result.n_below_min_distance == 100
    assert math.isinf(result.distances[0])
    assert result.distances[1:].min() >= 0.3 - 1e-6


def test_memory_mapped_embeddings_give_the_in_memory_picks(tmp_path: Path) -> None:
    x = np.random.default_rng(3).standard_normal((300, 6)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    config = SelectionConfig((DiversityStrategy(), TypicalityStrategy(k=4)), n_samples=12)
    want = select(SelectionInputs(embeddings=x), config, device="cpu")
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    got = select(SelectionInputs(embeddings=mapped), config, device="cpu")
    assert got.indices.tolist() == want.indices.tolist()
    assert got.device == "cpu"


def test_memory_mapped_embeddings_must_be_unit_rows(tmp_path: Path) -> None:
    x = np.ones((5, 3), dtype=np.float32) / np.sqrt(3.0, dtype=np.float32)
    x[2] *= 2.0
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    config = SelectionConfig((DiversityStrategy(),), n_samples=2)
    with pytest.raises(DataError, match=r"must be L2-normalised: row 2 has norm 2"):
        select(SelectionInputs(embeddings=mapped), config, device="cpu")
