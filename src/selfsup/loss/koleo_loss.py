"""KoLeo: the Kozachenko-Leonenko differential-entropy regulariser used by DINOv2.

Sablayrolles et al. 2019 (https://arxiv.org/abs/1806.03198, eq. 4) spread a batch of
l2-normalised features x_1..x_n uniformly over the sphere by maximising the log distance of
each one to its nearest neighbour:

    L_koleo = -1/n Σ_{i=1}^{n} log(ρ_{n,i}),    ρ_{n,i} = min_{j≠i} ||x_i - x_j||

DINOv2 (Oquab et al. 2023, sec. 4) adds it, weighted 0.1, on the class tokens of each global
crop: "the KoLeo regularizer (...) encourages a uniform span of the features within a batch".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError

__all__ = ["KoLeoLoss", "koleo"]


def koleo(x: Tensor, eps: float = 1e-8) -> Tensor:
    """-1/n Σ_i log(min_{j≠i} ||x̂_i - x̂_j||) of the l2-normalised rows x̂ of ``x``.

    Args:
        x: (n, d) features, n >= 2; normalised here (the estimator is defined on the sphere).
        eps: Added to the norm (normalisation) and to each distance before the log, so that
            two identical rows give a large finite loss instead of infinity.

    Returns:
        Scalar loss in the dtype of ``x``.
    """
    if x.ndim != 2 or x.shape[0] < 2:
        raise DataError(
            f"koleo: expected (n, d) features with n >= 2 (a nearest neighbour needs another "
            f"sample), got shape {tuple(x.shape)}"
        )
    z = F.normalize(x, p=2, dim=-1, eps=eps)
    with torch.no_grad():
        # On the sphere the nearest neighbour is the row of largest dot product; the
        # diagonal (the row itself) is excluded with a value below any cosine.
        dots = z @ z.T
        dots.fill_diagonal_(-2.0)
        nearest = dots.argmax(dim=1)
    distances = (z - z[nearest]).norm(p=2, dim=-1)
    return -torch.log(distances + eps).mean()


class KoLeoLoss(nn.Module):
    """The KoLeo entropy estimator as a loss (see :func:`koleo`).

    Args:
        eps: Numerical floor of the norms and distances (> 0).

    Examples:
        >>> loss_fn = KoLeoLoss()
        >>> loss = sum(loss_fn(cls) for cls in student_global_cls_tokens)  # (B, D) each
    """

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        if not (math.isfinite(eps) and eps > 0):
            raise ConfigError(f"KoLeoLoss: eps must be a finite number > 0, got {eps!r}")
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """(n, d) features -> scalar loss."""
        return koleo(x, self.eps)
