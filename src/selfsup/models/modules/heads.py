"""Projection and prediction heads: the small MLPs on top of a backbone's embedding.

Every head is a :class:`ProjectionHead` built from blocks ``(in, out, norm, activation)``;
each block is ``Linear(in, out)`` followed by the optional norm and activation. A block with
a norm layer gets a Linear without bias, since the norm's shift makes the bias redundant.
All heads map (B, input_dim) to (B, output_dim).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrizations

__all__ = [
    "BYOLPredictionHead",
    "BYOLProjectionHead",
    "BarlowTwinsProjectionHead",
    "DINOProjectionHead",
    "DINOv2ProjectionHead",
    "DenseCLProjectionHead",
    "DistillationProjectionHead",
    "MMCRProjectionHead",
    "MoCoProjectionHead",
    "MoCoV3PredictionHead",
    "MoCoV3ProjectionHead",
    "NNCLRPredictionHead",
    "NNCLRProjectionHead",
    "ProjectionHead",
    "SMoGPredictionHead",
    "SMoGProjectionHead",
    "SimCLRProjectionHead",
    "SimSiamPredictionHead",
    "SimSiamProjectionHead",
    "SwaVProjectionHead",
    "TiCoProjectionHead",
    "VICRegProjectionHead",
]

Block = tuple[int, int, nn.Module | None, nn.Module | None]
"""``(in_features, out_features, norm_layer or None, activation or None)``."""


class ProjectionHead(nn.Module):
    """An MLP given as a sequence of blocks; base class of all heads.

    Args:
        blocks: One ``(in_features, out_features, norm, activation)`` tuple per linear
            layer. ``norm`` and ``activation`` are module instances or None.

    Examples:
        >>> head = ProjectionHead([
        ...     (256, 256, nn.BatchNorm1d(256), nn.ReLU()),
        ...     (256, 128, None, None),
        ... ])
        >>> head(torch.randn(4, 256)).shape
        torch.Size([4, 128])
    """

    def __init__(self, blocks: Sequence[Block]) -> None:
        super().__init__()
        if len(blocks) == 0:
            raise ValueError("ProjectionHead needs at least one block")
        layers: list[nn.Module] = []
        prev_out: int | None = None
        for i, (in_dim, out_dim, norm, activation) in enumerate(blocks):
            if prev_out is not None and in_dim != prev_out:
                raise ValueError(
                    f"block {i} of ProjectionHead takes {in_dim} inputs but block {i - 1} "
                    f"outputs {prev_out}"
                )
            layers.append(nn.Linear(in_dim, out_dim, bias=norm is None))
            if norm is not None:
                layers.append(norm)
            if activation is not None:
                layers.append(activation)
            prev_out = out_dim
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_features of the first block) -> (B, out_features of the last block)."""
        out: Tensor = self.layers(x)
        return out


def _mlp_blocks(
    input_dim: int,
    hidden_dim: int,
    output_dim: int,
    num_layers: int,
    batch_norm: bool,
    last_batch_norm: bool,
) -> list[Block]:
    """Blocks of an MLP with ``num_layers`` linear layers, ReLU after every hidden one."""
    if num_layers < 2:
        raise ValueError(f"num_layers must be >= 2 (one hidden layer at least), got {num_layers}")
    blocks: list[Block] = [
        (input_dim, hidden_dim, nn.BatchNorm1d(hidden_dim) if batch_norm else None, nn.ReLU())
    ]
    for _ in range(num_layers - 2):
        blocks.append(
            (hidden_dim, hidden_dim, nn.BatchNorm1d(hidden_dim) if batch_norm else None, nn.ReLU())
        )
    last_norm = nn.BatchNorm1d(output_dim) if batch_norm and last_batch_norm else None
    blocks.append((hidden_dim, output_dim, last_norm, None))
    return blocks


