"""DINOv2 (Oquab et al. 2023): iBOT with untied heads and the KoLeo regulariser, on a ViT.

"We combine the DINO and iBOT losses (...) and untie the head weights between the DINO and
iBOT losses" and add "the KoLeo regularizer (...) a weight of 0.1" on the class tokens of the
student's global crops (DINOv2, https://arxiv.org/abs/2304.07193, sec. 4). The model is
:class:`selfsup.methods.ibot.IBOTModel` with ``separate_heads=True, koleo_weight=0.1``; views
come from :class:`selfsup.transforms.DINOv2Transform` (two global, eight local crops).

Differences from the official recipe, kept small on purpose: the teacher is centred with
DINO's moving-average center instead of Sinkhorn-Knopp, and there is no layer-wise learning
rate decay, stochastic depth or high-resolution final phase (those are trainer settings).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from torch import Tensor

from selfsup.methods._base import Method, local_crop_size
from selfsup.methods.ibot import OPTIMIZER, IBOTModel

__all__ = ["METHOD"]


def _transform(input_size: int) -> Callable[[Any], list[Tensor]]:
    from selfsup.transforms import DINOv2Transform

    return DINOv2Transform(global_crop_size=input_size, local_crop_size=local_crop_size(input_size))


METHOD = Method(
    name="dinov2",
    title="DINOv2 (Oquab et al. 2023)",
    build_model=functools.partial(
        IBOTModel, separate_heads=True, koleo_weight=0.1, method="dinov2"
    ),
    build_transform=_transform,
    optimizer=OPTIMIZER,
    needs_vit=True,
)
