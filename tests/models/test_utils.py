"""Tests of the model helpers against their formulas."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from selfsup.models.utils import (
    activate_requires_grad,
    batch_shuffle,
    batch_unshuffle,
    cosine_schedule,
    deactivate_requires_grad,
    get_weight_decay_parameters,
    normalize_weight,
    update_momentum,
)

torch.set_num_threads(1)


def small_net() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))


# --- requires_grad ----------------------------------------------------------------------


def test_deactivate_and_activate_requires_grad() -> None:
    net = small_net()
    deactivate_requires_grad(net)
    assert not any(p.requires_grad for p in net.parameters())
    activate_requires_grad(net)
    assert all(p.requires_grad for p in net.parameters())


# --- update_momentum --------------------------------------------------------------------


@pytest.mark.parametrize("m", [0.0, 0.5, 0.99, 1.0])
def test_update_momentum_matches_formula(m: float) -> None:
    torch.manual_seed(0)
    model, ema = small_net(), small_net()
    before = [p.detach().clone() for p in ema.parameters()]
    ids = [id(p) for p in ema.parameters()]
    update_momentum(model, ema, m)
    for new, old, param in zip(ema.parameters(), before, model.parameters(), strict=True):
        torch.testing.assert_close(new, m * old + (1 - m) * param.detach())
        assert not new.requires_grad or new.grad_fn is None  # no autograd graph built
    assert [id(p) for p in ema.parameters()] == ids  # updated in place


def test_update_momentum_leaves_buffers_and_model_alone() -> None:
    torch.manual_seed(0)
    model, ema = small_net(), small_net()
    bn_model, bn_ema = (
        next(m for m in net if isinstance(m, nn.BatchNorm1d)) for net in (model, ema)
    )
    assert bn_model.running_mean is not None
    assert bn_ema.running_mean is not None
    bn_model.running_mean.fill_(5.0)
    model_before = [p.detach().clone() for p in model.parameters()]
    update_momentum(model, ema, 0.0)
    assert torch.all(bn_ema.running_mean == 0)
    for p, b in zip(model.parameters(), model_before, strict=True):
        torch.testing.assert_close(p, b, rtol=0, atol=0)


def test_update_momentum_rejects_different_architectures() -> None:
    with pytest.raises(ValueError, match="same architecture"):
        update_momentum(small_net(), nn.Linear(4, 3), 0.9)
    with pytest.raises(ValueError, match="shape"):
        update_momentum(nn.Linear(4, 3), nn.Linear(3, 4), 0.9)
    with pytest.raises(ValueError, match="momentum"):
        update_momentum(small_net(), small_net(), 1.5)


# --- batch shuffle ----------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(batch_size=st.integers(1, 33), seed=st.integers(0, 2**16))
def test_batch_shuffle_round_trip(batch_size: int, seed: int) -> None:
    torch.manual_seed(seed)
    batch = torch.randn(batch_size, 3, 2).double()
    original = batch.clone()
    shuffled, idx = batch_shuffle(batch)
    torch.testing.assert_close(batch, original, rtol=0, atol=0)  # input not mutated
    assert sorted(idx.tolist()) == list(range(batch_size))
    torch.testing.assert_close(shuffled, batch[idx], rtol=0, atol=0)
    assert shuffled.dtype == batch.dtype
    assert shuffled.device == batch.device
    torch.testing.assert_close(batch_unshuffle(shuffled, idx), batch, rtol=0, atol=0)


def test_batch_shuffle_same_seed_same_permutation() -> None:
    batch = torch.arange(10)
    torch.manual_seed(1)
    a = batch_shuffle(batch)[1]
    torch.manual_seed(1)
    b = batch_shuffle(batch)[1]
    assert torch.equal(a, b)


def test_batch_unshuffle_checks_the_index_shape() -> None:
    with pytest.raises(ValueError, match="shuffle_idx"):
        batch_unshuffle(torch.zeros(4, 2), torch.arange(3))


# --- cosine_schedule --------------------------------------------------------------------


def cosine_reference(step: int, max_steps: int, start: float, end: float) -> float:
    progress = step / (max_steps - 1)
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * progress))


@pytest.mark.parametrize("step", [0, 1, 3, 5, 8, 9])
def test_cosine_schedule_matches_formula(step: int) -> None:
    value = cosine_schedule(step, 10, 0.996, 1.0)
    assert value == pytest.approx(cosine_reference(step, 10, 0.996, 1.0))


def test_cosine_schedule_endpoints_and_monotonicity() -> None:
    values = [cosine_schedule(s, 20, 0.1, 1.0) for s in range(20)]
    assert values[0] == pytest.approx(0.1)
    assert values[-1] == pytest.approx(1.0)
    assert all(a <= b for a, b in itertools.pairwise(values))
    assert cosine_schedule(20, 20, 0.1, 1.0) == 1.0  # Lightning's extra call after the end
    assert cosine_schedule(0, 1, 0.1, 1.0) == 1.0
    with pytest.warns(UserWarning, match="exceeds"):
        assert cosine_schedule(25, 20, 0.1, 1.0) == 1.0


def test_cosine_schedule_with_period() -> None:
    assert cosine_schedule(0, 100, 0.0, 1.0, period=10) == pytest.approx(0.0)
    assert cosine_schedule(5, 100, 0.0, 1.0, period=10) == pytest.approx(1.0)
    assert cosine_schedule(10, 100, 0.0, 1.0, period=10) == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"step": -1, "max_steps": 10}, "step"),
        ({"step": 0, "max_steps": 0}, "max_steps"),
        ({"step": 0, "max_steps": 10, "period": 0}, "period"),
    ],
)
def test_cosine_schedule_rejects_bad_arguments(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cosine_schedule(start_value=0.0, end_value=1.0, **kwargs)


# --- normalize_weight -------------------------------------------------------------------


def test_normalize_weight_gives_unit_rows_in_place() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(5, 3)
    direction = layer.weight.detach().clone()
    normalize_weight(layer.weight)
    torch.testing.assert_close(layer.weight.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(layer.weight, direction / direction.norm(dim=1, keepdim=True))


# --- get_weight_decay_parameters --------------------------------------------------------


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.ln = nn.LayerNorm(4)
        self.fc = nn.Linear(4, 2)
        self.fc_no_bias = nn.Linear(2, 2, bias=False)


def ids(params: Iterable[object]) -> set[int]:
    return {id(p) for p in params}


def test_weight_decay_split_defaults() -> None:
    net = Net()
    decay, no_decay = get_weight_decay_parameters([net])
    assert ids(decay) == ids([net.conv.weight, net.fc.weight, net.fc_no_bias.weight])
    assert ids(no_decay) == ids(
        [net.conv.bias, net.bn.weight, net.bn.bias, net.ln.weight, net.ln.bias, net.fc.bias]
    )
    assert len(decay) + len(no_decay) == len(list(net.parameters()))


def test_weight_decay_split_flags() -> None:
    net = Net()
    decay, no_decay = get_weight_decay_parameters([net], decay_bias=True)
    assert ids(no_decay) == ids([net.bn.weight, net.bn.bias, net.ln.weight, net.ln.bias])
    decay, no_decay = get_weight_decay_parameters([net], decay_norm=True)
    assert ids(no_decay) == ids([net.conv.bias, net.fc.bias])
    assert id(net.bn.weight) in ids(decay)


def test_weight_decay_split_counts_shared_parameters_once() -> None:
    shared = nn.Linear(2, 2)
    decay, no_decay = get_weight_decay_parameters([shared, nn.Sequential(shared, shared)])
    assert len(decay) == 1
    assert len(no_decay) == 1
