"""SimCLR: a backbone followed by a projection head (the legacy lightly model class).

T. Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations",
2020, https://arxiv.org/abs/2002.05709. Train it with
:class:`selfsup.loss.NTXentLoss` on the outputs for two augmented views of each image.
"""

from __future__ import annotations

from torch import Tensor, nn

from selfsup.models.modules.heads import SimCLRProjectionHead

__all__ = ["ModelOutput", "SimCLR"]

ModelOutput = Tensor | tuple[Tensor, Tensor] | tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]
"""``out0``; ``(out0, out1)``; ``(out0, f0)``; or ``((out0, f0), (out1, f1))``."""


class SimCLR(nn.Module):
    """Backbone + :class:`SimCLRProjectionHead`, with lightly's two-view forward.

    Args:
        backbone: Maps images (B, 3, H, W) to features of ``num_ftrs`` values per image,
            e.g. (B, num_ftrs) or (B, num_ftrs, 1, 1); they are flattened from dim 1.
        num_ftrs: Size of the backbone's flattened output.
        out_dim: Size of the projection.

    Examples:
        >>> resnet = torchvision.models.resnet18()
        >>> backbone = nn.Sequential(*list(resnet.children())[:-1])
        >>> model = SimCLR(backbone, num_ftrs=512)
        >>> out0, out1 = model(x0, x1)  # (B, 128) each
    """

    def __init__(self, backbone: nn.Module, num_ftrs: int = 32, out_dim: int = 128) -> None:
        super().__init__()
        self.num_ftrs = num_ftrs
        self.out_dim = out_dim
        self.backbone = backbone
        self.projection_head = SimCLRProjectionHead(num_ftrs, num_ftrs, out_dim)

    def _embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.backbone(x).flatten(start_dim=1)
        if features.shape[1] != self.num_ftrs:
            raise ValueError(
                f"the backbone returns {features.shape[1]} features per image but SimCLR was "
                f"built with num_ftrs={self.num_ftrs}; pass num_ftrs={features.shape[1]}"
            )
        out: Tensor = self.projection_head(features)
        return out, features

    def forward(
        self, x0: Tensor, x1: Tensor | None = None, return_features: bool = False
    ) -> ModelOutput:
        """Embed and project one or two batches of views.

        Args:
            x0: First views, (B, 3, H, W).
            x1: Optional second views, (B, 3, H, W).
            return_features: Also return the backbone features (B, num_ftrs).

        Returns:
            ``out0`` (B, out_dim) if ``x1`` is None, else ``(out0, out1)``. With
            ``return_features`` every ``out`` becomes a pair ``(out, features)``.
        """
        out0, f0 = self._embed(x0)
        first: Tensor | tuple[Tensor, Tensor] = (out0, f0) if return_features else out0
        if x1 is None:
            return first
        out1, f1 = self._embed(x1)
        if return_features:
            return (out0, f0), (out1, f1)
        return out0, out1
