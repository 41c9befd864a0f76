"""Alignment and uniformity on the hypersphere in a plain PyTorch loop, from selfsup's parts.

    python examples/hypersphere.py --input-dir ./images --epochs 10
    python examples/hypersphere.py       # on generated images (torchvision FakeData)

Wang and Isola 2020: SimCLR's setup, trained with the two properties the contrastive loss
optimises asymptotically, made losses: alignment (the two views of an image close together)
and uniformity (the embeddings spread evenly over the unit sphere).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData

from selfsup.data import LightlyDataset
from selfsup.loss import HypersphereLoss
from selfsup.models import ResNetGenerator
from selfsup.models.modules import SimCLRProjectionHead
from selfsup.transforms import SimCLRTransform
from selfsup.utils.debug import std_of_l2_normalized


class HypersphereModel(nn.Module):
    """Backbone (B, 3, H, W) -> (B, D) features, projection head (B, D) -> (B, out_dim)."""

    def __init__(self, backbone: nn.Module, num_features: int, out_dim: int = 128) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = SimCLRProjectionHead(num_features, num_features, out_dim)

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

    transform = SimCLRTransform(input_size=args.input_size, gaussian_blur=0.0)
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    resnet = ResNetGenerator("resnet-18", width=0.5)
    resnet.linear = nn.Identity()  # keep the pooled features
    model = HypersphereModel(resnet, num_features=resnet.num_features)
    # lightly's defaults: t = 1, λ = 1, α = 2 (the paper's α; it uses t = 2).
    criterion = HypersphereLoss(t=1.0, lam=1.0, alpha=2.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=1e-6)

    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for (x0, x1), _, _ in loader:
            features, z0 = model(x0)
            _, z1 = model(x1)
            loss = criterion(z0, z1)
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
