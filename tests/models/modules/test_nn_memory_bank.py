"""NNMemoryBankModule: NNCLR's nearest neighbour in the support set, against brute force."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from selfsup.errors import ConfigError, DataError
from selfsup.models.modules import NNMemoryBankModule
from selfsup.models.modules.nn_memory_bank import nearest_neighbours


def brute_force(query: list[list[float]], support: list[list[float]]) -> list[list[float]]:
    """NN(z, Q) = argmin_{q ∈ Q} ‖z − q‖₂ on L2-normalised vectors (NNCLR, sec. 3.2),
    returning the support set's own entry; the first one wins a tie."""

    def unit(v: list[float]) -> list[float]:
        norm = math.sqrt(sum(x * x for x in v))
        return [x / norm for x in v]

    out = []
    for z in query:
        zn = unit(z)
        dists = [math.dist(zn, unit(q)) for q in support]
        out.append(support[dists.index(min(dists))])
    return out


def _rand(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1), n=st.integers(1, 5), m=st.integers(1, 7), d=st.integers(1, 4)
)
def test_nearest_neighbours_match_brute_force(seed: int, n: int, m: int, d: int) -> None:
    query, support = _rand(seed, n, d), 3 * _rand(seed + 1, m, d)
    expected = torch.tensor(brute_force(query.tolist(), support.tolist()), dtype=torch.float64)
    assert torch.equal(nearest_neighbours(query, support), expected)


def test_bank_answers_from_its_entries_before_the_update() -> None:
    torch.manual_seed(0)
    bank = NNMemoryBankModule(size=(6, 3))
    before = bank.bank.T.clone()  # (size, dim)
    z = _rand(2, 4, 3).float()
    out = bank(z, update=True)
    expected = torch.tensor(brute_force(z.tolist(), before.tolist()))
    torch.testing.assert_close(out, expected)
    # The batch is in the bank now: every row is its own nearest neighbour (the raw row,
    # not normalised).
    assert torch.equal(bank(z), z)
    assert torch.equal(bank(2 * z), z)


def test_without_update_the_bank_is_unchanged() -> None:
    bank = NNMemoryBankModule(size=(5, 2))
    before = bank.bank.clone()
    bank(_rand(3, 4, 2).float())
    assert torch.equal(bank.bank, before)


def test_output_has_no_gradient_and_keeps_dtype() -> None:
    bank = NNMemoryBankModule(size=8)  # created lazily, in the first batch's dtype
    z = _rand(4, 3, 5).requires_grad_(True)
    out = bank(z, update=True)
    assert out.dtype == torch.float64
    assert out.shape == (3, 5)
    assert not out.requires_grad
    assert bank.bank.shape == (5, 8)


def test_default_size_is_lightlys() -> None:
    assert NNMemoryBankModule().size == 2**16


@pytest.mark.parametrize("size", [0, (0, 4), -1, (4, 0), "8"])
def test_bad_sizes_are_refused(size: object) -> None:
    with pytest.raises(ConfigError, match="size must be"):
        NNMemoryBankModule(size=size)  # type: ignore[arg-type]  # bad input on purpose


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(DataError, match="dimension 3 but the bank holds vectors of dimension 2"):
        NNMemoryBankModule(size=(4, 2))(torch.zeros(5, 3))
    with pytest.raises(DataError, match=r"must share dim, got \(2, 3\) and \(4, 2\)"):
        nearest_neighbours(torch.zeros(2, 3), torch.zeros(4, 2))
    with pytest.raises(DataError, match="the support set is empty"):
        nearest_neighbours(torch.zeros(2, 3), torch.zeros(0, 3))