class SimCLRProjectionHead(ProjectionHead):
    """Projection head of SimCLR.

    "We use a MLP with one hidden layer to obtain z_i = g(h_i) = W(2) σ(W(1) h_i) where σ is
    a ReLU non-linearity." (SimCLR v1, Chen et al. 2020, https://arxiv.org/abs/2002.05709)

    "We use a 3-layer MLP projection head on top of a ResNet encoder." (SimCLR v2, Chen et
    al. 2020, https://arxiv.org/abs/2006.10029)

    ``num_layers=2`` is v1, ``num_layers=3`` is v2. With ``batch_norm=True`` every linear
    layer, the output one included, is followed by BatchNorm1d, as in the official SimCLR
    code and in lightly: Linear-BN-ReLU-Linear-BN for v1. ``batch_norm=False`` gives the
    paper's plain Linear-ReLU-Linear.

    Args:
        input_dim: Embedding size of the backbone.
        hidden_dim: Width of the hidden layers.
        output_dim: Size of z.
        num_layers: Number of linear layers (>= 2).
        batch_norm: Whether to follow each linear layer by BatchNorm1d.
    """

    def __init__(
        self,
        input_dim: int = 2048,
        hidden_dim: int = 2048,
        output_dim: int = 128,
        num_layers: int = 2,
        batch_norm: bool = True,
    ) -> None:
        super().__init__(
            _mlp_blocks(input_dim, hidden_dim, output_dim, num_layers, batch_norm, True)
        )


class MoCoProjectionHead(ProjectionHead):
    """Projection head of MoCo v2 (and v3 with ``num_layers=3, batch_norm=True``).

    "(...) we replace the fc head in MoCo with a 2-layer MLP head (hidden layer 2048-d,
    with ReLU)" (MoCo v2, Chen et al. 2020, https://arxiv.org/abs/2003.04297)

    "The projection head is a 3-layer MLP (...) The hidden layers of both MLPs are 4096-d
    and are with ReLU; the output layers of both MLPs are 256-d, without ReLU. In MoCo v3,
    all layers in both MLPs have BN" (MoCo v3, Chen et al. 2021,
    https://arxiv.org/abs/2104.02057)

    Args:
        input_dim: Embedding size of the backbone.
        hidden_dim: Width of the hidden layers.
        output_dim: Size of the output.
        num_layers: Number of linear layers (>= 2).
        batch_norm: Whether to follow each linear layer by BatchNorm1d (MoCo v3).
    """

    def __init__(
        self,
        input_dim: int = 2048,
        hidden_dim: int = 2048,
        output_dim: int = 128,
        num_layers: int = 2,
        batch_norm: bool = False,
    ) -> None:
        super().__init__(
            _mlp_blocks(input_dim, hidden_dim, output_dim, num_layers, batch_norm, True)
        )


class MoCoV3ProjectionHead(ProjectionHead):
    """Projection head of MoCo v3 (ResNet): ``num_layers`` linear layers, BN after every one.

    "The projection head is a 3-layer MLP, and the prediction head is a 2-layer MLP. The
    hidden layers of both MLPs are 4096-d and are with ReLU; the output layers of both MLPs
    are 256-d, without ReLU. In MoCo v3, all layers in both MLPs have BN" (MoCo v3, Chen,
    Xie and He 2021, https://arxiv.org/abs/2104.02057, appendix A).

    The output BatchNorm has no affine parameters, as in the authors' code: the outputs are
    L2-normalised by the loss, so a learned scale and shift would only move them around.

    Args:
        input_dim: Embedding size of the backbone.
        hidden_dim: Width of the hidden layers.
        output_dim: Size of the projection (the keys and the predictor's input).
        num_layers: Number of linear layers (>= 2).
    """

    def __init__(
        self,
        input_dim: int = 2048,
        hidden_dim: int = 4096,
        output_dim: int = 256,
        num_layers: int = 3,
    ) -> None:
        super().__init__(_mocov3_blocks(input_dim, hidden_dim, output_dim, num_layers))


class MoCoV3PredictionHead(ProjectionHead):
    """Prediction head of MoCo v3: Linear-BN-ReLU-Linear-BN, on the query branch only.

    "the prediction head is a 2-layer MLP (...) the output layers of both MLPs are 256-d,
    without ReLU. In MoCo v3, all layers in both MLPs have BN" (MoCo v3, Chen, Xie and He
    2021, https://arxiv.org/abs/2104.02057, appendix A). The output BatchNorm has no affine
    parameters, as in :class:`MoCoV3ProjectionHead`.
    """

    def __init__(self, input_dim: int = 256, hidden_dim: int = 4096, output_dim: int = 256):
        super().__init__(_mocov3_blocks(input_dim, hidden_dim, output_dim, 2))


