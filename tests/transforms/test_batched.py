"""Batched augmentation functions against the per-image steps and torchvision.transforms.v2.

Tolerances (stated in :mod:`selfsup.transforms.batched`):

* flips, 90-degree rotation, grayscale, solarisation, normalisation: exactly equal;
* resized crop, Gaussian blur, colour jitter: float outputs within ``FLOAT_ATOL`` = 1e-5, uint8
  outputs at most 1 apart on at most ``UINT8_FRACTION`` = 1% of the values;
* arbitrary-angle rotation (nearest neighbour): at most 0.5% of the values differ (ties).

The parameter samplers' ``sample_batch`` is checked against ``get_params`` by two-sample
Kolmogorov-Smirnov tests (continuous parameters) and by proportions (coin flips, permutations),
with fixed seeds.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torchvision.transforms.v2.functional as F2
from scipy import stats

from selfsup.errors import DataError
from selfsup.transforms import (
    GaussianBlur,
    RandomColorJitter,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotate,
    RandomRotateDegrees,
    RandomSolarization,
    RandomTransform,
    RandomVerticalFlip,
    SimCLRViewTransform,
)
from selfsup.transforms import batched as B
from selfsup.transforms.batched_view import BatchedViewTransform
from selfsup.transforms.color import ColorJitterBatch, ColorJitterParams
from selfsup.transforms.gaussian_blur import GaussianBlurBatch
from selfsup.transforms.random_resized_crop import sample_crop_batch
from selfsup.transforms.rotation import RotationBatch

FLOAT_ATOL = 1e-5
UINT8_FRACTION = 0.01
SIZE = (40, 48)
N = 12
DTYPES = [torch.uint8, torch.float32]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def batch(
    dtype: torch.dtype, n: int = N, size: tuple[int, int] = SIZE, seed: int = 0
) -> torch.Tensor:
    """Random images ``(n, 3, H, W)``: uint8, or float in [0, 1] (multiples of 1/255)."""
    g = torch.Generator().manual_seed(seed)
    u8 = torch.randint(0, 256, (n, 3, *size), dtype=torch.uint8, generator=g)
    return u8 if dtype == torch.uint8 else u8.to(dtype) / 255.0


def assert_close(
    actual: torch.Tensor,
    expected: torch.Tensor,
    exact: bool = False,
    uint8_fraction: float = UINT8_FRACTION,
) -> None:
    """Equal within the tolerances of the module docstring (exactly when ``exact``)."""
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    if exact:
        assert torch.equal(actual, expected)
        return
    diff = (actual.double() - expected.double()).abs()
    if expected.dtype == torch.uint8:
        assert float(diff.max()) <= 1.0
        assert float((diff > 0).double().mean()) <= uint8_fraction
    else:
        assert float(diff.max()) <= FLOAT_ATOL


def per_image(step: RandomTransform[Any], images: torch.Tensor, params: list[Any]) -> torch.Tensor:
    return torch.stack([step.apply(img, p) for img, p in zip(images, params, strict=True)])


def draw(step: RandomTransform[Any], n: int = N, seed: int = 1) -> list[Any]:
    g = torch.Generator().manual_seed(seed)
    return [step.get_params(SIZE, g) for _ in range(n)]


def v2_each(
    fn: Callable[[torch.Tensor, Any], torch.Tensor], images: torch.Tensor, params: list[Any]
) -> torch.Tensor:
    return torch.stack([fn(img, p) for img, p in zip(images, params, strict=True)])


def mask_of(params: list[Any]) -> torch.Tensor:
    return torch.tensor([bool(p) for p in params], dtype=torch.bool)


@pytest.mark.parametrize("dtype", DTYPES)
def test_flips_equal_per_image_and_v2_exactly(dtype: torch.dtype) -> None:
    images = batch(dtype)
    for step, fn, ref in (
        (RandomHorizontalFlip(0.5), B.hflip, F2.horizontal_flip),
        (RandomVerticalFlip(0.5), B.vflip, F2.vertical_flip),
    ):
        params = draw(step)
        out = fn(images, mask_of(params))
        assert_close(out, per_image(step, images, params), exact=True)
        flipped = torch.stack(
            [ref(img) if p else img for img, p in zip(images, params, strict=True)]
        )
        assert_close(out, flipped, exact=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rotate90_equals_per_image_exactly(dtype: torch.dtype) -> None:
    images = batch(dtype, size=(32, 32))
    for angle in (90, 180, 270):
        step = RandomRotate(0.5, angle=angle)
        params = draw(step)
        out = B.rotate90(images, mask_of(params), angle // 90)
        assert_close(out, per_image(step, images, params), exact=True)


def test_rotate90_refuses_mixing_shapes_of_a_non_square_batch() -> None:
    images = batch(torch.uint8, n=2)
    with pytest.raises(DataError, match="cannot mix"):
        B.rotate90(images, torch.tensor([True, False]))
    assert B.rotate90(images, torch.tensor([True, True])).shape == (2, 3, SIZE[1], SIZE[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_rotate_degrees_matches_per_image_up_to_ties(dtype: torch.dtype) -> None:
    images = batch(dtype)
    step = RandomRotateDegrees(0.7, 45)
    params = draw(step)
    out = B.rotate(images, RotationBatch.from_params(params))
    expected = v2_each(lambda x, p: F2.rotate(x, p) if p is not None else x, images, params)
    assert torch.equal(per_image(step, images, params), expected)
    assert out.dtype == dtype
    assert float((out != expected).double().mean()) <= 0.005


@pytest.mark.parametrize("dtype", DTYPES)
def test_grayscale_and_solarize_equal_per_image_exactly(dtype: torch.dtype) -> None:
    images = batch(dtype)
    gray = RandomGrayscale(0.5)
    params = draw(gray)
    out = B.grayscale(images, mask_of(params))
    assert_close(out, per_image(gray, images, params), exact=True)
    for threshold in (0.0, 100.0, 128.0, 200.5):
        sol = RandomSolarization(0.5, threshold=threshold)  # type: ignore[arg-type]
        params = draw(sol, seed=int(threshold))
        out = B.solarize(images, mask_of(params), threshold)
        assert_close(out, per_image(sol, images, params), exact=True)
    v2_threshold = 128.0 if dtype == torch.uint8 else 128.0 / 255.0
    params = draw(RandomSolarization(0.5))
    expected = v2_each(lambda x, p: F2.solarize(x, v2_threshold) if p else x, images, params)
    assert_close(B.solarize(images, mask_of(params), 128.0), expected, exact=True)


def test_normalize_equals_v2_exactly() -> None:
    images = batch(torch.float32)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    expected = F2.normalize(images, mean, std)
    assert_close(B.normalize(images, mean, std), expected, exact=True)
    with pytest.raises(DataError, match="to_float"):
        B.normalize(batch(torch.uint8), mean, std)
    with pytest.raises(DataError, match="one value per channel"):
        B.normalize(images, mean[:2], std[:2])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
@pytest.mark.parametrize("out_size", [(24, 24), (96, 80)])
def test_resized_crop_matches_per_image_and_v2(
    dtype: torch.dtype, interpolation: str, out_size: tuple[int, int]
) -> None:
    """CPU: float crops equal the per-image step; uint8 crops equal v2's fixed-point resampling
    (PIL's arithmetic) exactly, and the per-image step's float round trip within 1 of 255 for
    bilinear. The GPU's matrix form is compared with the CPU in test_cuda_matches_cpu."""
    images = batch(dtype)
    step = RandomResizedCrop(out_size, interpolation=interpolation)
    params = draw(step)
    out = B.resized_crop(images, B.crop_boxes(params), out_size, interpolation)
    mode = F2.InterpolationMode(interpolation)
    expected = v2_each(
        lambda x, p: F2.resized_crop(
            x, p.top, p.left, p.height, p.width, list(out_size), interpolation=mode, antialias=True
        ),
        images,
        params,
    )
    reference = per_image(step, images, params)
    if dtype == torch.float32:
        assert_close(out, reference)
        assert_close(out, expected)
        return
    assert_close(out, expected, exact=True)
    if interpolation != "bicubic":
        # The per-image step resamples uint8 in float and rounds once: often 1 off, never more.
        assert_close(out, reference, uint8_fraction=1.0)


def test_resized_crop_matrix_form_matches_the_per_crop_form() -> None:
    """The batched matrix form (what a GPU runs) equals the per-crop kernel on float images."""
    images = batch(torch.float32)
    for interpolation in ("bilinear", "bicubic", "nearest"):
        step = RandomResizedCrop((20, 28), interpolation=interpolation)
        boxes = B.crop_boxes(draw(step))
        top, left, box_h, box_w = boxes.unbind(1)
        w_y = B._resample_matrix(top, box_h, 20, SIZE[0], interpolation).float().unsqueeze(1)
        w_x = B._resample_matrix(left, box_w, 28, SIZE[1], interpolation).float()
        matrix = w_y @ images @ w_x.transpose(1, 2).unsqueeze(1)
        assert_close(matrix, B.resized_crop(images, boxes, (20, 28), interpolation))


def test_resized_crop_refuses_boxes_outside_the_image() -> None:
    images = batch(torch.float32, n=2)
    boxes = torch.tensor([[0, 0, 10, 10], [35, 0, 10, 10]])
    with pytest.raises(DataError, match=r"box \[35, 0, 10, 10\] of image 1"):
        B.resized_crop(images, boxes, (8, 8))
    with pytest.raises(DataError, match="parameters are for 1"):
        B.resized_crop(images, boxes[:1], (8, 8))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel_size", [None, 0.3, 5])
def test_gaussian_blur_matches_per_image_and_v2(
    dtype: torch.dtype, kernel_size: float | int | None
) -> None:
    images = batch(dtype)
    step = GaussianBlur(kernel_size=kernel_size, prob=0.7, sigmas=(0.1, 3.0))
    params = draw(step)
    out = B.gaussian_blur(images, GaussianBlurBatch.from_params(params))
    assert_close(out, per_image(step, images, params))
    expected = v2_each(
        lambda x, p: F2.gaussian_blur(x, [p.kernel_size] * 2, [p.sigma] * 2) if p.applied else x,
        images,
        params,
    )
    assert_close(out, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "strengths",
    [
        (0.8, 0.8, 0.8, 0.2),
        (0.8, 0.0, 0.0, 0.0),
        (0.0, 0.8, 0.0, 0.0),
        (0.0, 0.0, 0.8, 0.0),
        (0.0, 0.0, 0.0, 0.5),
    ],
)
def test_color_jitter_matches_per_image(dtype: torch.dtype, strengths: tuple[float, ...]) -> None:
    images = batch(dtype, n=16)
    step = RandomColorJitter(0.8, *strengths)
    params = draw(step, n=16)
    out = B.color_jitter(images, ColorJitterBatch.from_params(params))
    assert_close(out, per_image(step, images, params))


def test_color_jitter_follows_each_images_order() -> None:
    """Brightness then contrast differs from contrast then brightness; each image keeps its own."""
    images = batch(torch.float32, n=1)
    # Without clamping the two commute; a strong brightening clamps first, so they do not.
    bright, contrast = 1.9, 0.3
    params = [
        ColorJitterParams(True, (0, 1, 2, 3), bright, contrast, None, None),
        ColorJitterParams(True, (1, 0, 2, 3), bright, contrast, None, None),
    ]
    same_image = torch.stack([images[0], images[0]])
    out = B.color_jitter(same_image, ColorJitterBatch.from_params(params))
    brightness_first = F2.adjust_contrast(F2.adjust_brightness(images[0], bright), contrast)
    contrast_first = F2.adjust_brightness(F2.adjust_contrast(images[0], contrast), bright)
    assert torch.allclose(out[0], brightness_first, atol=FLOAT_ATOL)
    assert torch.allclose(out[1], contrast_first, atol=FLOAT_ATOL)
    assert not torch.allclose(out[0], out[1], atol=1e-2)


def test_color_jitter_and_grayscale_leave_single_channel_hue_and_saturation() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.rand((4, 1, 8, 8), generator=g)
    params = RandomColorJitter(1.0, saturation=0.9, hue=0.4).sample_batch(4, (8, 8), g)
    assert torch.equal(B.color_jitter(images, params), images)
    assert torch.equal(B.grayscale(images, torch.ones(4, dtype=torch.bool)), images)


def all_functions(images: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every batched function applied to ``images`` with parameters drawn from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    n, size = int(images.shape[0]), (int(images.shape[-2]), int(images.shape[-1]))
    coin = RandomHorizontalFlip(0.5)
    out = {
        "resized_crop": B.resized_crop(
            images, RandomResizedCrop(16).sample_batch(n, size, g), (16, 16)
        ),
        "hflip": B.hflip(images, coin.sample_batch(n, size, g)),
        "vflip": B.vflip(images, coin.sample_batch(n, size, g)),
        "rotate90": B.rotate90(images, torch.ones(n, dtype=torch.bool), 2),
        "rotate": B.rotate(images, RandomRotateDegrees(0.5, 30).sample_batch(n, size, g)),
        "color_jitter": B.color_jitter(
            images, RandomColorJitter(0.8, 0.4, 0.4, 0.4, 0.1).sample_batch(n, size, g)
        ),
        "grayscale": B.grayscale(images, coin.sample_batch(n, size, g)),
        "gaussian_blur": B.gaussian_blur(images, GaussianBlur(prob=0.5).sample_batch(n, size, g)),
        "solarize": B.solarize(images, coin.sample_batch(n, size, g)),
    }
    if images.is_floating_point():
        out["normalize"] = B.normalize(images, [0.5] * 3, [0.25] * 3)
    return out


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
def test_dtype_kept_and_input_not_mutated(dtype: torch.dtype) -> None:
    images = batch(dtype)
    before = images.clone()
    for name, out in all_functions(images).items():
        assert out.dtype == dtype, name
        assert out.device == images.device, name
        assert out.data_ptr() != images.data_ptr(), name
    assert torch.equal(images, before)


def test_to_float() -> None:
    u8 = batch(torch.uint8)
    assert torch.equal(B.to_float(u8), u8.float() / 255.0)
    f = batch(torch.float32)
    out = B.to_float(f)
    assert torch.equal(out, f)
    assert out.data_ptr() != f.data_ptr()
    with pytest.raises(DataError, match="int64"):
        B.to_float(u8.long())


@CUDA
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_matches_cpu(dtype: torch.dtype) -> None:
    images = batch(dtype)
    cpu = all_functions(images)
    gpu = all_functions(images.cuda())
    for name, out in gpu.items():
        assert out.device.type == "cuda", name
        assert out.dtype == dtype, name
        diff = (out.cpu().double() - cpu[name].double()).abs()
        if dtype == torch.uint8:
            assert float(diff.max()) <= 1.0, name
            # uint8 crops: fixed point on the CPU, a float round trip on the GPU (often 1 off).
            fraction = 1.0 if name == "resized_crop" else 0.01
            assert float((diff > 0).double().mean()) <= fraction, name
        elif name == "rotate":
            assert float((diff > 0).double().mean()) <= 0.005, name
        else:
            assert float(diff.max()) <= 1e-4, name


# ---- parameter distributions: sample_batch against get_params ----

DRAWS = 3000


def ks_same(a: list[float] | torch.Tensor, b: list[float] | torch.Tensor) -> None:
    """Two-sample KS test: refuse the same-distribution hypothesis only at p < 1e-3."""
    result = stats.ks_2samp(
        torch.as_tensor(a).double().numpy(), torch.as_tensor(b).double().numpy()
    )
    assert result.pvalue > 1e-3, result


def proportion_same(a: torch.Tensor, b: torch.Tensor) -> None:
    """Two Bernoulli samples of ``DRAWS`` each: proportions within 5 standard errors."""
    pa, pb = float(a.double().mean()), float(b.double().mean())
    p = (pa + pb) / 2
    se = max((2 * p * (1 - p) / DRAWS) ** 0.5, 1e-9)
    assert abs(pa - pb) <= 5 * se + 1e-12, (pa, pb)


def per_image_draws(step: RandomTransform[Any], size: tuple[int, int] = SIZE) -> list[Any]:
    g = torch.Generator().manual_seed(11)
    return [step.get_params(size, g) for _ in range(DRAWS)]


def test_crop_sample_batch_reproduces_get_params_exactly() -> None:
    """Same uniforms in the same order: the batch sampler returns the per-image crops."""
    for size, scale, ratio in (
        (SIZE, (0.08, 1.0), (3 / 4, 4 / 3)),
        ((10, 200), (0.9, 1.0), (3 / 4, 4 / 3)),  # proposals rarely fit: fallback crops
        ((64, 64), (0.14, 1.0), (1.0, 1.0)),
    ):
        step = RandomResizedCrop(8, scale=scale, ratio=ratio)
        g = torch.Generator().manual_seed(5)
        expected = [step.get_params(size, g) for _ in range(300)]
        boxes = sample_crop_batch(
            300, size, step.scale, step.ratio, torch.Generator().manual_seed(5)
        )
        assert torch.equal(boxes, B.crop_boxes(expected))


@pytest.mark.parametrize(
    "step",
    [
        RandomHorizontalFlip(0.3),
        RandomVerticalFlip(0.7),
        RandomRotate(0.5),
        RandomGrayscale(0.2),
        RandomSolarization(0.1),
    ],
    ids=lambda s: type(s).__name__,
)
def test_coin_flip_sample_batch_distribution(step: RandomTransform[Any]) -> None:
    per = mask_of(per_image_draws(step))
    bat = step.sample_batch(DRAWS, SIZE, torch.Generator().manual_seed(12))  # type: ignore[attr-defined]
    assert bat.dtype == torch.bool
    assert bat.shape == (DRAWS,)
    proportion_same(per, bat)


def test_rotation_degrees_sample_batch_distribution() -> None:
    step = RandomRotateDegrees(0.6, (-10, 30))
    per = RotationBatch.from_params(per_image_draws(step))
    bat = step.sample_batch(DRAWS, SIZE, torch.Generator().manual_seed(12))
    proportion_same(per.applied, bat.applied)
    ks_same(per.angle[per.applied], bat.angle[bat.applied])
    assert RotationBatch.from_params(bat.unbind()).applied.equal(bat.applied)


def test_color_jitter_sample_batch_distribution() -> None:
    step = RandomColorJitter(0.8, 0.4, 0.3, 0.2, 0.1)
    per = ColorJitterBatch.from_params(per_image_draws(step))
    bat = step.sample_batch(DRAWS, SIZE, torch.Generator().manual_seed(12))
    proportion_same(per.applied, bat.applied)
    for name in ("brightness", "contrast", "saturation", "hue"):
        ks_same(getattr(per, name), getattr(bat, name))
    perms = list(itertools.permutations(range(4)))
    for perm in perms:  # each of the 24 orders about 1/24 of the time in both
        target = torch.tensor(perm)
        proportion_same((per.order == target).all(1), (bat.order == target).all(1))
    assert {tuple(o) for o in bat.order.tolist()} == set(perms)
    no_hue = RandomColorJitter(1.0, brightness=0.5).sample_batch(5, SIZE)
    assert no_hue.hue is None
    assert no_hue.contrast is None
    assert no_hue.brightness is not None
    assert all(p.hue is None for p in no_hue.unbind())


@pytest.mark.parametrize(
    ("kernel_size", "scale"), [(None, None), (0.1, None), (0.2, 0.3), (7, None)]
)
def test_gaussian_blur_sample_batch_distribution(
    kernel_size: float | None, scale: float | None
) -> None:
    step = GaussianBlur(kernel_size=kernel_size, prob=0.5, scale=scale, sigmas=(0.1, 2.0))
    size = (96, 96)
    per = GaussianBlurBatch.from_params(per_image_draws(step, size))
    bat = step.sample_batch(DRAWS, size, torch.Generator().manual_seed(12))
    proportion_same(per.applied, bat.applied)
    ks_same(per.sigma, bat.sigma)
    ks_same(per.kernel_size.double(), bat.kernel_size.double())
    assert bool((bat.kernel_size % 2 == 1).all())
    assert set(bat.kernel_size.tolist()) <= set(per.kernel_size.tolist()) | set(range(3, 2 * 96, 2))


def test_crop_sample_batch_distribution_of_areas() -> None:
    step = RandomResizedCrop(16)
    per = B.crop_boxes(per_image_draws(step))
    bat = step.sample_batch(DRAWS, SIZE, torch.Generator().manual_seed(12))
    ks_same((per[:, 2] * per[:, 3]).double(), (bat[:, 2] * bat[:, 3]).double())
    ks_same(per[:, 0].double(), bat[:, 0].double())


def test_hue_matches_per_image_on_values_outside_0_1() -> None:
    """A bicubic crop overshoots [0, 1]; the hue step must treat such values as torchvision."""
    g = torch.Generator().manual_seed(7)
    images = torch.rand((8, 3, 12, 12), generator=g) * 1.2 - 0.1
    step = RandomColorJitter(1.0, hue=0.5)
    params = [step.get_params(SIZE, g) for _ in range(8)]
    out = B.color_jitter(images, ColorJitterBatch.from_params(params))
    assert_close(out, per_image(step, images, params))


# ---- speed-motivated forms: hue without selects, chunks on the CPU ----


def test_hue_on_ties_and_grays_matches_v2() -> None:
    """Every pixel of channels from {0, 0.2, 0.6, 1}: two or three channels share the maximum
    or minimum (the cases the sign indicators do not break), grays, primaries, the wheel's
    edges; shifts include the wheel's half turn and an exact sixth."""
    levels = torch.tensor([0.0, 0.2, 0.6, 1.0])
    rgb = torch.cartesian_prod(levels, levels, levels).T.reshape(1, 3, 8, 8)
    shifts = [-0.5, -1.0 / 6.0, -0.05, 0.0, 0.1, 1.0 / 3.0, 0.5]
    images = rgb.expand(len(shifts), -1, -1, -1).contiguous()
    out = B._adjust_hue(images, torch.tensor(shifts, dtype=torch.float64))
    expected = torch.stack([F2.adjust_hue(rgb[0], s) for s in shifts])
    assert_close(out, expected)
    u8 = (images * 255).round().to(torch.uint8)
    out_u8 = B._adjust_hue(u8, torch.tensor(shifts, dtype=torch.float64))
    expected_u8 = torch.stack([F2.adjust_hue(u8[0], s) for s in shifts])
    assert_close(out_u8, expected_u8)


def test_take_rows_slices_every_tensor_field() -> None:
    g = torch.Generator().manual_seed(3)
    params = RandomColorJitter(0.8, 0.4, 0.0, 0.0, 0.1).sample_batch(6, SIZE, g)
    part = B.take_rows(params, slice(2, 5))
    assert torch.equal(part.applied, params.applied[2:5])
    assert torch.equal(part.order, params.order[2:5])
    assert part.brightness is not None
    assert params.brightness is not None
    assert torch.equal(part.brightness, params.brightness[2:5])
    assert part.contrast is None
    boxes = torch.arange(24).view(6, 4)
    assert torch.equal(B.take_rows(boxes, slice(4, 9)), boxes[4:])
    with pytest.raises(DataError, match="got list"):
        B.take_rows([1, 2], slice(0, 1))


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread (a DataLoader worker's): the CPU functions then work in chunks."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_rows_per_chunk_counts_float_bytes_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    images = batch(torch.uint8, n=10, size=(16, 16))  # 3 KB of float32 per image
    monkeypatch.setattr(B, "CHUNK_BYTES", 3 * 16 * 16 * 4 * 3)
    assert B.rows_per_chunk(images) == 3
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert B.rows_per_chunk(images) == 10  # several threads: one chunk
    monkeypatch.undo()
    monkeypatch.setattr(B, "CHUNK_BYTES", 3 * 16 * 16 * 4 * 3)
    assert B.rows_per_chunk(images) == 3
    monkeypatch.setattr(B, "CHUNK_BYTES", 1)
    assert B.rows_per_chunk(images) == 1
    empty = images[:0]
    assert B.rows_per_chunk(empty) == 1
    assert B.hflip(empty, torch.zeros(0, dtype=torch.bool)).shape == empty.shape


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("dtype", DTYPES)
def test_chunks_of_one_image_equal_one_chunk(
    dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Processing the rows one at a time (as at 224 px) gives the whole-batch results."""
    images = batch(dtype)
    monkeypatch.setattr(B, "CHUNK_BYTES", 1 << 30)
    assert B.rows_per_chunk(images) >= N
    whole = all_functions(images)
    monkeypatch.setattr(B, "CHUNK_BYTES", 1)
    assert B.rows_per_chunk(images) == 1
    for name, out in all_functions(images).items():
        assert torch.equal(out, whole[name]), name


@pytest.mark.usefixtures("one_thread")
def test_view_in_chunks_equals_the_whole_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """BatchedViewTransform.apply on the CPU runs chunks of rows (take_rows of every step's
    params); the views equal those of one chunk exactly."""
    view = BatchedViewTransform(SimCLRViewTransform(input_size=16))
    images = batch(torch.uint8)
    params = view.sample_batch(N, SIZE, torch.Generator().manual_seed(4))
    monkeypatch.setattr(B, "CHUNK_BYTES", 1 << 30)
    whole = view.apply(images, params)
    monkeypatch.setattr(B, "CHUNK_BYTES", 3 * SIZE[0] * SIZE[1] * 4 * 5)  # 5 rows: 5, 5, 2
    assert B.rows_per_chunk(images) == 5
    assert torch.equal(view.apply(images, params), whole)
