"""AIMTransform: one crop of scale (0.4, 1), bicubic, with a flip, normalised.

The view size, seeding and argument errors are checked with the other crop + flip method
transforms in test_crop_flip_transform.py.
"""

from __future__ import annotations

from selfsup.transforms import AIMTransform, RandomHorizontalFlip, RandomResizedCrop


def test_steps_are_the_papers() -> None:
    crop, flip = AIMTransform().steps
    assert isinstance(crop, RandomResizedCrop)
    assert (crop.size, crop.scale, crop.interpolation) == ((224, 224), (0.4, 1.0), "bicubic")
    assert isinstance(flip, RandomHorizontalFlip)
    assert flip.prob == 0.5
