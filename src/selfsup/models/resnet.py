"""ResNets for small images (the lightly variant) and SplitBatchNorm.

The lightly ResNet differs from torchvision's in its stem: one 3x3 convolution with stride 1
and no max-pool, instead of a 7x7 stride-2 convolution followed by a stride-2 max-pool. It
keeps the full resolution of small inputs (32 or 64 pixels, e.g. CIFAR-10) where the
torchvision stem would shrink a 32x32 image to 8x8 before the first residual block.

The children of :class:`ResNet` are ordered so that ``nn.Sequential(*list(resnet.children())
[:-1])`` is a complete feature extractor: the stem's ReLU is fused into its norm layer
(:class:`BatchNorm2dReLU`) and global average pooling is a child module, so nothing is lost
when the classifier is cut off. Fusing the ReLU (rather than adding an ``nn.ReLU`` child)
keeps the child indices and state-dict keys of lightly's ResNet, so lightly checkpoints of
``nn.Sequential(*list(resnet.children())[:-1], nn.AdaptiveAvgPool2d(1))`` load unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError

__all__ = [
    "RESNET_NAMES",
    "BasicBlock",
    "BatchNorm2dReLU",
    "Bottleneck",
    "ResNet",
    "ResNetGenerator",
    "SplitBatchNorm",
    "SplitBatchNormReLU",
    "resnet_base_channels",
]


class SplitBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d that normalises ``num_splits`` sub-batches separately, as on that many GPUs.

    MoCo's shuffling BN relies on each GPU computing batch statistics over its own slice of
    the batch; on one device a plain BatchNorm sees the whole batch and the shuffle has no
    effect. This layer recreates the multi-GPU behaviour in one process: sample ``i`` belongs
    to split ``i % num_splits``, and during training every split is normalised with its own
    mean and variance and keeps its own running statistics. When the layer is switched to
    evaluation mode the running statistics of all splits are averaged, and evaluation uses
    the averaged statistics (the same result as a plain BatchNorm2d with those statistics).

    Adapted from the idea in https://github.com/davidcpage/cifar10-fast (torch_backend.py),
    as in lightly.

    Args:
        num_features: Number of channels C of the input (B, C, H, W).
        num_splits: Number of sub-batches; the batch size must be divisible by it in training.
        **kwargs: Passed to :class:`torch.nn.BatchNorm2d` (eps, momentum, affine, ...).
    """

    def __init__(self, num_features: int, num_splits: int, **kwargs: object) -> None:
        super().__init__(num_features, **kwargs)  # type: ignore[arg-type]  # BatchNorm2d kwargs
        if num_splits < 1:
            raise ConfigError(f"num_splits must be >= 1 for SplitBatchNorm, got {num_splits}")
        self.num_splits = num_splits
        if self.track_running_stats:
            # One set of running statistics per split, laid out split after split.
            self.register_buffer("running_mean", torch.zeros(num_features * num_splits))
            self.register_buffer("running_var", torch.ones(num_features * num_splits))

    def train(self, mode: bool = True) -> SplitBatchNorm:
        """Switch train/eval mode; leaving training averages the per-split statistics."""
        if self.training and not mode and self.track_running_stats:
            self._collate_running_stats()
        super().train(mode)
        return self

    @torch.no_grad()
    def _collate_running_stats(self) -> None:
        for name in ("running_mean", "running_var"):
            stats = getattr(self, name)
            if stats is None:
                continue
            mean = stats.view(self.num_splits, self.num_features).mean(dim=0)
            stats.copy_(mean.repeat(self.num_splits))

    def forward(self, input: Tensor) -> Tensor:
        """Normalise ``input`` of shape (B, C, H, W); returns the same shape."""
        if input.dim() != 4:
            raise ValueError(
                f"SplitBatchNorm expects a 4-D input (B, C, H, W), got shape {tuple(input.shape)}"
            )
        n, c, h, w = input.shape
        weight = self.weight
        bias = self.bias
        if self.training or not self.track_running_stats:
            if n % self.num_splits != 0:
                raise ValueError(
                    f"SplitBatchNorm with num_splits={self.num_splits} needs a batch size "
                    f"divisible by {self.num_splits} in training, got batch size {n}"
                )
            # Same running-average factor as nn.BatchNorm2d (momentum=None: cumulative mean).
            factor = 0.0 if self.momentum is None else self.momentum
            if self.training and self.num_batches_tracked is not None:
                self.num_batches_tracked.add_(1)
                if self.momentum is None:
                    factor = 1.0 / float(self.num_batches_tracked)
            # (B, C, H, W) -> (B / s, s * C, H, W): split k occupies channels k*C..(k+1)*C,
            # so one batch_norm call normalises every split with its own statistics.
            return F.batch_norm(
                input.reshape(-1, c * self.num_splits, h, w),
                self.running_mean,
                self.running_var,
                None if weight is None else weight.repeat(self.num_splits),
                None if bias is None else bias.repeat(self.num_splits),
                True,
                factor,
                self.eps,
            ).view(n, c, h, w)
        running_mean = self.running_mean
        running_var = self.running_var
        # Not None: this branch runs only when track_running_stats is set.
        assert running_mean is not None
        assert running_var is not None
        return F.batch_norm(
            input,
            running_mean[: self.num_features],
            running_var[: self.num_features],
            weight,
            bias,
            False,
            0.0,
            self.eps,
        )


