"""DetCon's loss: contrast of mask-pooled region features, same region of the same image
being the positive (Hénaff et al. 2021, https://arxiv.org/abs/2103.10957).

DetCon pools the feature map under each of M sampled region masks of an image and contrasts
the region vectors: for region m of view 1, the positive is the vector of the same region m'
(same mask id) of the same image in view 2; the negatives are all other regions of all images
in both views (excluding the same region of the same image in its own view). With unit
vectors v scaled by 1/√τ,

    L = Σ_m Σ_m' 1[m, m'] [ −log exp(v_m · v'_m') / (exp(v_m · v'_m') + Σ_n exp(v_m · v_n)) ]

computed both ways (view 1 against view 2 and back) and summed. Each region's term is
weighted by 1 over the number of its sampled copies in its view (a mask sampled twice counts
once) and dropped when the other view has no region with its id; the mean is over all B·M
sampled regions. DetCon-S (SimCLR) uses the same projections on both sides, DetCon-B (BYOL)
online predictions against target projections; this follows the authors' code, as lightly's
``DetConSLoss`` and ``DetConBLoss`` do.

With ``gather_distributed`` (the default, as the authors contrast against the regions of the
whole batch across devices) the region vectors and mask ids of all processes are gathered
first (vectors with gradients, :func:`selfsup.utils.dist.gather`): every process computes the
loss of the global batch, its negatives the regions of every image on every process, and
DDP's averaged gradient is that loss's gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import DataError
from selfsup.loss._pair import check_gather_available
from selfsup.loss.ntx_ent_loss import check_temperature
from selfsup.utils import dist

__all__ = ["DetConBLoss", "DetConSLoss", "detcon_loss"]

#: Subtracted from the logits of a region against itself and its copies in its own view.
_EXCLUDED = 1e9


def _one_direction(
    pred: Tensor,
    target_other: Tensor,
    target_same: Tensor,
    mask: Tensor,
    mask_other: Tensor,
    temperature: float,
) -> Tensor:
    """Mean over the B·M regions of ``pred`` of their weighted cross-entropy."""
    b, m, _ = pred.shape
    same_image = torch.eye(b, dtype=pred.dtype, device=pred.device)[:, None, :, None]
    match_other = (mask[:, :, None] == mask_other[:, None, :]).to(pred.dtype)[:, :, None, :]
    match_same = (mask[:, :, None] == mask[:, None, :]).to(pred.dtype)[:, :, None, :]
    logits_other = torch.einsum("bmd,cnd->bmcn", pred, target_other) / temperature
    logits_same = torch.einsum("bmd,cnd->bmcn", pred, target_same) / temperature
    logits_same = logits_same - _EXCLUDED * same_image * match_same
    logits = torch.cat([logits_other, logits_same], dim=2).reshape(b, m, -1)
    positives = torch.cat([same_image * match_other, torch.zeros_like(logits_same)], dim=2).reshape(
        b, m, -1
    )
    count = positives.sum(dim=-1)
    labels = positives / count.clamp_min(1)[..., None]
    copies = match_same.sum(dim=(2, 3))
    weights = (count > 0).to(pred.dtype) / copies
    ce = -(labels * F.log_softmax(logits, dim=-1)).sum(dim=-1)
    return (weights * ce).mean()


def detcon_loss(
    pred0: Tensor,
    pred1: Tensor,
    target0: Tensor,
    target1: Tensor,
    mask0: Tensor,
    mask1: Tensor,
    temperature: float = 0.1,
) -> Tensor:
    """L of view 0 against view 1 plus L of view 1 against view 0.

    Args:
        pred0, pred1: (B, M, D) region vectors of each view (DetCon-B: online predictions).
        target0, target1: (B, M, D) region vectors the predictions are scored against
            (DetCon-B: target projections; DetCon-S: the same as ``pred``).
        mask0, mask1: (B, M) integer mask ids of the sampled regions of each view.
        temperature: τ > 0.
    """
    p0, p1 = F.normalize(pred0, dim=2), F.normalize(pred1, dim=2)
    t0, t1 = F.normalize(target0, dim=2), F.normalize(target1, dim=2)
    return _one_direction(p0, t1, t0, mask0, mask1, temperature) + _one_direction(
        p1, t0, t1, mask1, mask0, temperature
    )


def _check(tensors: tuple[Tensor, ...], masks: tuple[Tensor, Tensor], owner: str) -> None:
    shape = tensors[0].shape
    if (
        len(shape) != 3
        or any(t.shape != shape for t in tensors)
        or any(mask.shape != shape[:2] or mask.is_floating_point() for mask in masks)
    ):
        raise DataError(
            f"{owner}: expected region vectors (B, M, D) of the same shape and integer masks "
            f"(B, M), got {[tuple(t.shape) for t in tensors]} and "
            f"{[(tuple(m.shape), str(m.dtype)) for m in masks]}"
        )


def _gathered(
    vectors: tuple[Tensor, ...], masks: tuple[Tensor, Tensor], gather_distributed: bool
) -> tuple[list[Tensor], list[Tensor]]:
    """Region vectors (with gradients) and mask ids of every process, concatenated in rank
    order along the batch, when gathering over an initialised group of several processes."""
    if not gather_distributed or dist.world_size() < 2:
        return list(vectors), list(masks)
    return (
        [torch.cat(dist.gather(v), dim=0) for v in vectors],
        [torch.cat(dist.gather_no_grad(m), dim=0) for m in masks],
    )


class _DetConLoss(nn.Module):
    """τ and distributed gathering of both DetCon losses.

    Args:
        temperature: τ (0.1).
        gather_distributed: Contrast against the regions of all processes (see the module
            docstring); without an initialised process group it changes nothing.
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = True) -> None:
        super().__init__()
        owner = type(self).__name__
        check_temperature(temperature, owner)
        check_gather_available(gather_distributed, owner)
        self.temperature = float(temperature)
        self.gather_distributed = gather_distributed


