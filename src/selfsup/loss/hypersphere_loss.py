"""Alignment and uniformity on the hypersphere (Wang and Isola 2020) as a training loss.

Wang and Isola 2020, "Understanding Contrastive Representation Learning through Alignment and
Uniformity on the Hypersphere" (https://arxiv.org/abs/2005.10242, sec. 4.2), for an encoder
f whose outputs lie on the unit sphere, positive pairs (x, y) and data pairs (x, y) drawn
independently:

    L_align(f; α)   = E_{(x,y) ~ p_pos} [ ‖f(x) - f(y)‖₂^α ]
    L_uniform(f; t) = log E_{x,y ~ p_data} [ exp(-t ‖f(x) - f(y)‖₂²) ]

and the paper trains with L_align + λ L_uniform. Within a batch, the positives are the
two views of an image and the data pairs are the distinct pairs of one view's embeddings;
the uniformity of both views is averaged, as in lightly's ``HypersphereLoss`` (whose
defaults, t = 1, λ = 1, α = 2, this module keeps):

    L = L_align(z_a, z_b) + λ (L_uniform(z_a) + L_uniform(z_b)) / 2

The embeddings are L2-normalised here. L_uniform <= 0, so the loss may be negative.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import DataError
from selfsup.loss._pair import check_positive, check_weight

__all__ = ["HypersphereLoss", "alignment_loss", "hypersphere_loss", "uniformity_loss"]


def alignment_loss(x: Tensor, y: Tensor, alpha: float = 2.0) -> Tensor:
    """L_align: the mean over pairs of ‖x_i - y_i‖₂^α.

    Args:
        x: (n, dim) embeddings on the unit sphere.
        y: (n, dim) their positives.
        alpha: α > 0.
    """
    distances: Tensor = (x - y).norm(dim=1)
    return distances.pow(alpha).mean()


def uniformity_loss(x: Tensor, t: float = 1.0) -> Tensor:
    """L_uniform: log of the mean over the n(n-1)/2 pairs i < j of exp(-t ‖x_i - x_j‖₂²).

    Args:
        x: (n, dim) embeddings on the unit sphere, n >= 2.
        t: t > 0.
    """
    n = x.shape[0]
    # ‖x_i - x_j‖² = 2 - 2 x_i·x_j on the sphere: smooth where points meet, unlike pdist.
    i, j = torch.triu_indices(n, n, offset=1, device=x.device)
    sq_dist = (2 - 2 * (x[i] * x[j]).sum(dim=1)).clamp(min=0)
    # log-mean-exp, stable for large t.
    return torch.logsumexp(-t * sq_dist, dim=0) - math.log(sq_dist.shape[0])


def hypersphere_loss(
    z_a: Tensor, z_b: Tensor, t: float = 1.0, lam: float = 1.0, alpha: float = 2.0
) -> Tensor:
    """``L_align(z_a, z_b) + λ (L_uniform(z_a) + L_uniform(z_b)) / 2`` on unit vectors.

    Args:
        z_a: (n, dim) first views, on the unit sphere, n >= 2.
        z_b: (n, dim) second views; ``z_b[i]`` is the positive of ``z_a[i]``.
        t: t of L_uniform.
        lam: λ, weight of the uniformity.
        alpha: α of L_align.
    """
    uniformity = (uniformity_loss(z_a, t) + uniformity_loss(z_b, t)) / 2
    return alignment_loss(z_a, z_b, alpha) + lam * uniformity


class HypersphereLoss(nn.Module):
    """Alignment plus uniformity (lightly's ``HypersphereLoss``): see the module docstring.

    Args:
        t: t > 0 of L_uniform, the inverse width of its Gaussian kernel (1).
        lam: λ >= 0, the weight of the uniformity (1).
        alpha: α > 0, the power of the distance in L_align (2).

    Examples:
        >>> criterion = HypersphereLoss()
        >>> z_a, z_b = model(x_a), model(x_b)  # (batch_size, dim) each
        >>> loss = criterion(z_a, z_b)
    """

    def __init__(self, t: float = 1.0, lam: float = 1.0, alpha: float = 2.0) -> None:
        super().__init__()
        owner = "HypersphereLoss"
        self.t = check_positive(t, "t", owner, " (the paper uses 2, lightly 1)")
        self.lam = check_weight(lam, "lam", owner)
        self.alpha = check_positive(alpha, "alpha", owner, " (2 in the paper)")

    def forward(self, z_a: Tensor, z_b: Tensor) -> Tensor:
        """Scalar loss of two (batch_size, dim) batches of embeddings, batch_size >= 2."""
        if z_a.ndim != 2 or z_a.shape != z_b.shape or z_a.shape[0] < 2:
            raise DataError(
                "HypersphereLoss: z_a and z_b must both have the same shape (batch_size, dim) "
                "with batch_size >= 2 (the uniformity needs pairs), got "
                f"{tuple(z_a.shape)} and {tuple(z_b.shape)}"
            )
        z_a = F.normalize(z_a, dim=1)
        z_b = F.normalize(z_b, dim=1)
        return hypersphere_loss(z_a, z_b, self.t, self.lam, self.alpha)
