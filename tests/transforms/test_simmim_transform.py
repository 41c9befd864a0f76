"""SimMIMTransform: one bicubic crop of scale (0.67, 1.0) with a flip, normalised, in a list.

The view size, seeding and argument errors are checked with the other crop + flip method
transforms in test_crop_flip_transform.py.
"""

from __future__ import annotations

from selfsup.transforms import RandomHorizontalFlip, RandomResizedCrop, SimMIMTransform


def test_steps_are_the_papers() -> None:
    crop, flip = SimMIMTransform().view.steps
    assert isinstance(crop, RandomResizedCrop)
    assert (crop.size, crop.scale, crop.interpolation) == ((224, 224), (0.67, 1.0), "bicubic")
    assert crop.ratio == (3 / 4, 4 / 3)
    assert isinstance(flip, RandomHorizontalFlip)
    assert flip.prob == 0.5
