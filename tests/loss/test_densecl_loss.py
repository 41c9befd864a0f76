"""DenseCLLoss against DenseCL's L = (1 − λ) L_q + λ L_r (Wang et al. 2021), in loops."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from selfsup.errors import ConfigError, DataError
from selfsup.loss import DenseCLLoss
from selfsup.loss.densecl_loss import select_most_similar

Vec = list[float]


def _unit(v: Vec) -> Vec:
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def _dot(u: Vec, v: Vec) -> float:
    return sum(a * b for a, b in zip(u, v, strict=True))


def ref_info_nce(queries: list[Vec], keys: list[Vec], negatives: list[Vec], tau: float) -> float:
    """Mean over queries of −log(exp(q·k+/τ) / (exp(q·k+/τ) + Σ_n exp(q·n/τ))), unit vectors."""
    total = 0.0
    for q, k in zip(queries, keys, strict=True):
        q, k = _unit(q), _unit(k)
        pos = math.exp(_dot(q, k) / tau)
        neg = sum(math.exp(_dot(q, _unit(n)) / tau) for n in negatives)
        total += -math.log(pos / (pos + neg))
    return total / len(queries)


def ref_most_similar(qf: list[Vec], kf: list[Vec], kp: list[Vec]) -> list[Vec]:
    out = []
    for f in qf:
        sims = [_dot(_unit(f), _unit(g)) for g in kf]
        out.append(kp[sims.index(max(sims))])
    return out


def _rand(seed: int, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_select_most_similar_follows_the_backbone_features() -> None:
    qf, kf, kp = _rand(0, 2, 5, 3), _rand(1, 2, 4, 3), _rand(2, 2, 4, 6)
    out = select_most_similar(qf, kf, kp)
    for b in range(2):
        expected = ref_most_similar(qf[b].tolist(), kf[b].tolist(), kp[b].tolist())
        torch.testing.assert_close(out[b], torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize("lam", [0.5, 0.0, 1.0, 0.3])
def test_matches_the_paper_and_queues_fill_with_keys(lam: float) -> None:
    b, n, m, c, d, size, tau = 3, 4, 5, 6, 7, 8, 0.2
    q_g, k_g = _rand(0, b, d), _rand(1, b, d)
    q_d, k_d = _rand(2, b, n, d), _rand(3, b, m, d)
    q_f, k_f = _rand(4, b, n, c), _rand(5, b, m, c)
    torch.manual_seed(0)
    criterion = DenseCLLoss(temperature=tau, memory_bank_size=(size, d), lambda_=lam)
    global_bank = criterion.global_queue.bank.T.tolist()
    dense_bank = criterion.dense_queue.bank.T.tolist()
    loss = criterion(q_g.requires_grad_(), k_g, q_d, k_d, q_f, k_f)

    loss_q = ref_info_nce(q_g.tolist(), k_g.tolist(), global_bank, tau)
    queries, positives = [], []
    for i in range(b):
        keys = [_unit(v) for v in k_d[i].tolist()]
        queries += q_d[i].tolist()
        positives += ref_most_similar(q_f[i].tolist(), k_f[i].tolist(), keys)
    loss_r = ref_info_nce(queries, positives, dense_bank, tau)
    assert loss.item() == pytest.approx((1 - lam) * loss_q + lam * loss_r, rel=1e-9)

    # The keys of this batch were enqueued after scoring: the global keys, and per image the
    # mean of its unit dense keys.
    torch.testing.assert_close(
        criterion.global_queue.bank[:, :b].T, torch.nn.functional.normalize(k_g, dim=1).float()
    )
    image_keys = torch.nn.functional.normalize(
        torch.nn.functional.normalize(k_d, dim=2).mean(dim=1), dim=1
    )
    torch.testing.assert_close(criterion.dense_queue.bank[:, :b].T, image_keys.float())


def test_no_update_without_gradients() -> None:
    criterion = DenseCLLoss(memory_bank_size=(4, 3))
    before = criterion.global_queue.bank.clone()
    criterion(
        _rand(0, 2, 3),
        _rand(1, 2, 3),
        _rand(2, 2, 4, 3),
        _rand(3, 2, 4, 3),
        _rand(4, 2, 4, 5),
        _rand(5, 2, 4, 5),
    )
    torch.testing.assert_close(criterion.global_queue.bank, before)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"lambda_": 1.5}, ConfigError, r"lambda_ must be in \[0, 1\]"),
        ({"lambda_": -1.0}, ConfigError, "lambda_ must be a finite number >= 0"),
        ({"memory_bank_size": 0}, ConfigError, "memory_bank_size must hold at least one key"),
        ({"temperature": 0.0}, ConfigError, "temperature"),
    ],
)
def test_bad_arguments_are_rejected(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        DenseCLLoss(**kwargs)  # type: ignore[arg-type]  # bad input on purpose


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(DataError, match=r"DenseCLLoss: expected dense projections \(B, N, D\)"):
        DenseCLLoss(memory_bank_size=(4, 3))(
            _rand(0, 2, 3),
            _rand(1, 2, 3),
            _rand(2, 2, 3),
            _rand(3, 2, 4, 3),
            _rand(4, 2, 4, 5),
            _rand(5, 2, 4, 5),
        )
