"""NT-Xent, the contrastive loss of SimCLR, and its MoCo variant with a memory bank.

SimCLR (Chen et al. 2020, eq. 1): "The loss function for a positive pair of examples (i, j)
is defined as

    l(i, j) = -log( exp(sim(z_i, z_j) / τ) / Σ_{k=1}^{2N} 1[k≠i] exp(sim(z_i, z_k) / τ) )

... The final loss is computed across all positive pairs, both (i, j) and (j, i), in a
mini-batch." Here sim(u, v) = uᵀv / (‖u‖‖v‖) is the cosine similarity and the 2N views are
the two augmented views of the N images of the batch.

MoCo (He et al. 2020, eq. 1), for a query q, its positive key k+ and the K negatives k_i of
the memory bank (the paper's sum over i = 0..K, written as the positive plus K negatives):

    L_q = -log( exp(q·k+ / τ) / (exp(q·k+ / τ) + Σ_{i=1}^{K} exp(q·k_i / τ)) )
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError
from selfsup.loss._pair import check_gather_available
from selfsup.loss.memory_bank import MemoryBankModule
from selfsup.utils import dist

__all__ = ["NTXentLoss", "check_temperature", "info_nce", "ntxent"]

_MIN_TEMPERATURE = 1e-8


def check_temperature(temperature: float, owner: str) -> None:
    """Raise :class:`ConfigError` unless ``temperature`` is a finite number >= 1e-8.

    The logits are divided by the temperature, so zero, negative, tiny or infinite values
    would give a division by zero, flip the objective or make every logit equal.
    """
    ok = (
        isinstance(temperature, int | float)
        and not isinstance(temperature, bool)
        and math.isfinite(temperature)
        and temperature >= _MIN_TEMPERATURE
    )
    if not ok:
        raise ConfigError(
            f"{owner}: temperature must be a finite number >= {_MIN_TEMPERATURE:g} "
            f"(typically 0.07-0.2 for MoCo, 0.1-0.5 for SimCLR), got {temperature!r}"
        )


def _check_pair(a: Tensor, b: Tensor, name_a: str, name_b: str, owner: str) -> None:
    """Raise :class:`DataError` unless ``a`` and ``b`` are non-empty (n, dim) tensors alike."""
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] == 0:
        raise DataError(
            f"{owner}: {name_a} and {name_b} must both have the same shape (batch_size, dim) "
            f"with batch_size >= 1, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def ntxent(
    z0: Tensor,
    z1: Tensor,
    temperature: float,
    *,
    z0_all: Tensor | None = None,
    z1_all: Tensor | None = None,
    offset: int = 0,
) -> Tensor:
    """SimCLR's NT-Xent loss with in-batch negatives, averaged over all 2n positive pairs.

    Sample i has two views, ``z0[i]`` and ``z1[i]``. Each view is contrasted against the
    candidate set made of every view of ``z0_all`` and ``z1_all`` except itself: its positive
    is the other view of the same sample, all other candidates are negatives.

    In a single process the candidates are the batch itself (``z0_all=z0``, ``z1_all=z1``,
    ``offset=0``), i.e. eq. 1 of the SimCLR paper with 2N - 2 negatives per view. Under
    data parallelism, ``z0_all``/``z1_all`` are the batches of all processes concatenated
    and this process's rows sit at ``offset:offset + n`` of them; the result is then the
    mean over this process's 2n rows, whose average over processes equals the loss of the
    whole global batch.

    All vectors are L2-normalised here, so sim is the cosine similarity.

    Args:
        z0: (n, dim) first views.
        z1: (n, dim) second views; ``z1[i]`` is the positive of ``z0[i]``.
        temperature: τ > 0; logits are cosine similarities divided by τ.
        z0_all: (m, dim) first views of the global batch, or None for ``z0``.
        z1_all: (m, dim) second views of the global batch, or None for ``z1``.
        offset: Row of ``z0[0]`` inside ``z0_all``.

    Returns:
        Scalar loss in the dtype of ``z0``.
    """
    owner = "ntxent"
    check_temperature(temperature, owner)
    _check_pair(z0, z1, "z0", "z1", owner)
    n = z0.shape[0]
    z0 = F.normalize(z0, dim=1)
    z1 = F.normalize(z1, dim=1)
    if z0_all is None and z1_all is None:
        c0, c1 = z0, z1
    elif z0_all is not None and z1_all is not None:
        _check_pair(z0_all, z1_all, "z0_all", "z1_all", owner)
        if z0_all.shape[1] != z0.shape[1] or not 0 <= offset <= z0_all.shape[0] - n:
            raise DataError(
                f"{owner}: the local batch {tuple(z0.shape)} at offset {offset} does not fit "
                f"in the gathered batch {tuple(z0_all.shape)}"
            )
        c0 = F.normalize(z0_all, dim=1)
        c1 = F.normalize(z1_all, dim=1)
    else:
        raise DataError(f"{owner}: pass both z0_all and z1_all or neither")

    m = c0.shape[0]
    rows = torch.cat([z0, z1], dim=0)  # (2n, dim): views 0 then views 1 of local samples
    cols = torch.cat([c0, c1], dim=0)  # (2m, dim): views 0 then views 1 of all samples
    logits = rows @ cols.T / temperature  # (2n, 2m)

    local = torch.arange(n, device=z0.device) + offset
    self_cols = torch.cat([local, local + m])  # where each row meets itself
    pos_cols = torch.cat([local + m, local])  # where each row meets its other view
    # k = i is excluded from the denominator (the 1[k≠i] of eq. 1): exp(-inf) = 0.
    self_mask = torch.zeros_like(logits, dtype=torch.bool)
    self_mask[torch.arange(2 * n, device=z0.device), self_cols] = True
    logits = logits.masked_fill(self_mask, -math.inf)
    return F.cross_entropy(logits, pos_cols)


def info_nce(query: Tensor, key: Tensor, negatives: Tensor, temperature: float) -> Tensor:
    """MoCo's InfoNCE loss: each query against its key and a shared set of negatives.

    Args:
        query: (n, dim) queries q.
        key: (n, dim) positive keys; ``key[i]`` is k+ of ``query[i]``.
        negatives: (dim, K) negative keys, feature dimension first (the memory bank layout).
        temperature: τ > 0.

    Returns:
        Scalar mean over the n queries of -log(exp(q·k+/τ) / (exp(q·k+/τ) + Σ exp(q·k_i/τ))),
        computed on L2-normalised vectors, in the dtype of ``query``.
    """
    owner = "info_nce"
    check_temperature(temperature, owner)
    _check_pair(query, key, "query", "key", owner)
    if negatives.ndim != 2 or negatives.shape[0] != query.shape[1]:
        raise DataError(
            f"{owner}: negatives must have shape (dim, K) with dim = {query.shape[1]}, "
            f"got {tuple(negatives.shape)}"
        )
    q = F.normalize(query, dim=1)
    k = F.normalize(key, dim=1)
    neg = F.normalize(negatives.to(q), dim=0)
    sim_pos = (q * k).sum(dim=1, keepdim=True)  # (n, 1)
    sim_neg = q @ neg  # (n, K)
    logits = torch.cat([sim_pos, sim_neg], dim=1) / temperature
    # The positive is class 0 of an (K + 1)-way classification.
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, labels)


class NTXentLoss(nn.Module):
    """Normalized temperature-scaled cross entropy loss (SimCLR), or MoCo's with a bank.

    Without a memory bank (``memory_bank_size=0``) this is SimCLR's loss (see :func:`ntxent`):
    every view's positive is the other view of the same image and its negatives are the
    other 2N - 2 views in the batch. With ``memory_bank_size > 0`` it is MoCo's InfoNCE (see
    :func:`info_nce`): ``out0`` are the queries, ``out1`` the keys, negatives come from a
    bank of past keys, and the bank is updated with ``out1`` after use whenever ``out0``
    requires a gradient (so evaluating the loss under ``torch.no_grad`` leaves it unchanged).

    Args:
        temperature: τ, a finite number >= 1e-8.
        memory_bank_size: Number of negatives kept in the memory bank, or ``(number, dim)``
            to create the bank at construction (see :class:`MemoryBankModule`); 0 for SimCLR,
            e.g. 4096 or ``(4096, 128)`` for MoCo.
        gather_distributed: If True and ``torch.distributed`` is initialised with more than
            one process, in-batch negatives come from the batches of all processes (gathered
            with gradients, see :func:`selfsup.utils.dist.gather`; all processes must use the
            same batch size), and the memory bank is updated with the keys of all processes.
            Without an initialised process group the loss runs as a single process.

    Raises:
        ConfigError: For a bad temperature or memory bank size, or ``gather_distributed``
            on a PyTorch build without ``torch.distributed``.

    Examples:
        >>> loss_fn = NTXentLoss(temperature=0.5)
        >>> out0, out1 = model(view0), model(view1)  # (batch_size, dim) each
        >>> loss = loss_fn(out0, out1)
    """

    def __init__(
        self,
        temperature: float = 0.5,
        memory_bank_size: int | Sequence[int] = 0,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        check_temperature(temperature, "NTXentLoss")
        check_gather_available(gather_distributed, "NTXentLoss")
        self.temperature = float(temperature)
        self.gather_distributed = gather_distributed
        self.memory_bank = MemoryBankModule(
            size=memory_bank_size, gather_distributed=gather_distributed
        )

    def forward(self, out0: Tensor, out1: Tensor) -> Tensor:
        """Return the scalar loss of two views.

        Args:
            out0: (batch_size, dim) projections of the first views (MoCo: queries).
            out1: (batch_size, dim) projections of the second views (MoCo: keys).

        Returns:
            Scalar loss, in the dtype of ``out0``.
        """
        _check_pair(out0, out1, "out0", "out1", "NTXentLoss")
        if self.memory_bank.size > 0:
            # The bank stores unit vectors, like MoCo's queue of normalised keys.
            _, negatives = self.memory_bank(
                F.normalize(out1.detach(), dim=1), update=out0.requires_grad
            )
            assert negatives is not None  # size > 0 always yields a bank
            return info_nce(out0, out1, negatives, self.temperature)

        if self.gather_distributed and dist.world_size() > 1:
            return ntxent(
                out0,
                out1,
                self.temperature,
                z0_all=torch.cat(dist.gather(out0), dim=0),
                z1_all=torch.cat(dist.gather(out1), dim=0),
                offset=dist.rank() * out0.shape[0],
            )
        return ntxent(out0, out1, self.temperature)
