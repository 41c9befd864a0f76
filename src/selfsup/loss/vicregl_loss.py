"""VICRegL's loss: VICReg on the global embeddings plus VICReg on matched local features.

VICRegL (Bardes, Ponce & LeCun 2022, https://arxiv.org/abs/2210.01571, sec. 3): "The
VICReg criterion is applied to pairs of global feature vectors. Simultaneously, the VICReg
criterion is applied to pairs of local feature vectors occurring before the last pooling
layer" (abstract), where local features of two views are paired by their location in the image (the
nearest cell of the other view's grid) and by their distance in feature space (the nearest
feature of the other view), keeping only the best ``num_matches`` pairs:

    L = α ℓ_global + (1 − α) ℓ_local,     α = 0.75

ℓ_global averages the invariance over every pair of a global view with another (global or
local) view, and the variance and covariance over the views. ℓ_local averages, over the same
pairs with a global first view, the location-matched and the feature-matched VICReg losses,
each symmetrised (the first view's best ``num_matches[0]`` matches in the second, the second
view's best ``num_matches[1]`` in the first). On matched local features (B, k, d), the
variance and covariance are taken over the batch for each of the k matches and averaged, and
the covariance weight is halved, as in the authors' code (and lightly's ``VICRegLLoss``).

With ``gather_distributed`` the features and grids of every view are gathered over all
processes first (features with gradients, :func:`selfsup.utils.dist.gather`), so the variance
and covariance are those of the global batch, as VICReg's; every process computes the loss of
the global batch, and DDP's averaged gradient is that loss's gradient.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError
from selfsup.loss._pair import check_gather_available, check_weight
from selfsup.utils import dist

__all__ = ["VICRegLLoss", "matched_vicreg", "nearest_neighbors"]

ViewFeatures = tuple[Tensor, Tensor]
"""``(global (B, D), local (B, h, w, d))`` features of one view."""


def nearest_neighbors(
    input_features: Tensor, candidate_features: Tensor, distances: Tensor, num_matches: int
) -> tuple[Tensor, Tensor]:
    """The ``num_matches`` best pairs (input, its nearest candidate) of every sample.

    Args:
        input_features: (B, N, d) local features.
        candidate_features: (B, M, d) local features of another view.
        distances: (B, N, M) distance of every input to every candidate (in feature space, or
            between their locations).
        num_matches: Pairs kept per sample, at most N.

    Returns:
        ``(inputs, candidates)``, both (B, k, d) with k = min(num_matches, N): the inputs whose
        nearest candidate is closest, by increasing distance, and those nearest candidates.
    """
    best, nearest = distances.min(dim=2)  # (B, N)
    k = min(num_matches, input_features.shape[1])
    order = best.topk(k, dim=1, largest=False).indices  # (B, k)
    d = input_features.shape[2]
    inputs = input_features.gather(1, order.unsqueeze(-1).expand(-1, -1, d))
    matched = nearest.gather(1, order)
    candidates = candidate_features.gather(1, matched.unsqueeze(-1).expand(-1, -1, d))
    return inputs, candidates


def _variance(z: Tensor, eps: float) -> Tensor:
    """Mean over features (and matches) of max(0, 1 − sqrt(Var_batch + ε))."""
    return F.relu(1 - torch.sqrt(z.var(dim=0) + eps)).mean()


def _covariance(z: Tensor) -> Tensor:
    """(1/d) Σ_{i≠j} C_ij² of the batch covariance, averaged over leading match dimensions."""
    centred = z - z.mean(dim=0)
    n, d = z.shape[0], z.shape[-1]
    cov = torch.einsum("b...c,b...e->...ce", centred, centred) / (n - 1)
    off = cov.pow(2).sum(dim=(-2, -1)) - torch.diagonal(cov, dim1=-2, dim2=-1).pow(2).sum(-1)
    return (off / d).mean()


def matched_vicreg(
    z_a: Tensor, z_b: Tensor, lambda_param: float, mu_param: float, nu_param: float, eps: float
) -> Tensor:
    """VICReg of paired features (B, ..., d): λ MSE + μ mean variance + ν summed covariance.

    For (B, d) this is :func:`selfsup.loss.vicreg_loss.vicreg_loss`; for matched local features
    (B, k, d) the statistics are per match, over the batch.
    """
    invariance = F.mse_loss(z_a, z_b)
    variance = 0.5 * (_variance(z_a, eps) + _variance(z_b, eps))
    covariance = _covariance(z_a) + _covariance(z_b)
    return lambda_param * invariance + mu_param * variance + nu_param * covariance


def _gathered(
    features: list[ViewFeatures], grids: list[Tensor]
) -> tuple[list[ViewFeatures], list[Tensor]]:
    """Every view's features (with gradients) and grids of all processes, concatenated in
    rank order along the batch."""
    return (
        [(torch.cat(dist.gather(z)), torch.cat(dist.gather(maps))) for z, maps in features],
        [torch.cat(dist.gather_no_grad(g)) for g in grids],
    )


class VICRegLLoss(nn.Module):
    """VICRegL loss (lightly's ``VICRegLLoss``).

    Args:
        lambda_param: λ, invariance weight (25).
        mu_param: μ, variance weight (25).
        nu_param: ν, covariance weight (1; halved for the local terms, as the authors).
        alpha: α, weight of the global loss; the local loss gets 1 − α (0.75).
        eps: ε of the variance (1e-4).
        num_matches: Matches kept from the first view into the second, and back (20, 4).
        gather_distributed: Take the batch statistics over all processes (see the module
            docstring); without an initialised process group it changes nothing.

    Examples:
        >>> criterion = VICRegLLoss()
        >>> # per view: (global (B, D), local (B, h, w, d)) features and its (B, h, w, 2) grid
        >>> loss = criterion(global_features, global_grids, local_features, local_grids)
    """

    def __init__(
        self,
        lambda_param: float = 25.0,
        mu_param: float = 25.0,
        nu_param: float = 1.0,
        alpha: float = 0.75,
        eps: float = 1e-4,
        num_matches: tuple[int, int] = (20, 4),
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        owner = "VICRegLLoss"
        self.lambda_param = check_weight(lambda_param, "lambda_param", owner)
        self.mu_param = check_weight(mu_param, "mu_param", owner)
        self.nu_param = check_weight(nu_param, "nu_param", owner)
        self.alpha = check_weight(alpha, "alpha", owner)
        if self.alpha > 1:
            raise ConfigError(f"VICRegLLoss: alpha must be in [0, 1], got {alpha!r}")
        self.eps = check_weight(eps, "eps", owner)
        if (
            not isinstance(num_matches, Sequence)
            or len(num_matches) != 2
            or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in num_matches)
        ):
            raise ConfigError(
                f"VICRegLLoss: num_matches must be two integers >= 1, got {num_matches!r}"
            )
        self.num_matches = (int(num_matches[0]), int(num_matches[1]))
        check_gather_available(gather_distributed, owner)
        self.gather_distributed = gather_distributed

    def forward(
        self,
        global_view_features: Sequence[ViewFeatures],
        global_view_grids: Sequence[Tensor],
        local_view_features: Sequence[ViewFeatures] | None = None,
        local_view_grids: Sequence[Tensor] | None = None,
    ) -> Tensor:
        """α ℓ_global + (1 − α) ℓ_local of >= 2 global views and any local views.

        Args:
            global_view_features: Per global view, ``(global (B, D), local (B, h, w, d))``.
            global_view_grids: Per global view, the (B, h, w, 2) image coordinates of its
                local features.
            local_view_features: The same for the local views (their h, w may differ).
            local_view_grids: Their grids.
        """
        self._check(global_view_features, global_view_grids, local_view_features, local_view_grids)
        global_features, global_grids = list(global_view_features), list(global_view_grids)
        local_features = list(local_view_features or [])
        local_grids = list(local_view_grids or [])
        if self.gather_distributed and dist.world_size() > 1:
            global_features, global_grids = _gathered(global_features, global_grids)
            local_features, local_grids = _gathered(local_features, local_grids)
        return self.alpha * self._global(global_features, local_features) + (
            1 - self.alpha
        ) * self._local(global_features, global_grids, local_features, local_grids)

    def _global(self, views: Sequence[ViewFeatures], local: Sequence[ViewFeatures]) -> Tensor:
        pairs = [
            F.mse_loss(a, b)
            for i, (a, _) in enumerate(views)
            for j, (b, _) in enumerate([*views, *local])
            if j != i
        ]
        every = [z for z, _ in [*views, *local]]
        variance = torch.stack([_variance(z, self.eps) for z in every]).mean()
        covariance = torch.stack([_covariance(z) for z in every]).mean()
        return (
            self.lambda_param * torch.stack(pairs).mean()
            + self.mu_param * variance
            + self.nu_param * covariance
        )

    def _local(
        self,
        views: Sequence[ViewFeatures],
        grids: Sequence[Tensor],
        local: Sequence[ViewFeatures],
        local_grids: Sequence[Tensor],
    ) -> Tensor:
        others = [*zip(views, grids, strict=True), *zip(local, local_grids, strict=True)]
        losses = []
        for i, ((_, maps_a), grid_a) in enumerate(zip(views, grids, strict=True)):
            for j, ((_, maps_b), grid_b) in enumerate(others):
                if j == i:
                    continue
                a, b = maps_a.flatten(1, 2), maps_b.flatten(1, 2)
                by_features = self._matched(a, b, torch.cdist(a, b), torch.cdist(b, a))
                ga, gb = grid_a.flatten(1, 2).to(a.dtype), grid_b.flatten(1, 2).to(a.dtype)
                by_location = self._matched(a, b, torch.cdist(ga, gb), torch.cdist(gb, ga))
                losses.append(by_features + by_location)
        return torch.stack(losses).mean()

    def _matched(self, a: Tensor, b: Tensor, d_ab: Tensor, d_ba: Tensor) -> Tensor:
        weights = (self.lambda_param, self.mu_param, 0.5 * self.nu_param, self.eps)
        a_in, a_nn = nearest_neighbors(a, b, d_ab, self.num_matches[0])
        b_in, b_nn = nearest_neighbors(b, a, d_ba, self.num_matches[1])
        return 0.5 * (matched_vicreg(a_in, a_nn, *weights) + matched_vicreg(b_in, b_nn, *weights))

    @staticmethod
    def _check(
        features: Sequence[ViewFeatures],
        grids: Sequence[Tensor],
        local: Sequence[ViewFeatures] | None,
        local_grids: Sequence[Tensor] | None,
    ) -> None:
        if len(features) < 2 or len(features) != len(grids):
            raise DataError(
                "VICRegLLoss: expected at least 2 global views with one grid each, got "
                f"{len(features)} views and {len(grids)} grids"
            )
        if (local is None) != (local_grids is None) or (
            local is not None and local_grids is not None and len(local) != len(local_grids)
        ):
            raise DataError(
                "VICRegLLoss: local_view_features and local_view_grids must both be given "
                "with one grid per view, or both be None"
            )
        batch = features[0][0].shape[0]
        for (z, maps), grid in zip(
            [*features, *(local or [])], [*grids, *(local_grids or [])], strict=True
        ):
            if (
                z.ndim != 2
                or maps.ndim != 4
                or grid.shape != (*maps.shape[:3], 2)
                or z.shape[0] != batch
                or batch < 2
            ):
                raise DataError(
                    "VICRegLLoss: every view needs global features (B, D), local features "
                    "(B, h, w, d) and a grid (B, h, w, 2) with the same B >= 2, got "
                    f"{tuple(z.shape)}, {tuple(maps.shape)} and {tuple(grid.shape)}"
                )
