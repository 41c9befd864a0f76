"""VICRegL augmentations: multi-crop views, each with the image location of its feature cells.

VICRegL (Bardes, Ponce & LeCun 2022, https://arxiv.org/abs/2210.01571) matches local features
of two views by where they lie in the image, so every view comes with a grid: the (y, x)
position, in the original image, of the centre of each cell of the view's feature map. A grid
follows the view's crop and its flips. The augmentations are lightly's (the authors'):
global crops covering (0.2, 1) of the image and local crops covering (0.05, 0.2), a
horizontal flip (p=0.5), colour jitter (0.4, 0.4, 0.2, 0.1) always, grayscale (p=0.2), blur
(p=0.5 global, 0.1 local) and solarization (p=0 global, 0.2 local).

Grid coordinates are fractions of the image height and width, so grids of views of different
sizes compare directly; a model pools its feature map to the grid's size (the 7 x 7 and 3 x 3
defaults are a ResNet's maps of 224 and 96 pixel crops).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from selfsup.errors import ConfigError
from selfsup.transforms._checks import (
    NormalizeArg,
    check_positive_int,
    check_probability,
)
from selfsup.transforms.base import image_size
from selfsup.transforms.flip import RandomVerticalFlip
from selfsup.transforms.multi_view_transform import MultiViewTransform
from selfsup.transforms.random_resized_crop import CropParams
from selfsup.transforms.smog_transform import SMoGViewTransform
from selfsup.transforms.utils import IMAGENET_NORMALIZE
from selfsup.transforms.view_transform import ViewParams

__all__ = ["VICRegLTransform", "VICRegLViewTransform", "crop_grid", "views_then_grids"]


def crop_grid(
    crop: CropParams, image: tuple[int, int], grid_size: int, hflip: bool, vflip: bool
) -> torch.Tensor:
    """(grid_size, grid_size, 2) centres (y, x) of the cells of a crop, as image fractions.

    Cell (i, j) of the (flipped) view covers row i and column j of a grid_size x grid_size
    split of the crop window; a horizontal flip reverses the columns, a vertical one the rows.
    """
    height, width = image
    steps = (torch.arange(grid_size, dtype=torch.float32) + 0.5) / grid_size
    ys = (crop.top + steps * crop.height) / height
    xs = (crop.left + steps * crop.width) / width
    if vflip:
        ys = ys.flip(0)
    if hflip:
        xs = xs.flip(0)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_y, grid_x], dim=-1)


class VICRegLViewTransform(SMoGViewTransform):
    """One VICRegL view: crop, flips, jitter, grayscale, blur, solarize, tensor; and its grid.

    The steps of :class:`selfsup.transforms.SMoGViewTransform` with a vertical flip.

    ``view(img)`` gives the view (C, crop_size, crop_size); :meth:`view_and_grid` also gives
    its (grid_size, grid_size, 2) grid (see :func:`crop_grid`).

    Args:
        crop_size: Output size in pixels.
        crop_min_scale, crop_max_scale: Fractions of the image area the crop covers.
        grid_size: Cells per side of the view's grid.
        hf_prob, vf_prob: Flip probabilities.
        gaussian_blur_prob, kernel_size, sigmas: Blur.
        solarize_prob: Probability of solarization.
        cj_prob, cj_strength, cj_bright, cj_contrast, cj_sat, cj_hue: Colour jitter, as in
            :class:`selfsup.transforms.SimCLRViewTransform`.
        random_gray_scale: Probability of converting to grayscale.
        normalize: ``{"mean": [...], "std": [...]}``; ``None`` or ``False`` disables it.
    """

    def __init__(
        self,
        crop_size: int = 224,
        crop_min_scale: float = 0.2,
        crop_max_scale: float = 1.0,
        grid_size: int = 7,
        hf_prob: float = 0.5,
        vf_prob: float = 0.0,
        gaussian_blur_prob: float = 0.5,
        kernel_size: float | None = None,
        sigmas: Sequence[float] = (0.1, 2),
        solarize_prob: float = 0.0,
        cj_prob: float = 1.0,
        cj_strength: float = 0.5,
        cj_bright: float = 0.8,
        cj_contrast: float = 0.8,
        cj_sat: float = 0.4,
        cj_hue: float = 0.2,
        random_gray_scale: float = 0.2,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        super().__init__(
            crop_size=crop_size,
            crop_min_scale=crop_min_scale,
            crop_max_scale=crop_max_scale,
            gaussian_blur_prob=gaussian_blur_prob,
            kernel_size=kernel_size,
            sigmas=sigmas,
            solarize_prob=solarize_prob,
            hf_prob=hf_prob,
            cj_prob=cj_prob,
            cj_strength=cj_strength,
            cj_bright=cj_bright,
            cj_contrast=cj_contrast,
            cj_sat=cj_sat,
            cj_hue=cj_hue,
            random_gray_scale=random_gray_scale,
            normalize=normalize,
        )
        # SMoG's steps with a vertical flip after the horizontal one; the grid follows both.
        self.steps.insert(2, RandomVerticalFlip(prob=check_probability("vf_prob", vf_prob)))
        self.grid_size = check_positive_int("grid_size", grid_size)

    def grid(self, params: ViewParams, size: tuple[int, int]) -> torch.Tensor:
        """The (grid_size, grid_size, 2) grid of the view drawn as ``params`` from an image of
        ``size = (height, width)``."""
        crop, hflip, vflip = params[0], params[1], params[2]
        assert isinstance(crop, CropParams)  # the first step is the crop
        return crop_grid(crop, size, self.grid_size, bool(hflip), bool(vflip))

    def view_and_grid(
        self, img: Any, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The view (C, crop_size, crop_size) of ``img`` and its grid."""
        size = image_size(img)
        params = self.get_params(size, generator)
        return self.apply(img, params), self.grid(params, size)