class BatchNorm2dReLU(nn.BatchNorm2d):
    """``relu(BatchNorm2d(x))``: the ResNet stem's norm and activation as one child module.

    Same parameters and state-dict keys as :class:`torch.nn.BatchNorm2d`.
    """

    def forward(self, input: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W), normalised then rectified."""
        return F.relu(super().forward(input))


class SplitBatchNormReLU(SplitBatchNorm):
    """``relu(SplitBatchNorm(x))``: the stem's norm and activation when ``num_splits > 0``."""

    def forward(self, input: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W), normalised per split then rectified."""
        return F.relu(super().forward(input))


def _norm(num_features: int, num_splits: int) -> nn.BatchNorm2d:
    """BatchNorm2d, or SplitBatchNorm when ``num_splits > 0`` (lightly's convention)."""
    if num_splits > 0:
        return SplitBatchNorm(num_features, num_splits)
    return nn.BatchNorm2d(num_features)


def _norm_relu(num_features: int, num_splits: int) -> nn.BatchNorm2d:
    if num_splits > 0:
        return SplitBatchNormReLU(num_features, num_splits)
    return BatchNorm2dReLU(num_features)


def _shortcut(in_planes: int, out_planes: int, stride: int, num_splits: int) -> nn.Sequential:
    """Identity (an empty Sequential) or a 1x1 projection when the shape changes."""
    if stride == 1 and in_planes == out_planes:
        return nn.Sequential()
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
        _norm(out_planes, num_splits),
    )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-9/18/34).

    Args:
        in_planes: Input channels.
        planes: Output channels (``expansion`` is 1).
        stride: Stride of the first convolution (2 halves H and W).
        num_splits: SplitBatchNorm splits; 0 uses plain BatchNorm2d.
    """

    expansion: ClassVar[int] = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, num_splits: int = 0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _norm(planes, num_splits)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = _norm(planes, num_splits)
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride, num_splits)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_planes, H, W) -> (B, planes, H / stride, W / stride)."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) with a residual connection (ResNet-50/101/152).

    Args:
        in_planes: Input channels.
        planes: Channels of the 3x3 convolution; the output has ``4 * planes`` channels.
        stride: Stride of the 3x3 convolution.
        num_splits: SplitBatchNorm splits; 0 uses plain BatchNorm2d.
    """

    expansion: ClassVar[int] = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, num_splits: int = 0) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = _norm(planes, num_splits)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = _norm(planes, num_splits)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = _norm(out_planes, num_splits)
        self.shortcut = _shortcut(in_planes, out_planes, stride, num_splits)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_planes, H, W) -> (B, 4 * planes, H / stride, W / stride)."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


Block = type[BasicBlock] | type[Bottleneck]


