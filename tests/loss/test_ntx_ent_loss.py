"""Tests for selfsup.loss.ntx_ent_loss against SimCLR's eq. 1 and MoCo's InfoNCE.

The references below are written from the papers with explicit Python loops over plain
floats, independently of the vectorised implementation. The DDP test runs this file as a
script (``python test_ntx_ent_loss.py --worker ...``) in two fresh interpreters.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from _ddp import gloo_group, run_workers
from selfsup.errors import ConfigError, DataError
from selfsup.loss import NTXentLoss
from selfsup.loss.ntx_ent_loss import info_nce, ntxent

Vec = list[float]

# --------------------------------------------------------------------------- references


def _sim(u: Vec, v: Vec) -> float:
    """Cosine similarity sim(u, v) = uᵀv / (‖u‖‖v‖)."""
    dot = sum(a * b for a, b in zip(u, v, strict=True))
    return dot / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))


def ref_simclr(z0: list[Vec], z1: list[Vec], tau: float) -> float:
    """SimCLR eq. 1, averaged over all 2N positive pairs (i, j) and (j, i).

    The 2N views are z_k = z0[k] for k < N and z_k = z1[k - N] otherwise; the positive of
    view i is the other view of the same image.
    """
    z = z0 + z1
    two_n = len(z)
    total = 0.0
    for i in range(two_n):
        j = (i + two_n // 2) % two_n
        num = math.exp(_sim(z[i], z[j]) / tau)
        den = sum(math.exp(_sim(z[i], z[k]) / tau) for k in range(two_n) if k != i)
        total += -math.log(num / den)
    return total / two_n


def ref_simclr_rows(z0: list[Vec], z1: list[Vec], tau: float, first: int, count: int) -> float:
    """Mean of l(i, j) over the views of images first..first+count-1 only (one process)."""
    z = z0 + z1
    n = len(z0)
    rows = [*range(first, first + count), *range(n + first, n + first + count)]
    total = 0.0
    for i in rows:
        j = (i + n) % (2 * n)
        num = math.exp(_sim(z[i], z[j]) / tau)
        den = sum(math.exp(_sim(z[i], z[k]) / tau) for k in range(2 * n) if k != i)
        total += -math.log(num / den)
    return total / len(rows)


def ref_moco(q: list[Vec], k: list[Vec], negatives: list[Vec], tau: float) -> float:
    """MoCo eq. 1 averaged over queries; ``negatives`` is a list of K vectors."""
    total = 0.0
    for qi, ki in zip(q, k, strict=True):
        pos = math.exp(_sim(qi, ki) / tau)
        den = pos + sum(math.exp(_sim(qi, kn) / tau) for kn in negatives)
        total += -math.log(pos / den)
    return total / len(q)


def _as_lists(x: torch.Tensor) -> list[Vec]:
    return [[float(v) for v in row] for row in x.detach().double()]


def _rand(seed: int, *shape: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


temperatures = st.sampled_from([0.07, 0.1, 0.2, 0.5, 1.0, 3.0])


# --------------------------------------------------------------------------- paper formulas


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 5),
    dim=st.integers(1, 6),
    tau=temperatures,
)
def test_matches_simclr_eq1(seed: int, n: int, dim: int, tau: float) -> None:
    z0, z1 = _rand(seed, n, dim), _rand(seed + 1, n, dim)
    loss = NTXentLoss(temperature=tau)(z0, z1)
    assert loss.shape == ()
    expected = ref_simclr(_as_lists(z0), _as_lists(z1), tau)
    assert loss.item() == pytest.approx(expected, rel=1e-9, abs=1e-9)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    world=st.integers(2, 3),
    n_local=st.integers(1, 3),
    tau=temperatures,
)
def test_gathered_rows_match_eq1_restricted_to_local_views(
    seed: int, world: int, n_local: int, tau: float
) -> None:
    # What one process computes with gathered candidates: its own views' terms of eq. 1.
    m = world * n_local
    z0_all, z1_all = _rand(seed, m, 4), _rand(seed + 1, m, 4)
    per_rank = []
    for r in range(world):
        local = slice(r * n_local, (r + 1) * n_local)
        loss = ntxent(
            z0_all[local], z1_all[local], tau, z0_all=z0_all, z1_all=z1_all, offset=r * n_local
        )
        expected = ref_simclr_rows(_as_lists(z0_all), _as_lists(z1_all), tau, r * n_local, n_local)
        assert loss.item() == pytest.approx(expected, rel=1e-9, abs=1e-9)
        per_rank.append(loss)
    # The mean over processes is the loss of the whole batch.
    full = ntxent(z0_all, z1_all, tau)
    torch.testing.assert_close(torch.stack(per_rank).mean(), full)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 4),
    dim=st.integers(1, 5),
    bank_size=st.integers(1, 7),
    tau=temperatures,
)
def test_info_nce_matches_moco_eq1(seed: int, n: int, dim: int, bank_size: int, tau: float) -> None:
    q, k = _rand(seed, n, dim), _rand(seed + 1, n, dim)
    bank = _rand(seed + 2, dim, bank_size)  # (dim, K), not normalised: info_nce must do it
    loss = info_nce(q, k, bank, tau)
    expected = ref_moco(_as_lists(q), _as_lists(k), _as_lists(bank.T), tau)
    assert loss.item() == pytest.approx(expected, rel=1e-9, abs=1e-9)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 4), tau=temperatures)
def test_memory_bank_loss_matches_moco_and_enqueues_keys(seed: int, n: int, tau: float) -> None:
    dim, size = 3, 5
    criterion = NTXentLoss(temperature=tau, memory_bank_size=size)
    q = _rand(seed, n, dim).requires_grad_(True)
    k = _rand(seed + 1, n, dim)
    # First call: negatives are the random initial bank.
    criterion.memory_bank(torch.zeros(1, dim, dtype=torch.float64))  # initialise only
    bank0 = criterion.memory_bank.bank.clone()
    loss = criterion(q, k)
    expected = ref_moco(_as_lists(q), _as_lists(k), _as_lists(bank0.T), tau)
    assert loss.item() == pytest.approx(expected, rel=1e-9, abs=1e-9)
    # The keys, normalised, replaced the oldest entries (FIFO from column 0).
    bank1 = criterion.memory_bank.bank.clone()
    k_unit = nn.functional.normalize(k, dim=1)
    kept = min(n, size)
    torch.testing.assert_close(bank1[:, :kept].T, k_unit[n - kept :])
    torch.testing.assert_close(bank1[:, kept:], bank0[:, kept:])
    # Second call: negatives now include those keys.
    q2, k2 = _rand(seed + 3, n, dim).requires_grad_(True), _rand(seed + 4, n, dim)
    loss2 = criterion(q2, k2)
    expected2 = ref_moco(_as_lists(q2), _as_lists(k2), _as_lists(bank1.T), tau)
    assert loss2.item() == pytest.approx(expected2, rel=1e-9, abs=1e-9)


def test_memory_bank_size_as_tuple_matches_moco() -> None:
    # lightly accepts memory_bank_size=(4096, 128): the bank exists before the first call.
    criterion = NTXentLoss(temperature=0.2, memory_bank_size=(5, 3))
    bank0 = criterion.memory_bank.bank.clone()
    assert bank0.shape == (3, 5)
    q = _rand(0, 2, 3).float().requires_grad_(True)
    k = _rand(1, 2, 3).float()
    loss = criterion(q, k)
    expected = ref_moco(_as_lists(q), _as_lists(k), _as_lists(bank0.T), 0.2)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


# --------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("n", [1, 2, 5])
@pytest.mark.parametrize("tau", [0.1, 0.5, 2.0])
def test_identical_embeddings_give_log_2n_minus_1(n: int, tau: float) -> None:
    # All 2N views equal => every similarity is 1 => l(i, j) = -log(e^{1/τ} / ((2N-1) e^{1/τ})).
    z = torch.ones(n, 4, dtype=torch.float64)
    loss = NTXentLoss(temperature=tau)(z, z.clone())
    assert loss.item() == pytest.approx(math.log(2 * n - 1), abs=1e-12)


@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("tau", [0.1, 0.5, 2.0])
def test_orthogonal_aligned_embeddings_closed_form(n: int, tau: float) -> None:
    # z0 = z1 = one-hot rows: positive sim 1, the 2N-2 negatives sim 0
    # => l = log(1 + (2N - 2) e^{-1/τ}).
    z = torch.eye(n, dtype=torch.float64)
    loss = NTXentLoss(temperature=tau)(z, z.clone())
    assert loss.item() == pytest.approx(math.log1p((2 * n - 2) * math.exp(-1 / tau)), rel=1e-12)


@pytest.mark.parametrize("bank_size", [1, 4, 9])
def test_memory_bank_identical_vectors_give_log_k_plus_1(bank_size: int) -> None:
    criterion = NTXentLoss(temperature=0.3, memory_bank_size=bank_size)
    z = torch.ones(3, 2, dtype=torch.float64)
    criterion.memory_bank(z)  # initialise
    criterion.memory_bank.bank.fill_(2.0)  # every negative points the same way as z
    loss = criterion(z, z.clone())
    assert loss.item() == pytest.approx(math.log(bank_size + 1), abs=1e-12)


# --------------------------------------------------------------------------- properties


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 5), tau=temperatures)
def test_invariant_to_positive_scaling_of_each_embedding(seed: int, n: int, tau: float) -> None:
    z0, z1 = _rand(seed, n, 4), _rand(seed + 1, n, 4)
    g = torch.Generator().manual_seed(seed)
    s0 = torch.rand(n, 1, dtype=torch.float64, generator=g) + 0.01
    s1 = 100.0 * torch.rand(n, 1, dtype=torch.float64, generator=g) + 0.01
    criterion = NTXentLoss(temperature=tau)
    torch.testing.assert_close(criterion(z0, z1), criterion(s0 * z0, s1 * z1))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 5), tau=temperatures)
def test_symmetric_in_the_two_views(seed: int, n: int, tau: float) -> None:
    z0, z1 = _rand(seed, n, 4), _rand(seed + 1, n, 4)
    criterion = NTXentLoss(temperature=tau)
    torch.testing.assert_close(criterion(z0, z1), criterion(z1, z0))


def test_invariant_to_permuting_the_batch() -> None:
    z0, z1 = _rand(0, 6, 4), _rand(1, 6, 4)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(2))
    criterion = NTXentLoss()
    torch.testing.assert_close(criterion(z0, z1), criterion(z0[perm], z1[perm]))


def test_not_symmetric_when_pairs_are_broken() -> None:
    # Shuffling only one view changes the positives: the loss must notice (guards against
    # an implementation that ignores which rows are paired).
    z0, z1 = _rand(0, 6, 4), _rand(1, 6, 4)
    criterion = NTXentLoss()
    assert not torch.allclose(criterion(z0, z1), criterion(z0, z1.roll(1, dims=0)))


@pytest.mark.parametrize("memory_bank_size", [0, 16])
def test_sgd_steps_on_free_embeddings_lower_the_loss(memory_bank_size: int) -> None:
    torch.manual_seed(0)
    z0 = torch.randn(8, 5, requires_grad=True)
    z1 = torch.randn(8, 5, requires_grad=True)
    criterion = NTXentLoss(temperature=0.5, memory_bank_size=memory_bank_size)
    with torch.no_grad():  # no bank update: measure against the same initial bank
        first = criterion(z0, z1).item()
    for _ in range(20):
        # Plain gradient descent by hand: torch.optim's first use imports torch._dynamo (slow).
        g0, g1 = torch.autograd.grad(criterion(z0, z1), [z0, z1])
        with torch.no_grad():
            z0 -= 1.0 * g0
            z1 -= 1.0 * g1
    with torch.no_grad():
        last = criterion(z0, z1).item()
    assert last < first - 0.1


@pytest.mark.parametrize("memory_bank_size", [0, 4])
def test_inputs_not_mutated(memory_bank_size: int) -> None:
    z0, z1 = _rand(0, 3, 4).requires_grad_(True), _rand(1, 3, 4).requires_grad_(True)
    before0, before1 = z0.detach().clone(), z1.detach().clone()
    NTXentLoss(memory_bank_size=memory_bank_size)(z0, z1).backward()
    assert torch.equal(z0.detach(), before0)
    assert torch.equal(z1.detach(), before1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("memory_bank_size", [0, 4])
def test_dtype_and_device_kept(dtype: torch.dtype, memory_bank_size: int) -> None:
    z0 = _rand(0, 3, 4, dtype=dtype).requires_grad_(True)
    z1 = _rand(1, 3, 4, dtype=dtype)
    loss = NTXentLoss(memory_bank_size=memory_bank_size)(z0, z1)
    assert loss.dtype == dtype
    assert loss.device == z0.device
    loss.backward()
    assert z0.grad is not None
    assert z0.grad.dtype == dtype
    assert torch.isfinite(z0.grad).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("memory_bank_size", [0, 4])
def test_runs_on_cuda_like_on_cpu(memory_bank_size: int) -> None:
    z0, z1 = _rand(0, 3, 4), _rand(1, 3, 4)
    criterion = NTXentLoss(memory_bank_size=memory_bank_size).cuda()
    z0_gpu = z0.cuda().requires_grad_(True)
    if memory_bank_size > 0:
        criterion.memory_bank(z1.cuda())  # initialise
        expected = info_nce(z0, z1, criterion.memory_bank.bank.cpu(), 0.5)
    else:
        expected = ntxent(z0, z1, 0.5)
    loss = criterion(z0_gpu, z1.cuda())
    assert loss.device == z0_gpu.device
    torch.testing.assert_close(loss.cpu(), expected)
    loss.backward()
    assert z0_gpu.grad is not None
    assert torch.isfinite(z0_gpu.grad).all()
    if memory_bank_size > 0:
        assert criterion.memory_bank.bank.device.type == "cuda"
        assert int(criterion.memory_bank.bank_ptr) == 3


def test_same_output_under_the_same_seed() -> None:
    # The bank's random initialisation is the only randomness.
    losses = []
    for _ in range(2):
        torch.manual_seed(123)
        criterion = NTXentLoss(memory_bank_size=8)
        losses.append(criterion(_rand(0, 3, 4), _rand(1, 3, 4)))
    assert torch.equal(losses[0], losses[1])


def test_gradient_matches_finite_differences() -> None:
    z0 = _rand(0, 3, 4).requires_grad_(True)
    z1 = _rand(1, 3, 4).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: ntxent(a, b, 0.3), (z0, z1))
    bank = _rand(2, 4, 5)
    assert torch.autograd.gradcheck(lambda a, b: info_nce(a, b, bank, 0.3), (z0, z1))


def test_bank_updated_only_when_out0_requires_grad() -> None:
    criterion = NTXentLoss(memory_bank_size=6)
    criterion(_rand(0, 2, 3), _rand(1, 2, 3))
    assert int(criterion.memory_bank.bank_ptr) == 0
    criterion(_rand(0, 2, 3).requires_grad_(True), _rand(1, 2, 3))
    assert int(criterion.memory_bank.bank_ptr) == 2


def test_gather_distributed_without_process_group_is_single_process() -> None:
    z0, z1 = _rand(0, 4, 3), _rand(1, 4, 3)
    torch.testing.assert_close(
        NTXentLoss(gather_distributed=True)(z0, z1), NTXentLoss(gather_distributed=False)(z0, z1)
    )


def test_gather_distributed_without_distributed_support_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.distributed, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="gather_distributed=True"):
        NTXentLoss(gather_distributed=True)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("temperature", [0.0, -0.5, 1e-9, math.nan, math.inf, True])
def test_bad_temperature_is_rejected_with_its_value(temperature: float) -> None:
    with pytest.raises(ConfigError, match=r"temperature must be a finite number >= 1e-08") as e:
        NTXentLoss(temperature=temperature)
    assert repr(temperature) in str(e.value)
    assert isinstance(e.value, ValueError)  # lightly raised ValueError; keep that catchable


def test_bad_temperature_rejected_by_pure_functions() -> None:
    z = _rand(0, 2, 3)
    with pytest.raises(ConfigError, match="ntxent: temperature"):
        ntxent(z, z, 0.0)
    with pytest.raises(ConfigError, match="info_nce: temperature"):
        info_nce(z, z, _rand(1, 3, 4), -1.0)


def test_tiny_positive_temperature_is_accepted() -> None:
    NTXentLoss(temperature=1e-8)


def test_bad_memory_bank_size_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"size must be an integer >= 0.*got -1"):
        NTXentLoss(memory_bank_size=-1)


@pytest.mark.parametrize(
    ("shape0", "shape1"), [((3, 4), (3, 5)), ((3, 4), (2, 4)), ((3,), (3,)), ((0, 4), (0, 4))]
)
def test_bad_shapes_are_rejected(shape0: tuple[int, ...], shape1: tuple[int, ...]) -> None:
    with pytest.raises(DataError, match=r"out0 and out1 must both have the same shape"):
        NTXentLoss()(torch.zeros(shape0), torch.zeros(shape1))


def test_gathered_batch_must_contain_the_local_batch() -> None:
    z = _rand(0, 2, 3)
    with pytest.raises(DataError, match="does not fit"):
        ntxent(z, z, 0.5, z0_all=_rand(1, 3, 3), z1_all=_rand(2, 3, 3), offset=2)
    with pytest.raises(DataError, match="both z0_all and z1_all"):
        ntxent(z, z, 0.5, z0_all=_rand(1, 3, 3))


# --------------------------------------------------------------------------- DDP, 2 processes

WORLD_SIZE = 2
N_LOCAL = 3
IN_DIM, OUT_DIM = 6, 4
TAU = 0.3
BANK_SIZE = 2 * WORLD_SIZE * N_LOCAL  # two steps of the global batch refill it exactly


def _make_model() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(IN_DIM, OUT_DIM).double()


def _global_batch(step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    n = WORLD_SIZE * N_LOCAL
    return _rand(100 + step, n, IN_DIM), _rand(200 + step, n, IN_DIM)


def _worker(argv: list[str]) -> None:
    """One DDP process: half of the batch, NTXentLoss(gather_distributed=True)."""
    with gloo_group(argv) as (rank, _, out_dir):
        local = slice(rank * N_LOCAL, (rank + 1) * N_LOCAL)
        model = nn.parallel.DistributedDataParallel(_make_model())
        x0, x1 = _global_batch()
        # One forward call per backward, as DDP expects.
        out0, out1 = model(torch.cat([x0[local], x1[local]])).chunk(2)
        loss = NTXentLoss(temperature=TAU, gather_distributed=True)(out0, out1)
        loss.backward()
        result: dict[str, Any] = {"loss": loss.detach()}
        for name, p in model.module.named_parameters():
            assert p.grad is not None
            result[f"grad.{name}"] = p.grad

        # Memory bank with gathering: every process enqueues the keys of all processes.
        torch.manual_seed(1000 + rank)  # different initial banks on purpose
        criterion = NTXentLoss(temperature=TAU, memory_bank_size=BANK_SIZE, gather_distributed=True)
        for step in range(2):
            q, k = _global_batch(step)
            criterion(q[local].requires_grad_(True), k[local])
        result["bank"] = criterion.memory_bank.bank
        result["bank_ptr"] = criterion.memory_bank.bank_ptr
        torch.save(result, out_dir / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out_dir = tmp_path_factory.mktemp("ddp")
    run_workers(Path(__file__), out_dir, WORLD_SIZE, timeout=120.0)
    return [torch.load(out_dir / f"rank{r}.pt") for r in range(WORLD_SIZE)]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ddp_two_processes_reproduce_one_process(ddp_results: list[dict[str, Any]]) -> None:
    # Each process's loss is the mean over its own 2n rows against all 2m gathered columns;
    # their mean is the full-batch loss. DDP averages parameter gradients over processes and
    # GatherLayer sums the column gradients across processes, so the averaged gradient is
    # the gradient of that mean: the single-process gradient of the full batch.
    model = _make_model()
    x0, x1 = _global_batch()
    out0, out1 = model(torch.cat([x0, x1])).chunk(2)
    loss = NTXentLoss(temperature=TAU, gather_distributed=False)(out0, out1)
    loss.backward()

    mean_loss = torch.stack([res["loss"] for res in ddp_results]).mean()
    torch.testing.assert_close(mean_loss, loss.detach(), rtol=1e-12, atol=1e-12)
    for res in ddp_results:
        for name, p in model.named_parameters():
            assert p.grad is not None
            torch.testing.assert_close(res[f"grad.{name}"], p.grad, rtol=1e-10, atol=1e-12)
    # The per-process losses differ (different rows), so the test would see a rank mix-up.
    assert not torch.allclose(ddp_results[0]["loss"], ddp_results[1]["loss"])


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ddp_memory_bank_holds_the_keys_of_all_processes(
    ddp_results: list[dict[str, Any]],
) -> None:
    keys = torch.cat([nn.functional.normalize(_global_batch(step)[1], dim=1) for step in range(2)])
    for res in ddp_results:
        assert int(res["bank_ptr"]) == 0
        torch.testing.assert_close(res["bank"].T, keys)


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--worker":
    _worker(sys.argv)
