"""Decoupled contrastive learning: NT-Xent without the positive pair in the denominator.

DCL (Yeh et al. 2022, "Decoupled Contrastive Learning", eq. 6), for the two views
z_i^(1), z_i^(2) of the N images of a batch, L2-normalised, and k ∈ {1, 2}:

    L_DC,i^(k) = -⟨z_i^(1), z_i^(2)⟩ / τ + log Σ_{l∈{1,2}, j∈[1,N], j≠i} exp(⟨z_i^(k), z_j^(l)⟩ / τ)

The denominator of the InfoNCE/NT-Xent loss also holds the positive pair; the paper shows
that this couples the gradients of positives and negatives through a factor that shrinks
them at small batch sizes ("negative-positive-coupling"), and removes it. Its weighted
variant DCLW (eq. 7) scales the positive term by

    w_vMF(z_i^(1), z_i^(2)) = 2 - exp(⟨z_i^(1), z_i^(2)⟩ / σ) / E_i[exp(⟨z_i^(1), z_i^(2)⟩ / σ)]

which is below 1 for pairs already closer than the batch average and above 1 for pairs
further apart, and averages to 1 over the batch.

The paper sums over i and k; these losses take the mean over the 2N terms (as lightly),
so the value does not grow with the batch. Every term, like the paper's, has a single
log-sum over all 2(N - 1) negatives of both views (lightly adds two log-sums, one per view).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError
from selfsup.loss._pair import check_gather_available, check_positive, global_pair
from selfsup.loss.ntx_ent_loss import check_temperature
from selfsup.utils import dist

__all__ = ["DCLLoss", "DCLWLoss", "dcl", "negative_mises_fisher_weights"]

WeightFn = Callable[[Tensor, Tensor], Tensor]


def negative_mises_fisher_weights(out0: Tensor, out1: Tensor, sigma: float = 0.5) -> Tensor:
    """w_vMF of DCLW (eq. 7): the weight of every positive pair of the batch.

    ``w_i = 2 - exp(s_i / σ) / ((1/N) Σ_j exp(s_j / σ))`` with ``s_i = ⟨out0_i, out1_i⟩``,
    i.e. ``2 - N · softmax(s / σ)_i``; the weights average to 1. They are constants of the
    optimisation (computed without gradient), as in lightly. Pass L2-normalised embeddings
    for the paper's cosine similarities (:class:`DCLWLoss` does).

    Args:
        out0: (N, dim) first views.
        out1: (N, dim) second views; ``out1[i]`` is the positive of ``out0[i]``.
        sigma: σ > 0; the smaller, the more the weights differ between pairs.

    Returns:
        (N,) weights, in the dtype of ``out0``.
    """
    sigma = check_positive(sigma, "sigma", "negative_mises_fisher_weights", " (0.5 in the paper)")
    if out0.ndim != 2 or out0.shape != out1.shape or out0.shape[0] == 0:
        raise DataError(
            "negative_mises_fisher_weights: out0 and out1 must both have the same shape "
            f"(batch_size, dim) with batch_size >= 1, got {tuple(out0.shape)} and "
            f"{tuple(out1.shape)}"
        )
    similarity = (out0.detach() * out1.detach()).sum(dim=1) / sigma
    return 2 - out0.shape[0] * torch.softmax(similarity, dim=0)


def dcl(
    z0: Tensor,
    z1: Tensor,
    temperature: float,
    weight_fn: WeightFn | None = None,
    *,
    z0_all: Tensor | None = None,
    z1_all: Tensor | None = None,
    own: Tensor | None = None,
) -> Tensor:
    """Mean of L_DC,i^(k) (eq. 6, or eq. 7 with ``weight_fn``) over this batch's 2n terms.

    Every view is contrasted against the candidates ``z0_all`` and ``z1_all``: its positive
    is the other view of its image, its negatives both views of every other image. In one
    process the candidates are the batch itself. Under data parallelism they are the batches
    of all processes concatenated, and ``own`` marks where this process's rows sit in them;
    the mean of the processes' losses is then the loss of the global batch.

    All vectors are L2-normalised here, so ⟨·,·⟩ is the cosine similarity.

    Args:
        z0: (n, dim) first views.
        z1: (n, dim) second views; ``z1[i]`` is the positive of ``z0[i]``.
        temperature: τ > 0.
        weight_fn: w of eq. 7, ``(z0_all, z1_all) -> (m,)`` weights of the positive pairs,
            called on the normalised candidates; None for eq. 6 (w = 1).
        z0_all: (m, dim) first views of the global batch, or None for ``z0``.
        z1_all: (m, dim) second views of the global batch, or None for ``z1``.
        own: (n, m) bool mask, True at (i, row of sample i in the global batch)
            (:func:`selfsup.utils.dist.eye_rank`); None for the identity.

    Returns:
        Scalar loss in the dtype of ``z0``.
    """
    owner = "dcl"
    check_temperature(temperature, owner)
    c0 = z0 if z0_all is None else z0_all
    c1 = z1 if z1_all is None else z1_all
    n, m = z0.shape[0], c0.shape[0]
    if own is None:
        own = torch.eye(n, m, dtype=torch.bool, device=z0.device)
    if (
        z0.ndim != 2
        or z0.shape != z1.shape
        or c0.shape != c1.shape
        or c0.shape[1:] != z0.shape[1:]
        or own.shape != (n, m)
        or m < 2
    ):
        raise DataError(
            f"{owner}: needs views (n, dim) inside candidates (m, dim), m >= 2 (an image needs "
            f"another image as negative), and an (n, m) mask; got z0 {tuple(z0.shape)}, z1 "
            f"{tuple(z1.shape)}, candidates {tuple(c0.shape)} and {tuple(c1.shape)}, mask "
            f"{tuple(own.shape)}"
        )
    z = (F.normalize(z0, dim=1), F.normalize(z1, dim=1))
    c = (F.normalize(c0, dim=1), F.normalize(c1, dim=1))
    weights = None if weight_fn is None else weight_fn(*c)
    if weights is not None and weights.shape != (m,):
        raise DataError(
            f"{owner}: weight_fn must return one weight per image of the batch, shape ({m},), "
            f"got {tuple(weights.shape)}"
        )

    terms = []
    for k in (0, 1):
        same = z[k] @ c[k].T / temperature  # ⟨z_i^(k), z_j^(k)⟩ / τ, (n, m)
        other = z[k] @ c[1 - k].T / temperature  # ⟨z_i^(k), z_j^(l≠k)⟩ / τ, (n, m)
        positive = other[own]  # ⟨z_i^(1), z_i^(2)⟩ / τ, (n,)
        if weights is not None:
            positive = positive * weights.expand(n, m)[own]
        # j ≠ i for both l: the view itself and its positive leave the denominator.
        negatives = torch.cat([same, other], dim=1).masked_fill(own.repeat(1, 2), -math.inf)
        terms.append(-positive + torch.logsumexp(negatives, dim=1))
    return torch.cat(terms).mean()


class DCLLoss(nn.Module):
    """Decoupled contrastive loss (lightly's ``DCLLoss``; eq. 6 of Yeh et al. 2022).

    Args:
        temperature: τ, a finite number >= 1e-8 (0.1 in the paper).
        weight_fn: w, the weight of the positive term (eq. 7): ``(out0, out1) -> (N,)`` on
            the L2-normalised views of the (global) batch; None for no weighting.
        gather_distributed: If True and ``torch.distributed`` is initialised with more than
            one process, the negatives come from the batches of all processes (gathered with
            gradients, all processes with the same batch size) and ``weight_fn`` sees the
            global batch. Each process returns the mean over its own rows; DDP's averaged
            gradient is then the gradient of the global batch's loss.

    Raises:
        ConfigError: For a bad temperature or weight_fn, or ``gather_distributed`` on a
            PyTorch build without ``torch.distributed``.

    Examples:
        >>> loss_fn = DCLLoss(temperature=0.1)
        >>> out0, out1 = model(view0), model(view1)  # (batch_size, dim) each
        >>> loss = loss_fn(out0, out1)
    """

    def __init__(
        self,
        temperature: float = 0.1,
        weight_fn: WeightFn | None = None,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        check_temperature(temperature, owner)
        if weight_fn is not None and not callable(weight_fn):
            raise ConfigError(
                f"{owner}: weight_fn must be None or a function (out0, out1) -> weights, "
                f"got {weight_fn!r}"
            )
        check_gather_available(gather_distributed, owner)
        self.temperature = float(temperature)
        self.weight_fn = weight_fn
        self.gather_distributed = gather_distributed

    def forward(self, out0: Tensor, out1: Tensor) -> Tensor:
        """Scalar loss of two (batch_size, dim) batches of projections, in their dtype."""
        owner = type(self).__name__
        out0_all, out1_all = global_pair(
            out0, out1, self.gather_distributed, owner, "the negatives need"
        )
        own = None
        if out0_all.shape[0] != out0.shape[0]:
            own = dist.eye_rank(out0.shape[0], device=out0.device)
        return dcl(
            out0, out1, self.temperature, self.weight_fn, z0_all=out0_all, z1_all=out1_all, own=own
        )


class DCLWLoss(DCLLoss):
    """Weighted decoupled contrastive loss (lightly's ``DCLWLoss``; eq. 7): :class:`DCLLoss`
    with the positive pairs weighted by :func:`negative_mises_fisher_weights`.

    Args:
        temperature: τ (0.1 in the paper).
        sigma: σ of w_vMF, a finite number > 0 (0.5 in the paper).
        gather_distributed: As in :class:`DCLLoss`; the weights' batch average E_i is then
            over the global batch.

    Examples:
        >>> loss_fn = DCLWLoss(temperature=0.1, sigma=0.5)
        >>> loss = loss_fn(model(view0), model(view1))
    """

    def __init__(
        self, temperature: float = 0.1, sigma: float = 0.5, gather_distributed: bool = False
    ) -> None:
        checked = check_positive(sigma, "sigma", "DCLWLoss", " (0.5 in the paper)")
        super().__init__(
            temperature=temperature,
            weight_fn=partial(negative_mises_fisher_weights, sigma=checked),
            gather_distributed=gather_distributed,
        )
        self.sigma = checked
