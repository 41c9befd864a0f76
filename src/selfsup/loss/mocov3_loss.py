"""MoCo v3's contrastive loss: InfoNCE of queries against the keys of the same batch, times 2τ.

MoCo v3 (Chen, Xie and He 2021, https://arxiv.org/abs/2104.02057) keeps MoCo's InfoNCE,

    L_q = -log( exp(q·k+ / τ) / (exp(q·k+ / τ) + Σ_{k-} exp(q·k- / τ)) )        (eq. 1)

but takes its negatives from the keys of the same batch instead of a memory queue (sec. 3):
the key of the other view of the same image is the positive, the keys of every other image
of the batch are the negatives. Algorithm 1 writes it as

    def ctr(q, k):
        logits = mm(q, k.t())        # [N, N] pairs
        labels = range(N)            # positives are in diagonal
        loss = CrossEntropyLoss(logits/tau, labels)
        return 2 * tau * loss

    loss = ctr(q1, k2) + ctr(q2, k1)  # symmetrized

with q and k L2-normalised. The factor 2τ cancels the 1/τ of the logits in the gradient, so
the gradient's scale does not change with τ. :class:`MoCoV3Loss` is ``ctr``; the method
(:mod:`selfsup.methods.mocov3`) adds the two view orders.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.loss._pair import check_gather_available, global_pair
from selfsup.loss.ntx_ent_loss import check_temperature

__all__ = ["MoCoV3Loss", "mocov3_contrastive"]


def mocov3_contrastive(query: Tensor, key: Tensor, temperature: float = 0.2) -> Tensor:
    """``ctr(q, k)`` of Algorithm 1: 2τ times the mean over queries of eq. 1.

    Args:
        query: (n, dim) queries q (online branch: projection, then prediction).
        key: (n, dim) keys k (momentum branch); ``key[i]`` is the positive of ``query[i]``,
            every other row a negative.
        temperature: τ > 0.

    Returns:
        Scalar loss, in the dtype of ``query``.
    """
    check_temperature(temperature, "mocov3_contrastive")
    q = F.normalize(query, dim=1)
    k = F.normalize(key, dim=1)
    logits = q @ k.T / temperature  # (n, n): the positives on the diagonal
    labels = torch.arange(q.shape[0], device=q.device)
    return 2 * temperature * F.cross_entropy(logits, labels)


class MoCoV3Loss(nn.Module):
    """MoCo v3's contrastive loss ``ctr(q, k)`` (see the module docstring).

    Call it once per view order and add the two, as MoCo v3 does:
    ``loss = criterion(q1, k2) + criterion(q2, k1)``.

    Args:
        temperature: τ, a finite number >= 1e-8 (0.2 by default).
        gather_distributed: If True and ``torch.distributed`` is initialised with more than
            one process, queries and keys of all processes are gathered (with gradients) and
            every process computes the loss of the global batch: the keys of every process
            are negatives, as in the authors' code, and DDP's averaged gradient is the
            gradient of that loss.

    Raises:
        ConfigError: For a bad temperature, or ``gather_distributed`` on a PyTorch build
            without ``torch.distributed``.

    Examples:
        >>> criterion = MoCoV3Loss(temperature=0.2)
        >>> loss = criterion(q1, k2) + criterion(q2, k1)  # (batch_size, dim) each
    """

    def __init__(self, temperature: float = 0.2, gather_distributed: bool = False) -> None:
        super().__init__()
        check_temperature(temperature, "MoCoV3Loss")
        check_gather_available(gather_distributed, "MoCoV3Loss")
        self.temperature = float(temperature)
        self.gather_distributed = gather_distributed

    def forward(self, query: Tensor, key: Tensor) -> Tensor:
        """Scalar loss of (batch_size, dim) queries against (batch_size, dim) keys."""
        query, key = global_pair(
            query, key, self.gather_distributed, "MoCoV3Loss", "the in-batch negatives need"
        )
        return mocov3_contrastive(query, key, self.temperature)
