"""Loss functions for self-supervised learning (lightly's ``lightly.loss``).

- :class:`NTXentLoss`: SimCLR's contrastive loss, or MoCo's with ``memory_bank_size > 0``.
- :class:`MemoryBankModule`: FIFO bank of past embeddings used as extra negatives.
- :class:`DINOLoss`: DINO's self-distillation loss with teacher centering.
"""

from __future__ import annotations

from selfsup.loss.dino_loss import DINOLoss
from selfsup.loss.memory_bank import MemoryBankModule
from selfsup.loss.ntx_ent_loss import NTXentLoss

__all__ = ["DINOLoss", "MemoryBankModule", "NTXentLoss"]
