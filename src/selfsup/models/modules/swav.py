"""SwAV's prototypes: a bank of K learnable unit vectors the features are scored against.

SwAV (Caron et al. 2020, sec. 3.1) computes the codes by matching the features to K
trainable prototype vectors {c_1, ..., c_K}; the prediction of a view is
"p_t^(k) = exp(z_tᵀ c_k / τ) / Σ_k' exp(z_tᵀ c_k' / τ)" (eq. 2), with z_t and the c_k on
the unit sphere. The prototypes are learned by backpropagation with the rest of the
network, normalised again after every update, and frozen during the first epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from selfsup.errors import ConfigError
from selfsup.models.utils import normalize_weight

__all__ = ["SwaVPrototypes"]


def _check_count(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"SwaVPrototypes: {name} must be an integer >= {minimum}, got {value!r}")
    return value


class SwaVPrototypes(nn.Module):
    """Prototype layer(s) of SwAV (lightly's ``SwaVPrototypes``).

    Each head is a bias-free linear map whose K weight rows are the prototypes c_k, so on
    L2-normalised features z it gives the scores zᵀc_k (cosine similarities once
    :meth:`normalize` has put the prototypes on the unit sphere). Unlike lightly's, the
    heads have no bias: the paper's scores are zᵀc_k alone (SwAV, Caron et al. 2020,
    https://arxiv.org/abs/2006.09882).

    Args:
        input_dim: Feature dimension (the projection head's output).
        n_prototypes: K, or a list of K's for several sets of prototypes (multi-clustering;
            ``forward`` then returns one score matrix per set). The paper uses 3000.
        n_steps_frozen_prototypes: Number of optimisation steps at the start of training
            during which the prototypes get no gradient (the paper freezes them during the
            first epoch); ``forward`` then needs ``step``. 0: never frozen.

    Examples:
        >>> prototypes = SwaVPrototypes(128, 512)
        >>> prototypes.normalize()  # every training step, before the forward pass
        >>> z = nn.functional.normalize(projection_head(backbone(x)), dim=1)
        >>> scores = prototypes(z)  # (batch_size, 512)
    """

    def __init__(
        self,
        input_dim: int = 128,
        n_prototypes: int | Sequence[int] = 3000,
        n_steps_frozen_prototypes: int = 0,
    ) -> None:
        super().__init__()
        _check_count(input_dim, "input_dim", 1)
        self._is_single_prototype = isinstance(n_prototypes, int) and not isinstance(
            n_prototypes, bool
        )
        if self._is_single_prototype:
            counts = [n_prototypes]
        elif isinstance(n_prototypes, Sequence) and not isinstance(n_prototypes, str):
            counts = list(n_prototypes)
            if not counts:
                raise ConfigError("SwaVPrototypes: n_prototypes=[] holds no set of prototypes")
        else:
            raise ConfigError(
                f"SwaVPrototypes: n_prototypes must be an integer >= 1 or a list of them, "
                f"got {n_prototypes!r}"
            )
        self.n_prototypes = [_check_count(k, "n_prototypes", 1) for k in counts]
        self.n_steps_frozen_prototypes = _check_count(
            n_steps_frozen_prototypes, "n_steps_frozen_prototypes", 0
        )
        self.heads = nn.ModuleList(nn.Linear(input_dim, k, bias=False) for k in self.n_prototypes)

    def forward(self, x: Tensor, step: int | None = None) -> Tensor | list[Tensor]:
        """Scores of the features against every prototype.

        Args:
            x: (batch_size, input_dim) features, normally L2-normalised.
            step: The current optimisation step; needed when ``n_steps_frozen_prototypes > 0``
                (the prototypes get gradients from step ``n_steps_frozen_prototypes`` on).

        Returns:
            (batch_size, K) scores zᵀc_k, or a list of them for a list of ``n_prototypes``.
        """
        self._freeze_prototypes_if_required(step)
        out = [head(x) for head in self.heads]
        return out[0] if self._is_single_prototype else out

    @torch.no_grad()
    def normalize(self) -> None:
        """Put every prototype on the unit sphere (in place), as the paper does after each
        update."""
        for head in self.heads:
            assert isinstance(head, nn.Linear)
            normalize_weight(head.weight, dim=1)

    def _freeze_prototypes_if_required(self, step: int | None) -> None:
        if self.n_steps_frozen_prototypes == 0:
            return
        if step is None:
            raise ConfigError(
                f"SwaVPrototypes: n_steps_frozen_prototypes={self.n_steps_frozen_prototypes} "
                "needs the current step: call prototypes(x, step=...)"
            )
        self.requires_grad_(step >= self.n_steps_frozen_prototypes)
