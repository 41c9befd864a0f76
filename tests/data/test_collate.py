"""Collate functions: output structure, labels and file names, presets, errors."""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from selfsup.data.collate import (
    BaseCollateFunction,
    DINOCollateFunction,
    ImageCollateFunction,
    MoCoCollateFunction,
    MultiCropCollateFunction,
    MultiViewCollate,
    MultiViewCollateFunction,
    SimCLRCollateFunction,
)
from selfsup.errors import ConfigError, DataError
from selfsup.transforms import (
    IMAGENET_NORMALIZE,
    RandomColorJitter,
    SimCLRTransform,
    SimCLRViewTransform,
)


def make_batch(n: int = 3, size: tuple[int, int] = (20, 24)) -> list[tuple[Image.Image, int, str]]:
    rng = np.random.default_rng(0)
    return [
        (
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)),
            i % 2,
            f"img_{i}.png",
        )
        for i in range(n)
    ]


def to_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255


def jitter_of(collate: BaseCollateFunction) -> RandomColorJitter:
    view = collate.transform
    assert isinstance(view, SimCLRViewTransform)
    jitter = view.steps[4]
    assert isinstance(jitter, RandomColorJitter)
    return jitter


def test_seed_example_image_collate_function() -> None:
    collate_fn = ImageCollateFunction(input_size=32, cj_prob=0.5)
    (x0, x1), labels, fnames = collate_fn(make_batch(3))
    assert x0.shape == x1.shape == (3, 3, 32, 32)
    assert x0.dtype == torch.float32
    assert labels.dtype == torch.long
    assert labels.tolist() == [0, 1, 0]
    assert fnames == ["img_0.png", "img_1.png", "img_2.png"]
    assert not torch.equal(x0, x1)
    assert jitter_of(collate_fn).prob == 0.5


def test_image_collate_defaults_match_the_cli_config() -> None:
    params = inspect.signature(ImageCollateFunction).parameters
    expected = {
        "input_size": 64, "cj_prob": 0.8, "cj_bright": 0.7, "cj_contrast": 0.7, "cj_sat": 0.7,
        "cj_hue": 0.2, "min_scale": 0.15, "random_gray_scale": 0.2, "gaussian_blur": 0.5,
        "kernel_size": None, "sigmas": (0.2, 2), "vf_prob": 0.0, "hf_prob": 0.5, "rr_prob": 0.0,
        "rr_degrees": None, "normalize": IMAGENET_NORMALIZE,
    }  # fmt: skip
    assert {k: params[k].default for k in expected} == expected
    jitter = jitter_of(ImageCollateFunction())
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (
        0.7,
        0.7,
        0.7,
        0.2,
    )


def test_cli_config_kernel_size_fraction() -> None:
    collate = ImageCollateFunction(input_size=64, kernel_size=0.1, gaussian_blur=1.0)
    assert isinstance(collate.transform, SimCLRViewTransform)
    assert collate.transform.get_params((80, 80))[-1].kernel_size == 7


def test_base_collate_uses_the_transform_twice_first_views_first() -> None:
    calls: list[int] = []

    def transform(img: Image.Image) -> torch.Tensor:
        index = len(calls)
        calls.append(index)
        return to_tensor(img) + index

    batch = make_batch(2)
    (x0, x1), _, _ = BaseCollateFunction(transform)(batch)
    assert torch.equal(x0[0], to_tensor(batch[0][0]) + 0)
    assert torch.equal(x0[1], to_tensor(batch[1][0]) + 1)
    assert torch.equal(x1[0], to_tensor(batch[0][0]) + 2)
    assert torch.equal(x1[1], to_tensor(batch[1][0]) + 3)


