"""Colour jitter and grayscale against their formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.errors import ConfigError
from selfsup.transforms import ColorJitterParams, RandomColorJitter, RandomGrayscale


def gray(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601-2 luma, shape (1, H, W).

    torchvision uses 0.2989 for red, so comparisons allow 1e-4 of slack (2e-4).
    """
    return (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).unsqueeze(0)


def params(**factors: float | None) -> ColorJitterParams:
    values: dict[str, float | None] = {"brightness": None, "contrast": None, "saturation": None}
    values["hue"] = None
    values.update(factors)
    return ColorJitterParams(applied=True, order=(0, 1, 2, 3), **values)


def test_brightness_is_scaling_then_clamp(float_image: torch.Tensor) -> None:
    out = RandomColorJitter(prob=1.0, brightness=0.5).apply(float_image, params(brightness=1.4))
    torch.testing.assert_close(out, (float_image * 1.4).clamp(0, 1))


def test_saturation_blends_with_gray(float_image: torch.Tensor) -> None:
    out = RandomColorJitter(prob=1.0, saturation=0.5).apply(float_image, params(saturation=0.3))
    expected = (0.3 * float_image + 0.7 * gray(float_image)).clamp(0, 1)
    torch.testing.assert_close(out, expected, atol=2e-4, rtol=0)


def test_contrast_blends_with_mean_gray(float_image: torch.Tensor) -> None:
    out = RandomColorJitter(prob=1.0, contrast=0.5).apply(float_image, params(contrast=1.3))
    expected = (1.3 * float_image - 0.3 * gray(float_image).mean()).clamp(0, 1)
    torch.testing.assert_close(out, expected, atol=2e-4, rtol=0)


def test_hue_half_turn_maps_red_to_cyan() -> None:
    red = torch.zeros(3, 4, 4)
    red[0] = 1.0
    out = RandomColorJitter(prob=1.0, hue=0.5).apply(red, params(hue=0.5))
    cyan = torch.zeros(3, 4, 4)
    cyan[1:] = 1.0
    torch.testing.assert_close(out, cyan, atol=1e-5, rtol=0)


def test_sampled_factors_lie_in_their_ranges() -> None:
    jitter = RandomColorJitter(prob=0.8, brightness=1.5, contrast=0.3, saturation=0.6, hue=0.2)
    g = torch.Generator().manual_seed(0)
    draws = [jitter.get_params((8, 8), g) for _ in range(300)]
    for p in draws:
        assert sorted(p.order) == [0, 1, 2, 3]
        assert p.brightness is not None
        assert 0.0 <= p.brightness <= 2.5
        assert p.contrast is not None
        assert 0.7 <= p.contrast <= 1.3
        assert p.saturation is not None
        assert 0.4 <= p.saturation <= 1.6
        assert p.hue is not None
        assert -0.2 <= p.hue <= 0.2
    assert 0.72 < np.mean([p.applied for p in draws]) < 0.88
    assert len({p.order for p in draws}) > 10


def test_zero_strength_is_identity_and_skipped(float_image: torch.Tensor) -> None:
    jitter = RandomColorJitter(prob=1.0)
    p = jitter.get_params((24, 32))
    assert (p.brightness, p.contrast, p.saturation, p.hue) == (None, None, None, None)
    assert torch.equal(jitter.apply(float_image, p), float_image)


def test_probability_zero_never_changes_the_image(float_image: torch.Tensor) -> None:
    jitter = RandomColorJitter(prob=0.0, brightness=0.8, hue=0.2)
    g = torch.Generator().manual_seed(0)
    assert all(jitter(float_image, generator=g) is float_image for _ in range(20))


def test_pil_and_uint8_inputs_keep_their_type(pil_image: Image.Image) -> None:
    jitter = RandomColorJitter(prob=1.0, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)
    assert isinstance(jitter(pil_image), Image.Image)
    u8 = torch.from_numpy(np.array(pil_image)).permute(2, 0, 1)
    assert jitter(u8).dtype == torch.uint8


def test_jitter_does_not_mutate_and_is_reproducible(float_image: torch.Tensor) -> None:
    jitter = RandomColorJitter(prob=0.8, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2)
    before = float_image.clone()
    a = jitter(float_image, generator=torch.Generator().manual_seed(5))
    b = jitter(float_image, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert torch.equal(float_image, before)


def test_grayscale_matches_luma_in_every_channel(float_image: torch.Tensor) -> None:
    out = RandomGrayscale(prob=1.0)(float_image)
    assert out.shape == float_image.shape
    expected = gray(float_image).expand(3, -1, -1)
    torch.testing.assert_close(out, expected, atol=2e-4, rtol=0)


def test_grayscale_pil_keeps_three_channels(pil_image: Image.Image) -> None:
    out = RandomGrayscale(prob=1.0)(pil_image)
    arr = np.asarray(out)
    assert out.mode == "RGB"
    assert np.array_equal(arr[..., 0], arr[..., 1])
    assert np.array_equal(arr[..., 1], arr[..., 2])


def test_grayscale_probability(float_image: torch.Tensor) -> None:
    g = torch.Generator().manual_seed(0)
    assert RandomGrayscale(prob=0.0)(float_image, generator=g) is float_image
    rate = np.mean([RandomGrayscale(prob=0.2).get_params((4, 4), g) for _ in range(1000)])
    assert 0.15 < rate < 0.25


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"prob": 2.0}, "prob"),
        ({"brightness": -0.1}, "brightness"),
        ({"contrast": float("nan")}, "contrast"),
        ({"saturation": "0.4"}, "saturation"),
        ({"hue": 0.6}, "hue"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        RandomColorJitter(**kwargs)  # type: ignore[arg-type]


def test_grayscale_bad_probability() -> None:
    with pytest.raises(ConfigError, match="prob"):
        RandomGrayscale(prob=-1)
