"""Batched views of the method transforms against their per-image views.

For the same parameters the batched view equals the per-image float path up to float rounding
(the steps' tolerances, amplified by normalisation's division by std ~0.22): ``ATOL`` = 2e-4 on
all but a ``1e-4`` fraction of the values (a value that lands within rounding of the
solarisation threshold may flip). A uint8 batch gives exactly the float batch's views.
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
from selfsup.transforms.batched_view import BatchedMultiViewTransform, BatchedViewTransform

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
    assert torch.equal(
        torch.cat([v.flatten() for v in batched.apply(images(torch.uint8), params)]),
        torch.cat([v.flatten() for v in views]),
    )


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