def _mocov3_blocks(
    input_dim: int, hidden_dim: int, output_dim: int, num_layers: int
) -> list[Block]:
    """MoCo v3's MLP: BN and ReLU after the hidden layers, affine-free BN after the last."""
    blocks = _mlp_blocks(input_dim, hidden_dim, output_dim, num_layers, True, False)
    last_in = blocks[-1][0]
    blocks[-1] = (last_in, output_dim, nn.BatchNorm1d(output_dim, affine=False), None)
    return blocks


class TiCoProjectionHead(ProjectionHead):
    """Projection head of TiCo: BYOL's projector, Linear-BN-ReLU-Linear, 4096-d hidden, 256-d out.

    TiCo (Zhu et al. 2022, https://arxiv.org/abs/2206.10698) uses BYOL's projector: "This MLP
    consists in a linear layer with output size 4096 followed by batch normalization,
    rectified linear units (ReLU), and a final linear layer with output dimension 256."
    (BYOL, Grill et al. 2020, https://arxiv.org/abs/2006.07733)
    """

    def __init__(self, input_dim: int = 2048, hidden_dim: int = 4096, output_dim: int = 256):
        super().__init__(
            [
                (input_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU()),
                (hidden_dim, output_dim, None, None),
            ]
        )


class MMCRProjectionHead(ProjectionHead):
    """Projection head of MMCR: ``num_layers`` hidden layers with BN and ReLU, then a linear
    output layer.

    "Following Chen et al. (14), we append a small perceptron to the output of the average
    pooling layer of the ResNet so that zi = g(h(xi)), where h is the ResNet and g is the
    MLP." (MMCR, Yerxa et al. 2023, https://arxiv.org/abs/2303.03307)

    As lightly's: ``num_layers`` counts the hidden layers (so 2 gives three linear layers)
    and the widths are the paper's ImageNet ones (8192 hidden, 512 out).

    Args:
        input_dim: Embedding size of the backbone.
        hidden_dim: Width of the hidden layers.
        output_dim: Size of the output.
        num_layers: Number of hidden layers (>= 1).
        batch_norm: Whether to follow each hidden layer by BatchNorm1d.
        use_bias: Whether the linear layers have a bias; a layer followed by BatchNorm1d
            never has one (the norm's shift makes it redundant).
    """

    def __init__(
        self,
        input_dim: int = 2048,
        hidden_dim: int = 8192,
        output_dim: int = 512,
        num_layers: int = 2,
        batch_norm: bool = True,
        use_bias: bool = False,
    ) -> None:
        if num_layers < 1:
            raise ValueError(f"num_layers (hidden layers) must be >= 1, got {num_layers}")
        super().__init__(
            _mlp_blocks(input_dim, hidden_dim, output_dim, num_layers + 1, batch_norm, False)
        )
        if not use_bias:
            for module in self.layers:
                if isinstance(module, nn.Linear) and module.bias is not None:
                    module.register_parameter("bias", None)


class BYOLProjectionHead(ProjectionHead):
    """Projection head of BYOL.

    "This MLP consists in a linear layer with output size 4096 followed by batch
    normalization, rectified linear units (ReLU), and a final linear layer with output
    dimension 256." (BYOL, Grill et al. 2020, https://arxiv.org/abs/2006.07733)
    """

    def __init__(self, input_dim: int = 2048, hidden_dim: int = 4096, output_dim: int = 256):
        super().__init__(
            [
                (input_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU()),
                (hidden_dim, output_dim, None, None),
            ]
        )


class BYOLPredictionHead(ProjectionHead):
    """Prediction head of BYOL: the projector's architecture, applied to its 256-d output.

    "This MLP consists in a linear layer with output size 4096 followed by batch
    normalization, rectified linear units (ReLU), and a final linear layer with output
    dimension 256." The paper uses the same architecture for the predictor q_θ (BYOL,
    Grill et al. 2020, https://arxiv.org/abs/2006.07733).
    """

    def __init__(self, input_dim: int = 256, hidden_dim: int = 4096, output_dim: int = 256):
        super().__init__(
            [
                (input_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU()),
                (hidden_dim, output_dim, None, None),
            ]
        )


