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

from selfsup.errors import ConfigError, DataError
from selfsup.models.utils import (
    activate_requires_grad,
    batch_shuffle,
    batch_unshuffle,
    check_mask_ratio,
    cosine_schedule,
    deactivate_requires_grad,
    expand_index_like,
    get_2d_sincos_pos_embed,
    get_at_index,
    get_weight_decay_parameters,
    mask_at_index,
    mask_bool,
    mask_image_patches,
    normalize_weight,
    patchify,
    prepend_class_token,
    random_block_mask,
    random_token_mask,
    repeat_token,
    set_at_index,
    unpatchify,
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


# --- masking utilities -------------------------------------------------------------------


def test_patchify_matches_a_loop_and_unpatchify_inverts_it_exactly() -> None:
    x = torch.randn(2, 3, 8, 12)
    p = 4
    patches = patchify(x, p)
    assert patches.shape == (2, 6, 48)
    for b in range(2):
        for n in range(6):
            row, col = divmod(n, 3)
            for i in range(p):
                for j in range(p):
                    for c in range(3):
                        expected = x[b, c, row * p + i, col * p + j]
                        assert patches[b, n, (i * p + j) * 3 + c] == expected
    assert torch.equal(unpatchify(patches, p, 3, grid_size=(2, 3)), x)
    square = torch.randn(3, 1, 12, 12)
    assert torch.equal(unpatchify(patchify(square, 3), 3, channels=1), square)


def test_patchify_refuses_sizes_that_are_not_multiples() -> None:
    with pytest.raises(DataError, match="multiples of the patch size 4"):
        patchify(torch.randn(1, 3, 10, 8), 4)
    with pytest.raises(DataError, match="do not form a square grid"):
        unpatchify(torch.randn(1, 6, 48), 4)
    with pytest.raises(ConfigError, match="patch_size must be an integer >= 1"):
        patchify(torch.randn(1, 3, 8, 8), 0)


@pytest.mark.parametrize("mask_class_token", [False, True])
@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.75, 0.99])
def test_random_token_mask_splits_every_row(mask_class_token: bool, ratio: float) -> None:
    n = 17
    keep, masked = random_token_mask((6, n), ratio, mask_class_token)
    maskable = n if mask_class_token else n - 1
    expected_masked = min(round(ratio * maskable), maskable - 1)
    assert masked.shape == (6, expected_masked)
    assert keep.shape == (6, n - expected_masked)
    for k, m in zip(keep.tolist(), masked.tolist(), strict=True):
        assert not set(k) & set(m)  # disjoint
        assert sorted(k + m) == list(range(n))  # together every token once
        assert k == sorted(k)
        assert m == sorted(m)
        if not mask_class_token:
            assert k[0] == 0


def test_random_token_mask_draws_a_different_subset_per_sample() -> None:
    torch.manual_seed(0)
    keep, _ = random_token_mask((32, 65), 0.75)
    assert len({tuple(row) for row in keep.tolist()}) > 1
    # Every patch token is masked by some sample: the draw is not biased to a fixed set.
    _, masked = random_token_mask((200, 9), 0.5)
    assert set(masked.flatten().tolist()) == set(range(1, 9))


@pytest.mark.parametrize("ratio", [1.0, -0.1, True, "0.3"])
def test_bad_mask_ratio_is_refused(ratio: object) -> None:
    with pytest.raises(ConfigError, match="MSNModel: mask_ratio must be a number in"):
        check_mask_ratio(ratio, "MSNModel")
    with pytest.raises(ConfigError, match="random_token_mask: mask_ratio"):
        random_token_mask((2, 5), ratio)  # type: ignore[arg-type]


def test_get_and_set_at_index_match_loops() -> None:
    tokens = torch.randn(3, 7, 4)
    index = torch.tensor([[0, 3, 6], [5, 1, 2], [4, 4, 0]])
    got = get_at_index(tokens, index)
    for b in range(3):
        for k in range(3):
            assert torch.equal(got[b, k], tokens[b, index[b, k]])
    distinct = torch.tensor([[0, 3, 6], [5, 1, 2], [4, 2, 0]])
    value = torch.randn(3, 3, 4)
    before = tokens.clone()
    out = set_at_index(tokens, distinct, value)
    assert torch.equal(tokens, before)  # not in place
    expected = tokens.clone()
    for b in range(3):
        for k in range(3):
            expected[b, distinct[b, k]] = value[b, k]
    assert torch.equal(out, expected)
    assert expand_index_like(index, tokens).shape == (3, 3, 4)
    with pytest.raises(DataError, match="set_at_index: value must have shape"):
        set_at_index(tokens, distinct, torch.randn(3, 2, 4))


