"""MSNLoss / PMSNLoss / PMSNCustomLoss against sec. 3 of Assran et al. (2022) and Lee et al.
(2024), written out in loops.

The DDP test runs this file as a script (``python test_msn_loss.py --worker ...``) in two
fresh interpreters.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from _contract import check_two_view_loss
from _ddp import assert_ddp_matches_full_batch, two_view_loss_worker
from selfsup.errors import ConfigError, DataError
from selfsup.loss import MSNLoss, PMSNCustomLoss, PMSNLoss
from selfsup.loss.msn_loss import power_law_distribution

Vec = list[float]


def _unit(v: Vec) -> Vec:
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def _softmax(scores: Vec) -> Vec:
    top = max(scores)
    e = [math.exp(s - top) for s in scores]
    return [x / sum(e) for x in e]


def _probs(z: Vec, prototypes: list[Vec], tau: float) -> Vec:
    u = _unit(z)
    return _softmax(
        [sum(a * b for a, b in zip(u, _unit(q), strict=True)) / tau for q in prototypes]
    )


def _ref_sinkhorn(p: list[Vec], iterations: int) -> list[Vec]:
    """Q = P / ΣP; rows (prototypes) to 1/K, columns (samples) to 1/B, alternately; times B."""
    b, k = len(p), len(p[0])
    total = sum(sum(r) for r in p)
    q = [[x / total for x in r] for r in p]
    for _ in range(iterations):
        for j in range(k):
            s = sum(q[i][j] for i in range(b))
            for i in range(b):
                q[i][j] /= s * k
        for i in range(b):
            s = sum(q[i])
            q[i] = [x / (s * b) for x in q[i]]
    return [[x * b for x in r] for r in q]


def ref_msn(
    anchors: list[Vec],
    targets: list[Vec],
    prototypes: list[Vec],
    tau: float = 0.1,
    sharpen_t: float = 0.25,
    lam: float = 1.0,
    prior: Vec | None = None,
    sinkhorn_iterations: int = 0,
) -> float:
    """1/(MB) Σ_{i,m} H(p⁺_i, p_{i,m}) + λ R(p̄): R = −H(p̄), or KL(p̄ ‖ π) with a prior π."""
    b = len(targets)
    sharp = []
    for t in targets:
        p = [x ** (1 / sharpen_t) for x in _probs(t, prototypes, tau)]
        sharp.append([x / sum(p) for x in p])
    if sinkhorn_iterations:
        sharp = _ref_sinkhorn(sharp, sinkhorn_iterations)
    anchor_probs = [_probs(a, prototypes, tau) for a in anchors]
    ce = 0.0
    for row, p in enumerate(anchor_probs):
        target = sharp[row % b]  # anchors are view by view: row j·B + i is image i
        ce -= sum(t * math.log(x) for t, x in zip(target, p, strict=True))
    ce /= len(anchors)
    k = len(prototypes)
    mean = [sum(p[j] for p in anchor_probs) / len(anchors) for j in range(k)]
    if prior is None:
        reg = sum(m * math.log(m) for m in mean)
    else:
        reg = sum(m * (math.log(m) - math.log(pi)) for m, pi in zip(mean, prior, strict=True))
    return ce + lam * reg


def _inputs(seed: int, b: int = 3, views: int = 2, d: int = 4, k: int = 5) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(b * views, d, generator=g, dtype=torch.float64),
        torch.randn(b, d, generator=g, dtype=torch.float64),
        torch.randn(k, d, generator=g, dtype=torch.float64),
    ]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    ("tau", "sharpen_t", "lam", "iterations"),
    [(0.1, 0.25, 1.0, 0), (0.5, 0.5, 0.3, 0), (0.2, 0.25, 1.0, 3)],
)
def test_msn_matches_the_paper(
    seed: int, tau: float, sharpen_t: float, lam: float, iterations: int
) -> None:
    anchors, targets, prototypes = _inputs(seed)
    loss = MSNLoss(temperature=tau, regularization_weight=lam, sinkhorn_iterations=iterations)
    got = loss(anchors, targets, prototypes, target_sharpen_temperature=sharpen_t)
    want = ref_msn(
        anchors.tolist(), targets.tolist(), prototypes.tolist(), tau, sharpen_t, lam,
        sinkhorn_iterations=iterations,
    )  # fmt: skip
    assert float(got) == pytest.approx(want, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("exponent", [0.25, 1.0])
def test_pmsn_is_kl_to_a_power_law(seed: int, exponent: float) -> None:
    anchors, targets, prototypes = _inputs(seed, k=6)
    k = prototypes.shape[0]
    weights = [(j + 1) ** (-exponent) for j in range(k)]
    prior = [w / sum(weights) for w in weights]
    got = PMSNLoss(power_law_exponent=exponent)(anchors, targets, prototypes)
    want = ref_msn(anchors.tolist(), targets.tolist(), prototypes.tolist(), prior=prior)
    assert float(got) == pytest.approx(want, rel=1e-9)
    torch.testing.assert_close(
        power_law_distribution(k, exponent).double(), torch.tensor(prior, dtype=torch.float64)
    )


def test_pmsn_custom_takes_a_callable_or_a_tensor() -> None:
    anchors, targets, prototypes = _inputs(5)
    prior = torch.softmax(torch.arange(5, dtype=torch.float64), dim=0)
    want = ref_msn(anchors.tolist(), targets.tolist(), prototypes.tolist(), prior=prior.tolist())
    for target in (prior, lambda mean: prior.to(mean)):
        got = PMSNCustomLoss(target_distribution=target)(anchors, targets, prototypes)
        assert float(got) == pytest.approx(want, rel=1e-9)


def test_uniform_prior_is_msn_up_to_log_k() -> None:
    # KL(p̄ ‖ U) = log K − H(p̄): same gradients, a constant apart.
    anchors, targets, prototypes = _inputs(6)
    anchors.requires_grad_(True)
    uniform = torch.full((5,), 0.2, dtype=torch.float64)
    msn = MSNLoss()(anchors, targets, prototypes)
    (g_msn,) = torch.autograd.grad(msn, anchors)
    pmsn = PMSNCustomLoss(uniform)(anchors, targets, prototypes)
    (g_pmsn,) = torch.autograd.grad(pmsn, anchors)
    assert float((pmsn - msn).detach()) == pytest.approx(math.log(5))
    torch.testing.assert_close(g_msn, g_pmsn)


def test_targets_get_no_gradient_and_prototypes_do() -> None:
    anchors, targets, prototypes = _inputs(7)
    for t in (anchors, targets, prototypes):
        t.requires_grad_(True)
    MSNLoss()(anchors, targets, prototypes).backward()
    assert targets.grad is None
    assert anchors.grad is not None
    assert anchors.grad.abs().sum() > 0
    assert prototypes.grad is not None
    assert prototypes.grad.abs().sum() > 0


def test_mean_entropy_term_spreads_the_anchors() -> None:
    # Anchors all on one prototype: the regulariser alone is −H(p̄) ≈ 0 > −log K.
    prototypes = torch.eye(4, dtype=torch.float64)
    anchors = prototypes[:1].repeat(4, 1)
    no_reg = MSNLoss(regularization_weight=0.0)(anchors, anchors, prototypes)
    reg = MSNLoss(regularization_weight=1.0)(anchors, anchors, prototypes)
    assert float(reg - no_reg) > -math.log(4) + 0.5


class _PairOfViews(nn.Module):
    """Both views as anchor and as target of the other, over fixed prototypes."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss
        self.prototypes = torch.randn(8, 8, generator=torch.Generator().manual_seed(0))

    def forward(self, z0: Tensor, z1: Tensor) -> Tensor:
        c = self.prototypes[:, : z0.shape[1]].to(z0)
        out: Tensor = 0.5 * (self.loss(z0, z1, c) + self.loss(z1, z0, c))
        return out


