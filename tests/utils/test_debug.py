"""Tests of selfsup.utils.debug: the collapse monitor and the augmentation preview."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch import Tensor, nn

from selfsup.errors import DataError
from selfsup.utils.debug import plot_augmented_images, std_of_l2_normalized

MEAN = (0.5, 0.25, 0.125)
STD = (0.2, 0.4, 0.5)


def reference_std_of_l2_normalized(z: np.ndarray) -> float:
    """Written from SimSiam's description: per-channel std of z / ||z||_2, averaged."""
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    return float(np.mean(np.std(unit, axis=0, ddof=1)))


# --------------------------------------------------------------------------------------
# std_of_l2_normalized
# --------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 20),
    d=st.integers(1, 12),
    seed=st.integers(0, 2**31 - 1),
)
def test_std_of_l2_normalized_matches_reference(n: int, d: int, seed: int) -> None:
    z = np.random.default_rng(seed).normal(size=(n, d)) + 0.1
    got = std_of_l2_normalized(torch.from_numpy(z))
    assert got.item() == pytest.approx(reference_std_of_l2_normalized(z), rel=1e-9, abs=1e-12)


def test_std_is_one_over_sqrt_d_for_isotropic_gaussian() -> None:
    torch.manual_seed(0)
    d = 64
    value = std_of_l2_normalized(torch.randn(4000, d)).item()
    assert value == pytest.approx(1 / math.sqrt(d), rel=0.03)


def test_std_is_zero_for_collapsed_representations() -> None:
    z = torch.tensor([[3.0, -1.0, 2.0]]).repeat(50, 1) * torch.linspace(1, 5, 50)[:, None]
    # Different lengths, one direction: collapsed after normalisation.
    assert std_of_l2_normalized(z).item() == pytest.approx(0.0, abs=1e-6)


def test_std_keeps_dtype_and_does_not_mutate() -> None:
    z = torch.randn(10, 4, dtype=torch.float64)
    before = z.clone()
    out = std_of_l2_normalized(z)
    assert out.dtype == torch.float64
    assert out.ndim == 0
    assert torch.equal(z, before)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4)])
def test_std_rejects_wrong_rank(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        std_of_l2_normalized(torch.randn(*shape))


def test_std_rejects_single_sample() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        std_of_l2_normalized(torch.randn(1, 8))


# --------------------------------------------------------------------------------------
# plot_augmented_images: fakes of the documented shapes
# --------------------------------------------------------------------------------------


def _images(n: int, size: int = 8, mode: str = "RGB") -> list[Image.Image]:
    rng = np.random.default_rng(0)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    return [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)) for _ in range(n)]


def _to_tensor(image: Image.Image) -> Tensor:
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)


