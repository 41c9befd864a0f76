"""DetConSLoss / DetConBLoss against DetCon's region contrast (Hénaff et al. 2021), in loops."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from selfsup.errors import ConfigError, DataError
from selfsup.loss import DetConBLoss, DetConSLoss

Vec = list[float]


def _unit(v: Vec) -> Vec:
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def _dot(u: Vec, v: Vec) -> float:
    return sum(a * b for a, b in zip(u, v, strict=True))


def ref_direction(
    pred: list[list[Vec]],
    other: list[list[Vec]],
    same: list[list[Vec]],
    mask: list[list[int]],
    mask_other: list[list[int]],
    tau: float,
) -> float:
    """Mean over regions (i, r) of w · Σ_pos (1/P) (−log softmax): candidates are every region
    of every image in the other view and in the same view except image i's regions with r's
    id; positives are image i's regions in the other view with r's id; w = 1/(copies of r's
    id in its view), 0 without positives."""
    b, m = len(pred), len(pred[0])
    total = 0.0
    for i in range(b):
        for r in range(m):
            p = _unit(pred[i][r])
            logits, positive = [], []
            for j in range(b):
                for s in range(m):
                    logits.append(_dot(p, _unit(other[j][s])) / tau)
                    positive.append(j == i and mask_other[j][s] == mask[i][r])
            for j in range(b):
                for s in range(m):
                    if j == i and mask[j][s] == mask[i][r]:
                        continue
                    logits.append(_dot(p, _unit(same[j][s])) / tau)
                    positive.append(False)
            n_pos = sum(positive)
            if n_pos == 0:
                continue
            top = max(logits)
            log_z = top + math.log(sum(math.exp(x - top) for x in logits))
            ce = -sum(x - log_z for x, pos in zip(logits, positive, strict=True) if pos) / n_pos
            copies = sum(1 for s in range(m) if mask[i][s] == mask[i][r])
            total += ce / copies
    return total / (b * m)


def _rand(seed: int, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _masks(seed: int, b: int, m: int, n: int) -> Tensor:
    return torch.randint(0, n, (b, m), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("seed", range(4))
def test_detconb_matches_the_paper(seed: int) -> None:
    b, m, d, tau = 3, 4, 5, 0.1
    p0, p1, t0, t1 = (_rand(seed + k, b, m, d) for k in range(4))
    m0, m1 = _masks(seed, b, m, 5), _masks(seed + 9, b, m, 5)  # repeats and missing ids
    loss = DetConBLoss(temperature=tau)(p0, p1, t0, t1, m0, m1)
    expected = ref_direction(
        p0.tolist(), t1.tolist(), t0.tolist(), m0.tolist(), m1.tolist(), tau
    ) + ref_direction(p1.tolist(), t0.tolist(), t1.tolist(), m1.tolist(), m0.tolist(), tau)
    assert loss.item() == pytest.approx(expected, rel=1e-9)


def test_detcons_is_detconb_with_the_projections_on_both_sides() -> None:
    z0, z1 = _rand(0, 2, 3, 4), _rand(1, 2, 3, 4)
    m0, m1 = _masks(0, 2, 3, 3), _masks(1, 2, 3, 3)
    torch.testing.assert_close(
        DetConSLoss(temperature=0.2)(z0, z1, m0, m1),
        DetConBLoss(temperature=0.2)(z0, z1, z0, z1, m0, m1),
    )


def test_regions_without_a_partner_are_left_out() -> None:
    z0, z1 = _rand(0, 2, 2, 4), _rand(1, 2, 2, 4)
    disjoint = DetConSLoss()(z0, z1, torch.tensor([[0, 1], [0, 1]]), torch.tensor([[2, 3], [2, 3]]))
    assert disjoint.item() == 0.0


@pytest.mark.parametrize("tau", [0.0, -1.0, math.nan])
def test_bad_temperature_is_rejected(tau: float) -> None:
    with pytest.raises(ConfigError, match="temperature"):
        DetConBLoss(temperature=tau)
    with pytest.raises(ConfigError, match="temperature"):
        DetConSLoss(temperature=tau)


def test_bad_shapes_are_rejected() -> None:
    z = _rand(0, 2, 3, 4)
    masks = _masks(0, 2, 3, 3)
    with pytest.raises(DataError, match=r"DetConSLoss: expected region vectors \(B, M, D\)"):
        DetConSLoss()(z, z[:, :2], masks, masks)
    with pytest.raises(DataError, match="integer masks"):
        DetConBLoss()(z, z, z, z, masks.double(), masks)
