"""The EMBEDDINGS input's ``query``: typed query sources, their parse, dump and errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from selfsup.selection import SelectionInputs, select
from selfsup.selection.config import (
    SelectionConfigError,
    SimilarityStrategy,
    parse_selection_config,
    parse_selection_model,
)
from selfsup.selection.input_types import QuerySource


def _config(query: Any) -> dict[str, Any]:
    return {
        "n_samples": 2,
        "strategies": [
            {"input": {"type": "EMBEDDINGS", "query": query}, "strategy": {"type": "SIMILARITY"}}
        ],
    }


@pytest.mark.parametrize(
    ("query", "source"),
    [
        ({"samples": ["a.png", "b/c.png"]}, QuerySource(samples=("a.png", "b/c.png"))),
        ({"samples_file": "q.txt"}, QuerySource(samples_file="q.txt")),
        ({"folder": "/data/q"}, QuerySource(folder="/data/q")),
        ({"tag": "cats"}, QuerySource(tag="cats")),
        ({"tag": "cats", "run": "/runs/1"}, QuerySource(tag="cats", run="/runs/1")),
        # A dumped config's None values count as not given.
        ({"samples": None, "folder": "q", "tag": None}, QuerySource(folder="q")),
    ],
)
def test_query_mappings_parse_to_typed_sources_and_back(
    query: dict[str, Any], source: QuerySource
) -> None:
    config = parse_selection_config(_config(query))
    (strategy,) = config.strategies
    assert isinstance(strategy, SimilarityStrategy)
    assert strategy.query == source
    assert config.to_dict()["strategies"][0]["input"]["query"] == source.to_dict()
    assert parse_selection_config(config.to_dict()) == config
    model = parse_selection_model(_config(query))
    assert parse_selection_model(model.model_dump(mode="json")) == model


def test_a_string_query_still_names_a_set_of_selection_inputs() -> None:
    config = parse_selection_config(_config("q"))
    emb = np.eye(4, dtype=np.float32)
    emb[1] += 0.5 * emb[0]
    picks = select(SelectionInputs(embeddings=emb, queries={"q": np.array([0])}), config)
    assert picks.indices.tolist() == [0, 1]


def test_a_query_source_names_its_set_by_key() -> None:
    source = QuerySource(folder="outside")
    config = parse_selection_config(_config(source.to_dict()))
    emb = np.eye(3, dtype=np.float32)
    inputs = SelectionInputs(embeddings=emb, queries={source.key: emb[[2]]})
    assert select(inputs, config).indices.tolist()[0] == 2
    # Distinct sources have distinct keys.
    keys = {
        QuerySource(samples=("a",)).key,
        QuerySource(samples_file="a").key,
        QuerySource(folder="a").key,
        QuerySource(tag="a").key,
        QuerySource(tag="a", run="r").key,
    }
    assert len(keys) == 5


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"folde": "x"}, r"query\.folde: unknown query key; did you mean 'folder'"),
        ({}, r"query: give exactly one of samples, samples_file, folder, tag .*got none"),
        ({"folder": "x", "tag": "t"}, r"query: give exactly one of .*\['folder', 'tag'\]"),
        ({"folder": "x", "run": "r"}, r"query\.run: only used with tag"),
        ({"samples": []}, r"query\.samples: expected a non-empty list of sample names"),
        ({"samples": "a.png"}, r"query\.samples: expected a non-empty list"),
        ({"samples": ["a", 3]}, r"query\.samples\[1\]: expected a non-empty string"),
        ({"folder": ""}, r"query\.folder: expected a non-empty string"),
        (3, r"query: expected a non-empty string, got 3"),
    ],
)
def test_bad_queries_name_the_key(query: Any, message: str) -> None:
    with pytest.raises(
        SelectionConfigError, match=r"selection_config\.strategies\[0\]\.input\." + message
    ):
        parse_selection_config(_config(query))


def test_the_typed_source_checks_itself() -> None:
    with pytest.raises(SelectionConfigError, match="exactly one of"):
        QuerySource(samples=("a",), folder="b")
    with pytest.raises(SelectionConfigError, match="only used with tag"):
        QuerySource(folder="b", run="r")
