"""DetConSLoss / DetConBLoss against DetCon's region contrast (Hénaff et al. 2021), in loops.

The DDP test runs this file as a script (``python test_detcon_loss.py --worker ...``) in two
fresh interpreters.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from _ddp import assert_ddp_matches_full_batch, two_view_loss_worker
from selfsup.errors import ConfigError, DataError
from selfsup.loss import DetConBLoss, DetConSLoss
from selfsup.utils import dist

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


def test_gather_distributed_without_process_group_is_single_process() -> None:
    z0, z1 = _rand(0, 3, 2, 4), _rand(1, 3, 2, 4)
    m0, m1 = _masks(0, 3, 2, 3), _masks(1, 3, 2, 3)
    for gather in (True, False):
        assert DetConSLoss(gather_distributed=gather).gather_distributed is gather
    torch.testing.assert_close(
        DetConSLoss(gather_distributed=True)(z0, z1, m0, m1),
        DetConSLoss(gather_distributed=False)(z0, z1, m0, m1),
    )


# --------------------------------------------------------------------------- DDP, 2 processes

WORLD_SIZE, N_LOCAL, IN_DIM, REGIONS, DIM = 2, 3, 5, 3, 4
GLOBAL_MASKS = (
    _masks(7, WORLD_SIZE * N_LOCAL, REGIONS, 3),
    _masks(8, WORLD_SIZE * N_LOCAL, REGIONS, 3),
)


class _Regions(nn.Module):
    """Both views' (B, M·D) outputs as DetCon regions with this process's rows of the mask
    ids; DetCon-B scores the predictions against detached copies (a momentum target has no
    gradient)."""

    def __init__(self, variant: str) -> None:
        super().__init__()
        self.variant = variant

    def forward(self, out_a: Tensor, out_b: Tensor) -> Tensor:
        b = out_a.shape[0]
        rows = slice(dist.rank() * b, (dist.rank() + 1) * b)
        m0, m1 = GLOBAL_MASKS[0][rows], GLOBAL_MASKS[1][rows]
        a, c = out_a.view(b, REGIONS, DIM), out_b.view(b, REGIONS, DIM)
        if self.variant == "s":
            loss: Tensor = DetConSLoss()(a, c, m0, m1)
        else:
            loss = DetConBLoss()(a, c, 2 * c.detach(), 2 * a.detach(), m0, m1)
        return loss


def _make_model() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(IN_DIM, REGIONS * DIM).double()


def _global_batch() -> tuple[Tensor, Tensor]:
    n = WORLD_SIZE * N_LOCAL
    return _rand(100, n, IN_DIM), _rand(200, n, IN_DIM)


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("variant", ["s", "b"])
def test_ddp_two_processes_reproduce_one_process(
    tmp_path: Path, variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every process contrasts the regions of the gathered global batch: loss and gradients
    # are those of one process on the whole batch. The workers inherit the environment.
    monkeypatch.setenv("DETCON_DDP_VARIANT", variant)
    assert_ddp_matches_full_batch(
        Path(__file__), tmp_path, WORLD_SIZE, _make_model, _global_batch, lambda: _Regions(variant)
    )


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--worker":
    two_view_loss_worker(
        sys.argv,
        _make_model,
        _global_batch,
        lambda: _Regions(os.environ["DETCON_DDP_VARIANT"]),
        N_LOCAL,
    )
