"""Loss functions for self-supervised learning (lightly's ``lightly.loss``).

- :class:`NTXentLoss`: SimCLR's contrastive loss, or MoCo's with ``memory_bank_size > 0``.
- :class:`MemoryBankModule`: FIFO bank of past embeddings used as extra negatives.
- :class:`MMCRLoss`: MMCR's nuclear norm of the centroids of every image's views.
- :class:`MoCoV3Loss`: MoCo v3's contrastive loss against the keys of the batch, times 2τ.
- :class:`DINOLoss`: DINO's self-distillation loss with teacher centering.
- :class:`NegativeCosineSimilarity`: the loss of BYOL, SimSiam and FastSiam.
- :class:`BarlowTwinsLoss`: Barlow Twins' cross-correlation loss.
- :class:`VICRegLoss`: VICReg's variance-invariance-covariance loss.
- :class:`VICRegLLoss`: VICRegL's global VICReg plus VICReg on matched local features.
- :class:`WMSELoss`: W-MSE's MSE of positive pairs after whitening the batch.
- :class:`SwaVLoss`: SwAV's swapped prediction loss with Sinkhorn-Knopp codes.
- :class:`TiCoLoss`: TiCo's invariance plus contrast against a running covariance.
- :class:`DCLLoss`, :class:`DCLWLoss`: decoupled contrastive learning (DCL, DCLW).
- :class:`HypersphereLoss`: alignment plus uniformity on the hypersphere (Wang and Isola).
- :class:`EMPSSLLoss`, :class:`TCRLoss`: EMP-SSL's total coding rate and patch invariance.
- :class:`DenseCLLoss`: DenseCL's global and dense InfoNCE, each with its queue.
- :class:`DetConSLoss`, :class:`DetConBLoss`: DetCon's contrast of mask-pooled regions.
- :class:`FroSSLLoss`: FroSSL's log Frobenius norms of the covariances plus invariance.
- :class:`DistillationLoss`: a student's projections against a frozen teacher's embeddings.
- :class:`MSNLoss`, :class:`PMSNLoss`, :class:`PMSNCustomLoss`: MSN's prototype matching of
  masked anchors, with a uniform (MSN) or other (PMSN) prior over the prototypes.
- :class:`KoLeoLoss`: the KoLeo nearest-neighbour entropy regulariser of DINOv2.
- :class:`IBOTPatchLoss`: iBOT's masked-patch cross-entropy against the centred teacher.
"""

from __future__ import annotations

from selfsup.loss.barlow_twins_loss import BarlowTwinsLoss
from selfsup.loss.dcl_loss import DCLLoss, DCLWLoss
from selfsup.loss.densecl_loss import DenseCLLoss
from selfsup.loss.detcon_loss import DetConBLoss, DetConSLoss
from selfsup.loss.dino_loss import DINOLoss
from selfsup.loss.distillation_loss import DistillationLoss
from selfsup.loss.emp_ssl_loss import EMPSSLLoss, TCRLoss
from selfsup.loss.frossl_loss import FroSSLLoss
from selfsup.loss.hypersphere_loss import HypersphereLoss
from selfsup.loss.ibot_loss import IBOTPatchLoss
from selfsup.loss.koleo_loss import KoLeoLoss
from selfsup.loss.memory_bank import MemoryBankModule
from selfsup.loss.mmcr_loss import MMCRLoss
from selfsup.loss.mocov3_loss import MoCoV3Loss
from selfsup.loss.msn_loss import MSNLoss, PMSNCustomLoss, PMSNLoss
from selfsup.loss.negative_cosine_similarity import NegativeCosineSimilarity
from selfsup.loss.ntx_ent_loss import NTXentLoss
from selfsup.loss.swav_loss import SwaVLoss
from selfsup.loss.tico_loss import TiCoLoss
from selfsup.loss.vicreg_loss import VICRegLoss
from selfsup.loss.vicregl_loss import VICRegLLoss
from selfsup.loss.wmse_loss import WMSELoss

__all__ = [
    "BarlowTwinsLoss",
    "DCLLoss",
    "DCLWLoss",
    "DINOLoss",
    "DenseCLLoss",
    "DetConBLoss",
    "DetConSLoss",
    "DistillationLoss",
    "EMPSSLLoss",
    "FroSSLLoss",
    "HypersphereLoss",
    "IBOTPatchLoss",
    "KoLeoLoss",
    "MMCRLoss",
    "MSNLoss",
    "MemoryBankModule",
    "MoCoV3Loss",
    "NTXentLoss",
    "NegativeCosineSimilarity",
    "PMSNCustomLoss",
    "PMSNLoss",
    "SwaVLoss",
    "TCRLoss",
    "TiCoLoss",
    "VICRegLLoss",
    "VICRegLoss",
    "WMSELoss",
]
