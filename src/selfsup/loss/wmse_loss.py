"""W-MSE: the MSE of positive pairs after whitening the batch (Ermolov et al. 2021).

Ermolov, Siarohin, Sangineto and Sebe 2021, "Whitening for Self-Supervised Representation
Learning" (https://arxiv.org/abs/2007.06346, sec. 3-4): the embeddings z of a batch are
whitened, ẑ = W (z - μ) with W the inverse of the Cholesky factor L of their covariance
(Σ = L Lᵀ, so the whitened batch has covariance I), which scatters them over the sphere and
rules out collapse without negatives; the loss is then the MSE between the L2-normalised
whitened embeddings of the views of an image:

    L = 2 / (N d (d - 1)) Σ_i Σ_{j<k} ‖ẑ_i^j/‖ẑ_i^j‖ - ẑ_i^k/‖ẑ_i^k‖‖²     (eq. 5)

for N images with d views each; ‖u - v‖² = 2 - 2 cos(u, v) for unit vectors. As in the
authors' code (and lightly's ``WMSELoss``), each view's batch is whitened on its own, in
random sub-batches of ``w_size`` rows ("batch slicing": whitening a subset decorrelates the
estimates), repeated ``w_iter`` times; the covariance can be shrunk towards the identity,
(1 - ε) Σ + ε I. The paper keeps w_size >= 2 × the embedding size for stable estimates.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError
from selfsup.loss._pair import check_weight
from selfsup.loss._precision import float32_math

__all__ = ["WMSELoss", "norm_mse_loss", "whiten", "whitening_matrix"]


def norm_mse_loss(x0: Tensor, x1: Tensor) -> Tensor:
    """Mean over rows of ‖x0/‖x0‖ - x1/‖x1‖‖² = 2 - 2 cos(x0, x1); (n, dim) each."""
    cosine = (F.normalize(x0, dim=1) * F.normalize(x1, dim=1)).sum(dim=1)
    return 2 - 2 * cosine.mean()


@float32_math
def whitening_matrix(covariance: Tensor, eps: float = 0.0) -> Tensor:
    """W = L⁻¹ with L L ᵀ = (1 - ε) Σ + ε I (Cholesky), so that W Σ_ε Wᵀ = I; in float32 at
    least, autocast off (:mod:`selfsup.loss._precision`).

    Args:
        covariance: (dim, dim) Σ, symmetric positive (semi-)definite.
        eps: ε in [0, 1], shrinkage towards the identity (> 0 makes Σ_ε definite).

    Raises:
        DataError: If Σ_ε is not positive definite (a sub-batch of at most ``dim`` rows,
            or collapsed embeddings, with ε = 0).
    """
    dim = covariance.shape[0]
    eye = torch.eye(dim, dtype=covariance.dtype, device=covariance.device)
    shrunk = (1 - eps) * covariance + eps * eye
    factor, info = torch.linalg.cholesky_ex(shrunk)
    if int(info.max()) > 0:
        raise DataError(
            f"WMSELoss: the covariance of a {dim}-dimensional sub-batch is not positive "
            "definite, so it cannot be whitened: use sub-batches (w_size) of more than "
            f"{dim} rows (2x is recommended) or eps > 0"
        )
    inverse: Tensor = torch.linalg.solve_triangular(factor, eye, upper=False)
    return inverse


@float32_math
def whiten(x: Tensor, eps: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """Whiten the rows of ``x`` with their own statistics, in float32 at least with autocast
    off (the covariance summed in bfloat16 would whiten poorly).

    Args:
        x: (n, dim) embeddings, n >= 2.
        eps: ε of :func:`whitening_matrix`.

    Returns:
        ``(W (x - μ) for each row (n, dim), μ (dim,), Σ (dim, dim))`` with the unbiased
        covariance Σ = (x - μ)ᵀ(x - μ) / (n - 1).
    """
    mean = x.mean(dim=0)
    centred = x - mean
    covariance = centred.T @ centred / (x.shape[0] - 1)
    return centred @ whitening_matrix(covariance, eps).T, mean, covariance


class WMSELoss(nn.Module):
    """W-MSE loss (lightly's ``WMSELoss``): see the module docstring.

    Args:
        embedding_dim: Size of the embeddings.
        momentum: Weight of the newest batch in the running mean and covariance, which
            whiten in eval mode when ``track_running_stats`` is set.
        eps: ε in [0, 1], shrinkage of the covariance towards I (0 in the paper).
        track_running_stats: Keep running statistics for eval mode.
        w_iter: Whitening iterations, each with a new random slicing (1).
        w_size: Rows per whitened sub-batch; a view's batch of B rows is cut into
            ``B // w_size`` random sub-batches of ``w_size`` or more rows. With ε = 0 it
            must exceed ``embedding_dim`` (a covariance of fewer rows is singular). None:
            the whole batch of a view, whatever its size.
        loss_fn: Distance of two (n, dim) whitened batches (:func:`norm_mse_loss`).
        num_samples: Views per image, d >= 2.

    Raises:
        ConfigError: For bad arguments.

    Examples:
        >>> criterion = WMSELoss(embedding_dim=64, w_size=128, num_samples=2)
        >>> z = torch.cat([model(x0), model(x1)])  # (num_samples * batch_size, 64)
        >>> loss = criterion(z)
    """

    running_mean: Tensor
    running_covariance: Tensor

    def __init__(
        self,
        embedding_dim: int = 128,
        momentum: float = 0.01,
        eps: float = 0.0,
        track_running_stats: bool = True,
        w_iter: int = 1,
        w_size: int | None = 256,
        loss_fn: Callable[[Tensor, Tensor], Tensor] = norm_mse_loss,
        num_samples: int = 2,
    ) -> None:
        super().__init__()
        owner = "WMSELoss"
        self.embedding_dim = _int(embedding_dim, "embedding_dim", 1)
        self.momentum = check_weight(momentum, "momentum", owner, " and <= 1")
        self.eps = check_weight(eps, "eps", owner, " and <= 1")
        for key, value in (("momentum", self.momentum), ("eps", self.eps)):
            if value > 1:
                raise ConfigError(f"{owner}: {key} must be a finite number in [0, 1], got {value}")
        self.w_iter = _int(w_iter, "w_iter", 1)
        self.num_samples = _int(num_samples, "num_samples", 2)
        self.w_size = None if w_size is None else _int(w_size, "w_size", 2)
        if self.w_size is not None and self.eps == 0 and self.w_size <= self.embedding_dim:
            raise ConfigError(
                f"{owner}: w_size={w_size} rows cannot be whitened in embedding_dim="
                f"{embedding_dim} dimensions (their covariance is singular): use w_size > "
                f"{embedding_dim} (the paper: >= {2 * embedding_dim}) or eps > 0"
            )
        self.loss_fn = loss_fn
        self.track_running_stats = track_running_stats
        self.register_buffer("running_mean", torch.zeros(self.embedding_dim))
        self.register_buffer("running_covariance", torch.eye(self.embedding_dim))

    def forward(self, input: Tensor) -> Tensor:
        """Scalar loss of (num_samples * batch_size, embedding_dim) embeddings, the views
        one after the other (``torch.cat([z_view_0, z_view_1, ...])``)."""
        owner = "WMSELoss"
        if input.ndim != 2 or input.shape[1] != self.embedding_dim:
            raise DataError(
                f"{owner}: input must have shape (num_samples * batch_size, embedding_dim="
                f"{self.embedding_dim}), got {tuple(input.shape)}"
            )
        if input.shape[0] % self.num_samples != 0:
            raise DataError(
                f"{owner}: {input.shape[0]} rows are not num_samples={self.num_samples} "
                "views of the same batch"
            )
        batch = input.shape[0] // self.num_samples
        w_size = batch if self.w_size is None else self.w_size
        if batch < max(w_size, 2):
            raise DataError(
                f"{owner}: a batch of {batch} images per view is smaller than w_size={w_size} "
                "(or 2); use larger batches or a smaller w_size"
            )
        views = torch.split(input, batch)
        slices = batch // w_size
        total = input.new_zeros(())
        for _ in range(self.w_iter):
            # Random sub-batches; with a single one, the order changes nothing.
            order = (
                torch.randperm(batch, device=input.device)
                if slices > 1
                else torch.arange(batch, device=input.device)
            )
            inverse = torch.argsort(order)
            whitened = [self._whiten_view(view, order, slices)[inverse] for view in views]
            for j in range(self.num_samples - 1):
                for k in range(j + 1, self.num_samples):
                    total = total + self.loss_fn(whitened[j], whitened[k])
        pairs = self.num_samples * (self.num_samples - 1) // 2
        return total / (self.w_iter * pairs)

    def _whiten_view(self, view: Tensor, order: Tensor, slices: int) -> Tensor:
        """The rows of ``view`` in ``order``, whitened sub-batch by sub-batch."""
        if not self.training and self.track_running_stats:
            # Eval mode: the running statistics, as BatchNorm does.
            w = whitening_matrix(self.running_covariance.to(view), self.eps)
            return (view[order] - self.running_mean.to(view)) @ w.T
        parts = []
        for rows in torch.tensor_split(order, slices):
            white, mean, covariance = whiten(view[rows], self.eps)
            parts.append(white)
            if self.track_running_stats:
                with torch.no_grad():
                    m = self.momentum
                    self.running_mean.mul_(1 - m).add_(m * mean.to(self.running_mean))
                    self.running_covariance.mul_(1 - m).add_(
                        m * covariance.to(self.running_covariance)
                    )
        return torch.cat(parts)


def _int(value: object, key: str, minimum: int) -> int:
    """``value`` as an int >= ``minimum``, else a ConfigError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"WMSELoss: {key} must be an integer >= {minimum}, got {value!r}")
    return value
