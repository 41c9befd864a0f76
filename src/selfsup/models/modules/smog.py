"""SMoG's group features: K momentum-updated group vectors that instances are contrasted with.

SMoG (Pang, Zhang, Li & Wang 2022, https://arxiv.org/abs/2207.06167) replaces instance
contrast by group contrast: every momentum (target) feature is assigned to its most similar
group, the online prediction of another view of the image is classified into that group by a
softmax over its cosine similarities to all K groups divided by a temperature, and the groups
follow the features synchronously, in the same step, by a momentum update

    g_k ← β g_k + (1 − β) · mean{ z_i : z_i assigned to group k }     (groups without members
                                                                        keep their value)

with β = 0.99. Every few hundred iterations (300 in the paper) the groups are re-initialised
by k-means over recently seen features (:func:`smog_kmeans`, spherical k-means: cosine
assignment, centres the normalised means of their members). The math is in pure functions
below; :class:`SMoGPrototypes` holds the K x d group features (a buffer-like parameter without
gradient, so checkpoints carry it) and β.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError

__all__ = [
    "SMoGPrototypes",
    "smog_assign_groups",
    "smog_kmeans",
    "smog_logits",
    "smog_updated_groups",
]


def smog_logits(x: Tensor, group_features: Tensor, temperature: float = 0.1) -> Tensor:
    """Cosine similarities of (B, d) features to (K, d) groups over τ: (B, K) logits."""
    return F.normalize(x, dim=1) @ F.normalize(group_features, dim=1).T / temperature


@torch.no_grad()
def smog_assign_groups(x: Tensor, group_features: Tensor) -> Tensor:
    """(B,) index of the most similar group (cosine) of every (B, d) feature."""
    return smog_logits(x, group_features, 1.0).argmax(dim=1)


def smog_updated_groups(
    group_features: Tensor, x: Tensor, assignments: Tensor, beta: float
) -> Tensor:
    """Synchronous momentum update: β g_k + (1 − β) · mean of the features assigned to k.

    Args:
        group_features: (K, d) current groups (not modified).
        x: (B, d) features; gradients flow through the means into them, as in lightly.
        assignments: (B,) group index of every feature.
        beta: β, the groups' momentum in [0, 1].

    Returns:
        (K, d) new groups; a group without members keeps its value.
    """
    k = group_features.shape[0]
    sums = torch.zeros_like(group_features, dtype=x.dtype).index_add(0, assignments, x)
    counts = torch.bincount(assignments, minlength=k).to(x.dtype).unsqueeze(1)
    means = sums / counts.clamp_min(1)
    moved = beta * group_features.to(x.dtype) + (1 - beta) * means
    return torch.where(counts > 0, moved, group_features.to(x.dtype))


@torch.no_grad()
def smog_kmeans(
    features: Tensor,
    n_groups: int,
    max_iterations: int = 100,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Spherical k-means of (N, d) features into ``n_groups`` unit-vector centres (K, d).

    Centres start at K distinct features drawn at random; then, until no assignment changes
    (at most ``max_iterations`` rounds), every feature joins its most similar centre (cosine)
    and every centre becomes the normalised mean of its members (a centre without members
    keeps its place). On return each centre is therefore the normalised mean of the features
    closest to it, unless ``max_iterations`` ran out first.
    """
    n = features.shape[0]
    if features.ndim != 2 or n < n_groups or n_groups < 1:
        raise DataError(
            f"smog_kmeans: need (N, d) features with N >= n_groups = {n_groups} to find "
            f"{n_groups} groups, got shape {tuple(features.shape)}"
        )
    x = F.normalize(features, dim=1)
    start = torch.randperm(n, generator=generator)[:n_groups].to(x.device)
    centres = x[start].clone()
    assignments = smog_assign_groups(x, centres)
    for _ in range(max_iterations):
        sums = torch.zeros_like(centres).index_add(0, assignments, x)
        counts = torch.bincount(assignments, minlength=n_groups).unsqueeze(1)
        centres = torch.where(counts > 0, F.normalize(sums, dim=1), centres)
        new = smog_assign_groups(x, centres)
        if torch.equal(new, assignments):
            break
        assignments = new
    return centres


class SMoGPrototypes(nn.Module):
    """SMoG's group features with their momentum update (lightly's ``SMoGPrototypes``; SMoG,
    Pang et al. 2022, https://arxiv.org/abs/2207.06167).

    Args:
        group_features: (K, d) initial groups, e.g. random unit vectors or k-means centres.
        beta: β, momentum of the group update (0.99 in the paper), in [0, 1].

    Examples:
        >>> groups = SMoGPrototypes(F.normalize(torch.randn(300, 128), dim=1), beta=0.99)
        >>> assignments = groups.assign_groups(z_target)  # (B,)
        >>> updated = groups.get_updated_group_features(z_online)
        >>> logits = groups(p_online, updated, temperature=0.1)  # (B, K)
        >>> groups.set_group_features(updated)
    """

    def __init__(self, group_features: Tensor, beta: float) -> None:
        super().__init__()
        if group_features.ndim != 2 or group_features.shape[0] < 1:
            raise ConfigError(
                "SMoGPrototypes: group_features must be a (n_groups, dim) tensor with "
                f"n_groups >= 1, got shape {tuple(group_features.shape)}"
            )
        if (
            isinstance(beta, bool)
            or not isinstance(beta, int | float)
            or not math.isfinite(beta)
            or not 0 <= beta <= 1
        ):
            raise ConfigError(f"SMoGPrototypes: beta must be a number in [0, 1], got {beta!r}")
        # A parameter without gradient, as lightly: it moves with the model and is saved.
        self.group_features = nn.Parameter(group_features.clone(), requires_grad=False)
        self.beta = float(beta)

    def forward(self, x: Tensor, group_features: Tensor, temperature: float = 0.1) -> Tensor:
        """(B, K) logits of (B, d) features against (K, d) ``group_features``."""
        if x.ndim != 2 or x.shape[1] != group_features.shape[1]:
            raise DataError(
                f"SMoGPrototypes: expected features (batch_size, {group_features.shape[1]}), "
                f"got shape {tuple(x.shape)}"
            )
        return smog_logits(x, group_features, temperature)

    def assign_groups(self, x: Tensor) -> Tensor:
        """(B,) group of every (B, d) feature: its most similar current group."""
        return smog_assign_groups(x, self.group_features)

    def get_updated_group_features(self, x: Tensor) -> Tensor:
        """(K, d) groups after the momentum update with (B, d) features ``x``, each assigned
        to its most similar current group; the stored groups are not changed."""
        return smog_updated_groups(self.group_features, x, self.assign_groups(x), self.beta)

    @torch.no_grad()
    def set_group_features(self, x: Tensor) -> None:
        """Store (K, d) groups (detached), e.g. after an update or a k-means reset."""
        if x.shape != self.group_features.shape:
            raise DataError(
                f"SMoGPrototypes: new group features must have shape "
                f"{tuple(self.group_features.shape)}, got {tuple(x.shape)}"
            )
        self.group_features.copy_(x.detach())
