"""Image augmentations for self-supervised learning.

Method transforms turn one image into the list of views a method trains on
(:class:`SimCLRTransform`, :class:`MoCoV1Transform`, :class:`MoCoV2Transform`,
:class:`DINOTransform`, :class:`BYOLTransform`, :class:`SimSiamTransform`,
:class:`FastSiamTransform`, :class:`VICRegTransform`, :class:`SwaVTransform`,
:class:`EMPSSLTransform`, :class:`SMoGTransform`, :class:`VICRegLTransform` (views and
their location grids), :class:`DenseCLTransform`, :class:`DetConSTransform`,
:class:`DetConBTransform` (views and grids), :class:`MSNTransform`, :class:`DINOv2Transform`,
:class:`IJEPATransform`, :class:`AIMTransform`);
:class:`MultiViewTransform` combines any callables into such a list.

The building blocks (crop, flips, colour jitter, grayscale, :class:`GaussianBlur`,
:class:`RandomRotate`, :class:`RandomRotateDegrees`, :class:`RandomSolarization`) work on PIL
images and on tensors ``(..., C, H, W)``, and split random parameter sampling
(``get_params(size, generator)``) from applying them (``apply(img, params)``): views are
reproducible with a seeded ``torch.Generator`` or ``torch.manual_seed``, and parameters drawn
on the CPU can be applied to tensors on the GPU. See :mod:`selfsup.transforms.base`.

Every step also has a batched, on-device form (:mod:`selfsup.transforms.batched`, parameters
from the steps' ``sample_batch(n, size, generator)``), and :class:`BatchedMultiViewTransform`
runs a method transform on a whole ``(B, C, H, W)`` batch at once (CPU or GPU).
"""

from __future__ import annotations

from selfsup.transforms.aim_transform import AIMTransform
from selfsup.transforms.base import RandomTransform, image_size
from selfsup.transforms.batched_view import BatchedMultiViewTransform, BatchedViewTransform
from selfsup.transforms.byol_transform import (
    BYOLTransform,
    BYOLView1Transform,
    BYOLView2Transform,
)
from selfsup.transforms.color import ColorJitterParams, RandomColorJitter, RandomGrayscale
from selfsup.transforms.densecl_transform import DenseCLTransform
from selfsup.transforms.detcon_transform import DetConBTransform, DetConSTransform
from selfsup.transforms.dino_transform import DINOTransform, DINOViewTransform
from selfsup.transforms.dinov2_transform import DINOv2Transform
from selfsup.transforms.emp_ssl_transform import EMPSSLTransform, EMPSSLViewTransform
from selfsup.transforms.fast_siam_transform import FastSiamTransform
from selfsup.transforms.flip import RandomHorizontalFlip, RandomVerticalFlip
from selfsup.transforms.gaussian_blur import GaussianBlur, GaussianBlurParams
from selfsup.transforms.ijepa_transform import IJEPATransform
from selfsup.transforms.mae_transform import MAETransform
from selfsup.transforms.mmcr_transform import MMCRTransform
from selfsup.transforms.moco_transform import MoCoV1Transform, MoCoV2Transform
from selfsup.transforms.msn_transform import MSNTransform
from selfsup.transforms.multi_view_transform import MultiViewTransform
from selfsup.transforms.random_resized_crop import CropParams, RandomResizedCrop
from selfsup.transforms.rotation import (
    RandomRotate,
    RandomRotateDegrees,
    random_rotation_transform,
)
from selfsup.transforms.simclr_transform import SimCLRTransform, SimCLRViewTransform
from selfsup.transforms.simmim_transform import SimMIMTransform
from selfsup.transforms.simsiam_transform import SimSiamTransform, SimSiamViewTransform
from selfsup.transforms.smog_transform import SMoGTransform, SMoGViewTransform
from selfsup.transforms.solarize import RandomSolarization
from selfsup.transforms.swav_transform import SwaVTransform, SwaVViewTransform
from selfsup.transforms.utils import IMAGENET_NORMALIZE
from selfsup.transforms.vicreg_transform import VICRegTransform, VICRegViewTransform
from selfsup.transforms.vicregl_transform import VICRegLTransform, VICRegLViewTransform
from selfsup.transforms.view_transform import ViewParams, ViewTransform
from selfsup.transforms.wmse_transform import WMSETransform

__all__ = [
    "IMAGENET_NORMALIZE",
    "AIMTransform",
    "BYOLTransform",
    "BYOLView1Transform",
    "BYOLView2Transform",
    "BatchedMultiViewTransform",
    "BatchedViewTransform",
    "ColorJitterParams",
    "CropParams",
    "DINOTransform",
    "DINOViewTransform",
    "DINOv2Transform",
    "DenseCLTransform",
    "DetConBTransform",
    "DetConSTransform",
    "EMPSSLTransform",
    "EMPSSLViewTransform",
    "FastSiamTransform",
    "GaussianBlur",
    "GaussianBlurParams",
    "IJEPATransform",
    "MAETransform",
    "MMCRTransform",
    "MSNTransform",
    "MoCoV1Transform",
    "MoCoV2Transform",
    "MultiViewTransform",
    "RandomColorJitter",
    "RandomGrayscale",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "RandomRotate",
    "RandomRotateDegrees",
    "RandomSolarization",
    "RandomTransform",
    "RandomVerticalFlip",
    "SMoGTransform",
    "SMoGViewTransform",
    "SimCLRTransform",
    "SimCLRViewTransform",
    "SimMIMTransform",
    "SimSiamTransform",
    "SimSiamViewTransform",
    "SwaVTransform",
    "SwaVViewTransform",
    "VICRegLTransform",
    "VICRegLViewTransform",
    "VICRegTransform",
    "VICRegViewTransform",
    "ViewParams",
    "ViewTransform",
    "WMSETransform",
    "image_size",
    "random_rotation_transform",
]
