"""``selfsup.loss._precision``: the losses whose linear algebra low precision breaks run in
float32 under bf16 autocast (``trainer.precision=auto`` trains in bf16-mixed where the
hardware has bf16), and give what float32 gives."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from selfsup.loss import EMPSSLLoss, MMCRLoss, TCRLoss, WMSELoss
from selfsup.loss._precision import float32_math
from selfsup.loss.emp_ssl_loss import total_coding_rate
from selfsup.loss.mmcr_loss import mmcr_loss
from selfsup.loss.wmse_loss import whiten


def _z(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _first(out: Tensor | tuple[Tensor, ...]) -> Tensor:
    return out[0] if isinstance(out, tuple) else out


FUNCTIONS: dict[str, tuple[Callable[[Tensor], Tensor | tuple[Tensor, ...]], Tensor]] = {
    "mmcr_loss": (mmcr_loss, F.normalize(_z(8, 3, 6), dim=-1)),
    "total_coding_rate": (total_coding_rate, F.normalize(_z(4, 8, 6), dim=-1)),
    "whiten": (whiten, _z(32, 6)),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_bfloat16_input_is_computed_in_float32(name: str) -> None:
    fn, z = FUNCTIONS[name]
    half = z.bfloat16()
    out = _first(fn(half))
    assert out.dtype == torch.float32
    # Exactly what float32 math gives on the same (bf16-rounded) values.
    assert torch.equal(out, _first(fn(half.float())))


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_autocast_is_off_inside(name: str) -> None:
    fn, z = FUNCTIONS[name]
    expected = _first(fn(z))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = _first(fn(z))
    # Under autocast the products inside would round to bf16 (differences ~1e-2).
    assert got.dtype == torch.float32
    assert torch.equal(got, expected)


#: A loss, the shapes of the embeddings it takes, and how it takes them.
LOSSES: dict[str, tuple[list[tuple[int, ...]], Callable[[list[Tensor]], Tensor]]] = {
    "MMCRLoss": ([(8, 2, 16), (8, 2, 16)], lambda z: MMCRLoss()(z[0], z[1])),
    "TCRLoss": ([(16, 8)], lambda z: TCRLoss()(z[0])),
    "EMPSSLLoss": ([(8, 16)] * 3, lambda z: EMPSSLLoss()(z)),
    "WMSELoss": ([(32, 4)], lambda z: WMSELoss(embedding_dim=4, w_size=8)(z[0])),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_the_losses_train_under_bf16_autocast(name: str) -> None:
    """A step of bf16-mixed training, given what a bf16 network hands its loss: the loss is
    finite float32 with finite gradients (MMCR and EMP-SSL raised for bfloat16 before:
    nuclear norm and logdet are not defined for it; W-MSE whitened in bfloat16)."""
    shapes, loss = LOSSES[name]
    leaves = [_z(*shape, seed=i).requires_grad_() for i, shape in enumerate(shapes)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss([leaf.bfloat16() for leaf in leaves])
    assert value.dtype == torch.float32
    assert torch.isfinite(value)
    value.backward()
    assert all(leaf.grad is not None and torch.isfinite(leaf.grad).all() for leaf in leaves)


def test_float32_and_float64_arguments_are_kept() -> None:
    seen: list[torch.dtype] = []

    @float32_math
    def probe(a: Tensor, b: Tensor, *, c: Tensor, k: int = 0) -> Tensor:
        seen.extend([a.dtype, b.dtype, c.dtype])
        assert not torch.is_autocast_enabled("cpu")
        return a

    with torch.autocast("cpu", dtype=torch.bfloat16):
        probe(_z(2).half(), _z(2).double(), c=_z(2).bfloat16(), k=3)
    assert seen == [torch.float32, torch.float64, torch.float32]
