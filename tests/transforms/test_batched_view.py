"""Batched views of the method transforms against their per-image views.

For the same parameters the batched view equals the per-image float path up to float rounding
(the steps' tolerances, amplified by normalisation's division by std ~0.22): ``ATOL`` = 2e-4 on
all but a ``1e-4`` fraction of the values (a value that lands within rounding of the
solarisation threshold may flip). A uint8 batch gives the float batch's views up to the
rounding of its crop to uint8.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from selfsup.errors import ConfigError, DataError
from selfsup.transforms import (
    BYOLTransform,
    BYOLView1Transform,
    BYOLView2Transform,
    DINOTransform,
    EMPSSLTransform,
    FastSiamTransform,
    MMCRTransform,
    MoCoV2Transform,
    MSNTransform,
    MultiViewTransform,
    RandomHorizontalFlip,
    RandomRotate,
    RandomTransform,
    SimCLRTransform,
    SimCLRViewTransform,
    SimSiamTransform,
    SMoGTransform,
    SwaVTransform,
    VICRegLTransform,
    VICRegTransform,
    ViewTransform,
    WMSETransform,
)
from selfsup.transforms.base import ImageSize, ImageT
from selfsup.transforms.batched_view import (
    BatchedMultiViewTransform,
    BatchedViewTransform,
    map_boxes,
)
from selfsup.transforms.random_resized_crop import crop_boxes

ATOL = 2e-4
SIZE = (40, 48)

METHODS: dict[str, Callable[[], MultiViewTransform]] = {
    "simclr": lambda: SimCLRTransform(input_size=32, rr_prob=0.5, vf_prob=0.5),
    "simclr_degrees": lambda: SimCLRTransform(input_size=32, rr_prob=0.5, rr_degrees=20),
    "moco_v2": lambda: MoCoV2Transform(input_size=32),
    "byol": lambda: BYOLTransform(
        view_1_transform=BYOLView1Transform(input_size=32),
        view_2_transform=BYOLView2Transform(input_size=32),
    ),
    "simsiam": lambda: SimSiamTransform(input_size=32),
    "vicreg": lambda: VICRegTransform(input_size=32),
    "dino": lambda: DINOTransform(global_crop_size=32, local_crop_size=16, n_local_views=2),
    "swav": lambda: SwaVTransform(crop_sizes=(32, 16), crop_counts=(2, 2)),
    # Method transforms built from the views above (FastSiam predates the others).
    "emp_ssl": lambda: EMPSSLTransform(num_patches=3, input_size=16),
    "fast_siam": lambda: FastSiamTransform(num_views=3, input_size=32),
    "mmcr": lambda: MMCRTransform(k=3, input_size=32),
    "msn": lambda: MSNTransform(random_size=32, focal_size=16, focal_views=2),
    "smog": lambda: SMoGTransform(crop_sizes=(32, 16), crop_counts=(2, 2)),
    "wmse": lambda: WMSETransform(num_samples=3, input_size=32),
}


def images(dtype: torch.dtype = torch.float32, n: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    u8 = torch.randint(0, 256, (n, 3, *SIZE), dtype=torch.uint8, generator=g)
    return u8 if dtype == torch.uint8 else u8.float() / 255.0


def assert_views_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    off = (actual - expected).abs() > ATOL
    assert float(off.double().mean()) <= 1e-4


@pytest.mark.parametrize("name", sorted(METHODS))
def test_batched_views_equal_per_image_views_for_the_same_params(name: str) -> None:
    transform = METHODS[name]()
    batched = BatchedMultiViewTransform(transform)
    assert len(batched.views) == len(transform.transforms)
    x = images()
    params = batched.sample_batch(x.shape[0], SIZE, torch.Generator().manual_seed(1))
    views = batched.apply(x, params)
    for bview, batch_params, out in zip(batched.views, params, views, strict=True):
        per_image = torch.stack(
            [bview.view.apply(img, p) for img, p in zip(x, bview.unbind(batch_params), strict=True)]
        )
        assert_views_close(out, per_image)
    # A uint8 batch crops in uint8 (rounded to 1/255 there) and continues in float: its views
    # are the float batch's up to that rounding, carried through the later steps.
    u8_views = torch.cat([v.flatten() for v in batched.apply(images(torch.uint8), params)])
    diff = (u8_views - torch.cat([v.flatten() for v in views])).abs()
    assert float(diff.mean()) < 0.01
    assert float((diff > 4 / 255 / 0.2).double().mean()) < 0.01


def test_per_image_draws_stack_into_batch_params() -> None:
    view = SimCLRViewTransform(input_size=24, rr_prob=0.5)
    bview = BatchedViewTransform(view)
    x = images()
    g = torch.Generator().manual_seed(2)
    per_params = [view.get_params(SIZE, g) for _ in range(x.shape[0])]
    stacked = bview.params_from_views(per_params)
    assert bview.unbind(stacked) == per_params
    per_image = torch.stack([view.apply(img, p) for img, p in zip(x, per_params, strict=True)])
    assert_views_close(bview.apply(x, stacked), per_image)


def test_views_are_reproducible_and_input_not_mutated() -> None:
    batched = BatchedMultiViewTransform(SimCLRTransform(input_size=16))
    x = images(torch.uint8)
    before = x.clone()
    a = batched(x, torch.Generator().manual_seed(3))
    b = batched(x, torch.Generator().manual_seed(3))
    c = batched(x, torch.Generator().manual_seed(4))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[0], a[1])  # the two views draw their own parameters
    assert torch.equal(x, before)
    assert [tuple(v.shape) for v in a] == [(6, 3, 16, 16)] * 2
    assert all(v.dtype == torch.float32 for v in a)
    # Channels-last by default (convolutions' fastest layout); the same values either way.
    assert all(v.is_contiguous(memory_format=torch.channels_last) for v in a)
    assert not any(v.is_contiguous() for v in a)
    nchw = BatchedMultiViewTransform(SimCLRTransform(input_size=16), channels_last=False)
    d = nchw(x, torch.Generator().manual_seed(3))
    assert all(v.is_contiguous() for v in d)
    assert all(torch.equal(u, v) for u, v in zip(a, d, strict=True))


def _mean(t: torch.Tensor) -> torch.Tensor:
    return t.mean(dim=(1, 2, 3))


def _std(t: torch.Tensor) -> torch.Tensor:
    return t.std(dim=(1, 2, 3))


@pytest.mark.slow
def test_batched_views_match_per_image_statistics() -> None:
    """Views drawn independently by the two paths have the same pixel statistics."""
    transform = SimCLRTransform(input_size=16, normalize=None)
    batched = BatchedMultiViewTransform(transform)
    x = images(n=1).expand(200, -1, -1, -1)
    g = torch.Generator().manual_seed(5)
    bat = batched(x, g)[0]
    view = transform.transforms[0]
    assert isinstance(view, ViewTransform)
    per = torch.stack([view(img, g) for img in x])
    for stat in (_mean, _std):
        a, b = stat(bat), stat(per)
        se = ((a.var() + b.var()) / a.numel()).sqrt()
        assert abs(float(a.mean() - b.mean())) <= 5 * float(se)


class _Custom(RandomTransform[bool]):
    def get_params(self, size: ImageSize, generator: torch.Generator | None = None) -> bool:
        return True

    def apply(self, img: ImageT, params: bool) -> ImageT:
        return img


class _FlipSubclass(RandomHorizontalFlip):
    pass


def test_refuses_what_it_cannot_batch() -> None:
    with pytest.raises(ConfigError, match=r"steps\[0\] is a _Custom"):
        BatchedViewTransform(ViewTransform([_Custom()]))
    with pytest.raises(ConfigError, match="_FlipSubclass"):
        BatchedViewTransform(ViewTransform([_FlipSubclass()]))
    with pytest.raises(ConfigError, match="VICRegLTransform returns more than its views"):
        BatchedMultiViewTransform(VICRegLTransform())
    with pytest.raises(ConfigError, match=r"transforms\[1\] is a function"):
        BatchedMultiViewTransform([SimCLRViewTransform(), lambda img: img])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="params has 1 entries"):
        BatchedViewTransform(SimCLRViewTransform()).apply(images(), (None,))


def test_ninety_degree_rotation_of_non_square_images_cannot_mix() -> None:
    bview = BatchedViewTransform(ViewTransform([RandomRotate(prob=0.5)]))
    with pytest.raises(DataError, match="cannot mix rotated and unrotated"):
        bview(images(n=32), torch.Generator().manual_seed(0))
    always = BatchedViewTransform(ViewTransform([RandomRotate(prob=1.0)]))
    assert always(images(n=2)).shape == (2, 3, SIZE[1], SIZE[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_views_match_cpu_views() -> None:
    batched = BatchedMultiViewTransform(METHODS["dino"]())
    x = images(torch.uint8)
    params: list[Any] = batched.sample_batch(x.shape[0], SIZE, torch.Generator().manual_seed(6))
    cpu = batched.apply(x, params)
    gpu = batched.apply(x.cuda(), params)
    for a, b in zip(cpu, gpu, strict=True):
        assert b.device.type == "cuda"
        assert_views_close(b.cpu(), a)


def test_crops_drawn_in_original_sizes_are_the_per_image_crops_mapped() -> None:
    """Per-sample original sizes: the same crops as per-image draws on each original, mapped."""
    from selfsup.transforms.random_resized_crop import sample_crop, sample_crop_batch

    sizes = torch.tensor([[40, 48], [28, 28], [300, 20], [5, 7]])
    g = torch.Generator().manual_seed(5)
    boxes = sample_crop_batch(4, sizes, (0.08, 1.0), (3 / 4, 4 / 3), g)
    g = torch.Generator().manual_seed(5)
    expected = [sample_crop((h, w), (0.08, 1.0), (3 / 4, 4 / 3), g) for h, w in sizes.tolist()]
    assert boxes.tolist() == [[p.top, p.left, p.height, p.width] for p in expected]
    # Resized by exact factors, boxes scale by them; a shrunk box keeps at least one pixel.
    mapped = map_boxes(boxes[:2], sizes[:2], (80, 96))
    assert mapped[0].tolist() == [2 * v for v in boxes[0].tolist()[:1]] + [
        2 * boxes[0, 1].item(),
        2 * boxes[0, 2].item(),
        2 * boxes[0, 3].item(),
    ]
    tiny = map_boxes(torch.tensor([[0, 0, 1, 1]]), torch.tensor([[1000, 1000]]), (32, 32))
    assert tiny.tolist() == [[0, 0, 1, 1]]
    with pytest.raises(ConfigError, match=r"int \(2, 2\)"):
        sample_crop_batch(2, sizes.float()[:2], (0.08, 1.0), (3 / 4, 4 / 3))


def test_original_sizes_give_the_per_image_crop_distribution() -> None:
    """A 60x20 image resized to a 128x64 source: the crops' share of the image and their
    aspect ratio in original pixels follow the per-image draws on the 60x20 original (a
    source at least as large as the original moves an edge by under half an original pixel)."""
    from scipy import stats

    view = SimCLRViewTransform(input_size=16)
    bview = BatchedViewTransform(view)
    n = 2000
    original = torch.tensor([[60, 20]]).expand(n, 2)
    boxes = bview.sample_batch(n, (128, 64), torch.Generator().manual_seed(6), original)[0]
    g = torch.Generator().manual_seed(7)
    per = crop_boxes([view.steps[0].get_params((60, 20), g) for _ in range(n)])
    batched_share = (boxes[:, 2] * boxes[:, 3]).double() / (128 * 64)
    per_share = (per[:, 2] * per[:, 3]).double() / (60 * 20)
    assert stats.ks_2samp(batched_share.numpy(), per_share.numpy()).pvalue > 1e-3
    batched_aspect = (boxes[:, 3] * 20 / 64) / (boxes[:, 2] * 60 / 128)
    per_aspect = per[:, 3].double() / per[:, 2].double()
    assert stats.ks_2samp(batched_aspect.numpy(), per_aspect.numpy()).pvalue > 1e-3
    with pytest.raises(ConfigError, match="starts with RandomHorizontalFlip"):
        BatchedViewTransform(ViewTransform([RandomHorizontalFlip()])).sample_batch(
            2, (8, 8), None, torch.tensor([[8, 8], [8, 8]])
        )