def test_mask_at_index_and_mask_bool_put_the_mask_token_in() -> None:
    tokens = torch.randn(2, 5, 3)
    mask_token = torch.randn(1, 1, 3)
    index = torch.tensor([[1, 4], [0, 2]])
    out = mask_at_index(tokens, index, mask_token)
    bool_mask = torch.zeros(2, 5, dtype=torch.bool)
    for b in range(2):
        for i in range(5):
            masked = i in index[b].tolist()
            bool_mask[b, i] = masked
            assert torch.equal(out[b, i], mask_token[0, 0] if masked else tokens[b, i])
    assert torch.equal(mask_bool(tokens, bool_mask, mask_token), out)
    assert repeat_token(mask_token, (2, 4)).shape == (2, 4, 3)
    cls = torch.randn(1, 1, 3)
    with_cls = prepend_class_token(tokens, cls)
    assert with_cls.shape == (2, 6, 3)
    assert torch.equal(with_cls[1, 0], cls[0, 0])
    assert torch.equal(with_cls[:, 1:], tokens)


def test_2d_sincos_pos_embed_follows_the_formula() -> None:
    d, rows, cols = 8, 2, 3
    emb = get_2d_sincos_pos_embed(d, (rows, cols), cls_token=True)
    assert emb.shape == (1 + rows * cols, d)
    assert torch.equal(emb[0], torch.zeros(d))
    quarter = d // 4
    for n in range(rows * cols):
        r, c = divmod(n, cols)
        for half, pos in ((0, r), (1, c)):
            for i in range(quarter):
                omega = 1.0 / 10000 ** (i / quarter)
                base = half * d // 2
                assert math.isclose(emb[1 + n, base + i], math.sin(pos * omega), abs_tol=1e-6)
                assert math.isclose(
                    emb[1 + n, base + quarter + i], math.cos(pos * omega), abs_tol=1e-6
                )
    with pytest.raises(ConfigError, match="multiple of 4"):
        get_2d_sincos_pos_embed(6, 2)


def test_random_block_mask_masks_blocks_within_the_ratios() -> None:
    g = torch.Generator().manual_seed(0)
    masks = random_block_mask(
        (8, 14, 14),
        batch_mask_ratio=0.5,
        min_image_mask_ratio=0.1,
        max_image_mask_ratio=0.5,
        generator=g,
    )
    assert masks.shape == (8, 14, 14)
    assert masks.dtype == torch.bool
    counts = masks.flatten(1).sum(1)
    assert int((counts > 0).sum()) == 4  # half of the images
    assert int(counts.max()) <= round(0.5 * 196)
    # Blocks of >= 4 patches: every masked patch has a masked neighbour.
    for m in masks[counts > 0]:
        padded = torch.nn.functional.pad(m.float(), (1, 1, 1, 1))[None, None]
        neighbours = torch.nn.functional.conv2d(
            padded, torch.tensor([[[[0.0, 1, 0], [1, 0, 1], [0, 1, 0]]]])
        )[0, 0]
        assert bool((neighbours[m] > 0).all())
        assert int(m.sum()) >= 0.1 * 196 * 0.5  # roughly reaches its target
    same = random_block_mask((8, 14, 14), generator=torch.Generator().manual_seed(0))
    assert torch.equal(same, masks)
    with pytest.raises(ConfigError, match="min_image_mask_ratio <= max_image_mask_ratio"):
        random_block_mask((2, 4, 4), min_image_mask_ratio=0.6, max_image_mask_ratio=0.5)


def test_mask_image_patches_blanks_the_fraction_of_cells() -> None:
    x = torch.rand(4, 3, 8, 8) + 1.0
    before = x.clone()
    out = mask_image_patches(x, 0.5, 2)
    assert torch.equal(x, before)
    cells = out[:, 0].unfold(1, 2, 2).unfold(2, 2, 2)  # (B, 4, 4, 2, 2)
    blank = (cells == 0).all(-1).all(-1)
    kept = (cells > 0).all(-1).all(-1)
    assert (blank | kept).all()
    assert blank.flatten(1).sum(1).tolist() == [8, 8, 8, 8]
    assert torch.equal(mask_image_patches(x, 0.0, 2), x)
