"""Tests of selfsup.utils.benchmarking.topk: top-k accuracy and the topk argument check."""

from __future__ import annotations

import pytest
import torch

from selfsup.errors import ConfigError
from selfsup.utils.benchmarking.topk import check_topk, logits_topk_accuracy, mean_topk_accuracy


def test_mean_topk_accuracy_matches_a_hand_computation() -> None:
    predicted = torch.tensor(
        [
            [2, 0, 1, 3],  # target 2: right at rank 1
            [1, 3, 0, 2],  # target 3: rank 2
            [0, 1, 2, 3],  # target 3: rank 4
            [3, 2, 1, 0],  # target 1: rank 3
            [1, 0, 3, 2],  # target 1: rank 1
        ]
    )
    targets = torch.tensor([2, 3, 3, 1, 1])
    got = mean_topk_accuracy(predicted, targets, k=(1, 2, 3, 4))
    # top-1: rows 0 and 4; top-2: + row 1; top-3: + row 3; top-4: all.
    assert {k: float(v) for k, v in got.items()} == pytest.approx(
        {1: 2 / 5, 2: 3 / 5, 3: 4 / 5, 4: 1.0}
    )
    assert all(v.dtype == torch.float32 and v.ndim == 0 for v in got.values())


def test_logits_topk_accuracy_ranks_by_logit() -> None:
    logits = torch.tensor([[0.1, 0.9, 0.5], [2.0, -1.0, 1.0], [0.0, 0.2, 0.1]], requires_grad=True)
    targets = torch.tensor([2, 0, 0])
    # Ranked: [1, 2, 0], [0, 2, 1], [1, 2, 0] -> target ranks 2, 1, 3.
    got = logits_topk_accuracy(logits, targets, (1, 2, 3))
    assert [float(got[k]) for k in (1, 2, 3)] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert not got[1].requires_grad


def test_mean_topk_accuracy_rejects_bad_input() -> None:
    predicted = torch.zeros(4, 2, dtype=torch.long)
    with pytest.raises(ValueError, match=r"k=3 needs 1 <= k <= K=2"):
        mean_topk_accuracy(predicted, torch.zeros(4, dtype=torch.long), (1, 3))
    with pytest.raises(ValueError, match=r"targets must have shape \(B,\)=\(4,\)"):
        mean_topk_accuracy(predicted, torch.zeros(3, dtype=torch.long), (1,))
    with pytest.raises(ValueError, match="empty batch"):
        mean_topk_accuracy(predicted[:0], torch.zeros(0, dtype=torch.long), (1,))
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        mean_topk_accuracy(predicted[0], torch.zeros(4, dtype=torch.long), (1,))


def test_check_topk_names_the_bad_value() -> None:
    assert check_topk([1, 5], 10, "X") == (1, 5)
    with pytest.raises(ConfigError, match=r"X: every k .* \[1, num_classes=3\], got 5"):
        check_topk((1, 5), 3, "X")
    with pytest.raises(ConfigError, match="at least one k"):
        check_topk((), 3, "X")
    with pytest.raises(ConfigError, match="num_classes must be"):
        check_topk((1,), 0, "X")
    with pytest.raises(ConfigError, match=r"got 1\.5"):
        check_topk((1.5,), 3, "X")  # type: ignore[arg-type]
