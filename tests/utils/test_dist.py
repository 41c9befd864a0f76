"""Tests for selfsup.utils.dist: single-process no-ops and a real 2-process gloo run.

The multi-process test runs this very file as a script (``python test_dist.py --worker ...``)
in two fresh interpreters: pytest imports test modules under names a child process could not
import, so spawning by function reference would not work reliably.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from _ddp import gloo_group, run_workers
from selfsup.utils import dist

WORLD_SIZE = 2
N_LOCAL = 3
DIM = 2


def _local_x(rank: int) -> torch.Tensor:
    """The (N_LOCAL, DIM) tensor that process ``rank`` contributes."""
    return torch.arange(N_LOCAL * DIM, dtype=torch.float64).reshape(N_LOCAL, DIM) + 10.0 * rank


def _weight(r: int, s: int) -> float:
    """Weight of slice s in the loss of process r; all distinct so a mix-up shows."""
    return float((r + 1) * (s + 2))


# --------------------------------------------------------------------------- single process


def test_single_process_defaults() -> None:
    assert not dist.is_dist_initialized()
    assert dist.rank() == 0
    assert dist.world_size() == 1


def test_gather_single_process_is_identity_with_gradient() -> None:
    x = torch.randn(4, 3, requires_grad=True)
    (out,) = dist.gather(x)
    assert torch.equal(out, x)
    torch.autograd.backward((3.0 * out).sum())
    assert x.grad is not None
    assert torch.equal(x.grad, torch.full_like(x, 3.0))


def test_gather_no_grad_single_process_detaches() -> None:
    x = torch.randn(4, 3, requires_grad=True)
    (out,) = dist.gather_no_grad(x)
    assert torch.equal(out, x)
    assert not out.requires_grad


@pytest.mark.parametrize("n", [0, 1, 5])
def test_eye_rank_single_process_is_identity(n: int) -> None:
    mask = dist.eye_rank(n)
    assert mask.dtype == torch.bool
    assert torch.equal(mask, torch.eye(n, dtype=torch.bool))


def test_eye_rank_rejects_negative_n() -> None:
    with pytest.raises(ValueError, match="n must be >= 0, got -1"):
        dist.eye_rank(-1)


def test_rank_zero_only_runs_on_rank_zero() -> None:
    calls: list[int] = []

    @dist.rank_zero_only
    def record(x: int) -> int:
        calls.append(x)
        return x * 2

    assert record(4) == 8
    assert calls == [4]
    assert record.__name__ == "record"


# --------------------------------------------------------------------------- two processes


def _worker(argv: list[str]) -> None:
    """One process of the gloo run: gather with gradients, eye_rank, rank_zero_only."""
    with gloo_group(argv) as (rank, _, out_dir):
        x = _local_x(rank).requires_grad_(True)
        gathered = dist.gather(x)
        # Nonlinear in each slice, with a weight depending on both processes, so the
        # gradient of slice s must be summed over all processes r to be right.
        loss = sum(_weight(rank, s) * (g**2).sum() for s, g in enumerate(gathered))
        assert isinstance(loss, torch.Tensor)
        torch.autograd.backward(loss)
        assert x.grad is not None
        result: dict[str, Any] = {
            "rank": dist.rank(),
            "world_size": dist.world_size(),
            "initialized": dist.is_dist_initialized(),
            "gathered": torch.stack([g.detach() for g in gathered]),
            "grad": x.grad,
            "eye_rank": dist.eye_rank(N_LOCAL),
            "rank_zero_only": dist.rank_zero_only(lambda: 7)(),
            "gather_no_grad": torch.stack(dist.gather_no_grad(x)),
        }
        torch.save(result, out_dir / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out_dir = tmp_path_factory.mktemp("dist")
    run_workers(Path(__file__), out_dir, WORLD_SIZE, timeout=120.0)
    return [torch.load(out_dir / f"rank{r}.pt") for r in range(WORLD_SIZE)]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_processes_rank_and_world_size(two_process_results: list[dict[str, Any]]) -> None:
    for r, res in enumerate(two_process_results):
        assert res["rank"] == r
        assert res["world_size"] == WORLD_SIZE
        assert res["initialized"] is True
    assert two_process_results[0]["rank_zero_only"] == 7
    assert two_process_results[1]["rank_zero_only"] is None


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_processes_gather_values(two_process_results: list[dict[str, Any]]) -> None:
    expected = torch.stack([_local_x(s) for s in range(WORLD_SIZE)])
    for res in two_process_results:
        torch.testing.assert_close(res["gathered"], expected, rtol=0, atol=0)
        torch.testing.assert_close(res["gather_no_grad"], expected, rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_processes_gather_gradient_sums_over_processes(
    two_process_results: list[dict[str, Any]],
) -> None:
    # Total objective Σ_r Σ_s w(r, s)·‖x_s‖² => d/dx_s = 2·x_s·Σ_r w(r, s).
    for s, res in enumerate(two_process_results):
        expected = 2.0 * _local_x(s) * sum(_weight(r, s) for r in range(WORLD_SIZE))
        torch.testing.assert_close(res["grad"], expected, rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_processes_eye_rank(two_process_results: list[dict[str, Any]]) -> None:
    for r, res in enumerate(two_process_results):
        expected = torch.zeros(N_LOCAL, N_LOCAL * WORLD_SIZE, dtype=torch.bool)
        expected[:, r * N_LOCAL : (r + 1) * N_LOCAL] = torch.eye(N_LOCAL, dtype=torch.bool)
        assert torch.equal(res["eye_rank"], expected)


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--worker":
    _worker(sys.argv)
