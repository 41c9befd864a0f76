"""The KMEANS strategy: one representative per k-means cluster, nearest its centre."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from selfsup.selection import SelectionInputs, select
from selfsup.selection.config import SelectionConfigError, parse_selection_config
from selfsup.selection.kmeans import KMeansStrategy, kmeans_representatives
from selfsup.selection.objectives import l2_normalize


def _blobs(sizes: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tight blobs around orthogonal unit directions; ``(embeddings, blob of each sample)``."""
    rng = np.random.default_rng(seed)
    dim = len(sizes) + 2
    rows, blob = [], []
    for b, size in enumerate(sizes):
        centre = np.eye(dim)[b]
        rows.append(centre + 0.05 * rng.normal(size=(size, dim)))
        blob += [b] * size
    order = rng.permutation(sum(sizes))
    return np.concatenate(rows)[order].astype(np.float32), np.array(blob)[order]


def _reference(emb: np.ndarray, blob: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Written from the definition: per blob (the clusters k-means must find on well separated
    blobs), the candidate nearest the blob's mean gets the blob's share of the candidates."""
    out = np.zeros(len(emb))
    idx = np.flatnonzero(candidates)
    for b in np.unique(blob[idx]):
        members = idx[blob[idx] == b]
        centre = emb[members].astype(np.float64).mean(axis=0)
        d = ((emb[members].astype(np.float64) - centre) ** 2).sum(axis=1)
        out[members[np.argmin(d)]] = members.size / idx.size
    return out


def test_objective_matches_the_definition_on_separated_blobs() -> None:
    emb, blob = _blobs((20, 12, 6))
    x = l2_normalize(emb)
    everyone = np.ones(len(x), dtype=bool)
    np.testing.assert_allclose(
        kmeans_representatives(x, everyone, 3), _reference(x, blob, everyone)
    )
    some = everyone.copy()
    some[::3] = False
    np.testing.assert_allclose(kmeans_representatives(x, some, 3), _reference(x, blob, some))
    # more clusters than candidates: every candidate represents itself
    few = np.zeros(len(x), dtype=bool)
    few[[1, 5]] = True
    np.testing.assert_allclose(kmeans_representatives(x, few, 10)[[1, 5]], [0.5, 0.5])
    assert kmeans_representatives(x, np.zeros(len(x), dtype=bool), 3).sum() == 0


def _kmeans_config(**strategy: Any) -> dict[str, Any]:
    return {
        "n_samples": 3,
        "strategies": [
            {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "KMEANS", **strategy}}
        ],
    }


def test_select_picks_one_sample_per_cluster_largest_first() -> None:
    emb, blob = _blobs((20, 12, 6))
    config = parse_selection_config(_kmeans_config())
    assert config.strategies == (KMeansStrategy(),)  # n_clusters: the 3 samples to select
    picks = select(SelectionInputs(embeddings=emb), config).indices
    assert blob[picks].tolist() == [0, 1, 2]
    # same seed, same picks; a fixed n_clusters gives the same clusters here
    again = select(SelectionInputs(embeddings=emb), parse_selection_config(_kmeans_config()))
    np.testing.assert_array_equal(picks, again.indices)
    fixed = parse_selection_config(_kmeans_config(n_clusters=3, seed=5))
    assert sorted(blob[select(SelectionInputs(embeddings=emb), fixed).indices]) == [0, 1, 2]


def test_only_candidates_are_clustered_and_represent() -> None:
    emb, blob = _blobs((10, 10, 10))
    rep = np.flatnonzero(kmeans_representatives(l2_normalize(emb), np.ones(len(emb), bool), 3))
    raw = _kmeans_config()
    raw["strategies"].append(
        {
            "input": {"type": "METADATA", "key": "keep"},
            "strategy": {"type": "THRESHOLD", "operation": "BIGGER", "threshold": 0.5},
        }
    )
    keep = np.ones(len(emb))
    keep[rep] = 0.0  # filter out the representatives of the unfiltered data
    inputs = SelectionInputs(embeddings=emb, metadata={"keep": keep})
    picks = select(inputs, parse_selection_config(raw)).indices
    assert not set(picks.tolist()) & set(rep.tolist())
    assert sorted(blob[picks].tolist()) == [0, 1, 2]


def test_combines_with_other_strategies_after_the_representatives() -> None:
    emb, blob = _blobs((8, 8))
    raw = _kmeans_config(n_clusters=2)
    raw["n_samples"] = 4
    raw["strategies"].append(
        {"input": {"type": "METADATA", "key": "w"}, "strategy": {"type": "WEIGHTS"}}
    )
    w = np.linspace(0.1, 1.0, len(emb))
    result = select(SelectionInputs(embeddings=emb, metadata={"w": w}), parse_selection_config(raw))
    first_two = result.indices[:2]
    assert sorted(blob[first_two].tolist()) == [0, 1]
    rest = [i for i in np.argsort(-w, kind="stable") if i not in set(first_two.tolist())]
    assert result.indices[2:].tolist() == rest[:2]


@pytest.mark.parametrize(
    ("strategy", "key", "text"),
    [
        ({"n_clusters": 0}, "n_clusters", "integer >= 1"),
        ({"n_clusters": 2.5}, "n_clusters", "integer >= 1"),
        ({"seed": -1}, "seed", "integer >= 0"),
        ({"strength": 0}, "strength", "non-zero"),
        ({"n_cluster": 3}, "n_cluster", "did you mean 'n_clusters'?"),
    ],
)
def test_bad_values_name_the_key(strategy: dict[str, Any], key: str, text: str) -> None:
    with pytest.raises(SelectionConfigError) as info:
        parse_selection_config(_kmeans_config(**strategy))
    assert info.value.key_path == f"selection_config.strategies[0].strategy.{key}"
    assert text in str(info.value)
    with pytest.raises(SelectionConfigError, match=r"^KMeansStrategy.n_clusters"):
        KMeansStrategy(n_clusters=0)