def test_simclr_and_moco_presets_scale_colour_jitter() -> None:
    simclr = jitter_of(SimCLRCollateFunction(input_size=16))
    assert (simclr.brightness, simclr.contrast, simclr.saturation) == (0.4, 0.4, 0.4)
    assert simclr.hue == pytest.approx(0.1)
    moco = jitter_of(MoCoCollateFunction(input_size=16, cj_strength=0.3))
    assert (moco.brightness, moco.contrast, moco.saturation, moco.hue) == (0.3, 0.3, 0.3, 0.3)
    (x0, _), _, _ = MoCoCollateFunction(input_size=16)(make_batch(2))
    assert x0.shape == (2, 3, 16, 16)


def test_simclr_collate_defaults_match_lightly() -> None:
    params = inspect.signature(SimCLRCollateFunction).parameters
    expected = {"input_size": 224, "cj_prob": 0.8, "cj_strength": 0.5, "min_scale": 0.08,
                "random_gray_scale": 0.2, "gaussian_blur": 0.5, "kernel_size": None}  # fmt: skip
    assert {k: params[k].default for k in expected} == expected
    moco = inspect.signature(MoCoCollateFunction).parameters
    assert (moco["cj_strength"].default, moco["min_scale"].default) == (0.4, 0.2)
    assert moco["gaussian_blur"].default == 0.0


def test_multi_crop_views_and_order() -> None:
    def transform(img: Image.Image) -> torch.Tensor:
        return to_tensor(img)

    collate = MultiCropCollateFunction(
        crop_sizes=[12, 6], crop_counts=[2, 3], crop_min_scales=[0.5, 0.1],
        crop_max_scales=[1.0, 0.3], transforms=transform,
    )  # fmt: skip
    views, labels, fnames = collate(make_batch(4))
    assert [tuple(v.shape) for v in views] == [(4, 3, 12, 12)] * 2 + [(4, 3, 6, 6)] * 3
    assert labels.tolist() == [0, 1, 0, 1]
    assert len(fnames) == 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"crop_counts": [2]}, "lengths"),
        ({"crop_max_scales": [1.0]}, "lengths"),
        ({"crop_counts": [0, 0]}, "at least one crop"),
        ({"crop_counts": [2, -1]}, "crop_counts\\[1\\]"),
        ({"crop_sizes": [12, 0]}, "crop_sizes\\[1\\]"),
        ({"crop_min_scales": [0.5, 0.4]}, "crop_min_scales\\[1\\]"),
        ({"transforms": "to_tensor"}, "transforms"),
    ],
)
def test_multi_crop_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {
        "crop_sizes": [12, 6], "crop_counts": [2, 3], "crop_min_scales": [0.5, 0.1],
        "crop_max_scales": [1.0, 0.3], "transforms": to_tensor,
    }  # fmt: skip
    with pytest.raises(ConfigError, match=match):
        MultiCropCollateFunction(**{**args, **kwargs})


def test_dino_collate_views() -> None:
    collate = DINOCollateFunction(global_crop_size=16, local_crop_size=8, n_local_views=3)
    views, labels, fnames = collate(make_batch(2))
    assert [tuple(v.shape) for v in views] == [(2, 3, 16, 16)] * 2 + [(2, 3, 8, 8)] * 3
    assert labels.tolist() == [0, 1]
    assert fnames == ["img_0.png", "img_1.png"]
    with pytest.raises(ConfigError, match="n_local_views"):
        DINOCollateFunction(n_local_views=-2)


def test_multi_view_collate_stacks_dataset_views() -> None:
    transform = SimCLRTransform(input_size=16)
    batch = [(transform(img), label, name) for img, label, name in make_batch(3)]
    views, labels, fnames = MultiViewCollate()(batch)
    assert len(views) == 2
    assert all(v.shape == (3, 3, 16, 16) for v in views)
    assert torch.equal(views[1][2], batch[2][0][1])
    assert labels.tolist() == [0, 1, 0]
    assert fnames == ["img_0.png", "img_1.png", "img_2.png"]


