"""ViewTransform: parameter replay, batched application, tensor conversion, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.errors import ConfigError, DataError
from selfsup.transforms import (
    IMAGENET_NORMALIZE,
    RandomHorizontalFlip,
    RandomResizedCrop,
    SimCLRViewTransform,
    ViewTransform,
)
from selfsup.transforms.view_transform import to_float_tensor

MEAN = torch.tensor(IMAGENET_NORMALIZE["mean"]).view(3, 1, 1)
STD = torch.tensor(IMAGENET_NORMALIZE["std"]).view(3, 1, 1)


def test_call_equals_apply_of_get_params(pil_image: Image.Image) -> None:
    view = SimCLRViewTransform(input_size=16)
    a = view(pil_image, generator=torch.Generator().manual_seed(3))
    params = view.get_params((24, 32), torch.Generator().manual_seed(3))
    b = view.apply(pil_image, params)
    assert torch.equal(a, b)
    assert a.shape == (3, 16, 16)
    assert a.dtype == torch.float32


def test_changing_one_probability_keeps_the_other_draws() -> None:
    """Fixed draws per step: only the flip decision differs between these two pipelines."""
    size = (24, 32)
    p0 = SimCLRViewTransform(input_size=16, hf_prob=0.0).get_params(
        size, torch.Generator().manual_seed(9)
    )
    p1 = SimCLRViewTransform(input_size=16, hf_prob=1.0).get_params(
        size, torch.Generator().manual_seed(9)
    )
    assert (p0[2], p1[2]) == (False, True)
    assert p0[:2] == p1[:2]
    assert p0[3:] == p1[3:]


def test_apply_batch_equals_per_sample_apply() -> None:
    view = SimCLRViewTransform(input_size=8, normalize=None)
    images = torch.rand(3, 3, 12, 12)
    g = torch.Generator().manual_seed(0)
    params = [view.get_params((12, 12), g) for _ in range(3)]
    batch = view.apply_batch(images, params)
    assert batch.shape == (3, 3, 8, 8)
    for i in range(3):
        assert torch.equal(batch[i], view.apply(images[i], params[i]))
    with pytest.raises(DataError, match="len\\(params\\)"):
        view.apply_batch(images, params[:2])


def test_normalisation_is_per_channel_standardisation(float_image: torch.Tensor) -> None:
    view = ViewTransform(steps=[], normalize=IMAGENET_NORMALIZE)
    torch.testing.assert_close(view(float_image), (float_image - MEAN) / STD)


@pytest.mark.parametrize("off", [None, False, {}])
def test_normalisation_can_be_disabled(float_image: torch.Tensor, off: object) -> None:
    view = ViewTransform(steps=[], normalize=off)  # type: ignore[arg-type]
    out = view(float_image)
    assert torch.equal(out, float_image)
    assert out is not float_image  # a copy: callers may modify views freely


def test_to_float_tensor_conversions(pil_image: Image.Image) -> None:
    from_pil = to_float_tensor(pil_image)
    expected = torch.from_numpy(np.array(pil_image)).permute(2, 0, 1).float() / 255
    assert torch.equal(from_pil, expected)
    u8 = (expected * 255).round().to(torch.uint8)
    torch.testing.assert_close(to_float_tensor(u8), expected)
    with pytest.raises(DataError, match="int32"):
        to_float_tensor(torch.zeros(3, 2, 2, dtype=torch.int32))


def test_channel_mismatch_is_reported() -> None:
    view = ViewTransform(steps=[], normalize=IMAGENET_NORMALIZE)
    with pytest.raises(DataError, match="channels"):
        view(torch.rand(1, 4, 4))


@pytest.mark.parametrize(
    ("normalize", "match"),
    [
        ({"mean": [0.5, 0.5, 0.5]}, "missing"),
        ({"mean": [0.5], "std": [0.5], "var": [1.0]}, "unknown"),
        ({"mean": [0.5, 0.5], "std": [0.5]}, "mean"),
        ({"mean": [0.5], "std": [0.0]}, "std"),
        ({"mean": "0.5", "std": [0.5]}, "mean"),
        ([0.5, 0.5], "normalize"),
    ],
)
def test_bad_normalize_is_reported(normalize: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ViewTransform(steps=[], normalize=normalize)  # type: ignore[arg-type]


def test_steps_must_be_random_transforms() -> None:
    with pytest.raises(ConfigError, match="steps\\[1\\]"):
        ViewTransform(steps=[RandomHorizontalFlip(), lambda x: x])  # type: ignore[list-item]


def test_params_must_match_steps(float_image: torch.Tensor) -> None:
    view = ViewTransform(steps=[RandomResizedCrop(8), RandomHorizontalFlip()])
    with pytest.raises(ConfigError, match="2 steps"):
        view.apply(float_image, (False,))


def test_tensor_pipeline_keeps_device_and_does_not_mutate(float_image: torch.Tensor) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = float_image.to(device)
    before = x.clone()
    view = SimCLRViewTransform(input_size=16, gaussian_blur=1.0, rr_prob=0.5)
    out = view(x)
    assert out.device == x.device
    assert torch.equal(x, before)
