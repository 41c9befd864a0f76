"""VICReg's variance-invariance-covariance loss.

VICReg (Bardes et al. 2022, sec. 3.1 and 3.2), for embeddings Z, Z' of n samples and d
dimensions:

    variance    v(Z) = (1/d) Σ_j max(0, γ - S(z^j, ε)),   S(x, ε) = sqrt(Var(x) + ε)   (eq. 1, 2)
    covariance  C(Z) = 1/(n-1) Σ_i (z_i - z̄)(z_i - z̄)ᵀ,  c(Z) = (1/d) Σ_{i≠j} C(Z)²_ij (eq. 3, 4)
    invariance  s(Z, Z') = (1/n) Σ_i ‖z_i - z'_i‖²                                    (eq. 5)
    loss        ℓ = λ s(Z, Z') + μ [v(Z) + v(Z')] + ν [c(Z) + c(Z')]                   (eq. 6)

with γ = 1, ε = 1e-4 and λ = μ = 25, ν = 1. Those weights were tuned with the authors' code,
which averages the invariance term over the d dimensions too (``F.mse_loss``) and halves the
variance term (``mean(relu(1 - std_x)) / 2 + mean(relu(1 - std_y)) / 2``); this module follows
the code, as lightly does, so the published weights keep their meaning:

    ℓ = λ s(Z, Z') / d + μ [v(Z) + v(Z')] / 2 + ν [c(Z) + c(Z')]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.loss._pair import check_gather_available, check_weight, global_pair

__all__ = ["VICRegLoss", "covariance_loss", "invariance_loss", "variance_loss", "vicreg_loss"]


def invariance_loss(z_a: Tensor, z_b: Tensor) -> Tensor:
    """s(Z, Z') / d: mean squared distance between paired embeddings, per dimension."""
    return F.mse_loss(z_a, z_b)


def variance_loss(z: Tensor, eps: float = 1e-4, gamma: float = 1.0) -> Tensor:
    """v(Z) of eq. 1: hinge on the standard deviation of every dimension over the batch.

    Args:
        z: (n, d) embeddings, n >= 2 (the unbiased variance needs two samples).
        eps: ε, keeps the gradient of the square root finite near zero variance.
        gamma: γ, the target standard deviation.
    """
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(gamma - std).mean()


def covariance_loss(z: Tensor) -> Tensor:
    """c(Z) of eq. 4: the squared off-diagonal entries of the covariance matrix, over d."""
    n, d = z.shape
    centred = z - z.mean(dim=0)
    cov = centred.T @ centred / (n - 1)
    off_diagonal = cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()
    return off_diagonal / d


def vicreg_loss(
    z_a: Tensor,
    z_b: Tensor,
    lambda_param: float = 25.0,
    mu_param: float = 25.0,
    nu_param: float = 1.0,
    eps: float = 1e-4,
) -> Tensor:
    """ℓ of eq. 6, weighted as the authors' code does (see the module docstring).

    Args:
        z_a: (n, d) embeddings of the first views, n >= 2.
        z_b: (n, d) embeddings of the second views.
        lambda_param: λ, weight of the invariance term.
        mu_param: μ, weight of the variance term.
        nu_param: ν, weight of the covariance term.
        eps: ε of the variance term.
    """
    invariance = invariance_loss(z_a, z_b)
    variance = 0.5 * (variance_loss(z_a, eps) + variance_loss(z_b, eps))
    covariance = covariance_loss(z_a) + covariance_loss(z_b)
    return lambda_param * invariance + mu_param * variance + nu_param * covariance


class VICRegLoss(nn.Module):
    """VICReg loss (lightly's ``VICRegLoss``).

    Args:
        lambda_param: λ, weight of the invariance term (25 in the paper).
        mu_param: μ, weight of the variance term (25).
        nu_param: ν, weight of the covariance term (1).
        gather_distributed: If True and ``torch.distributed`` is initialised, every term is
            computed over the batches of all processes (gathered with gradients), so the
            variance and covariance see the global batch as in the authors' code; every
            process computes the global loss, and DDP's averaged gradient is its gradient.
        eps: ε of the variance term (1e-4).

    Examples:
        >>> criterion = VICRegLoss()
        >>> z_a, z_b = model(x_a), model(x_b)  # (batch_size, dim) each
        >>> loss = criterion(z_a, z_b)
    """

    def __init__(
        self,
        lambda_param: float = 25.0,
        mu_param: float = 25.0,
        nu_param: float = 1.0,
        gather_distributed: bool = False,
        eps: float = 1e-4,
    ) -> None:
        super().__init__()
        owner = "VICRegLoss"
        self.lambda_param = check_weight(lambda_param, "lambda_param", owner)
        self.mu_param = check_weight(mu_param, "mu_param", owner)
        self.nu_param = check_weight(nu_param, "nu_param", owner)
        self.eps = check_weight(eps, "eps", owner)
        check_gather_available(gather_distributed, owner)
        self.gather_distributed = gather_distributed

    def forward(self, z_a: Tensor, z_b: Tensor) -> Tensor:
        """Scalar loss of two (batch_size, dim) batches of embeddings."""
        z_a, z_b = global_pair(
            z_a, z_b, self.gather_distributed, "VICRegLoss", "the variance and covariance need"
        )
        return vicreg_loss(z_a, z_b, self.lambda_param, self.mu_param, self.nu_param, self.eps)
