"""The contract every two-view loss keeps, as reusable checks.

``check_two_view_loss(make_loss)`` runs them all on a loss built by ``make_loss()``: no
input mutated; dtype and device kept; the same output for the same inputs; finite
gradients; and a few optimisation steps of a small linear encoder on a tiny dataset lower
the loss without collapsing the embeddings (the std of the L2-normalised embeddings, which
is ~1/sqrt(dim) for spread-out vectors and 0 when they collapse, stays above a floor).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

TwoViewLoss = Callable[[Tensor, Tensor], Tensor]


def std_of_l2_normalized(z: Tensor) -> float:
    """Mean over dimensions of the std of the L2-normalised rows of ``z`` (n, d)."""
    return float(nn.functional.normalize(z, dim=1).std(dim=0).mean())


def _views(seed: int, n: int, dim: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=dtype)
    return x, x + 0.1 * torch.randn(n, dim, generator=g, dtype=dtype)


def check_inputs_not_mutated(make_loss: Callable[[], nn.Module]) -> None:
    z0, z1 = _views(0, 8, 6, torch.float64)
    z0.requires_grad_(True)
    c0, c1 = z0.detach().clone(), z1.clone()
    make_loss()(z0, z1).backward()
    assert torch.equal(z0.detach(), c0)
    assert torch.equal(z1, c1)


def check_dtype_device_and_determinism(make_loss: Callable[[], nn.Module]) -> None:
    for dtype in (torch.float32, torch.float64):
        z0, z1 = _views(1, 8, 6, dtype)
        loss = make_loss()(z0, z1)
        assert loss.dtype == dtype
        assert loss.device == z0.device
        assert loss.ndim == 0
        assert torch.equal(loss, make_loss()(z0, z1))


def check_finite_gradients(make_loss: Callable[[], nn.Module]) -> None:
    z0, z1 = _views(2, 8, 6, torch.float64)
    z0.requires_grad_(True)
    z1.requires_grad_(True)
    make_loss()(z0, z1).backward()
    for z in (z0, z1):
        assert z.grad is not None
        assert torch.isfinite(z.grad).all()
        assert z.grad.abs().sum() > 0


def check_training_lowers_loss_without_collapse(
    make_loss: Callable[[], nn.Module], steps: int = 30, lr: float = 0.05, collapse: bool = True
) -> None:
    """SGD on a linear encoder over two noisy views of 32 random points.

    ``collapse=False`` skips the collapse check, for a loss that avoids collapse only
    together with a predictor and a stop-gradient (SimSiam's negative cosine similarity).
    """
    torch.manual_seed(0)
    encoder = nn.Linear(8, 8).double()
    criterion = make_loss()
    x, noisy = _views(3, 32, 8, torch.float64)
    optimizer = torch.optim.SGD(encoder.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = criterion(encoder(x), encoder(noisy))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0], losses
    if not collapse:
        return
    with torch.no_grad():
        assert std_of_l2_normalized(encoder(x)) > 0.5 / 8**0.5


def check_two_view_loss(make_loss: Callable[[], nn.Module], collapse: bool = True) -> None:
    """Every check above (``collapse``: see the training check)."""
    check_inputs_not_mutated(make_loss)
    check_dtype_device_and_determinism(make_loss)
    check_finite_gradients(make_loss)
    check_training_lowers_loss_without_collapse(make_loss, collapse=collapse)
