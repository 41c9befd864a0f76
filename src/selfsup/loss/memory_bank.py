"""A FIFO memory bank of past embeddings, used as extra negatives by contrastive losses.

MoCo (He et al. 2020, sec. 3.2): "we maintain the dictionary as a queue of data samples:
the encoded representations of the current mini-batch are enqueued, and the oldest are
dequeued." The bank lets a loss see many more negatives than one batch holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError
from selfsup.utils import dist

__all__ = ["MemoryBankModule", "enqueue"]


@torch.no_grad()
def enqueue(bank: Tensor, ptr: int, batch: Tensor) -> int:
    """Write ``batch`` into the ring buffer ``bank`` in place, oldest entries first out.

    Args:
        bank: (dim, size) buffer; column ``ptr`` holds the oldest entry.
        ptr: Index of the oldest column, in [0, size).
        batch: (n, dim) new entries, in arrival order. Only the newest ``size`` are kept
            when n > size.

    Returns:
        The new pointer (index of the oldest column after the write).
    """
    size = bank.shape[1]
    n = batch.shape[0]
    if size == 0 or n == 0:
        return ptr
    if n >= size:
        bank.copy_(batch[n - size :].T)
        return 0
    idx = (ptr + torch.arange(n, device=bank.device)) % size
    bank[:, idx] = batch.T.to(bank.dtype)
    return (ptr + n) % size


class MemoryBankModule(nn.Module):
    """Memory bank of the last ``size`` embeddings (lightly's ``MemoryBankModule``).

    The bank is a (dim, size) tensor (feature dimension first, as in lightly and MoCo's
    ``queue``), filled with L2-normalised Gaussian vectors and stored as a non-persistent
    buffer so checkpoints stay small (a resumed run starts again from a random bank, as in
    lightly). Given as a tuple ``(size, dim)`` the bank is created at construction, so every
    process of a distributed run holds the same shape before the first batch (what lightly
    recommends); given as an int, it is created lazily at the first call, once ``dim`` is
    known.

    Args:
        size: Number of embeddings the bank holds, or ``(size, dim)``. A size of 0 disables
            the bank: ``forward`` then returns ``(output, None)``. MoCo uses 4096 to 65536
            entries, e.g. ``(4096, 128)``.
        gather_distributed: If True and ``torch.distributed`` is initialised, the bank is
            updated with the embeddings of all processes (in rank order), so that every
            process keeps the same bank (MoCo's ``concat_all_gather`` before enqueueing).
        feature_dim_first: If True (the default), ``forward`` returns the bank as
            (dim, size); if False as (size, dim), as lightly's flag of that name.

    Examples:
        >>> class MyLoss(MemoryBankModule):
        ...     def forward(self, output, labels=None):
        ...         output, negatives = super().forward(output, update=output.requires_grad)
        ...         ...
    """

    bank: Tensor
    bank_ptr: Tensor

    def __init__(
        self,
        size: int | Sequence[int] = 65536,
        gather_distributed: bool = False,
        feature_dim_first: bool = True,
    ) -> None:
        super().__init__()
        entries, dim = _parse_size(size)
        self.size = entries
        self.dim = dim
        self.gather_distributed = gather_distributed
        self.feature_dim_first = feature_dim_first
        self.register_buffer("bank", torch.empty(0, dtype=torch.float), persistent=False)
        self.register_buffer("bank_ptr", torch.zeros(1, dtype=torch.long), persistent=False)
        if dim is not None and entries > 0:
            self._init_memory_bank(dim, like=self.bank)

    @torch.no_grad()
    def _init_memory_bank(self, dim: int, like: Tensor) -> None:
        """Fill the bank with ``size`` random unit vectors of dimension ``dim``."""
        # The bank lives with the embeddings (device and dtype of the first batch).
        bank = torch.randn(dim, self.size, dtype=like.dtype, device=like.device)
        self.bank = nn.functional.normalize(bank, dim=0)
        self.bank_ptr = torch.zeros(1, dtype=torch.long, device=like.device)

    @torch.no_grad()
    def _dequeue_and_enqueue(self, batch: Tensor) -> None:
        """Replace the oldest entries of the bank with ``batch`` of shape (n, dim)."""
        if self.gather_distributed:
            batch = torch.cat(dist.gather_no_grad(batch), dim=0)
        ptr = enqueue(self.bank, int(self.bank_ptr.item()), batch.to(self.bank))
        self.bank_ptr.fill_(ptr)

    def forward(
        self,
        output: Tensor,
        labels: Tensor | None = None,
        update: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Return ``output`` with the bank as it was *before* this call, then maybe update it.

        Args:
            output: (batch_size, dim) embeddings, passed through unchanged.
            labels: Ignored; kept for compatibility with lightly's signature.
            update: If True, ``output`` (detached) is enqueued after the bank is read.

        Returns:
            ``(output, bank)`` with ``bank`` a detached (dim, size) copy in ``output``'s
            dtype ((size, dim) with ``feature_dim_first=False``), or ``(output, None)`` when
            ``size == 0``.
        """
        del labels  # part of lightly's signature, never used
        if self.size == 0:
            return output, None
        if output.ndim != 2:
            raise DataError(
                f"MemoryBankModule: output must have shape (batch_size, dim), "
                f"got shape {tuple(output.shape)}"
            )
        dim = output.shape[1]
        if self.bank.numel() == 0:
            self._init_memory_bank(dim, like=output)
        elif self.bank.device != output.device:
            # A bank made at construction (size given as a tuple) follows the embeddings.
            self.bank = self.bank.to(output.device)
            self.bank_ptr = self.bank_ptr.to(output.device)
        if self.bank.shape[0] != dim:
            raise DataError(
                f"MemoryBankModule: output has dimension {dim} but the bank holds vectors "
                f"of dimension {self.bank.shape[0]}; the embedding size must not change "
                f"between calls"
            )
        bank = self.bank.detach().clone().to(output)
        if update:
            self._dequeue_and_enqueue(output.detach())
        return output, bank if self.feature_dim_first else bank.T


def _parse_size(size: object) -> tuple[int, int | None]:
    """``(entries, dim or None)`` of a bank size given as ``n`` or ``(n, dim)``."""
    if isinstance(size, int) and not isinstance(size, bool):
        if size >= 0:
            return size, None
    elif isinstance(size, Sequence) and not isinstance(size, str) and len(size) == 2:
        n, dim = size
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (n, dim))
        if ints and n >= 0 and dim >= 1:
            return n, dim
    raise ConfigError(
        f"MemoryBankModule: size must be an integer >= 0 or a tuple (size >= 0, dim >= 1) "
        f"(0 disables the bank), got {size!r}"
    )
