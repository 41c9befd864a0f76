"""Models for self-supervised learning: backbones, heads, SimCLR, MoCo and helpers.

``selfsup.models`` mirrors ``lightly.models``: :func:`ResNetGenerator`, the legacy
:class:`SimCLR` and :class:`MoCo` models, the heads in :mod:`selfsup.models.modules` and
the helpers in :mod:`selfsup.models.utils`. :func:`get_backbone` gives every backbone
(lightly ResNets, torchvision, timm, custom) one interface: images -> (B, D) embedding.
"""

from selfsup.models import modules, utils
from selfsup.models.backbones import (
    Backbone,
    as_backbone,
    get_backbone,
    list_backbones,
    register_backbone,
)
from selfsup.models.moco import MoCo
from selfsup.models.modules import (
    BarlowTwinsProjectionHead,
    BYOLPredictionHead,
    BYOLProjectionHead,
    DINOProjectionHead,
    MoCoProjectionHead,
    NNCLRPredictionHead,
    NNCLRProjectionHead,
    ProjectionHead,
    SimCLRProjectionHead,
    SimSiamPredictionHead,
    SimSiamProjectionHead,
    SwaVProjectionHead,
)
from selfsup.models.resnet import ResNet, ResNetGenerator, SplitBatchNorm
from selfsup.models.simclr import SimCLR
from selfsup.models.utils import (
    activate_requires_grad,
    batch_shuffle,
    batch_unshuffle,
    cosine_schedule,
    deactivate_requires_grad,
    get_weight_decay_parameters,
    normalize_weight,
    update_momentum,
)

__all__ = [
    "BYOLPredictionHead",
    "BYOLProjectionHead",
    "Backbone",
    "BarlowTwinsProjectionHead",
    "DINOProjectionHead",
    "MoCo",
    "MoCoProjectionHead",
    "NNCLRPredictionHead",
    "NNCLRProjectionHead",
    "ProjectionHead",
    "ResNet",
    "ResNetGenerator",
    "SimCLR",
    "SimCLRProjectionHead",
    "SimSiamPredictionHead",
    "SimSiamProjectionHead",
    "SplitBatchNorm",
    "SwaVProjectionHead",
    "activate_requires_grad",
    "as_backbone",
    "batch_shuffle",
    "batch_unshuffle",
    "cosine_schedule",
    "deactivate_requires_grad",
    "get_backbone",
    "get_weight_decay_parameters",
    "list_backbones",
    "modules",
    "normalize_weight",
    "register_backbone",
    "update_momentum",
    "utils",
]