class DetConBLoss(_DetConLoss):
    """DetCon-B loss (lightly's ``DetConBLoss``): online predictions against target
    projections of the regions of both views.

    Args:
        temperature: τ (0.1).
        gather_distributed: Contrast against the regions of all processes (see the module
            docstring); without an initialised process group it changes nothing.
    """

    def forward(
        self,
        pred_view0: Tensor,
        pred_view1: Tensor,
        target_view0: Tensor,
        target_view1: Tensor,
        mask_view0: Tensor,
        mask_view1: Tensor,
    ) -> Tensor:
        """Scalar loss of (B, M, D) region predictions and targets with (B, M) mask ids."""
        _check(
            (pred_view0, pred_view1, target_view0, target_view1),
            (mask_view0, mask_view1),
            "DetConBLoss",
        )
        (p0, p1, t0, t1), (m0, m1) = _gathered(
            (pred_view0, pred_view1, target_view0, target_view1),
            (mask_view0, mask_view1),
            self.gather_distributed,
        )
        return detcon_loss(p0, p1, t0, t1, m0, m1, self.temperature)


class DetConSLoss(_DetConLoss):
    """DetCon-S loss (lightly's ``DetConSLoss``): the region projections of both views
    contrasted with each other.

    Args:
        temperature: τ (0.1).
        gather_distributed: Contrast against the regions of all processes (see the module
            docstring); without an initialised process group it changes nothing.
    """

    def forward(
        self, view0: Tensor, view1: Tensor, mask_view0: Tensor, mask_view1: Tensor
    ) -> Tensor:
        """Scalar loss of (B, M, D) region projections with (B, M) mask ids."""
        _check((view0, view1), (mask_view0, mask_view1), "DetConSLoss")
        (v0, v1), (m0, m1) = _gathered(
            (view0, view1), (mask_view0, mask_view1), self.gather_distributed
        )
        return detcon_loss(v0, v1, v0, v1, m0, m1, self.temperature)
