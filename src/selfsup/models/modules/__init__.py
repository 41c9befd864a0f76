"""Building blocks of self-supervised models: projection and prediction heads, SwAV's
prototypes and NNCLR's nearest-neighbour memory bank."""

from selfsup.models.modules.heads import (
    BarlowTwinsProjectionHead,
    BYOLPredictionHead,
    BYOLProjectionHead,
    DenseCLProjectionHead,
    DINOProjectionHead,
    DINOv2ProjectionHead,
    MMCRProjectionHead,
    MoCoProjectionHead,
    MoCoV3PredictionHead,
    MoCoV3ProjectionHead,
    MSNProjectionHead,
    NNCLRPredictionHead,
    NNCLRProjectionHead,
    ProjectionHead,
    SimCLRProjectionHead,
    SimSiamPredictionHead,
    SimSiamProjectionHead,
    SMoGPredictionHead,
    SMoGProjectionHead,
    SwaVProjectionHead,
    TiCoProjectionHead,
    VICRegProjectionHead,
)
from selfsup.models.modules.ijepa import IJEPAPredictor
from selfsup.models.modules.masked_autoencoder import MAEDecoder, MAEDecoderTIMM
from selfsup.models.modules.masked_causal_vision_transformer import (
    AIMPredictionHead,
    MaskedCausalVisionTransformer,
)
from selfsup.models.modules.masked_vision_transformer import (
    MaskedVisionTransformer,
    MaskedVisionTransformerTIMM,
    MaskedVisionTransformerTorchvision,
)
from selfsup.models.modules.nn_memory_bank import NNMemoryBankModule
from selfsup.models.modules.smog import SMoGPrototypes
from selfsup.models.modules.swav import SwaVPrototypes

__all__ = [
    "AIMPredictionHead",
    "BYOLPredictionHead",
    "BYOLProjectionHead",
    "BarlowTwinsProjectionHead",
    "DINOProjectionHead",
    "DINOv2ProjectionHead",
    "DenseCLProjectionHead",
    "IJEPAPredictor",
    "MAEDecoder",
    "MAEDecoderTIMM",
    "MMCRProjectionHead",
    "MSNProjectionHead",
    "MaskedCausalVisionTransformer",
    "MaskedVisionTransformer",
    "MaskedVisionTransformerTIMM",
    "MaskedVisionTransformerTorchvision",
    "MoCoProjectionHead",
    "MoCoV3PredictionHead",
    "MoCoV3ProjectionHead",
    "NNCLRPredictionHead",
    "NNCLRProjectionHead",
    "NNMemoryBankModule",
    "ProjectionHead",
    "SMoGPredictionHead",
    "SMoGProjectionHead",
    "SMoGPrototypes",
    "SimCLRProjectionHead",
    "SimSiamPredictionHead",
    "SimSiamProjectionHead",
    "SwaVProjectionHead",
    "SwaVPrototypes",
    "TiCoProjectionHead",
    "VICRegProjectionHead",
]