class SimSiamProjectionHead(ProjectionHead):
    """Projection head of SimSiam.

    "The projection MLP (in f) has BN applied to each fully-connected (fc) layer, including
    its output fc. Its output fc has no ReLU. The hidden fc is 2048-d. This MLP has 3
    layers." (SimSiam, Chen & He 2020, https://arxiv.org/abs/2011.10566)
    """

    def __init__(self, input_dim: int = 2048, hidden_dim: int = 2048, output_dim: int = 2048):
        super().__init__(
            [
                (input_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU()),
                (hidden_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU()),
                (hidden_dim, output_dim, nn.BatchNorm1d(output_dim, affine=False), None),
            ]
        )


class SimSiamPredictionHead(ProjectionHead):
    """Prediction head of SimSiam.

    "The prediction MLP (h) has BN applied to its hidden fc layers. Its output fc does not
    have BN (...) or ReLU. This MLP has 2 layers." (SimSiam, Chen & He 2020,
    https://arxiv.org/abs/2011.10566)
    """

    def __init__(self, input_dim: int = 2048, hidden_dim: int = 512, output_dim: int = 2048):
        super().__init__(
            [
                (input_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU()),
                (hidden_dim, output_dim, None, None),
            ]
        )


class BarlowTwinsProjectionHead(ProjectionHead):
    """Projection head of Barlow Twins.

    "The projector network has three linear layers, each with 8192 output units. The first
    two layers of the projector are followed by a batch normalization layer and rectified
    linear units." (Barlow Twins, Zbontar et al. 2021, https://arxiv.org/abs/2103.03230)
    """

    def __init__(self, input_dim: int = 2048, hidden_dim: int = 8192, output_dim: int = 8192):
        super().__init__(
            [
                (input_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU()),
                (hidden_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU()),
                (hidden_dim, output_dim, None, None),
            ]
        )


class VICRegProjectionHead(ProjectionHead):
    """Expander of VICReg: ``num_layers`` linear layers, BatchNorm and ReLU after the hidden ones.

    "The expander h_φ is composed of two fully-connected layers with batch normalization
    (BN) and ReLU, and a third linear layer. The sizes of all 3 layers were set to 8192."
    (VICReg, Bardes et al. 2022, https://arxiv.org/abs/2105.04906, sec. 4.1)
    """

    def __init__(
        self,
        input_dim: int = 2048,
        hidden_dim: int = 8192,
        output_dim: int = 8192,
        num_layers: int = 3,
    ) -> None:
        super().__init__(_mlp_blocks(input_dim, hidden_dim, output_dim, num_layers, True, False))


class NNCLRProjectionHead(ProjectionHead):
    """Projection head of NNCLR.

    "The architecture of the projection MLP is 3 fully connected layers of sizes
    [2048,2048,d] (...) All fully-connected layers are followed by batch-normalization. All
    the batch-norm layers except the last layer are followed by ReLU activation." (NNCLR,
    Dwibedi et al. 2021, https://arxiv.org/abs/2104.14548)
    """

    def __init__(self, input_dim: int = 2048, hidden_dim: int = 2048, output_dim: int = 256):
        super().__init__(
            [
                (input_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU()),
                (hidden_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU()),
                (hidden_dim, output_dim, nn.BatchNorm1d(output_dim), None),
            ]
        )


class NNCLRPredictionHead(ProjectionHead):
    """Prediction head of NNCLR.

    "The architecture of the prediction MLP g is 2 fully-connected layers of size [4096,d].
    The hidden layer of the prediction MLP is followed by batch-norm and ReLU. The last
    layer has no batch-norm or activation." (NNCLR, Dwibedi et al. 2021,
    https://arxiv.org/abs/2104.14548)
    """

    def __init__(self, input_dim: int = 256, hidden_dim: int = 4096, output_dim: int = 256):
        super().__init__(
            [
                (input_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU()),
                (hidden_dim, output_dim, None, None),
            ]
        )


class SwaVProjectionHead(ProjectionHead):
    """Projection head of SwAV: Linear-BN-ReLU-Linear, 2048-d hidden, 128-d output.

    SwAV (Caron et al. 2020, https://arxiv.org/abs/2006.09882) follows SimCLR in projecting
    the features with a 2-layer MLP; hidden BatchNorm and sizes follow the official code.
    """

    def __init__(self, input_dim: int = 2048, hidden_dim: int = 2048, output_dim: int = 128):
        super().__init__(
            [
                (input_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU()),
                (hidden_dim, output_dim, None, None),
            ]
        )


