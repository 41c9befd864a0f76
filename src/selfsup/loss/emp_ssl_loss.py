"""EMP-SSL's loss: total coding rate of every patch plus cosine invariance to the mean patch.

EMP-SSL (Tong, Chen, Ma & LeCun 2023, https://arxiv.org/abs/2304.03977, sec. 3) embeds n
fixed-size patches of every image and trains

    max_θ  (1/n) Σ_{i=1..n} [ R(Z_i) + λ D(Z_i, Z̄) ]

where Z̄ = (1/n) Σ_i Z_i is the mean of the representations of the patches of an image and
D is the cosine similarity. R is the total coding rate of a batch Z_i of b embeddings of
dimension d,

    R(Z) = ½ log det( I + d / (b ε²) Zᵀ Z ),

which grows as the embeddings spread over more directions and so prevents collapse. As the
authors' code (and lightly) do, ``eps`` here is the whole ε² term (``d / (b · eps)``, 0.2), and
the embeddings are the L2-normalised outputs of the projector: this module normalises them
itself, which changes nothing for normalised inputs and keeps R from growing by mere scaling.
The loss minimised is the negative of the objective, so it is below zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import DataError
from selfsup.loss._pair import check_positive, check_weight, stack_views
from selfsup.loss._precision import float32_math

__all__ = [
    "EMPSSLLoss",
    "TCRLoss",
    "cosine_invariance",
    "emp_ssl_loss",
    "total_coding_rate",
]


@float32_math
def total_coding_rate(z: Tensor, eps: float = 0.2) -> Tensor:
    """R(Z) = ½ log det(I + d/(b·eps) ZᵀZ) of every batch in ``z``, in float32 at least
    with autocast off (``logdet`` is not defined for bfloat16; :mod:`selfsup.loss._precision`).

    Args:
        z: (..., b, d) batches of b embeddings of dimension d (any leading dimensions, e.g.
            one batch per patch).
        eps: The distortion ε² of the coding rate, > 0.

    Returns:
        (...) coding rates, one per batch. The smaller of ZᵀZ (d, d) and ZZᵀ (b, b) is used:
        det(I_d + c ZᵀZ) = det(I_b + c ZZᵀ) (Sylvester), so many patches of a small batch
        cost b x b determinants.
    """
    b, d = z.shape[-2], z.shape[-1]
    gram = z.transpose(-2, -1) @ z if d <= b else z @ z.transpose(-2, -1)
    eye = torch.eye(gram.shape[-1], dtype=z.dtype, device=z.device)
    return 0.5 * torch.logdet(eye + (d / (b * eps)) * gram)


def cosine_invariance(z: Tensor) -> Tensor:
    """(1/n) Σ_i D(Z_i, Z̄): mean cosine similarity of every patch to the mean of the patches.

    Args:
        z: (n, b, d) embeddings of n patches of b images.

    Returns:
        Scalar in [-1, 1]; 1 when all patches of every image have one direction.
    """
    mean = z.mean(dim=0, keepdim=True)
    return F.cosine_similarity(z, mean, dim=-1).mean()


def emp_ssl_loss(z: Tensor, eps: float = 0.2, inv_coef: float = 200.0) -> Tensor:
    """−(1/n) Σ_i [R(Z_i) + λ D(Z_i, Z̄)] for (n, b, d) embeddings (normalised here)."""
    z = F.normalize(z, dim=-1)
    return -total_coding_rate(z, eps).mean() - inv_coef * cosine_invariance(z)


class TCRLoss(nn.Module):
    """Negative total coding rate −R(Z) of a batch of embeddings (EMP-SSL's anti-collapse term).

    R(Z) = ½ log det(I + d/(bε²) ZZᵀ) (EMP-SSL, sec. 3; the coding rate of MCR², Yu et al.
    2020): it is the larger the more directions the b embeddings span, so minimising −R spreads
    them. Embeddings are L2-normalised first.

    Args:
        eps: The distortion ε² (0.2, the authors' code), > 0.

    Examples:
        >>> criterion = TCRLoss()
        >>> loss = criterion(model(x))  # (batch_size, dim) -> scalar
    """

    def __init__(self, eps: float = 0.2) -> None:
        super().__init__()
        self.eps = check_positive(eps, "eps", "TCRLoss", " (paper: 0.2)")

    def forward(self, z: Tensor) -> Tensor:
        """Scalar −R of (batch_size, dim) embeddings, or the mean over (..., b, d) batches."""
        if z.ndim < 2 or z.shape[-2] < 1:
            raise DataError(
                f"TCRLoss: expected embeddings (batch_size, dim), got shape {tuple(z.shape)}"
            )
        return -total_coding_rate(F.normalize(z, dim=-1), self.eps).mean()


class EMPSSLLoss(nn.Module):
    """EMP-SSL loss (lightly's ``EMPSSLLoss``): coding rate of every patch plus invariance.

    Args:
        tcr_eps: ε² of the total coding rate (0.2, the authors' code), > 0.
        inv_coef: λ, weight of the cosine invariance term (200, the authors' code), >= 0.

    Examples:
        >>> criterion = EMPSSLLoss()
        >>> patches = EMPSSLTransform(num_patches=20)(image)  # one list per image
        >>> z_views = [model(p) for p in patch_batches]  # n tensors (batch_size, dim)
        >>> loss = criterion(z_views)
    """

    def __init__(self, tcr_eps: float = 0.2, inv_coef: float = 200.0) -> None:
        super().__init__()
        self.tcr_eps = check_positive(tcr_eps, "tcr_eps", "EMPSSLLoss", " (paper: 0.2)")
        self.inv_coef = check_weight(inv_coef, "inv_coef", "EMPSSLLoss", " (paper: 200)")

    def forward(self, z_views: Sequence[Tensor]) -> Tensor:
        """Scalar loss of n >= 2 patch embeddings, each (batch_size, dim), patch i of image j
        at row j of ``z_views[i]``."""
        z = stack_views(z_views, "EMPSSLLoss", "patch embeddings", "patch embedding", 1)
        return emp_ssl_loss(z, self.tcr_eps, self.inv_coef)