class VICRegLTransform(MultiViewTransform):
    """VICRegL transform: global and local views, then one grid per view.

    Output: a list of ``2 · (n_global_views + n_local_views)`` tensors: the global views
    (C, global_crop_size, global_crop_size), the local views, then their grids in the same
    order, (global_grid_size, global_grid_size, 2) and (local_grid_size, local_grid_size, 2).
    lightly's arguments and defaults; for ResNet backbones the authors use no local views.
    """

    def __init__(
        self,
        global_crop_size: int = 224,
        local_crop_size: int = 96,
        n_global_views: int = 2,
        n_local_views: int = 6,
        global_crop_scale: tuple[float, float] = (0.2, 1.0),
        local_crop_scale: tuple[float, float] = (0.05, 0.2),
        global_grid_size: int = 7,
        local_grid_size: int = 3,
        global_gaussian_blur_prob: float = 0.5,
        local_gaussian_blur_prob: float = 0.1,
        global_gaussian_blur_kernel_size: float | None = None,
        local_gaussian_blur_kernel_size: float | None = None,
        global_gaussian_blur_sigmas: tuple[float, float] = (0.1, 2),
        local_gaussian_blur_sigmas: tuple[float, float] = (0.1, 2),
        global_solarize_prob: float = 0.0,
        local_solarize_prob: float = 0.2,
        hf_prob: float = 0.5,
        vf_prob: float = 0.0,
        cj_prob: float = 1.0,
        cj_strength: float = 0.5,
        cj_bright: float = 0.8,
        cj_contrast: float = 0.8,
        cj_sat: float = 0.4,
        cj_hue: float = 0.2,
        random_gray_scale: float = 0.2,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        n_global = check_positive_int("n_global_views", n_global_views, minimum=2)
        n_local = check_positive_int("n_local_views", n_local_views, minimum=0)
        shared: dict[str, Any] = {
            "hf_prob": hf_prob,
            "vf_prob": vf_prob,
            "cj_prob": cj_prob,
            "cj_strength": cj_strength,
            "cj_bright": cj_bright,
            "cj_contrast": cj_contrast,
            "cj_sat": cj_sat,
            "cj_hue": cj_hue,
            "random_gray_scale": random_gray_scale,
            "normalize": normalize,
        }
        views: list[VICRegLViewTransform] = []
        for kind, size, scale, grid, blur, kernel, sigmas, solarize, count in (
            (
                "global",
                global_crop_size,
                global_crop_scale,
                global_grid_size,
                global_gaussian_blur_prob,
                global_gaussian_blur_kernel_size,
                global_gaussian_blur_sigmas,
                global_solarize_prob,
                n_global,
            ),
            (
                "local",
                local_crop_size,
                local_crop_scale,
                local_grid_size,
                local_gaussian_blur_prob,
                local_gaussian_blur_kernel_size,
                local_gaussian_blur_sigmas,
                local_solarize_prob,
                n_local,
            ),
        ):
            if isinstance(scale, str) or not isinstance(scale, Sequence) or len(scale) != 2:
                raise ConfigError(
                    f"{kind}_crop_scale={scale!r}: expected a (min, max) pair of area fractions"
                )
            view = VICRegLViewTransform(
                crop_size=size,
                crop_min_scale=scale[0],
                crop_max_scale=scale[1],
                grid_size=grid,
                gaussian_blur_prob=blur,
                kernel_size=kernel,
                sigmas=sigmas,
                solarize_prob=solarize,
                **shared,
            )
            views += [view] * count
        super().__init__(transforms=views)
        self.n_global_views = n_global
        self.n_local_views = n_local

    def __call__(self, image: Any, generator: torch.Generator | None = None) -> list[Any]:
        """The views of ``image``, then their grids (see the class docstring)."""
        return views_then_grids(self.transforms, image, generator)


def views_then_grids(
    transforms: Sequence[Any], image: Any, generator: torch.Generator | None = None
) -> list[torch.Tensor]:
    """Every :class:`VICRegLViewTransform`'s view of ``image``, then every view's grid."""
    pairs = []
    for view in transforms:
        assert isinstance(view, VICRegLViewTransform)
        pairs.append(view.view_and_grid(image, generator))
    return [v for v, _ in pairs] + [g for _, g in pairs]
