"""VICRegL (Bardes et al. 2022): VICReg on global embeddings and on matched local features.

"The VICReg criterion is applied to pairs of global feature vectors. Simultaneously, the VICReg
criterion is applied to pairs of local feature vectors occurring before the last pooling layer"
(abstract). The global branch is VICReg's (backbone embedding, expander); the local branch takes
the backbone's feature map before pooling (:func:`selfsup.models.feature_map`), average-pools it
to the view's grid size and projects every cell with its own expander, and
:class:`selfsup.loss.VICRegLLoss` matches cells by location and by feature distance. The
registered method trains on two global views and no local ones, as the authors do for ResNets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import DataError
from selfsup.loss import VICRegLLoss
from selfsup.methods._base import Method, MethodModel, OptimizerDefaults, TrainProgress, check_views
from selfsup.models.feature_map import embedding_and_feature_map, feature_map_channels
from selfsup.models.modules import VICRegProjectionHead

#: Global views of the registered method (the transform adds no local views).
N_GLOBAL_VIEWS = 2


class VICRegLModel(MethodModel):
    """Backbone, a global and a local 2-layer expander of width out_dim, and VICRegLLoss.

    Args:
        backbone: Images (B, C, H, W) -> embeddings (B, num_ftrs), with a feature map before
            its pooling (see :mod:`selfsup.models.feature_map`).
        num_ftrs: Embedding size.
        out_dim: Width of both expanders (the paper: 8192 global, 512 local for ResNet-50).
        lambda_param: λ, weight of the invariance terms (25).
        mu_param: μ, weight of the variance terms (25).
        nu_param: ν, weight of the covariance terms (1).
        alpha: Weight of the global loss against the local one (0.75).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_ftrs: int,
        out_dim: int,
        lambda_param: float = 25.0,
        mu_param: float = 25.0,
        nu_param: float = 1.0,
        alpha: float = 0.75,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = VICRegProjectionHead(num_ftrs, out_dim, out_dim, num_layers=2)
        channels = feature_map_channels(backbone)
        self.local_projection_head = VICRegProjectionHead(channels, out_dim, out_dim, 2)
        self.criterion = VICRegLLoss(
            lambda_param=lambda_param, mu_param=mu_param, nu_param=nu_param, alpha=alpha
        )

    def _features(self, x: Tensor, grid: Tensor) -> tuple[Tensor, Tensor]:
        """Global (B, out_dim) and local (B, h, w, out_dim) features of a view whose grid is
        (B, h, w, 2)."""
        embedding, fmap = embedding_and_feature_map(self.backbone, x)
        z = self.projection_head(embedding)
        cells = F.adaptive_avg_pool2d(fmap, (grid.shape[1], grid.shape[2]))  # (B, C, h, w)
        b, c, h, w = cells.shape
        local = self.local_projection_head(cells.permute(0, 2, 3, 1).reshape(b * h * w, c))
        return z, local.reshape(b, h, w, -1)

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        if len(views) % 2:
            raise DataError(
                f"vicregl trains on {N_GLOBAL_VIEWS} or more views per image but the batch "
                f"holds {len(views)} tensors, not views followed by one grid per view; use the "
                "method's transform (selfsup.methods.get_method('vicregl').build_transform)"
            )
        images, grids = views[: len(views) // 2], views[len(views) // 2 :]
        check_views(images, None, "vicregl")
        features = [self._features(x, g) for x, g in zip(images, grids, strict=True)]
        n = N_GLOBAL_VIEWS
        loss: Tensor = self.criterion(
            features[:n], grids[:n], features[n:] or None, list(grids[n:]) or None
        )
        return loss


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import VICRegLTransform

    # Grids of 7 cells per side as the authors' ResNet maps of 224-pixel crops; smaller
    # inputs keep about one cell per 8 pixels.
    return VICRegLTransform(
        global_crop_size=input_size,
        n_global_views=N_GLOBAL_VIEWS,
        n_local_views=0,
        global_grid_size=max(1, min(7, input_size // 8)),
    )


METHOD = Method(
    name="vicregl",
    title="VICRegL (Bardes et al. 2022)",
    build_model=VICRegLModel,
    build_transform=_transform,
    # As VICReg: the paper's LARS at lr 0.2 * batch/256; plain SGD at 0.01 for small runs.
    optimizer=OptimizerDefaults(
        "sgd",
        lr=0.01,
        weight_decay=1e-6,
        source="as VICReg (measured there); paper: LARS, lr 0.2 per 256, weight decay 1e-6",
    ),
)
