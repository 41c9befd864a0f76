"""One interface for every backbone: images (B, 3, H, W) -> pooled embedding (B, D).

Training and embedding code only ever sees a :class:`Backbone`, whatever built it: the
lightly ResNets (``resnet-9`` ... ``resnet-152``), any torchvision classification model
(``torchvision/<name>``), any timm model (``timm/<name>``) or a custom module wrapped by
:func:`as_backbone`. A backbone knows its embedding size, ``num_features``, so heads can be
sized without a trial forward pass.

Names are resolved by :func:`get_backbone`. :func:`list_backbones` lists the registered
names, which the contract tests run over; a new backbone is added with
:func:`register_backbone` and is then tested by being registered. Nothing here downloads
weights: torchvision models are built with ``weights=None`` and timm models with
``pretrained=False``; load a state dict yourself if you have one. timm is imported only when
a ``timm/`` name is requested.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, overload

import torch
from torch import Tensor, nn

from selfsup.errors import ConfigError, closest
from selfsup.models.resnet import RESNET_NAMES, ResNetGenerator

__all__ = [
    "Backbone",
    "BackboneFactory",
    "as_backbone",
    "get_backbone",
    "list_backbones",
    "register_backbone",
]

TORCHVISION_PREFIX = "torchvision/"
TIMM_PREFIX = "timm/"


class Backbone(nn.Module):
    """A feature module plus its embedding size; forward returns pooled features (B, D).

    The wrapped ``features`` module may return (B, D), (B, D, 1, 1) or a feature map
    (B, D, H, W); feature maps are global-average-pooled, so the output is always (B, D)
    with D = ``num_features``.

    Args:
        features: Module mapping images (B, 3, H, W) to features as above.
        num_features: D, the size of the pooled embedding.
        name: Registry name it was built from, or None for a custom module.
    """

    def __init__(self, features: nn.Module, num_features: int, name: str | None = None) -> None:
        super().__init__()
        if num_features < 1:
            raise ConfigError(f"num_features of a backbone must be >= 1, got {num_features}")
        self.features = features
        self.num_features = num_features
        self.name = name

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, num_features)."""
        out = pool_features(self.features(x))
        if out.shape[1] != self.num_features:
            raise ValueError(
                f"backbone {self.name or type(self.features).__name__} returned "
                f"{out.shape[1]} features per image but declares num_features="
                f"{self.num_features}"
            )
        return out

    def extra_repr(self) -> str:
        return f"name={self.name!r}, num_features={self.num_features}"


def pool_features(out: Any) -> Tensor:
    """Reduce a feature module's output to (B, D): flatten (B, D, 1, 1), mean-pool maps.

    Raises a ValueError for outputs that are not a tensor of 2 or 4 dimensions (e.g. token
    sequences (B, N, D), whose pooling is model specific: wrap such a module so that it
    returns (B, D)).
    """
    if not isinstance(out, Tensor):
        raise ValueError(
            f"a backbone must return a tensor, got {type(out).__name__}; wrap the module so "
            "that it returns a (B, D) or (B, D, H, W) tensor"
        )
    if out.dim() == 2:
        return out
    if out.dim() == 4:
        return out.mean(dim=(2, 3))
    raise ValueError(
        f"a backbone must return (B, D) or (B, D, H, W) features, got shape "
        f"{tuple(out.shape)}; wrap the module so that it pools its output"
    )


BackboneFactory = Callable[..., Backbone]
"""``factory(width: float = 1.0, **kwargs) -> Backbone``."""

_REGISTRY: dict[str, BackboneFactory] = {}


@overload
def register_backbone(name: str) -> Callable[[BackboneFactory], BackboneFactory]: ...


@overload
def register_backbone(name: str, factory: BackboneFactory) -> BackboneFactory: ...