def test_multi_view_collate_reports_mismatches() -> None:
    a, b = torch.zeros(3, 8, 8), torch.zeros(3, 4, 4)
    with pytest.raises(DataError, match=r"'y\.png' has 1 views"):
        MultiViewCollate()([([a, a], 0, "x.png"), ([a], 0, "y.png")])
    with pytest.raises(DataError, match=r"'y\.png' has shape"):
        MultiViewCollate()([([a, a], 0, "x.png"), ([a, b], 0, "y.png")])
    with pytest.raises(DataError, match="list of views"):
        MultiViewCollate()([(a, 0, "x.png")])
    with pytest.raises(DataError, match="empty batch"):
        MultiViewCollate()([])


def test_labels_accept_integers_of_any_kind_and_refuse_others() -> None:
    view = torch.zeros(3, 4, 4)
    _, labels, _ = MultiViewCollate()(
        [([view], torch.tensor(3), "a"), ([view], np.int64(4), "b"), ([view], 5, "c")]
    )
    assert labels.tolist() == [3, 4, 5]
    assert labels.dtype == torch.long
    with pytest.raises(DataError, match=r"'b'.*label"):
        MultiViewCollate()([([view], 0, "a"), ([view], "cat", "b")])
    with pytest.raises(DataError, match="batch\\[0\\]"):
        MultiViewCollate()([([view], 0)])


def test_base_collate_refuses_non_tensor_views() -> None:
    # A MultiViewTransform returns a list of views, not the tensor this collate needs.
    collate = BaseCollateFunction(SimCLRTransform(input_size=8))  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"img_0\.png"):
        collate(make_batch(1))
    with pytest.raises(ConfigError, match="transform"):
        BaseCollateFunction("not callable")  # type: ignore[arg-type]


def test_nothing_is_skipped_for_mixed_image_sizes() -> None:
    batch = make_batch(2, size=(20, 24)) + make_batch(2, size=(40, 10))
    (x0, x1), labels, fnames = ImageCollateFunction(input_size=8)(batch)
    assert x0.shape[0] == x1.shape[0] == len(labels) == len(fnames) == 4


def test_same_seed_same_batch_and_pickling() -> None:
    collate = SimCLRCollateFunction(input_size=16)
    batch = make_batch(2)
    torch.manual_seed(0)
    (a0, a1), _, _ = collate(batch)
    restored = pickle.loads(pickle.dumps(collate))  # DataLoader workers may pickle it
    torch.manual_seed(0)
    (b0, b1), _, _ = restored(batch)
    assert torch.equal(a0, b0)
    assert torch.equal(a1, b1)
    assert isinstance(MultiViewCollateFunction([to_tensor]), torch.nn.Module)


class _FolderDataset(Dataset[tuple[Image.Image, int, str]]):
    def __init__(self, root: Path) -> None:
        self.files = sorted(root.rglob("*.png"))
        self.root = root

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Image.Image, int, str]:
        path = self.files[index]
        label = int(path.parent.name.split("_")[1])
        return Image.open(path).convert("RGB"), label, str(path.relative_to(self.root))


def test_data_loader_over_an_image_folder(make_image_folder: Any) -> None:
    root = make_image_folder(n_classes=2, n_per_class=3, size=(32, 32))
    loader = DataLoader(
        _FolderDataset(root), batch_size=4, collate_fn=ImageCollateFunction(input_size=16)
    )
    batches = list(loader)
    assert [b[0][0].shape[0] for b in batches] == [4, 2]
    all_names = [name for _, _, names in batches for name in names]
    assert len(set(all_names)) == 6
    assert sorted(int(label) for _, labels, _ in batches for label in labels) == [0, 0, 0, 1, 1, 1]


# --- I-JEPA -------------------------------------------------------------------------------