class NormalizingView:
    """A deterministic 'view': mirror the image, then normalise with MEAN/STD."""

    def __init__(self) -> None:
        self.normalize = {"mean": list(MEAN), "std": list(STD)}

    def __call__(self, image: Image.Image) -> Tensor:
        x = _to_tensor(image).flip(-1)
        return (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


class FakeTwoViewCollate(nn.Module):
    """Shape of BaseCollateFunction: ((x0, x1), labels, filenames)."""

    def __init__(self) -> None:
        super().__init__()
        self.transform = NormalizingView()

    def forward(self, batch: list[Any]) -> tuple[tuple[Tensor, Tensor], Tensor, list[str]]:
        images = [item[0] for item in batch]
        x0 = torch.stack([self.transform(img) for img in images])
        x1 = torch.stack([self.transform(img) for img in images])
        labels = torch.tensor([item[1] for item in batch])
        return (x0, x1), labels, [item[2] for item in batch]


class FakeMultiCropCollate(nn.Module):
    """Shape of MultiCropCollateFunction: (list of view batches of two sizes, labels, names)."""

    def __init__(self) -> None:
        super().__init__()
        self.transforms: list[Any] = [NormalizingView(), NormalizingView(), NormalizingView()]

    def forward(self, batch: list[Any]) -> tuple[list[Tensor], Tensor, list[str]]:
        images = [item[0] for item in batch]
        full = torch.stack([self.transforms[0](img) for img in images])
        views = [full, full.clone(), full[:, :, :4, :4].contiguous()]
        return views, torch.zeros(len(batch), dtype=torch.long), [item[2] for item in batch]


class FakeMultiViewTransform:
    """Shape of MultiViewTransform: image -> list of views; no normalisation to be found."""

    def __call__(self, image: Image.Image) -> list[Tensor]:
        x = _to_tensor(image)
        return [x * 10.0 - 3.0, x * 2.0]


def _shown(fig: Any, row: int, col: int) -> np.ndarray:
    """The array drawn in one grid cell."""
    ncols = len({ax.get_subplotspec().colspan.start for ax in fig.axes})
    ax = fig.axes[row * ncols + col]
    assert len(ax.images) == 1
    return np.asarray(ax.images[0].get_array())


def test_two_view_collate_grid_and_unnormalisation() -> None:
    images = _images(3)
    fig = plot_augmented_images(images, FakeTwoViewCollate())
    assert len(fig.axes) == 3 * 3  # rows: images; columns: original, view 1, view 2
    for row, image in enumerate(images):
        original = np.asarray(image, dtype=np.float64) / 255.0
        np.testing.assert_allclose(_shown(fig, row, 0), original, atol=1e-6)
        # The view is un-normalised with the collate's own mean/std: back to the mirror image.
        np.testing.assert_allclose(_shown(fig, row, 1), original[:, ::-1], atol=1e-5)
        np.testing.assert_allclose(_shown(fig, row, 2), original[:, ::-1], atol=1e-5)
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert titles == ["original", "view 1", "view 2"]


def test_multi_crop_collate_has_one_column_per_view() -> None:
    fig = plot_augmented_images(_images(2), FakeMultiCropCollate())
    assert len(fig.axes) == 2 * 4
    assert _shown(fig, 1, 3).shape == (4, 4, 3)


def test_multi_view_transform_falls_back_to_min_max() -> None:
    images = _images(2)
    fig = plot_augmented_images(images, FakeMultiViewTransform())
    assert len(fig.axes) == 2 * 3
    shown = _shown(fig, 0, 1)
    assert shown.min() == pytest.approx(0.0)
    assert shown.max() == pytest.approx(1.0)
    # Min-max stretching is affine, so it recovers the image up to its own range.
    original = np.asarray(images[0], dtype=np.float64) / 255.0
    stretched = (original - original.min()) / (original.max() - original.min())
    np.testing.assert_allclose(shown, stretched, atol=1e-5)


def test_grayscale_images_are_drawn_gray() -> None:
    fig = plot_augmented_images(_images(1, mode="L"), FakeTwoViewCollate())
    assert _shown(fig, 0, 0).ndim == 2
    assert fig.axes[0].images[0].get_cmap().name == "gray"


def test_max_images_and_shuffle() -> None:
    images = _images(6)
    fig = plot_augmented_images(images, FakeTwoViewCollate(), max_images=2)
    assert len(fig.axes) == 2 * 3
    np.testing.assert_allclose(_shown(fig, 1, 0), np.asarray(images[1]) / 255.0, atol=1e-6)

    def first_rows(seed: int) -> list[np.ndarray]:
        f = plot_augmented_images(images, FakeTwoViewCollate(), True, 3, seed=seed)
        return [_shown(f, r, 0) for r in range(3)]

    a, b = first_rows(1), first_rows(1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    shown = {tuple(x.ravel()[:6]) for x in a}
    everything = {tuple((np.asarray(im) / 255.0).ravel()[:6]) for im in images}
    assert shown <= everything
    assert len(shown) == 3


def test_save_path_writes_png_atomically(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "augmentations.png"
    plot_augmented_images(_images(2), FakeTwoViewCollate(), save_path=target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["augmentations.png"]
    with Image.open(target) as png:
        assert png.width > 100
        assert png.height > 50


def test_kind_overrides_detection() -> None:
    def collate(batch: list[Any]) -> tuple[tuple[Tensor, Tensor], Tensor, list[str]]:
        return FakeTwoViewCollate().forward(batch)

    fig = plot_augmented_images(_images(2), collate, kind="collate")
    assert len(fig.axes) == 2 * 3


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="at least one image"):
        plot_augmented_images([], FakeTwoViewCollate())
    with pytest.raises(DataError, match="PIL"):
        plot_augmented_images([np.zeros((4, 4))], FakeTwoViewCollate())  # type: ignore[list-item]  # wrong on purpose

    class BadCollate(nn.Module):
        def forward(self, batch: list[Any]) -> Tensor:
            return torch.zeros(1)

    with pytest.raises(DataError, match="collate output"):
        plot_augmented_images(_images(1), BadCollate())
    with pytest.raises(DataError, match="list of views"):
        plot_augmented_images(_images(1), lambda image: _to_tensor(image))


# --------------------------------------------------------------------------------------
# plot_augmented_images with selfsup's own collate functions and transforms
# --------------------------------------------------------------------------------------


def test_with_simclr_collate_function() -> None:
    from selfsup.data import SimCLRCollateFunction

    torch.manual_seed(0)
    fig = plot_augmented_images(_images(2, size=32), SimCLRCollateFunction(input_size=16))
    assert len(fig.axes) == 2 * 3
    view = _shown(fig, 0, 1)
    assert view.shape == (16, 16, 3)
    assert 0.0 <= view.min() <= view.max() <= 1.0


def test_with_dino_collate_function() -> None:
    from selfsup.data import DINOCollateFunction

    torch.manual_seed(0)
    collate = DINOCollateFunction(global_crop_size=16, local_crop_size=8, n_local_views=2)
    fig = plot_augmented_images(_images(2, size=32), collate)
    assert len(fig.axes) == 2 * 5  # original, 2 global, 2 local
    assert _shown(fig, 1, 1).shape == (16, 16, 3)
    assert _shown(fig, 1, 4).shape == (8, 8, 3)


def test_simclr_collate_without_augmentation_shows_the_image() -> None:
    """With every random step off, the un-normalised view must equal the resized original."""
    from selfsup.data import SimCLRCollateFunction

    collate = SimCLRCollateFunction(
        input_size=8,
        cj_prob=0.0,
        min_scale=1.0,
        random_gray_scale=0.0,
        gaussian_blur=0.0,
        hf_prob=0.0,
    )
    images = _images(1, size=8)
    fig = plot_augmented_images(images, collate)
    original = np.asarray(images[0], dtype=np.float64) / 255.0
    # At scale 1 no other aspect ratio fits, so the crop is the whole image: the view is the
    # original, normalised with ImageNet statistics and un-normalised by the plot.
    np.testing.assert_allclose(_shown(fig, 0, 1), original, atol=1e-6)


def test_with_simclr_transform() -> None:
    from selfsup.transforms import SimCLRTransform

    fig = plot_augmented_images(_images(2, size=32), SimCLRTransform(input_size=16))
    assert len(fig.axes) == 2 * 3
    assert _shown(fig, 0, 2).shape == (16, 16, 3)
