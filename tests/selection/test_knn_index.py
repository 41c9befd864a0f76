"""kNN for TYPICALITY: the plan made before the search, exact search, faiss IVF recall."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from selfsup.selection import SelectionConfig, SelectionInputs, knn_index, select
from selfsup.selection.config import parse_selection_config
from selfsup.selection.knn_index import exact_knn, plan_knn, recall_at_k
from selfsup.selection.objectives import typicality
from selfsup.selection.registry import SelectionConfigError
from selfsup.selection.strategies import DiversityStrategy, TypicalityStrategy
from selfsup.utils.vectors import faiss_available

CPU = torch.device("cpu")


def clustered(n: int, d: int, seed: int) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((20, d))
    x = centers[rng.integers(0, 20, n)] + 0.3 * rng.standard_normal((n, d))
    out: NDArray[np.float32] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def test_plan_says_what_runs_and_which_key_changes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    small = plan_knn(100, 5, "auto", CPU)
    assert small.method == "exact"
    assert not small.approximate
    monkeypatch.setattr(knn_index, "faiss_available", lambda: False)
    big = plan_knn(knn_index.EXACT_KNN_MAX_SAMPLES + 1, 5, "auto", CPU)
    assert big.method == "exact"
    assert "faiss not installed" in big.reason
    monkeypatch.setattr(knn_index, "faiss_available", lambda: True)
    big = plan_knn(knn_index.EXACT_KNN_MAX_SAMPLES + 1, 5, "auto", CPU)
    assert big.method == "faiss_ivf"
    assert big.approximate
    message = big.message()
    for part in ("TYPICALITY", f"N={knn_index.EXACT_KNN_MAX_SAMPLES + 1}", "exact limit 100000"):
        assert part in message
    assert "knn" in big.key
    assert big.key in message
    assert plan_knn(10**7, 5, "exact", CPU).method == "exact"
    assert plan_knn(10, 5, "approximate", CPU).method == "faiss_ivf"
    with pytest.raises(ValueError, match="one of auto, exact, approximate"):
        plan_knn(10, 5, "fast", CPU)


def test_exact_knn_matches_brute_force() -> None:
    x = clustered(60, 4, 0)
    x[30:40] = x[0:10]  # exact duplicates: ties go to the lower index
    d, idx = exact_knn(x, 5, CPU)
    full = np.sqrt(((x[:, None].astype(np.float64) - x[None]) ** 2).sum(-1))
    np.fill_diagonal(full, np.inf)
    want = np.argsort(full, axis=1, kind="stable")[:, :5]
    np.testing.assert_allclose(d, np.take_along_axis(full, want, 1), atol=1e-3)
    assert recall_at_k(idx, want) > 0.97
    # rows of a query subset are those of the full search
    _sub_d, sub_i = exact_knn(x, 5, CPU, queries=np.asarray([3, 31]))
    np.testing.assert_array_equal(sub_i, idx[[3, 31]])


def test_recall_at_k() -> None:
    assert recall_at_k(np.asarray([[1, 2], [3, 4]]), np.asarray([[2, 1], [3, 5]])) == 0.75


@pytest.mark.skipif(not faiss_available(), reason="needs faiss-cpu")
def test_faiss_ivf_typicality_is_close_and_recall_is_recorded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    x = clustered(3000, 16, 1)
    config = SelectionConfig(
        (DiversityStrategy(), TypicalityStrategy(k=10, knn="approximate")), n_samples=20
    )
    with caplog.at_level(logging.INFO, logger="selfsup.selection"):
        result = select(SelectionInputs(embeddings=x), config, device="cpu")
    (record,) = result.methods
    assert record["method"] == "faiss_ivf"
    assert record["strategy"] == "TYPICALITY"
    assert record["n"] == 3000
    assert record["k"] == 10
    assert record["requested"] == "approximate"
    assert 0.8 < record["recall_at_k"] <= 1.0
    assert record["recall_queries"] == 1000
    assert record["params"]["nprobe"] >= 1
    logged = [r.getMessage() for r in caplog.records if "faiss_ivf" in r.getMessage()]
    assert logged
    assert "recall@10" in logged[-1]
    # the approximate typicality ranks samples like the exact one
    dists, _ = knn_index.knn_distances(x, 10, plan_knn(3000, 10, "approximate", CPU))
    approx = 1.0 / dists.mean(axis=1)
    exact = typicality(x, 10)
    assert np.corrcoef(approx, exact)[0, 1] > 0.95


def test_size_limit_switch_is_logged_before_the_search_and_recorded(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(knn_index, "EXACT_KNN_MAX_SAMPLES", 50)
    monkeypatch.setattr(knn_index, "faiss_available", lambda: False)
    x = clustered(80, 4, 2)
    order: list[str] = []

    real_typicality = typicality

    def spy(*args: object, **kwargs: object) -> NDArray[np.float64]:
        order.append("search")
        return real_typicality(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("selfsup.selection.objectives.typicality", spy)
    handler_messages: list[str] = []

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            order.append("log")
            handler_messages.append(record.getMessage())

    logger = logging.getLogger("selfsup.selection.strategies")
    spy_handler = Spy(level=logging.WARNING)
    logger.addHandler(spy_handler)
    try:
        config = SelectionConfig((DiversityStrategy(), TypicalityStrategy(k=3)), n_samples=5)
        result = select(SelectionInputs(embeddings=x), config, device="cpu")
    finally:
        logger.removeHandler(spy_handler)
    assert order[:2] == ["log", "search"]
    assert "TYPICALITY over N=80" in handler_messages[0]
    assert "exact limit 50" in handler_messages[0]
    assert "faiss not installed" in handler_messages[0]
    assert "selection_config TYPICALITY knn" in handler_messages[0]
    (record,) = result.methods
    assert record["method"] == "exact"
    assert record["limit"] == 50
    assert record["n"] == 80


def test_small_runs_record_exact_and_keep_their_picks() -> None:
    x = clustered(200, 8, 3)
    config = SelectionConfig((DiversityStrategy(), TypicalityStrategy(k=5)), n_samples=10)
    result = select(SelectionInputs(embeddings=x), config, device="cpu")
    forced = SelectionConfig(
        (DiversityStrategy(), TypicalityStrategy(k=5, knn="exact")), n_samples=10
    )
    assert select(SelectionInputs(embeddings=x), forced).indices.tolist() == (
        result.indices.tolist()
    )
    (record,) = result.methods
    assert record["method"] == "exact"
    assert record["recall_at_k"] is None
    assert result.device == "cpu"


def test_knn_key_in_the_config() -> None:
    config = parse_selection_config(
        {
            "n_samples": 3,
            "strategies": [
                {
                    "input": {"type": "EMBEDDINGS"},
                    "strategy": {"type": "TYPICALITY", "knn": "approximate"},
                }
            ],
        }
    )
    (strategy,) = config.strategies
    assert isinstance(strategy, TypicalityStrategy)
    assert strategy.knn == "approximate"
    assert strategy.to_dict()["strategy"]["knn"] == "approximate"
    assert "knn" not in TypicalityStrategy().to_dict()["strategy"]
    with pytest.raises(SelectionConfigError, match="knn"):
        parse_selection_config(
            {
                "n_samples": 3,
                "strategies": [
                    {
                        "input": {"type": "EMBEDDINGS"},
                        "strategy": {"type": "TYPICALITY", "knn": "x"},
                    }
                ],
            }
        )


def test_a_gpu_keeps_the_search_exact_up_to_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(knn_index, "faiss_available", lambda: True)
    cuda = torch.device("cuda")
    n = knn_index.GPU_EXACT_MAX_SAMPLES
    plan = plan_knn(n, 20, "auto", cuda)
    assert plan.method == "exact"
    assert plan.device == "cuda"
    assert plan_knn(n + 1, 20, "auto", cuda).method == "faiss_ivf"
