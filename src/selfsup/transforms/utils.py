"""Constants shared by the transforms."""

from __future__ import annotations

#: Per-channel RGB mean and standard deviation of ImageNet, the default ``normalize`` of every
#: view transform (pretrained backbones expect inputs normalised this way).
IMAGENET_NORMALIZE: dict[str, list[float]] = {
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}
