"""MMCR's loss: maximise the nuclear norm of the centroids of every image's views.

MMCR (Yerxa et al. 2023, "Learning Efficient Coding of Natural Images with Maximum Manifold
Capacity Representations", https://arxiv.org/abs/2303.03307, sec. 3): every image i of the
batch gives a matrix Z_i (m, d) of the embeddings of its m views, normalised to the unit
sphere; its centroid is c_i = (1/m) Σ_j z_ij, and C (N, d) stacks the N centroids. The loss is

    L = -‖C‖_* + λ (1/N) Σ_i ‖Z_i‖_*

with ‖·‖_* the nuclear norm (the sum of singular values). Maximising ‖C‖_* spreads the
centroids over many directions (at most min(N, d) unit-sized singular values) while pulling
the views of an image together (a centroid of unit vectors is long only when they agree);
λ ≥ 0 additionally compresses each image's manifold of views (5e-3 for ImageNet).

As lightly's ``MMCRLoss``, the views of an image come as two tensors — the online network's
and the momentum network's — and Z_i holds both (m = 2k). Unlike lightly's, the rows are
L2-normalised here, as the paper's objective is defined on the unit sphere; pass normalised
embeddings to get lightly's values exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import DataError
from selfsup.loss._pair import check_weight
from selfsup.loss._precision import float32_math

__all__ = ["MMCRLoss", "mmcr_loss"]


@float32_math
def mmcr_loss(z: Tensor, lmda: float = 5e-3) -> Tensor:
    """``-‖C‖_* + λ (1/N) Σ_i ‖Z_i‖_*`` of views already normalised to the unit sphere.

    The nuclear norms (singular values) are computed in float32 with autocast off: they are
    not defined for bfloat16 (:mod:`selfsup.loss._precision`).

    Args:
        z: (N, m, d): the m view embeddings of each of N images, unit rows.
        lmda: λ >= 0, the weight of the local nuclear norms.

    Returns:
        Scalar loss, float32 for a half-precision ``z``, else in its dtype.
    """
    centroids = z.mean(dim=1)  # (N, d)
    loss: Tensor = -torch.linalg.matrix_norm(centroids, ord="nuc")
    if lmda > 0:
        loss = loss + lmda * torch.linalg.matrix_norm(z, ord="nuc").mean()
    return loss


class MMCRLoss(nn.Module):
    """MMCR loss (lightly's ``MMCRLoss``): see the module docstring.

    Args:
        lmda: λ >= 0, the weight of the local nuclear norms (5e-3 in the paper for ImageNet).

    Examples:
        >>> criterion = MMCRLoss()
        >>> online = online_network(views)      # (batch_size, k, dim)
        >>> momentum = momentum_network(views)  # (batch_size, k, dim)
        >>> loss = criterion(online, momentum)
    """

    def __init__(self, lmda: float = 5e-3) -> None:
        super().__init__()
        self.lmda = check_weight(lmda, "lmda", "MMCRLoss", " (5e-3 in the paper)")

    def forward(self, online: Tensor, momentum: Tensor) -> Tensor:
        """Scalar loss of the views of a batch.

        Args:
            online: (batch_size, k, dim) online embeddings of the k views of each image, or
                (batch_size, dim) for one view.
            momentum: The momentum network's embeddings, shaped like ``online``.
        """
        if online.shape != momentum.shape or online.ndim not in (2, 3) or online.numel() == 0:
            raise DataError(
                "MMCRLoss: online and momentum must both have the same shape (batch_size, k, "
                f"dim) or (batch_size, dim), got {tuple(online.shape)} and "
                f"{tuple(momentum.shape)}"
            )
        if online.ndim == 2:
            online, momentum = online.unsqueeze(1), momentum.unsqueeze(1)
        z = F.normalize(torch.cat([online, momentum], dim=1), dim=-1)
        return mmcr_loss(z, self.lmda)
