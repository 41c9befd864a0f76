"""SwAV's swapped prediction loss, with codes from the Sinkhorn-Knopp algorithm.

SwAV (Caron et al. 2020, https://arxiv.org/abs/2006.09882). Features z (unit vectors) are
scored against K prototypes c_k; the code q of a view is its soft assignment to the
prototypes, and each view predicts the code of another view of the same image:

    L(z_t, z_s) = ℓ(z_t, q_s) + ℓ(z_s, q_t)                                       (eq. 1)
    ℓ(z_t, q_s) = − Σ_k q_s^(k) log p_t^(k),
    p_t^(k) = exp(z_tᵀ c_k / τ) / Σ_k' exp(z_tᵀ c_k' / τ)                          (eq. 2)

averaged over the N images of the batch (eq. 3). The codes Q = [q_1, ..., q_B] of a batch
solve "max_{Q ∈ 𝒬} Tr(Qᵀ Cᵀ Z) + ε H(Q)" over the transportation polytope
"𝒬 = {Q ∈ R₊^{K×B} | Q 1_B = (1/K) 1_K, Qᵀ 1_K = (1/B) 1_B}" (sec. 3.1): every
prototype is used equally often over the batch. The solution "takes the form of a
normalized exponential matrix Q* = Diag(u) exp(CᵀZ / ε) Diag(v)", found by a few
iterations of the Sinkhorn-Knopp algorithm (3 in the paper, ε = 0.05), which alternately
rescales the rows and the columns; the soft codes are the columns of B·Q*.

Multi-crop (sec. 3.2): codes come from the two high-resolution crops only, and every other
crop predicts them, "L(z_t1, ..., z_tV+2) = Σ_{i∈{1,2}} Σ_{v=1}^{V+2} 1_{v≠i} ℓ(z_tv, q_ti)"
As in the authors' code, each code's terms are averaged over the V+1 crops that
predict it and the result over the high-resolution crops, so the scale does not depend on
the number of crops.

With a small batch, the codes of a batch are computed together with the scores of features
kept from earlier batches (a queue, one per high-resolution view): the equipartition then
holds over batch and queue, and only the batch's codes are used.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError
from selfsup.loss._pair import check_gather_available, check_positive
from selfsup.utils import dist

__all__ = ["SwaVLoss", "sinkhorn", "swapped_prediction", "swav_loss"]


def _all_reduce(x: Tensor, op: torch_dist.ReduceOp.RedOpType, world: int) -> Tensor:
    if world > 1:
        torch_dist.all_reduce(x, op=op)
    return x


@torch.no_grad()
def sinkhorn(
    out: Tensor,
    iterations: int = 3,
    epsilon: float = 0.05,
    gather_distributed: bool = False,
) -> Tensor:
    """Soft codes of a batch: the Sinkhorn-Knopp solution Q* of sec. 3.1, times B.

    Starting from ``exp(scores / ε)`` normalised to sum 1, every iteration rescales the rows
    (prototypes) to sum 1/K, then the columns (samples) to sum 1/B. The result is returned
    per sample and multiplied by B, so every sample's code sums to 1 (exactly: the columns
    are rescaled last) and every prototype receives about B/K of the batch (exactly in the
    limit of many iterations).

    The largest score is subtracted before the exponential: the constant factor it removes
    cancels in the first normalisation, and ``exp`` cannot overflow.

    Args:
        out: (B, K) scores zᵀc_k of B samples against K prototypes.
        iterations: Sinkhorn iterations (>= 0; the paper uses 3).
        epsilon: ε, the entropy weight (0.05 in the paper); lower gives harder codes.
        gather_distributed: If True and ``torch.distributed`` is initialised, the
            normalisations run over the samples of all processes (all-reduced sums), so the
            prototypes are shared out over the global batch, as in the authors' code;
            every process gets the codes of its own B samples. All processes must call it.

    Returns:
        (B, K) codes q, in ``out``'s dtype, without gradient.
    """
    if out.ndim != 2 or out.shape[0] == 0 or out.shape[1] == 0:
        raise DataError(
            f"sinkhorn: out must have shape (batch_size, n_prototypes) with both >= 1, got "
            f"{tuple(out.shape)}"
        )
    world = dist.world_size() if gather_distributed else 1
    # Half precision would underflow in the normalisations; work in float32 at least.
    work = torch.promote_types(out.dtype, torch.float32)
    scores = out.detach().to(work)
    top = _all_reduce(scores.max().clone(), torch_dist.ReduceOp.MAX, world)
    q = torch.exp((scores - top) / epsilon).T  # (K, B)
    n_prototypes, batch = q.shape[0], q.shape[1] * world
    tiny = torch.finfo(work).tiny  # a prototype nobody scores on keeps 0, not 0/0
    q /= _all_reduce(q.sum(), torch_dist.ReduceOp.SUM, world).clamp_min(tiny)
    for _ in range(iterations):
        rows = _all_reduce(q.sum(dim=1, keepdim=True), torch_dist.ReduceOp.SUM, world)
        q /= rows.clamp_min(tiny) * n_prototypes
        q /= q.sum(dim=0, keepdim=True).clamp_min(tiny) * batch
    q *= batch
    return q.T.to(out.dtype)


def swapped_prediction(scores: Tensor, codes: Tensor, temperature: float) -> Tensor:
    """ℓ(z_t, q_s) of eq. 2, averaged over the batch.

    Args:
        scores: (B, K) scores z_tᵀc_k of the predicting view.
        codes: (B, K) codes q_s of the other view (rows summing to 1).
        temperature: τ of the softmax p_t.

    Returns:
        Scalar ``mean_n ( − Σ_k q_s^(k) log p_t^(k) )``.
    """
    log_p = F.log_softmax(scores / temperature, dim=1)
    return -(codes.to(log_p) * log_p).sum(dim=1).mean()


def _check_scores(
    high: Sequence[Tensor], low: Sequence[Tensor], queue: Sequence[Tensor] | None
) -> None:
    owner = "SwaVLoss"
    if len(high) == 0 or len(high) + len(low) < 2:
        raise DataError(
            f"{owner}: needs at least one high-resolution output and two outputs in all (a "
            f"view to predict a code and another to be predicted), got {len(high)} "
            f"high-resolution and {len(low)} low-resolution outputs"
        )
    ref = high[0]
    for name, outputs in (("high_resolution_outputs", high), ("low_resolution_outputs", low)):
        for i, z in enumerate(outputs):
            if z.ndim != 2 or z.shape != ref.shape or z.shape[0] == 0:
                raise DataError(
                    f"{owner}: {name}[{i}] has shape {tuple(z.shape)}; every output must "
                    f"have the shape (batch_size, n_prototypes) = {tuple(ref.shape)} of "
                    f"high_resolution_outputs[0], with batch_size >= 1"
                )
    if queue is None:
        return
    if len(queue) != len(high):
        raise DataError(
            f"{owner}: queue_outputs holds {len(queue)} tensors; expected one per "
            f"high-resolution output ({len(high)})"
        )
    for i, zq in enumerate(queue):
        if zq.ndim != 2 or zq.shape[1] != ref.shape[1]:
            raise DataError(
                f"{owner}: queue_outputs[{i}] has shape {tuple(zq.shape)}; expected "
                f"(queue_length, n_prototypes) with n_prototypes = {ref.shape[1]}"
            )


def swav_loss(
    high_resolution_outputs: Sequence[Tensor],
    low_resolution_outputs: Sequence[Tensor],
    queue_outputs: Sequence[Tensor] | None = None,
    temperature: float = 0.1,
    sinkhorn_iterations: int = 3,
    sinkhorn_epsilon: float = 0.05,
    sinkhorn_gather_distributed: bool = False,
) -> Tensor:
    """The multi-crop swapped prediction loss (sec. 3.2, averaged as in the authors' code).

    For every high-resolution view i, the codes q_i (:func:`sinkhorn` on its scores, with
    the scores of ``queue_outputs[i]`` appended when given) are predicted by every other
    view v: ``loss = mean_i [ Σ_{v≠i} ℓ(z_v, q_i) / (V_total − 1) ]``. Gradients flow through
    the predictions only; codes are targets.

    Args:
        high_resolution_outputs: H >= 1 tensors (B, K), scores of the high-resolution views.
        low_resolution_outputs: L tensors (B, K), scores of the low-resolution views; H + L
            >= 2.
        queue_outputs: None, or H tensors (M, K): scores of queued features, one queue per
            high-resolution view.
        temperature: τ of eq. 2.
        sinkhorn_iterations, sinkhorn_epsilon, sinkhorn_gather_distributed: see
            :func:`sinkhorn`.

    Returns:
        Scalar loss, in the dtype of the outputs.
    """
    _check_scores(high_resolution_outputs, low_resolution_outputs, queue_outputs)
    views = [*high_resolution_outputs, *low_resolution_outputs]
    total = views[0].new_zeros(())
    for i, high in enumerate(high_resolution_outputs):
        scores = high.detach()
        if queue_outputs is not None:
            scores = torch.cat([scores, queue_outputs[i].detach().to(scores)])
        codes = sinkhorn(
            scores, sinkhorn_iterations, sinkhorn_epsilon, sinkhorn_gather_distributed
        )[: high.shape[0]]  # the queue's codes only shape the batch's
        predictions = [
            swapped_prediction(z, codes, temperature) for v, z in enumerate(views) if v != i
        ]
        total = total + torch.stack(predictions).sum() / (len(views) - 1)
    return total / len(high_resolution_outputs)


class SwaVLoss(nn.Module):
    """SwAV loss (lightly's ``SwaVLoss``): swapped prediction over multi-crop views.

    Args:
        temperature: τ of the prediction softmax (eq. 2; 0.1 in the paper).
        sinkhorn_iterations: Sinkhorn-Knopp iterations for the codes (3).
        sinkhorn_epsilon: ε, the entropy weight of the codes (0.05).
        sinkhorn_gather_distributed: If True and ``torch.distributed`` is initialised, the
            codes are balanced over the global batch (see :func:`sinkhorn`); each process's
            loss is then the mean over its own samples, and DDP's averaged gradient is the
            gradient of the global batch's loss.

    Examples:
        >>> criterion = SwaVLoss()
        >>> high = [prototypes(z) for z in global_features]  # (batch_size, K) each
        >>> low = [prototypes(z) for z in local_features]
        >>> loss = criterion(high, low)
    """

    def __init__(
        self,
        temperature: float = 0.1,
        sinkhorn_iterations: int = 3,
        sinkhorn_epsilon: float = 0.05,
        sinkhorn_gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        self.temperature = check_positive(temperature, "temperature", "SwaVLoss")
        self.sinkhorn_epsilon = check_positive(sinkhorn_epsilon, "sinkhorn_epsilon", "SwaVLoss")
        if (
            isinstance(sinkhorn_iterations, bool)
            or not isinstance(sinkhorn_iterations, int)
            or sinkhorn_iterations < 0
        ):
            raise ConfigError(
                f"SwaVLoss: sinkhorn_iterations must be an integer >= 0 (the paper uses 3), "
                f"got {sinkhorn_iterations!r}"
            )
        self.sinkhorn_iterations = sinkhorn_iterations
        check_gather_available(sinkhorn_gather_distributed, "SwaVLoss")
        self.sinkhorn_gather_distributed = sinkhorn_gather_distributed

    def subloss(self, z: Tensor, q: Tensor) -> Tensor:
        """ℓ(z, q) of eq. 2 averaged over the batch: scores z (B, K) predicting codes q (B, K)."""
        return swapped_prediction(z, q, self.temperature)

    def forward(
        self,
        high_resolution_outputs: Sequence[Tensor],
        low_resolution_outputs: Sequence[Tensor],
        queue_outputs: Sequence[Tensor] | None = None,
    ) -> Tensor:
        """Scalar loss of the views' prototype scores (see :func:`swav_loss`).

        Args:
            high_resolution_outputs: Scores (B, K) of each high-resolution view.
            low_resolution_outputs: Scores (B, K) of each low-resolution view (may be empty).
            queue_outputs: Scores (M, K) of the queued features of each high-resolution
                view, or None.
        """
        return swav_loss(
            high_resolution_outputs,
            low_resolution_outputs,
            queue_outputs,
            self.temperature,
            self.sinkhorn_iterations,
            self.sinkhorn_epsilon,
            self.sinkhorn_gather_distributed,
        )
