"""W-MSE in a plain PyTorch loop, from selfsup's parts.

    python examples/wmse.py --input-dir ./images --epochs 10
    python examples/wmse.py              # on generated images (torchvision FakeData)

Ermolov et al. 2021: the embeddings of each view's batch are whitened (decorrelated, unit
variance), which scatters them and rules out collapse; the loss pulls the normalised whitened
embeddings of the views of an image together, with no negatives or momentum network.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData

from selfsup.data import LightlyDataset
from selfsup.loss import WMSELoss
from selfsup.models import ResNetGenerator
from selfsup.models.modules import ProjectionHead
from selfsup.transforms import WMSETransform
from selfsup.utils.debug import std_of_l2_normalized


class WMSEModel(nn.Module):
    """Backbone (B, 3, H, W) -> (B, D) features, projection head (B, D) -> (B, out_dim)."""

    def __init__(self, backbone: nn.Module, num_features: int, out_dim: int = 16) -> None:
        super().__init__()
        self.backbone = backbone
        # The paper's projector: Linear-BN-ReLU-Linear, 1024 hidden units.
        self.projection_head = ProjectionHead(
            [
                (num_features, 1024, nn.BatchNorm1d(1024), nn.ReLU()),
                (1024, out_dim, None, None),
            ]
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> backbone features (B, D) and projections (B, out_dim)."""
        features = self.backbone(x).flatten(start_dim=1)
        z: torch.Tensor = self.projection_head(features)
        return features, z


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    args = parser.parse_args()

    transform = WMSETransform(num_samples=2, input_size=args.input_size, gaussian_blur=0.0)
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    resnet = ResNetGenerator("resnet-18", width=0.5)
    resnet.linear = nn.Identity()  # keep the pooled features
    model = WMSEModel(resnet, num_features=resnet.num_features)
    # Each view's whole batch is whitened; the paper keeps its sub-batches at least twice the
    # embedding size (16 here), and a small shrinkage covers smaller batches.
    criterion = WMSELoss(embedding_dim=16, w_size=None, eps=0.01, num_samples=2)
    # The authors train with Adam.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-6)

    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for (x0, x1), _, _ in loader:
            features, z0 = model(x0)
            _, z1 = model(x1)
            loss = criterion(torch.cat([z0, z1]))  # the views one after the other
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            stds.append(float(std_of_l2_normalized(features.detach())))
        print(
            f"epoch: {epoch:02d}, loss: {total / max(len(loader), 1):.5f}, "
            f"representation std: {sum(stds) / max(len(stds), 1):.5f}"
        )


if __name__ == "__main__":
    main()
