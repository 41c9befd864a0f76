"""TiCo's loss: transformation invariance plus a contrast against a running covariance.

TiCo (Zhu et al. 2022, "TiCo: Transformation Invariance and Covariance Contrast for
Self-Supervised Visual Representation Learning", https://arxiv.org/abs/2206.10698, sec. 3
and Algorithm 1), for L2-normalised embeddings z_i (first branch) and z'_i (second branch)
of the N images of a batch:

    C_t = β C_{t-1} + (1 - β) (1/N) Σ_i z_i z_iᵀ                  (running covariance, C_0 = 0)
    L   = -(1/N) Σ_i z_iᵀ z'_i + ρ (1/N) Σ_i z_iᵀ C_t z_i

The first term pulls the two views of an image together (invariance); the second pushes
each embedding away from the directions the recent batches occupy (covariance contrast),
which prevents collapse without negatives. β = 0.9 and ρ = 20 are the paper's ImageNet
values. As lightly's ``TiCoLoss``, this module adds the constant 1 (``1 - cos``), so the loss
is >= 0 (C_t is positive semi-definite); gradients are unchanged. The gradient flows through
the current batch's share of C_t; the stored C_{t-1} is a constant.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError
from selfsup.loss._pair import check_gather_available, check_weight, global_pair

__all__ = ["TiCoLoss", "tico_covariance", "tico_loss"]


def tico_covariance(previous: Tensor, z: Tensor, beta: float) -> Tensor:
    """C_t = β C_{t-1} + (1 - β) zᵀz / N.

    Args:
        previous: (dim, dim) C_{t-1}.
        z: (N, dim) L2-normalised embeddings of the first branch.
        beta: β in [0, 1], the weight of the past.

    Returns:
        (dim, dim) C_t, differentiable with respect to ``z``.
    """
    return beta * previous + (1 - beta) * (z.T @ z) / z.shape[0]


def tico_loss(z_a: Tensor, z_b: Tensor, covariance: Tensor, rho: float) -> Tensor:
    """``1 - (1/N) Σ z_iᵀ z'_i + ρ (1/N) Σ z_iᵀ C z_i`` on L2-normalised rows.

    Args:
        z_a: (N, dim) L2-normalised embeddings of the first branch.
        z_b: (N, dim) L2-normalised embeddings of the second branch.
        covariance: (dim, dim) C_t (see :func:`tico_covariance`).
        rho: ρ >= 0, the weight of the covariance contrast.
    """
    invariance = (z_a * z_b).sum(dim=1).mean()
    contrast = ((z_a @ covariance) * z_a).sum(dim=1).mean()
    return 1 - invariance + rho * contrast


class TiCoLoss(nn.Module):
    """TiCo loss (lightly's ``TiCoLoss``), holding the running covariance C as a buffer.

    Each call computes C_t from the stored C_{t-1} and the batch, returns the loss and, with
    ``update_covariance_matrix=True``, stores C_t (detached) for the next call. C starts at
    zero with the size of the first batch's embeddings and loads from checkpoints of any size.

    Args:
        beta: β in [0, 1], the weight of the past in C's moving average (0.9).
        rho: ρ >= 0, the weight of the covariance contrast (20).
        gather_distributed: If True and ``torch.distributed`` is initialised, the embeddings
            of all processes are gathered (with gradients): C and the loss are those of the
            global batch, the same on every process, as with one process.

    Examples:
        >>> criterion = TiCoLoss()
        >>> z_a, z_b = online(x_a), momentum(x_b)  # (batch_size, dim) each
        >>> loss = criterion(z_a, z_b)
    """

    covariance: Tensor

    def __init__(self, beta: float = 0.9, rho: float = 20.0, gather_distributed: bool = False):
        super().__init__()
        owner = "TiCoLoss"
        self.beta = check_weight(beta, "beta", owner, " and <= 1 (0.9 in the paper)")
        if self.beta > 1:
            raise ConfigError(f"{owner}: beta must be a finite number in [0, 1], got {beta!r}")
        self.rho = check_weight(rho, "rho", owner, " (20 in the paper)")
        check_gather_available(gather_distributed, owner)
        self.gather_distributed = gather_distributed
        # Empty until the first batch tells the embedding size.
        self.register_buffer("covariance", torch.zeros(0, 0))

    def forward(self, z_a: Tensor, z_b: Tensor, update_covariance_matrix: bool = True) -> Tensor:
        """Scalar loss of two (batch_size, dim) batches of embeddings.

        Args:
            z_a: (batch_size, dim) first branch (online network); C is built from it.
            z_b: (batch_size, dim) second branch (momentum network).
            update_covariance_matrix: Store C_t for the next call.
        """
        z_a, z_b = global_pair(
            z_a, z_b, self.gather_distributed, "TiCoLoss", "the covariance needs"
        )
        dim = z_a.shape[1]
        previous = self.covariance
        if previous.numel() == 0:
            previous = z_a.new_zeros(dim, dim)
        elif previous.shape != (dim, dim):
            raise DataError(
                f"TiCoLoss: embeddings of size {dim} but the running covariance is "
                f"{tuple(previous.shape)}; use one TiCoLoss per embedding size"
            )
        z_a = F.normalize(z_a, dim=1)
        z_b = F.normalize(z_b, dim=1)
        covariance = tico_covariance(previous.to(z_a), z_a, self.beta)
        if update_covariance_matrix:
            self.covariance = covariance.detach()
        return tico_loss(z_a, z_b, covariance, self.rho)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # The buffer's size is only known once trained: take the checkpoint's.
        saved = state_dict.get(prefix + "covariance")
        if isinstance(saved, Tensor):
            self.covariance = torch.empty_like(saved, device=self.covariance.device)
        super()._load_from_state_dict(state_dict, prefix, *args)
