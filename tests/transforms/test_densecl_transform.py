"""DenseCLTransform is MoCo v2's transform under DenseCL's name (the paper's augmentations)."""

from __future__ import annotations

import inspect

import torch

from _transform_contract import check_transform_contract
from selfsup.transforms import DenseCLTransform, MoCoV2Transform


def test_same_arguments_and_views_as_moco_v2() -> None:
    assert inspect.signature(DenseCLTransform) == inspect.signature(MoCoV2Transform)
    image = torch.rand(3, 24, 32)
    dense = DenseCLTransform(input_size=16)(image, generator=torch.Generator().manual_seed(0))
    moco = MoCoV2Transform(input_size=16)(image, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(dense, moco, strict=True))


def test_transform_contract() -> None:
    check_transform_contract(DenseCLTransform(input_size=16), n_views=2, size=16)