class ResNet(nn.Module):
    """ResNet with a 3x3 stride-1 stem and no max-pool, for 32-64 pixel images.

    K. He et al., "Deep Residual Learning for Image Recognition", 2015,
    https://arxiv.org/abs/1512.03385; stem as in lightly (and the common CIFAR variant).

    Children, in order: ``conv1``, ``bn1`` (BatchNorm + ReLU), ``layer1`` .. ``layer4``,
    ``avgpool`` (AdaptiveAvgPool2d(1)), ``linear``. Hence
    ``nn.Sequential(*list(resnet.children())[:-1])`` maps (B, 3, H, W) to the pooled
    features (B, D, 1, 1), and setting ``resnet.linear = nn.Identity()`` makes ``resnet``
    return them flattened, (B, D), with D = ``num_features``.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: Number of blocks in each of the four stages.
        num_classes: Output size of ``linear``.
        width: Channel multiplier; the stem has ``max(1, int(64 * width))`` channels.
        num_splits: If > 0, every BatchNorm is a :class:`SplitBatchNorm` with that many splits.
    """

    def __init__(
        self,
        block: Block = BasicBlock,
        layers: tuple[int, int, int, int] = (2, 2, 2, 2),
        num_classes: int = 10,
        width: float = 1.0,
        num_splits: int = 0,
    ) -> None:
        super().__init__()
        if len(layers) != 4 or any(n < 1 for n in layers):
            raise ConfigError(f"layers must be four positive block counts, got {list(layers)}")
        if not width > 0:
            raise ConfigError(f"width must be > 0, got {width}")
        if num_splits < 0:
            raise ConfigError(
                f"num_splits must be >= 0 (0 disables SplitBatchNorm), got {num_splits}"
            )
        self.base = resnet_base_channels(width)
        self._in_planes = self.base
        self.num_splits = num_splits
        self.conv1 = nn.Conv2d(3, self.base, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = _norm_relu(self.base, num_splits)
        self.layer1 = self._make_layer(block, self.base, layers[0], 1, num_splits)
        self.layer2 = self._make_layer(block, self.base * 2, layers[1], 2, num_splits)
        self.layer3 = self._make_layer(block, self.base * 4, layers[2], 2, num_splits)
        self.layer4 = self._make_layer(block, self.base * 8, layers[3], 2, num_splits)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = self.base * 8 * block.expansion
        self.linear: nn.Module = nn.Linear(self.num_features, num_classes)

    def _make_layer(
        self, block: Block, planes: int, num_blocks: int, stride: int, num_splits: int
    ) -> nn.Sequential:
        blocks: list[nn.Module] = []
        for s in [stride] + [1] * (num_blocks - 1):
            blocks.append(block(self._in_planes, planes, s, num_splits))
            self._in_planes = planes * block.expansion
        return nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, num_classes), or (B, num_features) if ``linear`` is Identity."""
        out = self.bn1(self.conv1(x))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = self.avgpool(out).flatten(start_dim=1)
        result: Tensor = self.linear(out)
        return result


@dataclass(frozen=True)
class _ResNetSpec:
    block: Block
    layers: tuple[int, int, int, int]


_SPECS: dict[str, _ResNetSpec] = {
    "resnet-9": _ResNetSpec(BasicBlock, (1, 1, 1, 1)),
    "resnet-18": _ResNetSpec(BasicBlock, (2, 2, 2, 2)),
    "resnet-34": _ResNetSpec(BasicBlock, (3, 4, 6, 3)),
    "resnet-50": _ResNetSpec(Bottleneck, (3, 4, 6, 3)),
    "resnet-101": _ResNetSpec(Bottleneck, (3, 4, 23, 3)),
    "resnet-152": _ResNetSpec(Bottleneck, (3, 8, 36, 3)),
}

RESNET_NAMES: tuple[str, ...] = tuple(_SPECS)
"""Names accepted by :func:`ResNetGenerator`, shallowest first."""


def resnet_base_channels(width: float) -> int:
    """Channels of the stem for a width multiplier: ``max(1, int(64 * width))``."""
    return max(1, int(64 * width))


def ResNetGenerator(  # noqa: N802 - the lightly name users already call
    name: str = "resnet-18",
    width: float = 1.0,
    num_classes: int = 10,
    num_splits: int = 0,
) -> ResNet:
    """Build a lightly-style ResNet by name.

    Args:
        name: One of ``resnet-9``, ``resnet-18``, ``resnet-34`` (basic blocks) or
            ``resnet-50``, ``resnet-101``, ``resnet-152`` (bottleneck blocks).
        width: Channel multiplier (may be fractional, e.g. 0.125 for tiny models).
        num_classes: Output size of the final ``linear`` layer.
        num_splits: If > 0, use :class:`SplitBatchNorm` with that many splits (MoCo on one
            device); 0 uses plain BatchNorm2d.

    Returns:
        A :class:`ResNet` mapping (B, 3, H, W) to (B, num_classes).

    Examples:
        >>> resnet = ResNetGenerator("resnet-18")
        >>> resnet.linear = nn.Identity()  # now returns (B, 512) features
        >>> backbone = nn.Sequential(*list(resnet.children())[:-1])  # (B, 512, 1, 1)
    """
    spec = _SPECS.get(name)
    if spec is None:
        raise ConfigError(
            f"unknown ResNet name {name!r}; accepted names: {', '.join(RESNET_NAMES)}"
        )
    return ResNet(
        block=spec.block,
        layers=spec.layers,
        num_classes=num_classes,
        width=width,
        num_splits=num_splits,
    )