def _grid_mask(index: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    mask = torch.zeros(grid[0] * grid[1], dtype=torch.bool)
    mask[index] = True
    return mask.view(grid)


def _is_rectangle(mask: torch.Tensor) -> tuple[int, int]:
    """(rows, cols) of the rectangle ``mask`` is, else an assertion error."""
    rows = mask.any(dim=1).nonzero().flatten()
    cols = mask.any(dim=0).nonzero().flatten()
    box = mask[int(rows[0]) : int(rows[-1]) + 1, int(cols[0]) : int(cols[-1]) + 1]
    assert box.all()
    assert int(box.sum()) == int(mask.sum())
    return box.shape[0], box.shape[1]


def test_ijepa_blocks_follow_the_paper() -> None:
    from selfsup.data.collate import sample_ijepa_masks

    grid = (14, 14)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        masks_enc, masks_pred = sample_ijepa_masks(3, grid, generator=g)
        assert len(masks_enc) == 1
        assert len(masks_pred) == 4
        sizes = set()
        for target in masks_pred:
            assert target.dtype == torch.int64
            assert target.shape[0] == 3
            for row in target:
                assert torch.equal(row, row.sort().values)
                rows, cols = _is_rectangle(_grid_mask(row, grid))
                sizes.add((rows, cols))
                # scale (0.15, 0.2) of 196 patches, aspect (0.75, 1.5), up to rounding.
                assert 0.1 * 196 <= rows * cols <= 0.25 * 196
                assert 0.5 <= rows / cols <= 2.0
        assert len(sizes) == 1  # one target size per batch
        for b in range(3):
            context = _grid_mask(masks_enc[0][b], grid)
            covered = torch.stack([_grid_mask(t[b], grid) for t in masks_pred]).any(dim=0)
            assert not (context & covered).any()
            assert int(context.sum()) >= 4


def test_ijepa_context_lengths_are_cut_to_the_shortest_of_the_batch() -> None:
    from selfsup.data.collate import sample_ijepa_masks

    g = torch.Generator().manual_seed(1)
    masks_enc, _ = sample_ijepa_masks(8, (8, 8), generator=g)
    assert masks_enc[0].shape[0] == 8
    assert all(len(set(row.tolist())) == masks_enc[0].shape[1] for row in masks_enc[0])


def test_ijepa_overlap_allowed_keeps_the_whole_context_block() -> None:
    from selfsup.data.collate import sample_ijepa_masks

    g = torch.Generator().manual_seed(2)
    masks_enc, _ = sample_ijepa_masks(
        2, (6, 6), enc_mask_scale=(1.0, 1.0), allow_overlap=True, generator=g
    )
    assert masks_enc[0].shape == (2, 36)


def test_ijepa_targets_covering_the_grid_are_a_clear_error() -> None:
    from selfsup.data.collate import sample_ijepa_masks

    with pytest.raises(DataError, match="cover the whole 2x2 grid"):
        sample_ijepa_masks(1, (2, 2), pred_mask_scale=(1.0, 1.0), n_pred=1)


def test_ijepa_collator_batches_images_with_their_masks() -> None:
    from selfsup.data.collate import IJEPAMaskCollator

    collate = IJEPAMaskCollator(input_size=32, patch_size=8)
    batch = [(torch.rand(3, 32, 32), i, f"{i}.png") for i in range(5)]
    (images, labels, fnames), masks_enc, masks_pred = collate(batch)
    assert images.shape == (5, 3, 32, 32)
    assert labels.tolist() == [0, 1, 2, 3, 4]
    assert fnames == [f"{i}.png" for i in range(5)]
    assert [m.shape[0] for m in masks_enc + masks_pred] == [5] * 5
    assert all(int(m.max()) < 16 for m in masks_enc + masks_pred)


def test_ijepa_collator_refuses_bad_settings_and_images() -> None:
    from selfsup.data.collate import IJEPAMaskCollator

    with pytest.raises(ConfigError, match="patch_size=5 must divide input_size"):
        IJEPAMaskCollator(input_size=32, patch_size=5)
    with pytest.raises(ConfigError, match="pred_mask_scale"):
        IJEPAMaskCollator(pred_mask_scale=(0.3, 0.2))
    with pytest.raises(
        DataError, match=r"'0.png' have shape \(3, 16, 16\); expected \(C, 32, 32\)"
    ):
        IJEPAMaskCollator(input_size=32, patch_size=8)([(torch.rand(3, 16, 16), 0, "0.png")])
