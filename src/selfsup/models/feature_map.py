"""The spatial feature map of a backbone, before its global pooling, for dense SSL methods.

Every backbone is used through one interface, images -> pooled embedding (B, D) (see
:mod:`selfsup.models.backbones`). Dense methods (VICRegL, DenseCL, DetCon) need the map
(B, D, h, w) the pooling averages. :func:`feature_map` gets it from the ResNet-style
backbones selfsup builds, without a second copy of their weights:

- a :class:`~selfsup.models.backbones.Backbone`: the map of its ``features`` module;
- an ``nn.Sequential`` (e.g. ``nn.Sequential(*list(resnet.children())[:-1])``, the layout of
  the registered ``resnet-*`` backbones): its layers up to the first adaptive pooling layer,
  or up to a Backbone or ResNet inside it, whose own map it is (``selfsup.core.build_model``'s
  ``nn.Sequential(backbone, nn.Linear(...))``);
- a selfsup :class:`~selfsup.models.resnet.ResNet`, or a torchvision ResNet: the stem and the
  four stages;
- any other module whose forward already returns a (B, D, h, w) map.

Anything else (a ViT returning tokens, a module pooling inside its forward) is refused with a
ConfigError saying what is accepted.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from selfsup.errors import ConfigError
from selfsup.models.backbones import Backbone, pool_features
from selfsup.models.resnet import ResNet

__all__ = ["embedding_and_feature_map", "feature_map", "feature_map_channels"]

_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def feature_map(backbone: nn.Module, x: Tensor) -> Tensor:
    """(B, 3, H, W) images -> the backbone's (B, D, h, w) feature map before pooling.

    The global average of the map over (h, w) is the backbone's pooled embedding for the
    layouts above (up to a final linear layer, if the backbone has one after its pooling).
    """
    if isinstance(backbone, Backbone):
        return feature_map(backbone.features, x)
    if isinstance(backbone, nn.Sequential):
        out = x
        for layer in backbone:
            if isinstance(layer, _POOLS):
                return _checked(out, backbone)
            if isinstance(layer, Backbone | ResNet):
                return feature_map(layer, out)
            out = layer(out)
        return _checked(out, backbone)
    if isinstance(backbone, ResNet):
        out = backbone.bn1(backbone.conv1(x))
        return _checked(_stages(backbone, out), backbone)
    if all(hasattr(backbone, n) for n in ("conv1", "bn1", "relu", "maxpool", "layer4")):
        # torchvision's ResNet layout: stem with max-pool, then four stages.
        out = x
        for name in ("conv1", "bn1", "relu", "maxpool"):
            layer = getattr(backbone, name)
            out = layer(out)
        return _checked(_stages(backbone, out), backbone)
    return _checked(backbone(x), backbone)


def _stages(backbone: nn.Module, out: Tensor) -> Tensor:
    for name in ("layer1", "layer2", "layer3", "layer4"):
        out = getattr(backbone, name)(out)
    return out


def _checked(out: object, backbone: nn.Module) -> Tensor:
    if not isinstance(out, Tensor) or out.ndim != 4:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ConfigError(
            f"feature_map: {type(backbone).__name__} gives {shape}, not a (B, D, h, w) feature "
            "map; dense methods take a Backbone, an nn.Sequential with an adaptive pooling "
            "layer, a selfsup or torchvision ResNet, or a module returning a feature map"
        )
    return out


def embedding_and_feature_map(backbone: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(backbone(x) flattened to (B, D), feature_map(backbone, x))`` in one forward pass:
    for the layouts above the layers after the pooling run on the map; for a torchvision
    ResNet or a module that returns its map itself the embedding is the map's global
    average."""
    if isinstance(backbone, Backbone):
        embedding, fmap = embedding_and_feature_map(backbone.features, x)
        return pool_features(embedding), fmap
    if isinstance(backbone, nn.Sequential):
        layers = list(backbone)
        cut = next((i for i, layer in enumerate(layers) if isinstance(layer, _POOLS)), None)
        inner = next(
            (i for i, layer in enumerate(layers) if isinstance(layer, Backbone | ResNet)), None
        )
        if inner is not None and (cut is None or inner < cut):
            # A backbone with its own map, then layers on its embedding (core.build_model).
            out = x
            for layer in layers[:inner]:
                out = layer(out)
            embedding, fmap = embedding_and_feature_map(layers[inner], out)
            for layer in layers[inner + 1 :]:
                embedding = layer(embedding)
            return embedding.flatten(start_dim=1), fmap
        if cut is not None:
            fmap = feature_map(backbone, x)
            out = fmap
            for layer in layers[cut:]:
                out = layer(out)
            return out.flatten(start_dim=1), fmap
    if isinstance(backbone, ResNet):
        fmap = feature_map(backbone, x)
        out = backbone.linear(backbone.avgpool(fmap).flatten(start_dim=1))
        return out, fmap
    fmap = feature_map(backbone, x)
    return fmap.mean(dim=(2, 3)), fmap


def feature_map_channels(backbone: nn.Module, input_size: int = 64) -> int:
    """D of the backbone's feature map, from one forward pass of two blank images of
    ``input_size`` pixels in eval mode without gradients (the train/eval mode is restored), so
    heads on the map can be sized at construction."""
    training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            param = next(backbone.parameters(), None)
            device = param.device if param is not None else None
            blank = torch.zeros(2, 3, input_size, input_size, device=device)
            return int(feature_map(backbone, blank).shape[1])
    finally:
        backbone.train(training)
