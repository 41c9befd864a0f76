"""DeviceViews: a method transform's views made from uint8 source batches.

Checked: which registered methods run batched (and the reason for the others), SimCLR's
``collate.*`` keys keeping their meaning on the batched path (same steps and parameters, the
same flag frequencies as the per-image collate function), views of a source batch against
the per-image views of the originals, and the collate of the source samples.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from selfsup.data.collate import ImageCollateFunction
from selfsup.errors import ConfigError, DataError
from selfsup.methods import get_method, method_names
from selfsup.transforms import (
    RandomHorizontalFlip,
    SimCLRTransform,
    VICRegLTransform,
    ViewTransform,
)
from selfsup.transforms.batched_view import map_boxes
from selfsup.transforms.color import RandomColorJitter
from selfsup.transforms.device_views import (
    SOURCE_SCALE,
    DeviceViews,
    SourceCollate,
    device_views_for,
    is_source_batch,
    unbatchable_reason,
)

#: Methods whose transform has a step without a batched form or returns more than views.
PER_IMAGE = {"vicregl", "detcons", "detconb"}


def test_registered_methods_that_run_on_the_device() -> None:
    batched = {
        name
        for name in method_names()
        if unbatchable_reason(get_method(name).build_transform(32)) is None
    }
    assert set(method_names()) - batched == PER_IMAGE
    reason = unbatchable_reason(VICRegLTransform(global_crop_size=32, local_crop_size=16))
    assert reason is not None
    assert "returns more than its views" in reason
    assert "starts with RandomHorizontalFlip" in str(
        unbatchable_reason([ViewTransform([RandomHorizontalFlip()])])
    )
    with pytest.raises(ConfigError, match="cannot make its views on the device"):
        DeviceViews(VICRegLTransform(global_crop_size=32, local_crop_size=16))


def _collate_keys() -> dict[str, Any]:
    """Non-default values of lightly's collate keys (the CLI's collate.* section)."""
    return {
        "input_size": 24,
        "cj_prob": 0.6,
        "cj_bright": 0.3,
        "cj_contrast": 0.5,
        "cj_sat": 0.2,
        "cj_hue": 0.1,
        "min_scale": 0.3,
        "random_gray_scale": 0.4,
        "gaussian_blur": 0.25,
        "kernel_size": 0.1,
        "sigmas": (0.5, 1.5),
        "vf_prob": 0.3,
        "hf_prob": 0.7,
        "rr_prob": 0.2,
        "normalize": {"mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]},
    }


def test_simclr_collate_keys_keep_their_meaning_on_the_device() -> None:
    collate = ImageCollateFunction(**_collate_keys())
    device_views, reason = device_views_for([collate.transform] * 2)
    assert reason is None
    assert device_views is not None
    assert device_views.source_size == SOURCE_SCALE * 24
    view = device_views.batched.views[0].view
    assert view is collate.transform  # the same steps with the same parameters
    # Batched draws follow the per-image collate's: flags at the keys' rates, crop areas
    # (of the original image) at least min_scale.
    n = 3000
    params = device_views.batched.views[0].sample_batch(
        n, (48, 48), torch.Generator().manual_seed(0), torch.tensor([[40, 40]]).expand(n, 2)
    )
    g = torch.Generator().manual_seed(1)
    per = [collate.transform.get_params((40, 40), g) for _ in range(n)]
    steps = [type(step).__name__ for step in view.steps]
    for index, name in enumerate(steps):
        if name == "RandomResizedCrop":
            share = (params[index][:, 2] * params[index][:, 3]).double() / (48 * 48)
            assert float(share.min()) >= 0.3 - 0.05
            continue
        batch_flag = params[index] if isinstance(params[index], torch.Tensor) else None
        if batch_flag is None:
            batch_flag = params[index].applied
            per_flag = torch.tensor([p[index].applied for p in per])
        else:
            per_flag = torch.tensor([bool(p[index]) for p in per])
        rate, per_rate = float(batch_flag.double().mean()), float(per_flag.double().mean())
        assert abs(rate - per_rate) < 0.05, (name, rate, per_rate)
    jitter = next(s for s in view.steps if isinstance(s, RandomColorJitter))
    assert (jitter.prob, jitter.brightness, jitter.hue) == (0.6, 0.3, 0.1)


def test_views_of_a_source_batch_match_the_per_image_views_of_the_originals() -> None:
    """The same parameters (crops drawn on the 48x40 originals, mapped onto a 96x96 source)
    give views of the source equal to the per-image views of the originals up to the second
    resampling (smooth images: a mean difference under 2 % of the value range)."""
    g = torch.Generator().manual_seed(2)
    coarse = torch.rand((8, 3, 6, 5), generator=g) * 255
    originals = torch.nn.functional.interpolate(coarse, size=(48, 40), mode="bilinear")
    originals = originals.round().clamp(0, 255).to(torch.uint8)
    source = torch.nn.functional.interpolate(
        originals.float(), size=(96, 96), mode="bilinear", antialias=True
    )
    source = source.round().clamp(0, 255).to(torch.uint8)
    views = DeviceViews(SimCLRTransform(input_size=16, normalize=None), source_size=96)
    sizes = torch.tensor([[48, 40]]).expand(8, 2)
    for bview in views.batched.views:
        per_params = [bview.view.get_params((48, 40), g) for _ in range(8)]
        params = list(bview.params_from_views(per_params))
        params[0] = map_boxes(params[0], sizes, (96, 96))
        batched = bview.apply(source, tuple(params))
        per_image = torch.stack(
            [bview.view.apply(img, p) for img, p in zip(originals, per_params, strict=True)]
        )
        assert batched.shape == per_image.shape == (8, 3, 16, 16)
        assert float((batched - per_image).abs().mean()) < 0.02
    out = views(source, sizes, torch.Generator().manual_seed(3))
    assert [tuple(v.shape) for v in out] == [(8, 3, 16, 16)] * 2
    assert all(v.dtype == torch.float32 for v in out)


def test_device_views_check_their_inputs() -> None:
    views = DeviceViews(SimCLRTransform(input_size=8))
    with pytest.raises(DataError, match="uint8"):
        views(torch.rand(2, 3, 16, 16), torch.tensor([[16, 16], [16, 16]]))
    with pytest.raises(DataError, match=r"int \(2, 2\)"):
        views(torch.zeros(2, 3, 16, 16, dtype=torch.uint8), torch.tensor([16, 16]))
    with pytest.raises(ConfigError, match="source_size"):
        DeviceViews(SimCLRTransform(input_size=8), source_size=0)


def test_source_collate_stacks_samples_into_a_source_batch() -> None:
    views = DeviceViews(SimCLRTransform(input_size=8))
    collate = SourceCollate(views)
    samples = [
        (torch.zeros(3, 16, 16, dtype=torch.uint8), torch.tensor([20, 30]), 1, "a.png"),
        (torch.ones(3, 16, 16, dtype=torch.uint8), torch.tensor([16, 16]), 0, "b.png"),
    ]
    batch = collate(samples)
    assert is_source_batch(batch)
    images, sizes, labels, names = batch
    assert images.shape == (2, 3, 16, 16)
    assert sizes.tolist() == [[20, 30], [16, 16]]
    assert labels.tolist() == [1, 0]
    assert names == ["a.png", "b.png"]
    assert collate.views is views
    with pytest.raises(DataError, match="uint8"):
        collate([(torch.zeros(3, 4, 4), torch.tensor([4, 4]), 0, "c.png")] * 2)
