"""MSN's and PMSN's loss: masked anchors predict the prototype assignment of an unmasked target.

MSN (Masked Siamese Networks, Assran et al. 2022, https://arxiv.org/abs/2204.07141, sec. 3).
Anchor representations z_{i,m} (the M masked views of image i, through the online encoder)
and the target representation z⁺_i (an unmasked view, through the momentum encoder) are
compared with K learnable prototypes q (all vectors L2-normalised):

    p_{i,m} = softmax(z_{i,m} · qᵀ / τ)                    (anchor predictions, τ = 0.1)
    p⁺_i    = sharpen(softmax(z⁺_i · qᵀ / τ), T)            (targets, T = 0.25, no gradient)
    sharpen(p, T)_k = p_k^{1/T} / Σ_j p_j^{1/T}

    L = 1/(M B) Σ_{i,m} H(p⁺_i, p_{i,m})  −  λ H(p̄),    p̄ = 1/(M B) Σ_{i,m} p_{i,m}

H(a, b) = −Σ_k a_k log b_k is the cross-entropy; the second term ("mean entropy
maximisation", λ = 1) keeps every prototype in use. Optionally the targets are balanced by a
few Sinkhorn-Knopp iterations, as in SwAV.

PMSN (Prior-matching MSN, Lee et al. 2024, https://arxiv.org/abs/2404.03263) replaces the
uniform prior implicit in −H(p̄) by a prior π over the prototypes, a power law
π_k ∝ k^(−α) by default (α = 0.25), and regularises with KL(p̄ ‖ π). For the uniform prior
KL(p̄ ‖ U) = log K − H(p̄), so MSN's term is the special case up to a constant; selfsup's
MSNLoss therefore also takes an optional ``target_distribution``.

The math is in pure functions; the modules hold the hyper-parameters and the gathering.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError
from selfsup.loss._pair import check_gather_available, check_positive, check_weight
from selfsup.loss.swav_loss import sinkhorn
from selfsup.utils import dist

__all__ = [
    "MSNLoss",
    "PMSNCustomLoss",
    "PMSNLoss",
    "msn_loss",
    "power_law_distribution",
    "prior_kl",
    "sharpen",
]

#: A regulariser of the (K,) mean anchor prediction p̄, e.g. −H(p̄) or KL(p̄ ‖ π).
Regularizer = Callable[[Tensor], Tensor]


def sharpen(probabilities: Tensor, temperature: float) -> Tensor:
    """(N, K) distributions raised to the power 1/T and renormalised (MSN's sharpening)."""
    sharp = probabilities ** (1.0 / temperature)
    return sharp / sharp.sum(dim=1, keepdim=True)


def negative_entropy(mean_probabilities: Tensor) -> Tensor:
    """−H(p̄) = Σ_k p̄_k log p̄_k of a (K,) distribution (MSN's me-max term, to minimise)."""
    return torch.sum(torch.xlogy(mean_probabilities, mean_probabilities))


def prior_kl(mean_probabilities: Tensor, prior: Tensor) -> Tensor:
    """KL(p̄ ‖ π) = Σ_k p̄_k (log p̄_k − log π_k) of (K,) distributions (PMSN's term)."""
    if prior.shape != mean_probabilities.shape:
        raise DataError(
            f"PMSN: the target distribution must have one entry per prototype, shape "
            f"{tuple(mean_probabilities.shape)}, got {tuple(prior.shape)}"
        )
    prior = prior.to(mean_probabilities)
    return torch.sum(
        torch.xlogy(mean_probabilities, mean_probabilities) - mean_probabilities * torch.log(prior)
    )


def power_law_distribution(
    size: int,
    exponent: float,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """(size,) power law π_k ∝ k^(−exponent), k = 1..size, summing to 1 (PMSN's prior)."""
    k = torch.arange(1, size + 1, dtype=dtype, device=device)
    weights = k ** (-exponent)
    return weights / weights.sum()


def msn_loss(
    anchors: Tensor,
    targets: Tensor,
    prototypes: Tensor,
    regularizer: Regularizer,
    temperature: float = 0.1,
    target_sharpen_temperature: float = 0.25,
    sinkhorn_iterations: int = 0,
    regularization_weight: float = 1.0,
) -> Tensor:
    """The loss L of the module docstring.

    Args:
        anchors: (B·M, D) anchor representations, view by view: rows j·B .. (j+1)·B − 1 are
            the j-th anchor view of the B images.
        targets: (B, D) target representations (no gradient is taken through them).
        prototypes: (K, D) prototypes (gradients flow into them).
        regularizer: The term applied to the (K,) mean anchor prediction p̄.
        temperature: τ of both softmaxes.
        target_sharpen_temperature: T of the targets' sharpening.
        sinkhorn_iterations: Sinkhorn-Knopp iterations balancing the targets (0: none).
        regularization_weight: λ.

    Returns:
        The scalar loss.
    """
    if anchors.ndim != 2 or targets.ndim != 2 or prototypes.ndim != 2:
        raise DataError(
            "MSNLoss: anchors, targets and prototypes must be 2-d (rows of features), got "
            f"shapes {tuple(anchors.shape)}, {tuple(targets.shape)}, {tuple(prototypes.shape)}"
        )
    batch, dim = targets.shape
    if batch < 1 or anchors.shape[1] != dim or prototypes.shape[1] != dim:
        raise DataError(
            f"MSNLoss: anchors {tuple(anchors.shape)}, targets {tuple(targets.shape)} and "
            f"prototypes {tuple(prototypes.shape)} must share the feature size"
        )
    if anchors.shape[0] % batch != 0 or anchors.shape[0] == 0:
        raise DataError(
            f"MSNLoss: anchors must hold a whole number of views of the {batch} targets "
            f"(batch_size * anchor_views rows), got {anchors.shape[0]} rows"
        )
    views = anchors.shape[0] // batch
    q = F.normalize(prototypes, dim=1)
    anchor_logits = F.normalize(anchors, dim=1) @ q.T / temperature
    anchor_log_probs = F.log_softmax(anchor_logits, dim=1)
    with torch.no_grad():
        target_logits = F.normalize(targets.detach(), dim=1) @ q.detach().T / temperature
        target_probs = sharpen(F.softmax(target_logits, dim=1), target_sharpen_temperature)
        if sinkhorn_iterations > 0:
            # swav's sinkhorn exponentiates scores / ε: with ε = 1 on log-probabilities it
            # starts from the probabilities themselves, as MSN's code does.
            target_probs = sinkhorn(
                torch.log(target_probs.clamp_min(torch.finfo(target_probs.dtype).tiny)),
                iterations=sinkhorn_iterations,
                epsilon=1.0,
            )
        target_probs = target_probs.repeat(views, 1)
    cross_entropy = -(target_probs * anchor_log_probs).sum(dim=1).mean()
    mean_probs = anchor_log_probs.exp().mean(dim=0)
    return cross_entropy + regularization_weight * regularizer(mean_probs)


def _gathered(anchors: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """(B·M, D) anchors and (B, D) targets of all processes, in the same view-major layout
    over the global batch (rank-ordered images within each view), with gradients."""
    batch = targets.shape[0]
    if batch == 0 or anchors.ndim != 2 or anchors.shape[0] % batch != 0:
        return anchors, targets  # msn_loss refuses the shapes with a clear message
    views = anchors.reshape(anchors.shape[0] // batch, batch, -1)
    all_views = torch.cat(dist.gather(views.contiguous()), dim=1)
    return all_views.flatten(0, 1), torch.cat(dist.gather(targets), dim=0)


class MSNLoss(nn.Module):
    """MSN's loss (lightly's ``MSNLoss``; Assran et al. 2022, https://arxiv.org/abs/2204.07141).

    Args:
        temperature: τ of the anchor and target softmaxes (0.1), > 0.
        sinkhorn_iterations: Sinkhorn-Knopp iterations on the targets (0: none), >= 0.
        regularization_weight: λ of the mean-entropy term (1.0), >= 0.
        target_distribution: ``None`` for MSN's −H(p̄); a (K,) prior π for KL(p̄ ‖ π), or a
            callable mapping p̄ (K,) to π (K,).
        gather_distributed: Compute the loss over the batch of all processes: anchors and
            targets are gathered (with gradients), so the mean prediction p̄ and the
            Sinkhorn balancing are those of the global batch, as in MSN's code, and every
            process computes the global loss (DDP's averaged gradient is its gradient).

    Examples:
        >>> loss_fn = MSNLoss()
        >>> loss = loss_fn(anchors, targets, prototypes.weight)  # (B·M, D), (B, D), (K, D)
    """

    def __init__(
        self,
        temperature: float = 0.1,
        sinkhorn_iterations: int = 0,
        regularization_weight: float = 1.0,
        target_distribution: Tensor | Callable[[Tensor], Tensor] | None = None,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.temperature = check_positive(temperature, "temperature", owner)
        if (
            isinstance(sinkhorn_iterations, bool)
            or not isinstance(sinkhorn_iterations, int)
            or sinkhorn_iterations < 0
        ):
            raise ConfigError(
                f"{owner}: sinkhorn_iterations must be an integer >= 0, got {sinkhorn_iterations!r}"
            )
        self.sinkhorn_iterations = sinkhorn_iterations
        self.regularization_weight = check_weight(
            regularization_weight, "regularization_weight", owner
        )
        if isinstance(target_distribution, Tensor):
            if (
                target_distribution.ndim != 1
                or (target_distribution <= 0).any()
                or not math.isclose(float(target_distribution.sum()), 1.0, abs_tol=1e-4)
            ):
                raise ConfigError(
                    f"{owner}: target_distribution must be a 1-d tensor of positive "
                    "probabilities summing to 1, one per prototype"
                )
        elif target_distribution is not None and not callable(target_distribution):
            raise ConfigError(
                f"{owner}: target_distribution must be None, a tensor or a callable, got "
                f"{type(target_distribution).__name__}"
            )
        self.target_distribution = target_distribution
        check_gather_available(gather_distributed, owner)
        self.gather_distributed = gather_distributed

    def regularization_loss(self, mean_anchor_probs: Tensor) -> Tensor:
        """The term on p̄ (K,): −H(p̄), or KL(p̄ ‖ π) with a target distribution."""
        target = self.target_distribution
        if target is None:
            return negative_entropy(mean_anchor_probs)
        prior = target(mean_anchor_probs) if callable(target) else target
        return prior_kl(mean_anchor_probs, prior)

    def forward(
        self,
        anchors: Tensor,
        targets: Tensor,
        prototypes: Tensor,
        target_sharpen_temperature: float = 0.25,
    ) -> Tensor:
        """Loss of (B·M, D) anchors against (B, D) targets over (K, D) prototypes."""
        check_positive(target_sharpen_temperature, "target_sharpen_temperature", "MSNLoss")
        if self.gather_distributed and dist.world_size() > 1:
            anchors, targets = _gathered(anchors, targets)
        return msn_loss(
            anchors,
            targets,
            prototypes,
            self.regularization_loss,
            temperature=self.temperature,
            target_sharpen_temperature=target_sharpen_temperature,
            sinkhorn_iterations=self.sinkhorn_iterations,
            regularization_weight=self.regularization_weight,
        )


class PMSNLoss(MSNLoss):
    """PMSN's loss with a power-law prior π_k ∝ k^(−α) (lightly's ``PMSNLoss``; Lee et al.
    2024, https://arxiv.org/abs/2404.03263): MSN's loss with KL(p̄ ‖ π) as regulariser.

    Args:
        power_law_exponent: α (0.25), > 0.
        Others: as in :class:`MSNLoss`.
    """

    def __init__(
        self,
        temperature: float = 0.1,
        sinkhorn_iterations: int = 0,
        regularization_weight: float = 1.0,
        power_law_exponent: float = 0.25,
        gather_distributed: bool = False,
    ) -> None:
        exponent = check_positive(power_law_exponent, "power_law_exponent", "PMSNLoss")

        def power_law(mean_probs: Tensor) -> Tensor:
            return power_law_distribution(
                mean_probs.shape[0], exponent, mean_probs.device, mean_probs.dtype
            )

        super().__init__(
            temperature=temperature,
            sinkhorn_iterations=sinkhorn_iterations,
            regularization_weight=regularization_weight,
            target_distribution=power_law,
            gather_distributed=gather_distributed,
        )
        self.power_law_exponent = exponent


class PMSNCustomLoss(MSNLoss):
    """PMSN's loss with any prior (lightly's ``PMSNCustomLoss``).

    Args:
        target_distribution: A callable mapping the (K,) mean anchor prediction p̄ to the
            (K,) prior π, or a fixed (K,) prior.
        Others: as in :class:`MSNLoss`.
    """

    def __init__(
        self,
        target_distribution: Tensor | Callable[[Tensor], Tensor],
        temperature: float = 0.1,
        sinkhorn_iterations: int = 0,
        regularization_weight: float = 1.0,
        gather_distributed: bool = False,
    ) -> None:
        if target_distribution is None:
            raise ConfigError("PMSNCustomLoss: target_distribution is required")
        super().__init__(
            temperature=temperature,
            sinkhorn_iterations=sinkhorn_iterations,
            regularization_weight=regularization_weight,
            target_distribution=target_distribution,
            gather_distributed=gather_distributed,
        )
