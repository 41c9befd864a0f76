"""One augmented view: random steps, then a float tensor, then optional normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torchvision.transforms.functional as TF
from PIL import Image

from selfsup.errors import ConfigError, DataError
from selfsup.transforms._checks import NormalizeArg, check_normalize
from selfsup.transforms.base import RandomTransform, image_size

#: Parameters of one view: one entry per step of the :class:`ViewTransform`, in order.
ViewParams = tuple[Any, ...]


def to_float_tensor(img: Image.Image | torch.Tensor) -> torch.Tensor:
    """Convert to a floating point tensor ``(..., C, H, W)`` with values in [0, 1].

    PIL images become float32 ``(C, H, W)``; uint8 tensors are divided by 255 (float32, same
    device); float tensors are returned as a copy (never the input object, so callers may
    modify the result).
    """
    if isinstance(img, Image.Image):
        out: torch.Tensor = TF.to_tensor(img)
        return out
    if img.dtype == torch.uint8:
        return img.to(torch.float32) / 255.0
    if img.is_floating_point():
        return img.clone()
    raise DataError(
        "expected a PIL image, a uint8 tensor or a float tensor in [0, 1], "
        f"got a {img.dtype} tensor"
    )


class ViewTransform:
    """Compose random steps into one view, returning a float tensor ``(C, H, W)``.

    ``get_params(size, generator)`` draws every step's parameters in order (each step sees the
    image size left by the steps before it) and ``apply(img, params)`` replays them, converts the
    result to a float tensor in [0, 1] and normalises it with ``(x - mean) / std`` per channel
    when ``normalize`` is given. ``view(img)`` draws and applies in one go.

    Args:
        steps: The random transforms, applied in this order.
        normalize: ``{"mean": [...], "std": [...]}`` (one value per channel) or
            ``None``/``False`` for none.
    """

    def __init__(
        self, steps: Sequence[RandomTransform[Any]], normalize: NormalizeArg = None
    ) -> None:
        for index, step in enumerate(steps):
            if not isinstance(step, RandomTransform):
                raise ConfigError(
                    f"steps[{index}]={step!r}: expected a selfsup RandomTransform (with "
                    "get_params/apply); wrap other callables in a MultiViewTransform instead"
                )
        self.steps: list[RandomTransform[Any]] = list(steps)
        self.normalize = check_normalize("normalize", normalize)

    def get_params(
        self, size: tuple[int, int], generator: torch.Generator | None = None
    ) -> ViewParams:
        """Draw the parameters of every step for an input of ``size = (height, width)``."""
        params: list[Any] = []
        for step in self.steps:
            step_params = step.get_params(size, generator)
            size = step.output_size(size, step_params)
            params.append(step_params)
        return tuple(params)

    def apply(self, img: Image.Image | torch.Tensor, params: ViewParams) -> torch.Tensor:
        """Apply the steps with ``params`` and return a float tensor ``(..., C, H, W)``.

        Deterministic; ``img`` is not modified. Tensors keep their device.
        """
        if len(params) != len(self.steps):
            raise ConfigError(
                f"params has {len(params)} entries but this view has {len(self.steps)} steps; "
                "pass the result of get_params of the same ViewTransform"
            )
        out: Image.Image | torch.Tensor = img
        for step, step_params in zip(self.steps, params, strict=True):
            # Two calls so mypy binds apply's ImageT to one concrete image type at a time.
            if isinstance(out, Image.Image):
                out = step.apply(out, step_params)
            else:
                out = step.apply(out, step_params)
        tensor = to_float_tensor(out)
        if self.normalize is None:
            return tensor
        mean, std = self.normalize
        if tensor.shape[-3] != len(mean):
            raise DataError(
                f"normalize has {len(mean)} channel values but the image has "
                f"{tensor.shape[-3]} channels; convert images to RGB or pass matching "
                "mean/std (or normalize=None)"
            )
        normalized: torch.Tensor = TF.normalize(tensor, list(mean), list(std))
        return normalized

    def apply_batch(self, images: torch.Tensor, params: Sequence[ViewParams]) -> torch.Tensor:
        """Apply per-sample ``params`` to a batch ``(B, C, H, W)`` on its device.

        Returns ``(B, C, h, w)``. Parameters are typically drawn on the CPU (by the data loader)
        and the pixels processed on the GPU.
        """
        if images.ndim != 4 or images.shape[0] != len(params):
            raise DataError(
                f"expected images (B, C, H, W) with B = len(params) = {len(params)}, "
                f"got shape {tuple(images.shape)}"
            )
        return torch.stack([self.apply(img, p) for img, p in zip(images, params, strict=True)])

    def __call__(
        self, img: Image.Image | torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw parameters and return one view ``(C, H, W)`` of ``img``."""
        return self.apply(img, self.get_params(image_size(img), generator))

    def __repr__(self) -> str:
        steps = ", ".join(repr(s) for s in self.steps)
        return f"{type(self).__name__}(steps=[{steps}], normalize={self.normalize!r})"
