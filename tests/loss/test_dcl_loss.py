"""DCLLoss / DCLWLoss against eq. 6 and 7 of Yeh et al. (2022), written out in loops.

The DDP test runs this file as a script (``python test_dcl_loss.py --worker ...``) in two
fresh interpreters.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from _contract import check_two_view_loss
from _ddp import run_workers, two_view_loss_worker
from selfsup.errors import ConfigError, DataError
from selfsup.loss import DCLLoss, DCLWLoss, NTXentLoss
from selfsup.loss.dcl_loss import dcl, negative_mises_fisher_weights

Vec = list[float]

# --------------------------------------------------------------------------- references


def _unit(v: Vec) -> Vec:
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def _dot(a: Vec, b: Vec) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def ref_vmf_weights(z1: list[Vec], z2: list[Vec], sigma: float) -> Vec:
    """w_vMF(z_i^(1), z_i^(2)) = 2 - exp(⟨z_i^(1), z_i^(2)⟩/σ) / E_i[exp(⟨z_i^(1), z_i^(2)⟩/σ)]."""
    e = [math.exp(_dot(a, b) / sigma) for a, b in zip(z1, z2, strict=True)]
    mean = sum(e) / len(e)
    return [2 - x / mean for x in e]


def ref_dcl(z1: list[Vec], z2: list[Vec], tau: float, sigma: float | None = None) -> float:
    """Eq. 6 (eq. 7 with σ): mean over k ∈ {1, 2} and i of

    L_i^(k) = -w_i ⟨z_i^(1), z_i^(2)⟩/τ + log Σ_{l∈{1,2}, j≠i} exp(⟨z_i^(k), z_j^(l)⟩/τ),

    on L2-normalised vectors, w_i = 1 without σ.
    """
    views = [[_unit(v) for v in z1], [_unit(v) for v in z2]]
    n = len(z1)
    w = [1.0] * n if sigma is None else ref_vmf_weights(views[0], views[1], sigma)
    total = 0.0
    for k in range(2):
        for i in range(n):
            positive = _dot(views[0][i], views[1][i]) / tau
            denominator = 0.0
            for view in views:
                for j in range(n):
                    if j != i:
                        denominator += math.exp(_dot(views[k][i], view[j]) / tau)
            total += -w[i] * positive + math.log(denominator)
    return total / (2 * n)


def _rand(seed: int, *shape: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


temperatures = st.sampled_from([0.05, 0.1, 0.5, 2.0])


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 6),
    dim=st.integers(1, 5),
    tau=temperatures,
    sigma=st.sampled_from([None, 0.1, 0.5, 2.0]),
)
def test_matches_the_paper(seed: int, n: int, dim: int, tau: float, sigma: float | None) -> None:
    z0, z1 = _rand(seed, n, dim), _rand(seed + 1, n, dim)
    loss_fn = DCLLoss(tau) if sigma is None else DCLWLoss(tau, sigma=sigma)
    expected = ref_dcl(z0.tolist(), z1.tolist(), tau, sigma)
    assert loss_fn(z0, z1).item() == pytest.approx(expected, rel=1e-9, abs=1e-9)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 6), sigma=st.sampled_from([0.1, 0.5, 3.0]))
def test_mises_fisher_weights_match_the_paper_and_average_to_one(
    seed: int, n: int, sigma: float
) -> None:
    z0 = nn.functional.normalize(_rand(seed, n, 3), dim=1)
    z1 = nn.functional.normalize(_rand(seed + 1, n, 3), dim=1)
    w = negative_mises_fisher_weights(z0, z1, sigma=sigma)
    assert w.shape == (n,)
    expected = ref_vmf_weights(z0.tolist(), z1.tolist(), sigma)
    torch.testing.assert_close(w, torch.tensor(expected, dtype=torch.float64))
    assert w.mean().item() == pytest.approx(1.0, abs=1e-12)


def test_mises_fisher_weights_carry_no_gradient() -> None:
    z0, z1 = _rand(0, 4, 3).requires_grad_(True), _rand(1, 4, 3)
    assert not negative_mises_fisher_weights(z0, z1).requires_grad


# --------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("n", [2, 3, 6])
@pytest.mark.parametrize("tau", [0.1, 0.5, 2.0])
@pytest.mark.parametrize("loss_cls", [DCLLoss, DCLWLoss])
def test_identical_embeddings_give_log_2n_minus_2(n: int, tau: float, loss_cls: type) -> None:
    # Every similarity is 1: -1/τ + log(2(N-1) e^{1/τ}) = log(2N - 2); the positive pair,
    # left in NT-Xent's denominator (log(2N - 1)), is gone. vMF weights are all 1.
    z = torch.ones(n, 4, dtype=torch.float64)
    assert loss_cls(temperature=tau)(z, z.clone()).item() == pytest.approx(
        math.log(2 * n - 2), abs=1e-12
    )


@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("tau", [0.1, 0.5, 2.0])
def test_orthogonal_aligned_embeddings_closed_form(n: int, tau: float) -> None:
    # Positives at similarity 1, the 2N - 2 negatives at 0: -1/τ + log(2N - 2).
    z = torch.eye(n, dtype=torch.float64)
    loss = DCLLoss(temperature=tau)(z, z.clone())
    assert loss.item() == pytest.approx(-1 / tau + math.log(2 * n - 2), rel=1e-12)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 5), tau=temperatures)
def test_below_nt_xent(seed: int, n: int, tau: float) -> None:
    # Each term's denominator is NT-Xent's without the positive: the loss is strictly lower.
    z0, z1 = _rand(seed, n, 4), _rand(seed + 1, n, 4)
    assert DCLLoss(tau)(z0, z1) < NTXentLoss(tau)(z0, z1)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 5), tau=temperatures)
def test_symmetric_and_scale_invariant(seed: int, n: int, tau: float) -> None:
    z0, z1 = _rand(seed, n, 4), _rand(seed + 1, n, 4)
    scale = torch.rand(n, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    for loss_fn in (DCLLoss(tau), DCLWLoss(tau)):
        torch.testing.assert_close(loss_fn(z0, z1), loss_fn(z1, z0))
        torch.testing.assert_close(loss_fn(z0, z1), loss_fn((scale + 0.1) * z0, 50 * z1))


def test_dclw_equals_dcl_when_every_pair_is_as_close() -> None:
    # Equal positive similarities give w = 1 everywhere.
    z = torch.eye(4, dtype=torch.float64)
    z1 = z.roll(1, dims=1)  # every positive at similarity 0
    torch.testing.assert_close(DCLWLoss(0.3)(z, z1), DCLLoss(0.3)(z, z1))


def test_custom_weight_fn_scales_the_positive_term() -> None:
    z0, z1 = _rand(0, 4, 3), _rand(1, 4, 3)
    zero = DCLLoss(0.5, weight_fn=lambda a, b: torch.zeros(a.shape[0], dtype=a.dtype))
    # w = 0 leaves only the negatives: the loss of a positive pair at similarity 0.
    u0, u1 = nn.functional.normalize(z0, dim=1), nn.functional.normalize(z1, dim=1)
    positive = (u0 * u1).sum(dim=1).mean() / 0.5
    torch.testing.assert_close(zero(z0, z1), DCLLoss(0.5)(z0, z1) + positive)


@pytest.mark.parametrize("loss_cls", [DCLLoss, DCLWLoss])
def test_contract(loss_cls: type[DCLLoss]) -> None:
    check_two_view_loss(loss_cls)


def test_gradient_matches_finite_differences() -> None:
    z0, z1 = _rand(0, 3, 4).requires_grad_(True), _rand(1, 3, 4).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: dcl(a, b, 0.3), (z0, z1))
    # DCLW's weights are constants of the step (no gradient): check with fixed weights.
    weights = _rand(2, 3)
    assert torch.autograd.gradcheck(lambda a, b: dcl(a, b, 0.3, lambda *_: weights), (z0, z1))


def test_gather_distributed_without_process_group_is_single_process() -> None:
    z0, z1 = _rand(0, 4, 3), _rand(1, 4, 3)
    torch.testing.assert_close(DCLWLoss(gather_distributed=True)(z0, z1), DCLWLoss()(z0, z1))


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("temperature", [0.0, -0.1, math.nan, math.inf, True])
@pytest.mark.parametrize("loss_cls", [DCLLoss, DCLWLoss])
def test_bad_temperature_is_rejected_with_its_value(temperature: float, loss_cls: type) -> None:
    with pytest.raises(ConfigError, match=rf"{loss_cls.__name__}: temperature must be") as e:
        loss_cls(temperature=temperature)
    assert repr(temperature) in str(e.value)


@pytest.mark.parametrize("sigma", [0.0, -0.5, math.nan, math.inf, True, "0.5"])
def test_bad_sigma_is_rejected_with_its_value(sigma: object) -> None:
    with pytest.raises(ConfigError, match=r"DCLWLoss: sigma must be a finite number > 0") as e:
        DCLWLoss(sigma=sigma)  # type: ignore[arg-type]  # bad input on purpose
    assert repr(sigma) in str(e.value)
    with pytest.raises(ConfigError, match="negative_mises_fisher_weights: sigma"):
        negative_mises_fisher_weights(_rand(0, 2, 3), _rand(1, 2, 3), sigma)  # type: ignore[arg-type]


def test_bad_weight_fn_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"weight_fn must be None or a function.*got 2.0"):
        DCLLoss(weight_fn=2.0)  # type: ignore[arg-type]  # bad input on purpose
    wrong = DCLLoss(weight_fn=lambda a, b: torch.ones(1, dtype=a.dtype))
    with pytest.raises(DataError, match=r"one weight per image of the batch, shape \(3,\)"):
        wrong(_rand(0, 3, 2), _rand(1, 3, 2))


@pytest.mark.parametrize(("a", "b"), [((3, 4), (3, 5)), ((3,), (3,)), ((1, 4), (1, 4))])
def test_bad_shapes_are_rejected(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    with pytest.raises(DataError, match="DCLLoss"):
        DCLLoss()(torch.zeros(a), torch.zeros(b))


def test_gather_distributed_without_distributed_support_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.distributed, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="gather_distributed=True"):
        DCLWLoss(gather_distributed=True)


# --------------------------------------------------------------------------- DDP, 2 processes

WORLD_SIZE, N_LOCAL, IN_DIM, OUT_DIM = 2, 3, 6, 4
TAU = 0.3


class _BothLosses(nn.Module):
    """DCL + 2 DCLW in one run of the workers (each start of two interpreters costs seconds)."""

    def __init__(self, gather_distributed: bool) -> None:
        super().__init__()
        self.dcl = DCLLoss(TAU, gather_distributed=gather_distributed)
        self.dclw = DCLWLoss(TAU, sigma=0.4, gather_distributed=gather_distributed)

    def forward(self, out0: torch.Tensor, out1: torch.Tensor) -> torch.Tensor:
        loss: torch.Tensor = self.dcl(out0, out1) + 2 * self.dclw(out0, out1)
        return loss


def _make_model() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(IN_DIM, OUT_DIM).double()


def _global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    n = WORLD_SIZE * N_LOCAL
    return _rand(100, n, IN_DIM), _rand(200, n, IN_DIM)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ddp_two_processes_reproduce_one_process(tmp_path: Path) -> None:
    # Each process's loss is the mean over its own 2n terms against the gathered batch (and
    # DCLW's weights are those of the global batch), so the processes' mean is the global
    # loss; GatherLayer and DDP's averaging make every process's gradient its gradient.
    run_workers(Path(__file__), tmp_path, WORLD_SIZE, timeout=120.0)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE)]

    model = _make_model()
    x0, x1 = _global_batch()
    out0, out1 = model(torch.cat([x0, x1])).chunk(2)
    loss = _BothLosses(gather_distributed=False)(out0, out1)
    loss.backward()
    mean_loss = torch.stack([res["loss"] for res in results]).mean()
    torch.testing.assert_close(mean_loss, loss.detach(), rtol=1e-12, atol=1e-12)
    for res in results:
        for name, p in model.named_parameters():
            assert p.grad is not None
            torch.testing.assert_close(res[f"grad.{name}"], p.grad, rtol=1e-10, atol=1e-12)
    # Different rows per process: a rank mix-up would show.
    assert not torch.allclose(results[0]["loss"], results[1]["loss"])


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--worker":
    two_view_loss_worker(
        sys.argv, _make_model, _global_batch, lambda: _BothLosses(gather_distributed=True), N_LOCAL
    )
