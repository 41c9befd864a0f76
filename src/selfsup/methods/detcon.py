"""DetCon-S and DetCon-B (Hénaff et al. 2021): contrastive detection of image regions.

DetCon contrasts region features instead of whole-image ones: the backbone's feature map
(before pooling, :mod:`selfsup.models.feature_map`) is average-pooled under each of M region
masks sampled per image, the pooled vectors are projected (DetCon-S: SimCLR's head; DetCon-B:
BYOL's online projector and predictor against a momentum target), and
:class:`selfsup.loss.DetConSLoss` / :class:`selfsup.loss.DetConBLoss` take the same region of
the same image in the other view as the positive. The masks are DetCon's spatial heuristic:
an n x n grid of image regions (n = 4), carried into every view by its location grid
(:class:`selfsup.transforms.DetConSTransform`); regions are sampled among those both views
show (an image whose views share none samples from the first view's regions, which then have
no positive and are left out of its loss).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import DataError
from selfsup.loss import DetConBLoss, DetConSLoss
from selfsup.methods._base import (
    Method,
    MethodModel,
    MomentumEncoderModel,
    OptimizerDefaults,
    TrainProgress,
)
from selfsup.models.feature_map import feature_map, feature_map_channels
from selfsup.models.modules import BYOLPredictionHead, BYOLProjectionHead, SimCLRProjectionHead

#: Regions per side of the spatial heuristic and regions sampled per image (the paper: 16).
REGIONS_PER_SIDE = 4
NUM_SAMPLED_REGIONS = 16


def spatial_regions(grid: Tensor, n: int = REGIONS_PER_SIDE) -> Tensor:
    """(B, h, w) region id, in [0, n²), of every cell whose image position (y, x) in [0, 1]
    the (B, h, w, 2) ``grid`` gives: the n x n split of the image it falls in."""
    cell = (grid * n).floor().long().clamp(0, n - 1)
    return cell[..., 0] * n + cell[..., 1]


def sample_regions(regions0: Tensor, regions1: Tensor, count: int, n_regions: int) -> Tensor:
    """(B, count) region ids per image, drawn with replacement among the regions both views
    show (the first view's if they share none), with torch's global generator."""
    present0 = F.one_hot(regions0.flatten(1), n_regions).sum(dim=1) > 0
    present1 = F.one_hot(regions1.flatten(1), n_regions).sum(dim=1) > 0
    both = present0 & present1
    weights = torch.where(both.any(dim=1, keepdim=True), both, present0).float()
    return torch.multinomial(weights, count, replacement=True)


def region_pool(fmap: Tensor, regions: Tensor, ids: Tensor) -> Tensor:
    """(B, M, C) mean of the (B, C, h, w) map over the cells of each of the (B, M) region ids
    (zero for a region without cells); ``regions`` is (B, h, w)."""
    masks = (regions.flatten(1)[:, None, :] == ids[:, :, None]).to(fmap.dtype)  # (B, M, h·w)
    sums = masks @ fmap.flatten(2).transpose(1, 2)
    return sums / masks.sum(dim=2, keepdim=True).clamp_min(1)


def _split(views: Sequence[Tensor], method: str) -> tuple[Sequence[Tensor], Sequence[Tensor]]:
    if len(views) != 4:
        raise DataError(
            f"{method} trains on 2 views per image but the batch holds {len(views)} tensors, "
            "not 2 views followed by their 2 grids; use the method's transform "
            f"(selfsup.methods.get_method({method!r}).build_transform)"
        )
    return views[:2], views[2:]


class _Regions(MethodModel):
    """Region features of a view: the map pooled to the grid's size, then under the masks."""

    def _region_features(self, backbone: nn.Module, x: Tensor, grid: Tensor, ids: Tensor) -> Tensor:
        fmap = F.adaptive_avg_pool2d(feature_map(backbone, x), (grid.shape[1], grid.shape[2]))
        return region_pool(fmap, spatial_regions(grid), ids)

    @staticmethod
    def _per_region(head: nn.Module, regions: Tensor) -> Tensor:
        """``head`` applied to every (B, M, C) region vector -> (B, M, D)."""
        b, m, c = regions.shape
        out: Tensor = head(regions.reshape(b * m, c))
        return out.reshape(b, m, -1)

    @staticmethod
    def _ids(grids: Sequence[Tensor]) -> Tensor:
        return sample_regions(
            spatial_regions(grids[0]),
            spatial_regions(grids[1]),
            NUM_SAMPLED_REGIONS,
            REGIONS_PER_SIDE**2,
        )


class DetConSModel(_Regions):
    """Backbone, SimCLR's projection head on every region vector, DetConSLoss.

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs), with a feature map.
        num_ftrs: Embedding size (the map's channels size the head).
        out_dim: Projection size.
        temperature: τ (0.1).
    """

    def __init__(
        self, backbone: nn.Module, num_ftrs: int, out_dim: int, temperature: float = 0.1
    ) -> None:
        super().__init__()
        self.backbone = backbone
        channels = feature_map_channels(backbone)
        self.projection_head = SimCLRProjectionHead(channels, channels, out_dim)
        self.criterion = DetConSLoss(temperature=temperature)

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        images, grids = _split(views, "detcons")
        ids = self._ids(grids)
        z = [
            self._per_region(self.projection_head, self._region_features(self.backbone, x, g, ids))
            for x, g in zip(images, grids, strict=True)
        ]
        loss: Tensor = self.criterion(z[0], z[1], ids, ids)
        return loss


class DetConBModel(_Regions, MomentumEncoderModel):
    """BYOL on region vectors: online projector and predictor, momentum target, DetConBLoss.

    Hidden widths are 16·out_dim (BYOL's ratio); the target's momentum rises from 0.99 to 1.

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs), with a feature map.
        num_ftrs: Embedding size (the map's channels size the heads).
        out_dim: Projection and prediction size.
        temperature: τ (0.1).
    """

    def __init__(
        self, backbone: nn.Module, num_ftrs: int, out_dim: int, temperature: float = 0.1
    ) -> None:
        hidden = 16 * out_dim
        channels = feature_map_channels(backbone)
        super().__init__(backbone, BYOLProjectionHead(channels, hidden, out_dim))
        self.prediction_head = BYOLPredictionHead(out_dim, hidden, out_dim)
        self.criterion = DetConBLoss(temperature=temperature)

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        images, grids = _split(views, "detconb")
        self.update_momentum_encoder(progress.cosine(0.99, 1.0))
        ids = self._ids(grids)
        preds, targets = [], []
        for x, g in zip(images, grids, strict=True):
            z = self._per_region(
                self.projection_head, self._region_features(self.backbone, x, g, ids)
            )
            preds.append(self._per_region(self.prediction_head, z))
            with torch.no_grad():
                regions = self._region_features(self.backbone_momentum, x, g, ids)
                targets.append(self._per_region(self.projection_head_momentum, regions))
        loss: Tensor = self.criterion(preds[0], preds[1], targets[0], targets[1], ids, ids)
        return loss


def _grid_size(input_size: int) -> int:
    # 7 cells per side as a ResNet's map of 224 pixels; about one per 8 pixels below that.
    return max(1, min(7, input_size // 8))


def _transform_s(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import DetConSTransform

    return DetConSTransform(input_size=input_size, grid_size=_grid_size(input_size))


def _transform_b(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import DetConBTransform

    return DetConBTransform(input_size=input_size, grid_size=_grid_size(input_size))


METHOD_S = Method(
    name="detcons",
    title="DetCon-S (Hénaff et al. 2021)",
    build_model=DetConSModel,
    build_transform=_transform_s,
    # The paper: LARS at batch 4096; SGD with momentum at lightly's lr suits small runs.
    optimizer=OptimizerDefaults(
        "sgd",
        lr=0.06,
        weight_decay=1e-6,
        source="lr of lightly's examples; weight decay 1e-6 (paper: LARS at batch 4096)",
    ),
)

METHOD_B = Method(
    name="detconb",
    title="DetCon-B (Hénaff et al. 2021)",
    build_model=DetConBModel,
    build_transform=_transform_b,
    optimizer=OptimizerDefaults(
        "sgd",
        lr=0.06,
        weight_decay=1e-6,
        source="lr of lightly's examples; weight decay 1e-6 (paper: LARS at batch 4096)",
    ),
)
