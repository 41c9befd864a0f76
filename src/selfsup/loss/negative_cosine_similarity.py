"""Negative cosine similarity: the loss of BYOL, SimSiam and FastSiam.

SimSiam (Chen & He 2021, eq. 1) minimises the negative cosine similarity of a prediction p1
and a projection z2 of the other view,

    D(p1, z2) = - (p1 / ‖p1‖₂) · (z2 / ‖z2‖₂),

symmetrised as L = ½ D(p1, stopgrad(z2)) + ½ D(p2, stopgrad(z1)) (eq. 2 and 3). BYOL's
normalised mean squared error (Grill et al. 2020, eq. 2), ‖q̄ - z̄'‖² = 2 - 2 cos(q, z'),
is the same objective up to an affine map. The stop-gradient is the model's business
(``SimSiam``/``BYOL`` models detach the projection they return), not this loss's.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError

__all__ = ["NegativeCosineSimilarity", "negative_cosine_similarity"]


def negative_cosine_similarity(x0: Tensor, x1: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """Mean over samples of D(x0, x1) = -cos(x0, x1) (SimSiam eq. 1).

    Args:
        x0: (batch_size, dim) predictions (or any shape; the similarity runs over ``dim``).
        x1: Same shape as ``x0``: projections of the other view (detached by the caller).
        dim: Dimension holding the features.
        eps: Lower bound of the norms, so a zero vector gives similarity 0, not NaN.

    Returns:
        Scalar in [-1, 1]: -1 when every pair points the same way.
    """
    if x0.shape != x1.shape:
        raise DataError(
            "negative_cosine_similarity: x0 and x1 must have the same shape, got "
            f"{tuple(x0.shape)} and {tuple(x1.shape)}"
        )
    return -F.cosine_similarity(x0, x1, dim=dim, eps=eps).mean()


class NegativeCosineSimilarity(nn.Module):
    """Negative cosine similarity of two batches (lightly's ``NegativeCosineSimilarity``).

    Args:
        dim: Dimension holding the features (1 for (batch_size, dim) inputs).
        eps: Lower bound of the norms, a finite number > 0.

    Examples:
        >>> criterion = NegativeCosineSimilarity()
        >>> z0, p0 = model(x0)  # SimSiam: projection (detached) and prediction
        >>> z1, p1 = model(x1)
        >>> loss = 0.5 * (criterion(z0, p1) + criterion(z1, p0))
    """

    def __init__(self, dim: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        number = isinstance(eps, int | float) and not isinstance(eps, bool)
        if not number or not math.isfinite(eps) or eps <= 0:
            raise ConfigError(f"NegativeCosineSimilarity: eps must be a number > 0, got {eps!r}")
        self.dim = dim
        self.eps = float(eps)

    def forward(self, x0: Tensor, x1: Tensor) -> Tensor:
        """Scalar loss ``-mean(cos(x0, x1))`` over the other dimensions."""
        return negative_cosine_similarity(x0, x1, dim=self.dim, eps=self.eps)
