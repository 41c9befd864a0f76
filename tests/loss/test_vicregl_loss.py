"""VICRegLLoss against VICRegL's global and local criteria (Bardes et al. 2022), in loops.

The DDP test runs this file as a script (``python test_vicregl_loss.py --worker ...``) in two
fresh interpreters.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from _ddp import assert_ddp_matches_full_batch, two_view_loss_worker
from selfsup.errors import ConfigError, DataError
from selfsup.loss import VICRegLLoss, VICRegLoss
from selfsup.loss.vicregl_loss import nearest_neighbors
from selfsup.utils import dist

Vec = list[float]


def _dist(u: Vec, v: Vec) -> float:
    return math.sqrt(sum((a - b) ** 2 for a, b in zip(u, v, strict=True)))


def ref_matches(
    inp: list[Vec], cand: list[Vec], keys_in: list[Vec], keys_cand: list[Vec], k: int
) -> tuple[list[Vec], list[Vec]]:
    """Per input: its nearest candidate by key distance; keep the k inputs closest to theirs,
    by increasing distance."""
    best = []
    for i, key in enumerate(keys_in):
        dists = [_dist(key, other) for other in keys_cand]
        j = dists.index(min(dists))
        best.append((min(dists), i, j))
    best.sort()
    chosen = best[: min(k, len(inp))]
    return [inp[i] for _, i, _ in chosen], [cand[j] for _, _, j in chosen]


def ref_vicreg(za: list[list[Vec]], zb: list[list[Vec]], lam: float, mu: float, nu: float) -> float:
    """VICReg of (B, k, d) pairs: statistics over the batch per match, averaged over matches."""
    b, k, d = len(za), len(za[0]), len(za[0][0])
    inv = sum(
        (za[s][m][c] - zb[s][m][c]) ** 2 for s in range(b) for m in range(k) for c in range(d)
    )
    inv /= b * k * d

    def var(z: list[list[Vec]]) -> float:
        total = 0.0
        for m in range(k):
            for c in range(d):
                mean = sum(z[s][m][c] for s in range(b)) / b
                v = sum((z[s][m][c] - mean) ** 2 for s in range(b)) / (b - 1)
                total += max(0.0, 1.0 - math.sqrt(v + 1e-4))
        return total / (k * d)

    def cov(z: list[list[Vec]]) -> float:
        total = 0.0
        for m in range(k):
            means = [sum(z[s][m][c] for s in range(b)) / b for c in range(d)]
            for i in range(d):
                for j in range(d):
                    if i != j:
                        cij = sum(
                            (z[s][m][i] - means[i]) * (z[s][m][j] - means[j]) for s in range(b)
                        ) / (b - 1)
                        total += cij * cij / d
        return total / k

    return lam * inv + mu * 0.5 * (var(za) + var(zb)) + nu * (cov(za) + cov(zb))


def ref_vicregl(
    views: list[tuple[list[Vec], list[list[Vec]]]],
    grids: list[list[list[Vec]]],
    alpha: float = 0.75,
    lam: float = 25.0,
    mu: float = 25.0,
    nu: float = 1.0,
    matches: tuple[int, int] = (20, 4),
    n_global: int = 2,
) -> float:
    """α ℓ_global + (1 − α) ℓ_local over lists (global (B, D), local (B, N, d)), grids (B, N, 2)."""
    glob = [g for g, _ in views]
    b = len(glob[0])
    inv, count = 0.0, 0
    for i in range(n_global):
        for j in range(len(views)):
            if j != i:
                inv += sum(
                    (x - y) ** 2
                    for s in range(b)
                    for x, y in zip(glob[i][s], glob[j][s], strict=True)
                ) / (b * len(glob[i][0]))
                count += 1
    inv /= count
    var = cov = 0.0
    for z in glob:
        stats = ref_vicreg([[row] for row in z], [[row] for row in z], 0.0, 1.0, 0.0)
        var += stats
        cov += ref_vicreg([[row] for row in z], [[row] for row in z], 0.0, 0.0, 0.5)
    global_loss = lam * inv + mu * var / len(glob) + nu * cov / len(glob)

    local, count = 0.0, 0
    for i in range(n_global):
        for j in range(len(views)):
            if j == i:
                continue
            loss = 0.0
            for keys_a, keys_b in (([views[i][1]], [views[j][1]]), ([grids[i]], [grids[j]])):
                pairs_ab = [
                    ref_matches(
                        views[i][1][s], views[j][1][s], keys_a[0][s], keys_b[0][s], matches[0]
                    )
                    for s in range(b)
                ]
                pairs_ba = [
                    ref_matches(
                        views[j][1][s], views[i][1][s], keys_b[0][s], keys_a[0][s], matches[1]
                    )
                    for s in range(b)
                ]
                loss += 0.5 * (
                    ref_vicreg([p[0] for p in pairs_ab], [p[1] for p in pairs_ab], lam, mu, nu / 2)
                    + ref_vicreg(
                        [p[0] for p in pairs_ba], [p[1] for p in pairs_ba], lam, mu, nu / 2
                    )
                )
            local += loss
            count += 1
    return alpha * global_loss + (1 - alpha) * local / count


def _rand(seed: int, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _views(
    seed: int, n_views: int, b: int = 4, sizes: tuple[int, ...] = (3, 3, 2)
) -> tuple[list[tuple[Tensor, Tensor]], list[Tensor]]:
    views: list[tuple[Tensor, Tensor]] = []
    grids: list[Tensor] = []
    for v in range(n_views):
        h = sizes[v] if v < len(sizes) else 2
        views.append((_rand(seed + 10 * v, b, 5), _rand(seed + 10 * v + 1, b, h, h, 3)))
        g = torch.rand(b, h, h, 2, generator=torch.Generator().manual_seed(seed + 10 * v + 2))
        grids.append(g.double())
    return views, grids


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("matches", [(20, 4), (3, 2)])
def test_matches_the_paper_with_global_and_local_views(seed: int, matches: tuple[int, int]) -> None:
    views, grids = _views(seed, 3)
    loss = VICRegLLoss(num_matches=matches)(views[:2], grids[:2], views[2:], grids[2:])
    as_lists = [(g.tolist(), m.flatten(1, 2).tolist()) for g, m in views]
    expected = ref_vicregl(as_lists, [g.flatten(1, 2).tolist() for g in grids], matches=matches)
    assert loss.item() == pytest.approx(expected, rel=1e-9)


def test_global_views_only() -> None:
    views, grids = _views(7, 2)
    loss = VICRegLLoss(alpha=0.5, num_matches=(4, 2))(views, grids)
    as_lists = [(g.tolist(), m.flatten(1, 2).tolist()) for g, m in views]
    grid_lists = [g.flatten(1, 2).tolist() for g in grids]
    expected = ref_vicregl(as_lists, grid_lists, alpha=0.5, matches=(4, 2))
    assert loss.item() == pytest.approx(expected, rel=1e-9)


def test_alpha_one_is_vicreg_of_the_global_features_with_halved_weights() -> None:
    # Two global views: invariance of the pair, variance and covariance averaged over the two
    # views (VICReg sums the covariances and halves the variances: the same up to ν/2).
    views, grids = _views(3, 2)
    loss = VICRegLLoss(alpha=1.0)(views, grids)
    expected = VICRegLoss(nu_param=0.5)(views[0][0], views[1][0])
    torch.testing.assert_close(loss, expected)


def test_nearest_neighbors_keeps_the_closest_pairs_in_order() -> None:
    inp = torch.tensor([[[0.0], [10.0], [5.0]]])
    cand = torch.tensor([[[9.0], [4.5]]])
    a, b = nearest_neighbors(inp, cand, torch.cdist(inp, cand), num_matches=2)
    assert a.flatten().tolist() == [5.0, 10.0]  # distances 0.5 and 1.0; 0.0 is 4.5 away
    assert b.flatten().tolist() == [4.5, 9.0]
    a, _ = nearest_neighbors(inp, cand, torch.cdist(inp, cand), num_matches=10)
    assert a.shape == (1, 3, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 1.5}, r"alpha must be in \[0, 1\]"),
        ({"alpha": -0.1}, "alpha must be a finite number >= 0"),
        ({"lambda_param": math.nan}, "lambda_param must be a finite number >= 0"),
        ({"num_matches": (0, 4)}, "num_matches must be two integers >= 1"),
        ({"num_matches": 20}, "num_matches must be two integers >= 1"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=f"VICRegLLoss: {message}"):
        VICRegLLoss(**kwargs)  # type: ignore[arg-type]  # bad input on purpose


def test_bad_inputs_are_rejected() -> None:
    views, grids = _views(0, 3)
    with pytest.raises(DataError, match="at least 2 global views with one grid each"):
        VICRegLLoss()(views[:1], grids[:1])
    with pytest.raises(DataError, match="both be given with one grid per view"):
        VICRegLLoss()(views[:2], grids[:2], views[2:], None)
    with pytest.raises(DataError, match=r"a grid \(B, h, w, 2\)"):
        VICRegLLoss()(views[:2], [grids[0], grids[2]])


def test_gather_distributed_without_process_group_is_single_process() -> None:
    views, grids = _views(0, 3)
    gathered = VICRegLLoss(gather_distributed=True)(views[:2], grids[:2], views[2:], grids[2:])
    plain = VICRegLLoss()(views[:2], grids[:2], views[2:], grids[2:])
    torch.testing.assert_close(gathered, plain)


# --------------------------------------------------------------------------- DDP, 2 processes

WORLD_SIZE, N_LOCAL, IN_DIM, GLOBAL_DIM, SIDE, LOCAL_DIM = 2, 3, 5, 4, 3, 3
GRIDS = [
    torch.rand(WORLD_SIZE * N_LOCAL, SIDE, SIDE, 2, generator=torch.Generator().manual_seed(s))
    for s in (1, 2)
]


class _Views(nn.Module):
    """Both views' outputs (B, GLOBAL_DIM + SIDE·SIDE·LOCAL_DIM) as VICRegL features: two
    global views, and a local view made of the second one's top-left 2 x 2 cells; the grids
    are this process's rows of fixed global grids."""

    def forward(self, out_a: Tensor, out_b: Tensor) -> Tensor:
        b = out_a.shape[0]
        rows = slice(dist.rank() * b, (dist.rank() + 1) * b)
        views = [
            (out[:, :GLOBAL_DIM], out[:, GLOBAL_DIM:].view(b, SIDE, SIDE, LOCAL_DIM))
            for out in (out_a, out_b)
        ]
        grids = [g[rows].double() for g in GRIDS]
        local = [(0.5 * views[1][0], views[1][1][:, :2, :2])]
        loss: Tensor = VICRegLLoss(gather_distributed=True, num_matches=(4, 2))(
            views, grids, local, [grids[1][:, :2, :2]]
        )
        return loss


def _make_model() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(IN_DIM, GLOBAL_DIM + SIDE * SIDE * LOCAL_DIM).double()


def _global_batch() -> tuple[Tensor, Tensor]:
    n = WORLD_SIZE * N_LOCAL
    return _rand(100, n, IN_DIM), _rand(200, n, IN_DIM)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ddp_two_processes_reproduce_one_process(tmp_path: Path) -> None:
    # The batch statistics (variance, covariance) and the loss are those of the gathered
    # global batch on every process.
    assert_ddp_matches_full_batch(
        Path(__file__), tmp_path, WORLD_SIZE, _make_model, _global_batch, _Views
    )


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--worker":
    two_view_loss_worker(sys.argv, _make_model, _global_batch, _Views, N_LOCAL)