class SMoGProjectionHead(ProjectionHead):
    """Projection head of SMoG: Linear-BN-ReLU, then Linear and a BatchNorm without affine.

    "The two kinds of head are both a two-layer MLP and their hidden layer is followed by a
    BatchNorm and an activation function. (...) The output layer of projection head also has
    BN" (SMoG, Pang et al. 2022, https://arxiv.org/abs/2207.06167).
    """

    def __init__(self, input_dim: int = 2048, hidden_dim: int = 2048, output_dim: int = 128):
        super().__init__(
            [
                (input_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU()),
                (hidden_dim, output_dim, nn.BatchNorm1d(output_dim, affine=False), None),
            ]
        )


class SMoGPredictionHead(ProjectionHead):
    """Prediction head of SMoG: Linear-BN-ReLU-Linear.

    "The two kinds of head are both a two-layer MLP and their hidden layer is followed by a
    BatchNorm and an activation function" (SMoG, Pang et al. 2022,
    https://arxiv.org/abs/2207.06167); only the projection head's output has BN.
    """

    def __init__(self, input_dim: int = 128, hidden_dim: int = 2048, output_dim: int = 128):
        super().__init__(
            [
                (input_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU()),
                (hidden_dim, output_dim, None, None),
            ]
        )


class MSNProjectionHead(ProjectionHead):
    """Projection head of MSN and PMSN: Linear-BN-GELU, Linear-BN-GELU, Linear.

    "The projection head h is a 3-layer MLP with (...) hidden layers of dimension 2048 with
    batch-normalization and GeLU activations, and an output layer of dimension 256" (MSN,
    Assran et al. 2022, https://arxiv.org/abs/2204.07141, appendix C; lightly's defaults).
    """

    def __init__(self, input_dim: int = 768, hidden_dim: int = 2048, output_dim: int = 256):
        super().__init__(
            [
                (input_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.GELU()),
                (hidden_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.GELU()),
                (hidden_dim, output_dim, None, None),
            ]
        )


class DenseCLProjectionHead(ProjectionHead):
    """Projection head of DenseCL (global and dense): Linear-ReLU-Linear on the last dimension.

    DenseCL (Wang et al. 2021, https://arxiv.org/abs/2011.09157, sec. 3.2) projects the pooled
    features with MoCo v2's two-layer MLP and the feature map with the same layers as 1 x 1
    convolutions, i.e. a Linear applied at every location; so this head maps
    (..., input_dim) to (..., output_dim) and serves both, on (B, D) embeddings and on
    (B, h·w, C) feature maps (lightly's ``DenseCLProjectionHead``).
    """

    def __init__(self, input_dim: int = 2048, hidden_dim: int = 2048, output_dim: int = 128):
        super().__init__(
            [(input_dim, hidden_dim, None, nn.ReLU()), (hidden_dim, output_dim, None, None)]
        )


