"""Tests for selfsup.loss.memory_bank: lazy initialisation, read-before-write, FIFO order."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from selfsup.errors import ConfigError, DataError
from selfsup.loss import MemoryBankModule
from selfsup.loss.memory_bank import enqueue


def _rand(seed: int, *shape: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("size", [-1, 2.5, True, "8"])
def test_bad_size_is_rejected(size: object) -> None:
    with pytest.raises(ConfigError, match=r"size must be an integer >= 0 .* got") as e:
        MemoryBankModule(size=size)  # type: ignore[arg-type]  # bad input on purpose
    assert repr(size) in str(e.value)


def test_default_size_is_lightlys() -> None:
    assert MemoryBankModule().size == 65536


def test_size_zero_returns_output_and_none() -> None:
    bank = MemoryBankModule(size=0)
    x = _rand(0, 3, 4)
    out, negatives = bank(x, update=True)
    assert out is x
    assert negatives is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lazy_initialisation_with_unit_vectors(dtype: torch.dtype) -> None:
    module = MemoryBankModule(size=7)
    assert module.bank.numel() == 0
    x = _rand(0, 3, 5, dtype=dtype)
    out, bank = module(x)
    assert out is x
    assert bank is not None
    assert bank.shape == (5, 7)  # (dim, size), feature dimension first
    assert bank.dtype == dtype
    assert bank.device == x.device
    torch.testing.assert_close(bank.norm(dim=0), torch.ones(7, dtype=dtype))
    # Random directions, not a constant vector.
    assert torch.linalg.matrix_rank(bank.double()) == 5


def test_returns_a_detached_copy_of_the_bank_before_the_update() -> None:
    module = MemoryBankModule(size=4)
    module(_rand(0, 1, 3))  # initialise
    before = module.bank.clone()
    x = _rand(1, 2, 3).requires_grad_(True)
    out, bank = module(x, update=True)
    assert bank is not None
    assert torch.equal(bank, before)
    assert not bank.requires_grad
    assert out is x
    # The internal bank changed, the returned copy did not.
    assert not torch.equal(module.bank, before)
    torch.testing.assert_close(module.bank[:, :2].T, x.detach())
    bank.zero_()
    assert not torch.equal(module.bank, bank)


def test_no_update_without_update_flag() -> None:
    module = MemoryBankModule(size=4)
    module(_rand(0, 2, 3))
    before = module.bank.clone()
    module(_rand(1, 2, 3))
    assert torch.equal(module.bank, before)
    assert int(module.bank_ptr) == 0


def test_fifo_wraps_around() -> None:
    module = MemoryBankModule(size=5)
    a, b, c = _rand(0, 2, 3), _rand(1, 2, 3), _rand(2, 2, 3)
    for x in (a, b, c):
        module(x, update=True)
    # a0 a1 b0 b1 c0 fill columns 0..4, then c1 wraps around to column 0 over a0.
    expected = torch.stack([c[1], a[1], b[0], b[1], c[0]], dim=1)
    torch.testing.assert_close(module.bank, expected)
    assert int(module.bank_ptr) == 1  # a1 is now the oldest


@settings(max_examples=30, deadline=None)
@given(
    size=st.integers(1, 6),
    batch_sizes=st.lists(st.integers(0, 9), min_size=1, max_size=6),
    seed=st.integers(0, 2**31 - 1),
)
def test_bank_holds_the_newest_entries_oldest_first_from_ptr(
    size: int, batch_sizes: list[int], seed: int
) -> None:
    dim = 2
    module = MemoryBankModule(size=size)
    module(torch.zeros(1, dim, dtype=torch.float64))
    # Reference FIFO queue, oldest first; starts as the initial bank in column order.
    queue = [col for col in module.bank.T.clone()]
    for i, n in enumerate(batch_sizes):
        x = _rand(seed + i, n, dim)
        module(x, update=True)
        queue = [*queue, *x][-size:]
    ptr = int(module.bank_ptr)
    assert 0 <= ptr < size
    in_order = torch.stack([module.bank[:, (ptr + j) % size] for j in range(size)])
    torch.testing.assert_close(in_order, torch.stack(queue))


def test_enqueue_keeps_only_the_newest_when_batch_exceeds_size() -> None:
    bank = torch.zeros(2, 3, dtype=torch.float64)
    batch = torch.arange(10, dtype=torch.float64).reshape(5, 2)
    assert enqueue(bank, 1, batch) == 0
    torch.testing.assert_close(bank, batch[2:].T)


def test_dimension_change_is_rejected() -> None:
    module = MemoryBankModule(size=4)
    module(_rand(0, 2, 3))
    with pytest.raises(DataError, match=r"output has dimension 5 but the bank holds .* 3"):
        module(_rand(0, 2, 5))


def test_non_2d_output_is_rejected() -> None:
    with pytest.raises(DataError, match=r"shape \(batch_size, dim\), got shape \(3,\)"):
        MemoryBankModule(size=4)(torch.zeros(3))


def test_input_not_mutated_and_labels_ignored() -> None:
    x = _rand(0, 3, 4)
    before = x.clone()
    module = MemoryBankModule(size=2)
    module(x, labels=torch.arange(3), update=True)
    assert torch.equal(x, before)


def test_bank_is_not_saved_in_checkpoints() -> None:
    # As in lightly: the bank is a non-persistent buffer, checkpoints stay small.
    module = MemoryBankModule(size=4)
    module(_rand(0, 2, 3), update=True)
    assert dict(module.state_dict()) == {}


def test_same_bank_under_the_same_seed() -> None:
    banks = []
    for _ in range(2):
        torch.manual_seed(5)
        _, bank = MemoryBankModule(size=6)(_rand(0, 2, 3))
        assert bank is not None
        banks.append(bank)
    assert torch.equal(banks[0], banks[1])


def test_gather_distributed_without_process_group_updates_locally() -> None:
    module = MemoryBankModule(size=4, gather_distributed=True)
    x = _rand(0, 2, 3)
    module(x, update=True)
    torch.testing.assert_close(module.bank[:, :2].T, x)
    assert int(module.bank_ptr) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bank_lives_on_the_device_of_the_output() -> None:
    module = MemoryBankModule(size=4).cuda()
    x = _rand(0, 2, 3).cuda()
    _, bank = module(x, update=True)
    assert bank is not None
    assert bank.device == x.device
    assert module.bank.device == x.device
    torch.testing.assert_close(module.bank[:, :2].T, x)


@pytest.mark.parametrize("size", [(4, 0), (-1, 3), (4,), (4, 3, 2), (4.0, 3), (True, 3), "43"])
def test_bad_size_tuple_is_rejected(size: object) -> None:
    with pytest.raises(ConfigError, match=r"or a tuple \(size >= 0, dim >= 1\)"):
        MemoryBankModule(size=size)  # type: ignore[arg-type]  # bad input on purpose


def test_size_tuple_creates_the_bank_at_construction() -> None:
    # lightly accepts (size, dim): the bank then exists before the first batch, so every
    # process of a distributed run holds the same shape from the start.
    module = MemoryBankModule(size=(6, 3))
    assert module.size == 6
    assert module.dim == 3
    assert module.bank.shape == (3, 6)
    torch.testing.assert_close(module.bank.norm(dim=0), torch.ones(6))
    x = _rand(0, 2, 3, dtype=torch.float32)
    before = module.bank.clone()
    _, bank = module(x, update=True)
    assert bank is not None
    assert torch.equal(bank, before)
    torch.testing.assert_close(module.bank[:, :2].T, x)


def test_size_tuple_checks_the_dimension_of_the_first_batch() -> None:
    module = MemoryBankModule(size=(6, 3))
    with pytest.raises(DataError, match="output has dimension 4 but the bank holds vectors of"):
        module(_rand(0, 2, 4, dtype=torch.float32))


def test_size_tuple_zero_disables_the_bank() -> None:
    module = MemoryBankModule(size=(0, 128))
    x = _rand(0, 2, 128)
    assert module(x, update=True) == (x, None)


def test_feature_dim_first_false_returns_size_by_dim() -> None:
    module = MemoryBankModule(size=(5, 3), feature_dim_first=False)
    _, bank = module(_rand(0, 2, 3, dtype=torch.float32))
    assert bank is not None
    assert bank.shape == (5, 3)
    assert torch.equal(bank, module.bank.T)
