"""NNCLR's support set: a memory bank that answers with nearest neighbours.

NNCLR (Dwibedi et al. 2021, sec. 3.2) takes as the positive of an embedding z its nearest
neighbour in a support set Q, "NN(z, Q) = argmin_{q ∈ Q} ‖z − q‖₂", on L2-normalised
embeddings, so the nearest neighbour is the entry of largest cosine similarity. The support
set is a queue of m embeddings of dimension d, random at first, to which the embeddings of
every batch are added after the search.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from selfsup.errors import ConfigError, DataError
from selfsup.loss.memory_bank import MemoryBankModule

__all__ = ["NNMemoryBankModule", "nearest_neighbours"]


def nearest_neighbours(query: Tensor, support: Tensor) -> Tensor:
    """For each row of ``query``, the row of ``support`` with the largest cosine similarity.

    Equal to NNCLR's ``argmin_{q ∈ Q} ‖z − q‖₂`` on L2-normalised vectors; ties go to the
    first such row. The rows returned are ``support``'s own (not normalised).

    Args:
        query: (n, dim) embeddings z.
        support: (m, dim) support set Q, m >= 1.

    Returns:
        (n, dim) nearest neighbours, detached from ``query``.
    """
    if query.ndim != 2 or support.ndim != 2 or query.shape[1] != support.shape[1]:
        raise DataError(
            f"nearest_neighbours: query (n, dim) and support (m, dim) must share dim, got "
            f"{tuple(query.shape)} and {tuple(support.shape)}"
        )
    if support.shape[0] == 0:
        raise DataError("nearest_neighbours: the support set is empty (m = 0)")
    with torch.no_grad():
        similarity = F.normalize(query, dim=1) @ F.normalize(support.to(query), dim=1).T
        index = similarity.argmax(dim=1)
    return support.to(query)[index].detach()


class NNMemoryBankModule(MemoryBankModule):
    """Memory bank returning each embedding's nearest neighbour (lightly's
    ``NNMemoryBankModule``).

    The bank holds the last ``size`` embeddings passed with ``update=True`` (at first random
    unit vectors, as the paper's random start); :meth:`forward` replaces every embedding by
    its nearest neighbour in the bank as it was *before* the call (NNCLR, Dwibedi et al.
    2021, https://arxiv.org/abs/2104.14548).

    Args:
        size: Number of embeddings in the support set, or ``(size, dim)`` to create the bank
            at construction (recommended under DDP, see :class:`MemoryBankModule`). NNCLR
            uses 98304; 4096 to 16384 suit small datasets. Must be >= 1.

    Examples:
        >>> nn_replacer = NNMemoryBankModule(size=(4096, 256))
        >>> z0, p0 = model(x0)  # projections and predictions, (batch_size, 256) each
        >>> z1, p1 = model(x1)
        >>> nn0 = nn_replacer(z0.detach(), update=False)
        >>> nn1 = nn_replacer(z1.detach(), update=True)
        >>> loss = 0.5 * (criterion(nn0, p1) + criterion(nn1, p0))
    """

    def __init__(self, size: int | Sequence[int] = 2**16) -> None:
        super().__init__(size=size)
        if self.size == 0:
            raise ConfigError(
                f"NNMemoryBankModule: size must be >= 1 (the support set the nearest "
                f"neighbours come from), got {size!r}; e.g. 4096 or (4096, 128)"
            )

    def forward(  # type: ignore[override]  # lightly's signature: a tensor, not a pair
        self, output: Tensor, update: bool = False
    ) -> Tensor:
        """Nearest neighbour of every row of ``output`` among the bank's entries.

        Args:
            output: (batch_size, dim) embeddings.
            update: If True, ``output`` (detached) is enqueued after the search.

        Returns:
            (batch_size, dim) entries of the bank, in ``output``'s dtype, without gradient.
        """
        _, bank = super().forward(output, update=update)
        assert bank is not None  # size >= 1 always yields a bank
        support = bank.T if self.feature_dim_first else bank
        return nearest_neighbours(output, support)