class DINOProjectionHead(ProjectionHead):
    """Projection head of DINO: MLP, L2 normalisation, weight-normalised output layer.

    "The projection head consists of a 3-layer multi-layer perceptron (MLP) with hidden
    dimension 2048 followed by l2 normalization and a weight normalized fully connected
    layer with K dimensions, which is similar to the design from SwAV." (DINO, Caron et al.
    2021, https://arxiv.org/abs/2104.14294)

    The MLP is Linear-GELU-Linear-GELU-Linear to ``bottleneck_dim`` (optionally with
    BatchNorm1d after the hidden layers, for convolutional backbones), initialised with a
    truncated normal of std 0.02 as in the official code. The last layer is
    ``weight_norm(Linear(bottleneck_dim, output_dim, bias=False))`` whose magnitude ``g``
    starts at 1 and, with ``norm_last_layer=True``, stays fixed at 1.

    Args:
        input_dim: Embedding size of the backbone.
        hidden_dim: Width of the hidden layers.
        bottleneck_dim: Size of the L2-normalised bottleneck.
        output_dim: K, the number of output logits.
        batch_norm: Whether to use BatchNorm1d after the hidden layers (False for ViTs).
        freeze_last_layer: The last layer's gradients are dropped by
            :meth:`cancel_last_layer_gradients` while ``current_epoch < freeze_last_layer``;
            "Typically doing so during the first epoch helps training". -1 never freezes.
        norm_last_layer: Keep the weight norm's magnitude fixed at 1 (more stable).
    """

    def __init__(
        self,
        input_dim: int = 2048,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        output_dim: int = 65536,
        batch_norm: bool = False,
        freeze_last_layer: int = -1,
        norm_last_layer: bool = True,
    ) -> None:
        super().__init__(
            [
                (
                    input_dim,
                    hidden_dim,
                    nn.BatchNorm1d(hidden_dim) if batch_norm else None,
                    nn.GELU(),
                ),
                (
                    hidden_dim,
                    hidden_dim,
                    nn.BatchNorm1d(hidden_dim) if batch_norm else None,
                    nn.GELU(),
                ),
                (hidden_dim, bottleneck_dim, None, None),
            ]
        )
        for module in self.layers.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        self.freeze_last_layer = freeze_last_layer
        self.norm_last_layer = norm_last_layer
        self.last_layer = parametrizations.weight_norm(
            nn.Linear(bottleneck_dim, output_dim, bias=False)
        )
        magnitude = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            magnitude.fill_(1.0)
        if norm_last_layer:
            magnitude.requires_grad = False

    def cancel_last_layer_gradients(self, current_epoch: int) -> None:
        """Drop the last layer's gradients while ``current_epoch < freeze_last_layer``.

        Call between ``loss.backward()`` and ``optimizer.step()``.
        """
        if current_epoch >= self.freeze_last_layer:
            return
        for param in self.last_layer.parameters():
            param.grad = None

    #: Floor on the bottleneck's norm in the l2 normalisation (torch's default; DINOv2: 1e-6).
    l2_eps: float = 1e-12

    def forward(self, x: Tensor) -> Tensor:
        """(B, input_dim) -> (B, output_dim) logits."""
        z = nn.functional.normalize(self.layers(x), dim=-1, p=2, eps=self.l2_eps)
        out: Tensor = self.last_layer(z)
        return out


class DistillationProjectionHead(ProjectionHead):
    """Projection head of the distillation student: its embedding to the teacher's size.

    LightlyTrain's distillation trains "a smaller, efficient student model by encouraging
    similarity between the student and teacher representations"; the student's embedding
    (num_ftrs) and the teacher's (e.g. 768 for a ViT-B) differ in size, so a head maps one
    to the other. A single linear layer (the default) keeps the student's embedding itself a
    linear map of what the teacher knows; ``hidden_dim`` adds one hidden layer with batch
    norm and ReLU for a student much smaller than its teacher.

    Args:
        input_dim: The student's embedding size.
        output_dim: The teacher's embedding size.
        hidden_dim: Width of a hidden layer, or None for a linear head.
    """

    def __init__(self, input_dim: int, output_dim: int, hidden_dim: int | None = None) -> None:
        if hidden_dim is None:
            super().__init__([(input_dim, output_dim, None, None)])
        else:
            super().__init__(
                [
                    (input_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU()),
                    (hidden_dim, output_dim, None, None),
                ]
            )


class DINOv2ProjectionHead(DINOProjectionHead):
    """Projection head of DINOv2 (and iBOT): DINO's head for ViTs, with a learnable scale.

    "we use a Sinkhorn-Knopp centering (...) and untie the head weights between the DINO and
    iBOT losses" (DINOv2, Oquab et al. 2023, https://arxiv.org/abs/2304.07193, sec. 4): each
    loss gets one such head. As in the official code the head is DINO's 3-layer MLP (GELU, no
    batch norm) to a 256-d bottleneck, l2-normalised (with a floor of 1e-6 on the norm, safe
    in half precision), and a weight-normalised output layer whose magnitude starts at 1 and
    is trained (``norm_last_layer=False``).

    Args:
        input_dim: Embedding size of the backbone (the ViT's token width).
        hidden_dim: Width of the hidden layers.
        bottleneck_dim: Size of the l2-normalised bottleneck.
        output_dim: K, the number of output logits (prototypes).
        freeze_last_layer: As in :class:`DINOProjectionHead`.
    """

    l2_eps = 1e-6

    def __init__(
        self,
        input_dim: int = 2048,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        output_dim: int = 65536,
        freeze_last_layer: int = -1,
    ) -> None:
        super().__init__(
            input_dim,
            hidden_dim,
            bottleneck_dim,
            output_dim,
            batch_norm=False,
            freeze_last_layer=freeze_last_layer,
            norm_last_layer=False,
        )
