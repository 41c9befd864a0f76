"""DenseCL's loss: MoCo's InfoNCE on global embeddings and on matched dense features.

DenseCL (Wang, Zhang, Shen, Kong & Li 2021, https://arxiv.org/abs/2011.09157, sec. 3.2-3.3)
trains with L = (1 − λ) L_q + λ L_r: L_q is MoCo's InfoNCE of the global query and key
against a queue of keys, and L_r its dense version, where every location of the query's dense
projection has as positive key the dense key vector at the location of the key view whose
backbone feature is the most similar (cosine) to the query location's, against a second
queue of negatives. λ = 0.5 and τ = 0.2 as in the paper; as in the authors' code, the dense
queue holds the mean dense key of each image.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError
from selfsup.loss._pair import check_weight
from selfsup.loss.memory_bank import MemoryBankModule
from selfsup.loss.ntx_ent_loss import check_temperature, info_nce

__all__ = ["DenseCLLoss", "select_most_similar"]


def select_most_similar(
    query_features: Tensor, key_features: Tensor, key_projections: Tensor
) -> Tensor:
    """For every query location, the key projection at the most similar key location.

    Args:
        query_features: (B, N, C) backbone features of the query view, one per location.
        key_features: (B, M, C) backbone features of the key view.
        key_projections: (B, M, D) dense projections of the key view.

    Returns:
        (B, N, D): row i holds ``key_projections[b, argmax_j cos(query_i, key_j)]``.
    """
    similarity = F.normalize(query_features, dim=2) @ F.normalize(key_features, dim=2).transpose(
        1, 2
    )
    best = similarity.argmax(dim=2)  # (B, N)
    d = key_projections.shape[2]
    return key_projections.gather(1, best.unsqueeze(-1).expand(-1, -1, d))


class DenseCLLoss(nn.Module):
    """(1 − λ) InfoNCE(global) + λ InfoNCE(dense), each against its own queue of keys.

    Args:
        temperature: τ of both InfoNCE terms (0.2).
        memory_bank_size: Keys per queue, >= 1, or ``(size, dim)`` to create the queues at
            construction (the paper: 65536).
        lambda_: λ, weight of the dense term, in [0, 1] (0.5).

    Examples:
        >>> criterion = DenseCLLoss(memory_bank_size=(4096, 128))
        >>> loss = criterion(q_global, k_global, q_dense, k_dense, q_features, k_features)
    """

    def __init__(
        self,
        temperature: float = 0.2,
        memory_bank_size: int | tuple[int, int] = 65536,
        lambda_: float = 0.5,
    ) -> None:
        super().__init__()
        check_temperature(temperature, "DenseCLLoss")
        self.temperature = float(temperature)
        self.lambda_ = check_weight(lambda_, "lambda_", "DenseCLLoss", " (paper: 0.5)")
        if self.lambda_ > 1:
            raise ConfigError(f"DenseCLLoss: lambda_ must be in [0, 1], got {lambda_!r}")
        self.global_queue = MemoryBankModule(size=memory_bank_size)
        self.dense_queue = MemoryBankModule(size=memory_bank_size)
        if self.global_queue.size < 1:
            raise ConfigError(
                f"DenseCLLoss: memory_bank_size must hold at least one key, got "
                f"{memory_bank_size!r}"
            )

    def forward(
        self,
        query_global: Tensor,
        key_global: Tensor,
        query_dense: Tensor,
        key_dense: Tensor,
        query_features: Tensor,
        key_features: Tensor,
    ) -> Tensor:
        """Scalar loss; the queues take this batch's keys after it is scored (when the query
        requires gradients, i.e. in training).

        Args:
            query_global: (B, D) global projection of the query view.
            key_global: (B, D) global projection of the key view (momentum encoder).
            query_dense: (B, N, D) dense projections of the query view.
            key_dense: (B, M, D) dense projections of the key view.
            query_features: (B, N, C) backbone features of the query view, for matching.
            key_features: (B, M, C) backbone features of the key view.
        """
        b = query_global.shape[0]
        if (
            query_dense.ndim != 3
            or key_dense.ndim != 3
            or query_dense.shape[0] != b
            or key_dense.shape[0] != b
            or query_features.shape[:2] != query_dense.shape[:2]
            or key_features.shape[:2] != key_dense.shape[:2]
        ):
            raise DataError(
                "DenseCLLoss: expected dense projections (B, N, D), (B, M, D) and features "
                "(B, N, C), (B, M, C) of the same batch, got "
                f"{tuple(query_dense.shape)}, {tuple(key_dense.shape)}, "
                f"{tuple(query_features.shape)}, {tuple(key_features.shape)}"
            )
        update = query_global.requires_grad
        k_global = F.normalize(key_global.detach(), dim=1)
        _, global_negatives = self.global_queue(k_global, update=update)
        assert global_negatives is not None  # the queues hold >= 1 key
        loss_global = info_nce(query_global, k_global, global_negatives, self.temperature)

        k_dense = F.normalize(key_dense.detach(), dim=2)
        positives = select_most_similar(query_features.detach(), key_features.detach(), k_dense)
        image_keys = F.normalize(k_dense.mean(dim=1), dim=1)
        _, dense_negatives = self.dense_queue(image_keys, update=update)
        assert dense_negatives is not None
        loss_dense = info_nce(
            query_dense.flatten(0, 1), positives.flatten(0, 1), dense_negatives, self.temperature
        )
        return (1 - self.lambda_) * loss_global + self.lambda_ * loss_dense

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, lambda_={self.lambda_}"