def register_backbone(
    name: str, factory: BackboneFactory | None = None
) -> Callable[[BackboneFactory], BackboneFactory] | BackboneFactory:
    """Register ``factory(width=1.0, **kwargs) -> Backbone`` under ``name``.

    Usable directly, ``register_backbone("my-net", make_my_net)``, or as a decorator,
    ``@register_backbone("my-net")``. Registered names appear in :func:`list_backbones`
    and are run by the backbone contract tests, which build them with their defaults
    (so a registered factory should be quick to build and accept 32x32 images).
    """

    def add(fn: BackboneFactory) -> BackboneFactory:
        if name in _REGISTRY:
            raise ConfigError(f"backbone name {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    if factory is None:
        return add
    return add(factory)


def list_backbones() -> list[str]:
    """Registered backbone names, in registration order (lightly ResNets first).

    Besides these, :func:`get_backbone` accepts ``torchvision/<name>`` for every
    torchvision classification model and ``timm/<name>`` for every timm model.
    """
    return list(_REGISTRY)


def _suggest(name: str, candidates: list[str]) -> str:
    match = closest(name, candidates, cutoff=0.5)
    return f" Did you mean {match!r}?" if match is not None else ""


def get_backbone(name: str, width: float = 1.0, **kwargs: Any) -> Backbone:
    """Build a backbone by name, with random weights.

    Args:
        name: A registered name (see :func:`list_backbones`): ``resnet-9`` ...
            ``resnet-152`` (lightly ResNets without their linear layer),
            ``torchvision/<model>`` (e.g. ``torchvision/resnet18``; classifier removed) or
            ``timm/<model>`` (e.g. ``timm/resnet10t``; built with ``num_classes=0``).
        width: Width multiplier; only the lightly ResNets have one, other names accept 1.0.
        **kwargs: Passed to the builder (``num_splits`` for the lightly ResNets, model
            arguments for torchvision and timm). ``weights`` and ``pretrained`` are refused
            because nothing is downloaded.

    Returns:
        A :class:`Backbone` mapping (B, 3, H, W) to (B, num_features).

    Raises:
        ConfigError: for unknown names (listing the registered ones and a close match),
            a width other than 1.0 where unsupported, or a request for pretrained weights.
    """
    for key in ("weights", "pretrained"):
        if kwargs.get(key) not in (None, False):
            raise ConfigError(
                f"get_backbone({name!r}) got {key}={kwargs[key]!r}: selfsup never downloads "
                "weights; build the backbone, then load_state_dict() a local checkpoint"
            )
        kwargs.pop(key, None)
    factory = _REGISTRY.get(name)
    if factory is not None:
        return factory(width=width, **kwargs)
    if name.startswith(TORCHVISION_PREFIX):
        return _torchvision_backbone(name[len(TORCHVISION_PREFIX) :], width=width, **kwargs)
    if name.startswith(TIMM_PREFIX):
        return _timm_backbone(name[len(TIMM_PREFIX) :], width=width, **kwargs)
    registered = list_backbones()
    raise ConfigError(
        f"unknown backbone {name!r}.{_suggest(name, registered)} Registered backbones: "
        f"{', '.join(registered)}; also accepted: 'torchvision/<model>' for torchvision "
        "classification models and 'timm/<model>' for timm models"
    )


def as_backbone(
    module: nn.Module, num_features: int | None = None, input_size: int = 64
) -> Backbone:
    """Wrap any module mapping images to features as a :class:`Backbone`.

    Args:
        module: Maps (B, 3, H, W) to (B, D), (B, D, 1, 1) or (B, D, H', W').
        num_features: D; if None it is found with one forward pass of two blank images of
            ``input_size`` pixels, in eval mode and without gradients (the module's
            train/eval mode is restored afterwards).
        input_size: Side of the dummy images used to find ``num_features``.

    Returns:
        ``module`` itself if it already is a Backbone (and agrees with ``num_features``),
        otherwise a Backbone wrapping it.
    """
    if isinstance(module, Backbone):
        if num_features is not None and num_features != module.num_features:
            raise ConfigError(
                f"as_backbone: num_features={num_features} disagrees with the backbone's "
                f"num_features={module.num_features}"
            )
        return module
    if num_features is None:
        num_features = _infer_num_features(module, input_size)
    return Backbone(module, num_features)


def _infer_num_features(module: nn.Module, input_size: int) -> int:
    reference: Tensor | None = next(iter(module.parameters()), None)
    if reference is None:
        reference = next(iter(module.buffers()), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else None
    x = torch.zeros(2, 3, input_size, input_size, device=device, dtype=dtype or torch.float32)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = pool_features(module(x))
    finally:
        module.train(was_training)
    return int(out.shape[1])


# --- lightly ResNets --------------------------------------------------------------------


#: Suffix of the lightly ResNets with a stride-2 stem, registered for :data:`STRIDE2_RESNETS`.
STRIDE2_SUFFIX = "-s2"
#: The lightly ResNets also registered with a stride-2 stem (``resnet-9-s2``,
#: ``resnet-18-s2``): small networks for small images (28-40 px) on a CPU.
STRIDE2_RESNETS = ("resnet-9", "resnet-18")


def _make_resnet_factory(resnet_name: str, stem_stride: int = 1) -> BackboneFactory:
    name = resnet_name if stem_stride == 1 else f"{resnet_name}-s{stem_stride}"

    def factory(width: float = 1.0, num_splits: int = 0, **kwargs: Any) -> Backbone:
        if kwargs:
            raise ConfigError(
                f"backbone {name!r} got unknown arguments {sorted(kwargs)}; "
                "it accepts width and num_splits"
            )
        resnet = ResNetGenerator(resnet_name, width=width, num_splits=num_splits)
        if stem_stride != 1:
            # Same shape of weights (3 -> base channels, 3x3), so the state-dict keys and
            # shapes stay those of the stride-1 network; only the activations shrink.
            resnet.conv1 = nn.Conv2d(
                3, resnet.base, kernel_size=3, stride=stem_stride, padding=1, bias=False
            )
        # Same child layout (and state-dict keys) as lightly's backbones.
        features = nn.Sequential(*list(resnet.children())[:-1])
        return Backbone(features, resnet.num_features, name=name)

    if stem_stride == 1:
        factory.__doc__ = f"{name}: lightly ResNet (3x3 stem, no max-pool) without its linear."
    else:
        factory.__doc__ = (
            f"{name}: {resnet_name} with a stride-{stem_stride} stem: the residual stages run "
            f"on maps {stem_stride}x smaller per side ({stem_stride**2}x fewer operations; "
            "14x14 for 28 px images), for small images on a CPU."
        )
    return factory


for _resnet_name in RESNET_NAMES:
    register_backbone(_resnet_name, _make_resnet_factory(_resnet_name))
for _resnet_name in STRIDE2_RESNETS:
    register_backbone(
        _resnet_name + STRIDE2_SUFFIX, _make_resnet_factory(_resnet_name, stem_stride=2)
    )


# --- torchvision ------------------------------------------------------------------------


def _require_unit_width(name: str, width: float) -> None:
    if width != 1.0:
        raise ConfigError(
            f"backbone {name!r} has no width multiplier (got width={width}); width applies "
            f"to the lightly ResNets {', '.join(RESNET_NAMES)}"
        )


def _replace_last_linear(model: nn.Module, name: str) -> int:
    """Replace the model's last nn.Linear (its classifier) by Identity; return in_features."""
    last: tuple[str, nn.Linear] | None = None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = (module_name, module)
    if last is None:
        raise ConfigError(
            f"backbone {name!r} has no linear classifier to remove; build the model yourself "
            "and wrap it with selfsup.models.as_backbone(model, num_features)"
        )
    path, linear = last
    parent_path, _, attr = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, attr, nn.Identity())
    return int(linear.in_features)


def _torchvision_backbone(model_name: str, width: float = 1.0, **kwargs: Any) -> Backbone:
    name = TORCHVISION_PREFIX + model_name
    _require_unit_width(name, width)
    import torchvision

    available = sorted(torchvision.models.list_models(module=torchvision.models))
    if model_name not in available:
        raise ConfigError(
            f"unknown torchvision classification model {model_name!r} in backbone {name!r}."
            f"{_suggest(model_name, available)} Available: {', '.join(available)}"
        )
    model = torchvision.models.get_model(model_name, weights=None, **kwargs)
    if hasattr(model, "aux_logits"):
        # GoogLeNet / Inception return a named tuple with auxiliary outputs in training.
        model.aux_logits = False
        for aux in ("aux1", "aux2", "AuxLogits"):
            if hasattr(model, aux):
                setattr(model, aux, None)
    num_features = _replace_last_linear(model, name)
    return Backbone(model, num_features, name=name)


for _tv_name in (
    "resnet18",
    "resnet34",
    "resnet50",
    "mobilenet_v3_small",
    "efficientnet_b0",
):

    def _tv_factory(width: float = 1.0, _n: str = _tv_name, **kwargs: Any) -> Backbone:
        return _torchvision_backbone(_n, width=width, **kwargs)

    register_backbone(TORCHVISION_PREFIX + _tv_name, _tv_factory)


# --- timm -------------------------------------------------------------------------------


def _timm_backbone(model_name: str, width: float = 1.0, **kwargs: Any) -> Backbone:
    name = TIMM_PREFIX + model_name
    _require_unit_width(name, width)
    try:
        timm = importlib.import_module("timm")
    except ImportError as err:
        raise ConfigError(
            f"backbone {name!r} needs timm, which is not installed; "
            "install it with `pip install selfsup[timm]`"
        ) from err
    if not timm.is_model(model_name):
        available = list(timm.list_models())
        raise ConfigError(
            f"unknown timm model {model_name!r} in backbone {name!r}."
            f"{_suggest(model_name, available)} See timm.list_models() for the names."
        )
    model = timm.create_model(model_name, pretrained=False, num_classes=0, **kwargs)
    # With num_classes=0 timm returns pre-logits features; their size is head_hidden_size
    # where the head has a hidden layer (e.g. MobileNetV3), num_features otherwise.
    num_features = getattr(model, "head_hidden_size", None) or model.num_features
    return Backbone(model, int(num_features), name=name)


# --- Vision Transformers ----------------------------------------------------------------

#: name -> (image_size, patch_size, num_layers, num_heads, hidden_dim, mlp_dim) of the
#: registered ViTs (torchvision's ``VisionTransformer`` with these sizes, random weights).
#: ``vit-tiny-p4`` is a small ViT for 28-64 px images (Fashion-MNIST, CIFAR) that trains on a
#: CPU: ViT-Ti's width (192, 3 heads, MLP 768) at patch 4 (an 8x8 grid at 32 px, 7x7 at
#: 28 px, 16x16 at 64 px; position embeddings are interpolated) and 4 of its 12 layers, 1.8M
#: parameters. ``vit-s16`` and ``vit-b16`` are ViT-S/16 and ViT-B/16 (224 px) for GPUs.
VIT_SIZES: dict[str, tuple[int, int, int, int, int, int]] = {
    "vit-tiny-p4": (32, 4, 4, 3, 192, 768),
    "vit-s16": (224, 16, 12, 6, 384, 1536),
    "vit-b16": (224, 16, 12, 12, 768, 3072),
}


def _make_vit_factory(vit_name: str) -> BackboneFactory:
    default = VIT_SIZES[vit_name]

    def factory(
        width: float = 1.0,
        pool: str = "cls",
        image_size: int = default[0],
        num_layers: int = default[2],
        num_heads: int = default[3],
        hidden_dim: int = default[4],
        mlp_dim: int = default[5],
        **kwargs: Any,
    ) -> Backbone:
        _require_unit_width(vit_name, width)
        if kwargs:
            raise ConfigError(
                f"backbone {vit_name!r} got unknown arguments {sorted(kwargs)}; it accepts "
                "pool (cls or mean), image_size, num_layers, num_heads, hidden_dim, mlp_dim"
            )
        from torchvision.models import VisionTransformer

        from selfsup.models.modules.masked_vision_transformer import (
            VIT_POOLS,
            MaskedVisionTransformerTorchvision,
        )

        if pool not in VIT_POOLS:
            raise ConfigError(
                f"backbone {vit_name!r}: pool must be one of {', '.join(VIT_POOLS)} (the class "
                f"token or the mean of the patch tokens), got {pool!r}"
            )
        vit = VisionTransformer(
            image_size=image_size,
            patch_size=default[1],
            num_layers=num_layers,
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            mlp_dim=mlp_dim,
        )
        vit.heads = nn.Identity()
        # The wrapper masks tokens for MAE/SimMIM/MSN and pools for embeddings; it starts
        # from MAE's initialisation (sine-cosine positions, Xavier-uniform linear layers).
        features = MaskedVisionTransformerTorchvision(vit, pool=pool)  # type: ignore[arg-type]
        return Backbone(features, hidden_dim, name=vit_name)

    size = default
    factory.__doc__ = (
        f"{vit_name}: torchvision VisionTransformer, {size[0]} px, patch {size[1]}, depth "
        f"{size[2]}, {size[3]} heads, width {size[4]}; embedding: class token (pool='cls') or "
        "mean of the patch tokens (pool='mean')."
    )
    return factory


for _vit_name in VIT_SIZES:
    register_backbone(_vit_name, _make_vit_factory(_vit_name))


def vit_backbone_names() -> list[str]:
    """The registered ViT names, for error messages and docs (``torchvision/vit_*`` and
    ``timm/vit_*`` names are ViTs too)."""
    return list(VIT_SIZES)


def vit_pool_kwargs(name: str, vit_pool: str) -> dict[str, str]:
    """``get_backbone`` keyword arguments for the configured ViT pooling (``model.vit_pool``).

    The registered ViTs take ``pool``; the default ``cls`` asks nothing of other backbones,
    while ``mean`` for a backbone that is not a registered ViT is a ConfigError naming it.
    """
    if name in VIT_SIZES:
        return {"pool": vit_pool}
    if vit_pool != "cls":
        raise ConfigError(
            f"model.vit_pool={vit_pool!r} applies to the ViT backbones "
            f"{', '.join(VIT_SIZES)}, but model.name={name!r}; leave model.vit_pool=cls (a "
            "timm ViT pools as its global_pool)"
        )
    return {}
