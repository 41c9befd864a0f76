"""Barlow Twins' redundancy-reduction loss.

Barlow Twins (Zbontar et al. 2021, eq. 1 and 2):

    L_BT = Σ_i (1 - C_ii)² + λ Σ_i Σ_{j≠i} C_ij²

    C_ij = Σ_b z^A_{b,i} z^B_{b,j} / ( sqrt(Σ_b (z^A_{b,i})²) · sqrt(Σ_b (z^B_{b,j})²) )

"where b indexes batch samples and i, j index the vector dimension of the networks'
outputs", with the outputs "mean-centered along the batch dimension". C is the
cross-correlation matrix of the two views' embeddings, and the loss pushes it towards the
identity: invariance on the diagonal, decorrelation off it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from selfsup.loss._pair import check_gather_available, check_weight, global_pair

__all__ = ["BarlowTwinsLoss", "barlow_twins_loss", "cross_correlation"]


def cross_correlation(z_a: Tensor, z_b: Tensor, eps: float = 1e-12) -> Tensor:
    """The (D, D) cross-correlation matrix C of eq. 2.

    Each feature is centred over the batch and divided by its (biased) standard deviation,
    so C_ij is exactly the Pearson correlation of feature i of view A with feature j of
    view B over the batch; ``eps`` only guards a feature that is constant over the batch.

    Args:
        z_a: (batch_size, D) embeddings of the first views.
        z_b: (batch_size, D) embeddings of the second views.
        eps: Lower bound of a feature's standard deviation.
    """
    n = z_a.shape[0]
    a = z_a - z_a.mean(dim=0)
    b = z_b - z_b.mean(dim=0)
    a = a / a.pow(2).mean(dim=0).sqrt().clamp_min(eps)
    b = b / b.pow(2).mean(dim=0).sqrt().clamp_min(eps)
    return a.T @ b / n


def barlow_twins_loss(z_a: Tensor, z_b: Tensor, lambda_param: float) -> Tensor:
    """L_BT of eq. 1 for one batch.

    Args:
        z_a: (batch_size, D) embeddings of the first views, batch_size >= 2.
        z_b: (batch_size, D) embeddings of the second views.
        lambda_param: λ, the weight of the redundancy-reduction (off-diagonal) term.

    Returns:
        Scalar loss, 0 when C is the identity.
    """
    c = cross_correlation(z_a, z_b)
    diagonal = torch.diagonal(c)
    on_diag = (1 - diagonal).pow(2).sum()
    off_diag = c.pow(2).sum() - diagonal.pow(2).sum()
    return on_diag + lambda_param * off_diag


class BarlowTwinsLoss(nn.Module):
    """Barlow Twins loss (lightly's ``BarlowTwinsLoss``).

    Args:
        lambda_param: λ of eq. 1, a finite number >= 0; the paper uses 5e-3.
        gather_distributed: If True and ``torch.distributed`` is initialised, C is computed
            over the batches of all processes (gathered with gradients), as the authors do
            with synchronised batch normalisation; every process then computes the loss of
            the global batch, and DDP's averaged gradient is that loss's gradient.

    Examples:
        >>> criterion = BarlowTwinsLoss()
        >>> z_a, z_b = model(x_a), model(x_b)  # (batch_size, D) each
        >>> loss = criterion(z_a, z_b)
    """

    def __init__(self, lambda_param: float = 5e-3, gather_distributed: bool = False) -> None:
        super().__init__()
        owner = "BarlowTwinsLoss"
        self.lambda_param = check_weight(lambda_param, "lambda_param", owner, " (paper: 5e-3)")
        check_gather_available(gather_distributed, owner)
        self.gather_distributed = gather_distributed

    def forward(self, z_a: Tensor, z_b: Tensor) -> Tensor:
        """Scalar loss of two (batch_size, D) batches of embeddings."""
        z_a, z_b = global_pair(
            z_a, z_b, self.gather_distributed, "BarlowTwinsLoss", "the cross-correlation needs"
        )
        return barlow_twins_loss(z_a, z_b, self.lambda_param)