@pytest.mark.parametrize("make", [MSNLoss, PMSNLoss])
def test_contract(make: type[MSNLoss]) -> None:
    check_two_view_loss(lambda: _PairOfViews(make()))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": 0.0}, "MSNLoss: temperature must be a finite number > 0, got 0.0"),
        ({"temperature": math.nan}, "temperature must be a finite number > 0"),
        ({"sinkhorn_iterations": -1}, "sinkhorn_iterations must be an integer >= 0, got -1"),
        ({"sinkhorn_iterations": 1.5}, "sinkhorn_iterations must be an integer >= 0"),
        ({"regularization_weight": -1}, "regularization_weight must be a finite number >= 0"),
        ({"target_distribution": torch.ones(3)}, "target_distribution must be a 1-d tensor"),
        ({"target_distribution": "power"}, "target_distribution must be None, a tensor or"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MSNLoss(**kwargs)  # type: ignore[arg-type]


def test_bad_pmsn_arguments_are_refused() -> None:
    with pytest.raises(ConfigError, match="PMSNLoss: power_law_exponent must be a finite number"):
        PMSNLoss(power_law_exponent=0)
    with pytest.raises(ConfigError, match="PMSNCustomLoss: target_distribution is required"):
        PMSNCustomLoss(target_distribution=None)  # type: ignore[arg-type]


def test_bad_shapes_are_refused() -> None:
    anchors, targets, prototypes = _inputs(8)
    with pytest.raises(DataError, match="whole number of views of the 3 targets"):
        MSNLoss()(anchors[:5], targets, prototypes)
    with pytest.raises(DataError, match="must share the feature size"):
        MSNLoss()(anchors, targets, prototypes[:, :3])
    with pytest.raises(DataError, match="one entry per prototype"):
        PMSNCustomLoss(torch.full((4,), 0.25))(anchors, targets, prototypes)


def test_gather_distributed_without_process_group_is_single_process() -> None:
    anchors, targets, prototypes = _inputs(9)
    torch.testing.assert_close(
        MSNLoss(gather_distributed=True)(anchors, targets, prototypes),
        MSNLoss()(anchors, targets, prototypes),
    )


# --------------------------------------------------------------------------- DDP, 2 processes

WORLD_SIZE, N_LOCAL, IN_DIM, OUT_DIM = 2, 3, 5, 4
PROTOTYPES = torch.randn(6, OUT_DIM, generator=torch.Generator().manual_seed(3)).double()


class _Anchors(nn.Module):
    """View a and a scaled copy as two anchor views (view-major), view b as the target; the
    Sinkhorn balancing and p̄ then depend on the whole batch."""

    def forward(self, out_a: Tensor, out_b: Tensor) -> Tensor:
        anchors = torch.cat([out_a, 0.5 * out_a + 0.1])
        loss: Tensor = MSNLoss(sinkhorn_iterations=2, gather_distributed=True)(
            anchors, out_b, PROTOTYPES
        )
        return loss


def _make_model() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(IN_DIM, OUT_DIM).double()


def _global_batch() -> tuple[Tensor, Tensor]:
    n = WORLD_SIZE * N_LOCAL
    g = torch.Generator().manual_seed(100)
    return (
        torch.randn(n, IN_DIM, generator=g, dtype=torch.float64),
        torch.randn(n, IN_DIM, generator=g, dtype=torch.float64),
    )


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ddp_two_processes_reproduce_one_process(tmp_path: Path) -> None:
    # Anchors and targets are gathered: every process computes the global-batch loss.
    assert_ddp_matches_full_batch(
        Path(__file__), tmp_path, WORLD_SIZE, _make_model, _global_batch, _Anchors
    )


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--worker":
    two_view_loss_worker(sys.argv, _make_model, _global_batch, _Anchors, N_LOCAL)
