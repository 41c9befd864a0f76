"""FroSSL's loss: log Frobenius norm of every view's covariance plus invariance to the mean view.

FroSSL (Skean, Dhakal, Jacobs & Sanchez Giraldo 2023, https://arxiv.org/abs/2310.02903): "FroSSL
works by minimizing covariance Frobenius norms to avoid collapse and minimizing mean-squared
error to achieve augmentation invariance" (abstract). For V views Z_1..Z_V of N samples and D
dimensions, each row scaled to norm √D, and their mean Z̄ = (1/V) Σ_v Z_v:

    L = Σ_v [ log ‖C_v‖²_F  +  w · (1/(N·D)) ‖Z_v − Z̄‖²_F ],   C_v = Z_vᵀ Z_v / tr(Z_vᵀ Z_v)

The trace normalisation fixes the sum of C_v's eigenvalues at 1, so ‖C_v‖²_F = Σ λ² is smallest
(1/D) when the eigenvalues are equal and largest (1) when one direction holds everything:
minimising its log (a second-order Rényi entropy, negated) spreads the embeddings without an
eigendecomposition. ZᵀZ (D x D) and ZZᵀ (N x N) have the same non-zero eigenvalues, so the
smaller one is used. This follows the authors' multiview code (rows on the √D sphere, MSE to the
mean view, weight w = 1). lightly's ``FroSSLLoss`` takes the same arguments but normalises every
feature (column) over the batch instead of every embedding (row) and weighs the MSE by V·D, so
its values differ from these.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.loss._pair import check_weight, stack_views

__all__ = ["FroSSLLoss", "frossl_loss", "log_frobenius_norm"]


def log_frobenius_norm(z: Tensor) -> Tensor:
    """log ‖C‖²_F of the trace-normalised covariance C = ZᵀZ / tr(ZᵀZ) of every batch.

    Args:
        z: (..., N, D) batches of N embeddings of dimension D (not all zero).

    Returns:
        (...) values in [−log min(N, D), 0]: 0 for embeddings along one direction.
    """
    n, d = z.shape[-2], z.shape[-1]
    gram = z.transpose(-2, -1) @ z if n > d else z @ z.transpose(-2, -1)
    trace = torch.diagonal(gram, dim1=-2, dim2=-1).sum(dim=-1)
    return torch.log(gram.pow(2).sum(dim=(-2, -1))) - 2 * torch.log(trace)


def frossl_loss(z: Tensor, invariance_weight: float = 1.0) -> Tensor:
    """L above for (V, N, D) embeddings of V views (rows scaled to norm √D here)."""
    d = z.shape[-1]
    z = d**0.5 * F.normalize(z, dim=-1)
    mean = z.mean(dim=0, keepdim=True)
    invariance = (z - mean).pow(2).mean(dim=(-2, -1))
    return (log_frobenius_norm(z) + invariance_weight * invariance).sum()


class FroSSLLoss(nn.Module):
    """FroSSL loss (lightly's ``FroSSLLoss``) over any number V >= 2 of views.

    Args:
        invariance_weight: w, weight of the mean-squared error to the mean view (1, the
            authors' setting), >= 0.

    Examples:
        >>> criterion = FroSSLLoss()
        >>> z0, z1 = model(x0), model(x1)  # (batch_size, dim) each
        >>> loss = criterion([z0, z1])
    """

    def __init__(self, invariance_weight: float = 1.0) -> None:
        super().__init__()
        self.invariance_weight = check_weight(
            invariance_weight, "invariance_weight", "FroSSLLoss", " (paper: 1)"
        )

    def forward(self, z_views: Sequence[Tensor]) -> Tensor:
        """Scalar loss of V >= 2 views, each (batch_size, dim) with batch_size >= 2; sample j
        of every view is row j."""
        z = stack_views(
            z_views,
            "FroSSLLoss",
            "views' embeddings",
            "view's embeddings",
            2,
            " (the covariance needs two samples)",
        )
        return frossl_loss(z, self.invariance_weight)
