"""FastSiam augmentations: ``num_views`` SimSiam views per image (four by default).

FastSiam (Pototzky et al. 2022, "FastSiam: Resource-Efficient Self-supervised Learning on a
Single GPU", GCPR 2022) stabilises SimSiam at small batch sizes by predicting, from each view,
the mean of the other K views' target embeddings, so it draws K + 1 views of every image with
SimSiam's augmentations (K = 3 in the paper, hence four views).
"""

from __future__ import annotations

from collections.abc import Sequence

from selfsup.transforms._checks import NormalizeArg, check_positive_int
from selfsup.transforms.simsiam_transform import SimSiamTransform
from selfsup.transforms.utils import IMAGENET_NORMALIZE


class FastSiamTransform(SimSiamTransform):
    """FastSiam transform: ``num_views`` independently augmented SimSiam views of every image.

    Input: a PIL image or a tensor ``(C, H, W)``. Output: a list of ``num_views`` float tensors
    ``(C, input_size, input_size)``.

    Args:
        num_views: Number of views, ``K + 1`` for ``K`` target views; an int >= 1 (the method
            needs >= 2, one view is allowed for inspecting the augmentations).
        Others: as in :class:`selfsup.transforms.SimSiamViewTransform`, with the same
            defaults, shared by all views.

    Example:
        >>> transform = FastSiamTransform(num_views=4, input_size=32)
        >>> views = transform(image)  # four tensors (3, 32, 32)
    """

    def __init__(
        self,
        num_views: int = 4,
        input_size: int | Sequence[int] = 224,
        cj_prob: float = 0.8,
        cj_strength: float = 1.0,
        cj_bright: float = 0.4,
        cj_contrast: float = 0.4,
        cj_sat: float = 0.4,
        cj_hue: float = 0.1,
        min_scale: float = 0.2,
        random_gray_scale: float = 0.2,
        gaussian_blur: float = 0.5,
        kernel_size: float | None = None,
        sigmas: Sequence[float] = (0.1, 2),
        vf_prob: float = 0.0,
        hf_prob: float = 0.5,
        rr_prob: float = 0.0,
        rr_degrees: float | Sequence[float] | None = None,
        normalize: NormalizeArg = IMAGENET_NORMALIZE,
    ) -> None:
        views = check_positive_int("num_views", num_views)
        super().__init__(
            input_size=input_size,
            cj_prob=cj_prob,
            cj_strength=cj_strength,
            cj_bright=cj_bright,
            cj_contrast=cj_contrast,
            cj_sat=cj_sat,
            cj_hue=cj_hue,
            min_scale=min_scale,
            random_gray_scale=random_gray_scale,
            gaussian_blur=gaussian_blur,
            kernel_size=kernel_size,
            sigmas=sigmas,
            vf_prob=vf_prob,
            hf_prob=hf_prob,
            rr_prob=rr_prob,
            rr_degrees=rr_degrees,
            normalize=normalize,
        )
        # One view transform serves every view: each call draws fresh parameters.
        self.transforms = self.transforms[:1] * views
        self.num_views = views
